"""The service graph as Graphviz DOT: services coloured by status, their base images and templates."""
from __future__ import annotations

from typing import Mapping

from .project import Project

FILL = {"OK": "palegreen", "MISSING": "lightgrey", "INVALID": "salmon", "STALE": "gold"}


def to_dot(project: Project, status_of: Mapping[str, str]) -> str:
    """One node per service, external base image and template; an edge from each to what uses it."""
    lines = ["digraph services {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']
    for name in project.names:
        status = status_of.get(name, "")
        label = _quote(f"{name}\n{status}")
        lines.append(f"  {_quote('service:' + name)} [label={label}, shape=box, style=filled, "
                     f"fillcolor={FILL.get(status, 'white')}];")
    for image in project.external_images:
        lines.append(f"  {_quote('image:' + image.ref)} [label={_quote(image.ref)}, shape=ellipse];")
    for name, service in sorted(project.services.items()):
        target = _quote("service:" + name)
        for template in service.templates:
            lines.append(f"  {_quote('template:' + template.shown)} [label={_quote(template.shown)}, shape=note];")
            lines.append(f"  {_quote('template:' + template.shown)} -> {target};")
        for image in service.external_images:
            lines.append(f"  {_quote('image:' + image.ref)} -> {target};")
        for base in service.base_services:
            lines.append(f"  {_quote('service:' + base)} -> {target};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, line breaks as DOT's own."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

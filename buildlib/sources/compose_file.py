"""Compose files read without compose, for machines that lack the plugin: the part of
`docker compose config` that buildlib uses (build sections, images, secrets, profiles, the
project name), with compose's `.env`, interpolation, override files and path rules.

Not read here: `extends`, `include`, and compose's merge rules for lists (a later file's list
replaces an earlier one's). Where compose is installed, compose itself answers.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import yaml

from ..errors import SettingsError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPERATORS = (":-", ":?", ":+", "-", "?", "+")
OVERRIDES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
             "docker-compose.override.yaml")
ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)")


class InterpolationError(ValueError):
    """A ${VAR?message} whose variable is missing, or a ${...} that compose cannot read."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """text with compose's substitutions made: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
    ${VAR:+r}, ${VAR+r}; defaults and the rest may hold substitutions of their own."""
    out, index = [], 0
    while (start := text.find("$", index)) >= 0:
        out.append(text[index:start])
        following = text[start + 1:start + 2]
        if following == "$":
            out.append("$")
            index = start + 2
        elif following == "{":
            end = _closing(text, start + 2)
            out.append(_substituted(text[start + 2:end], variables))
            index = end + 1
        elif named := NAME.match(text, start + 1):
            out.append(variables.get(named[0], ""))
            index = named.end()
        else:   # a $ before anything else stays as it is
            out.append("$")
            index = start + 1
    return "".join(out) + text[index:]


def _closing(text: str, start: int) -> int:
    """Where the ${ opened just before start closes, the ${...} inside it skipped."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "}":
            depth -= 1
        elif text[index] == "{" and text[index - 1] == "$":
            depth += 1
        if depth == 0:
            return index
    raise InterpolationError(f"invalid interpolation format for {text!r}: a ${{ that does not close")


def _substituted(inner: str, variables: Mapping[str, str]) -> str:
    named = NAME.match(inner)
    if not named:
        raise InterpolationError(f"invalid interpolation format for ${{{inner}}}: no variable name")
    name, rest = named[0], inner[named.end():]
    if not rest:
        return variables.get(name, "")
    operator = next((op for op in OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(f"invalid interpolation format for ${{{inner}}}")
    value, argument = variables.get(name), rest[len(operator):]
    missing = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return interpolate(argument, variables) if missing else value
    if operator.endswith("+"):
        return "" if missing else interpolate(argument, variables)
    if missing:
        raise InterpolationError(f"required variable {name} is missing a value: {interpolate(argument, variables)}")
    return value


def dotenv(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """A .env file's variables, as compose reads one: each value may use the ones before it and the environment."""
    found: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        matched = ENV_LINE.fullmatch(line)
        if not matched or line.lstrip().startswith("#"):
            continue
        raw = matched[2].strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            value = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = interpolate(raw[1:-1].replace('\\"', '"').replace("\\n", "\n"), {**found, **environ})
        else:
            value = interpolate(re.split(r"\s+#", raw, maxsplit=1)[0].strip(), {**found, **environ})
        found[matched[1]] = value
    return found


def config(root: Path, files: tuple[Path, ...], profiles: tuple[str, ...], environ: Mapping[str, str],
           named: bool) -> dict:
    """The model `docker compose config` would print for these files, in the parts buildlib reads."""
    variables = {**dotenv(root / ".env", environ), **environ}
    if not named:   # compose adds the override file only to the file it found by itself
        files = files + tuple(root / name for name in OVERRIDES if (root / name).is_file())[:1]
    model: dict = {}
    for path in files:
        model = _merged(model, _long_builds(_interpolated(_loaded(path), variables, path)))
    active = set(profiles) | {name for name in variables.get("COMPOSE_PROFILES", "").split(",") if name}
    services = {}
    for name, service in (model.get("services") or {}).items():
        service = service or {}
        if service.get("profiles") and not active & set(service["profiles"]):
            continue
        if "build" in service:
            service = {**service, "build": _build(service["build"], root, variables)}
        services[name] = service
    secrets = {name: {**definition, **({"file": str(root / definition["file"])} if "file" in definition else {})}
               for name, definition in (model.get("secrets") or {}).items()}
    name = model.get("name") or variables.get("COMPOSE_PROJECT_NAME") or root.resolve().name
    return {"name": re.sub(r"[^a-z0-9_-]", "", name.lower()), "services": services, "secrets": secrets}


def _loaded(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SettingsError(f"{path.name}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path.name}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{path.name}: not a compose file (its top is not a mapping)")
    return document


def _interpolated(value, variables: Mapping[str, str], path: Path, where: str = ""):
    """Every string of a document with its substitutions made; keys stay as written."""
    if isinstance(value, dict):
        return {key: _interpolated(item, variables, path, f"{where}.{key}".lstrip(".")) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolated(item, variables, path, where) for item in value]
    if isinstance(value, str):
        try:
            return interpolate(value, variables)
        except InterpolationError as error:
            raise SettingsError(f"{path.name}: error while interpolating {where}: {error}") from None
    return value


def _long_builds(document: dict) -> dict:
    """`build: ./dir` as `build: {context: ./dir}`, before files merge, as compose does."""
    services = {name: {**service, "build": {"context": service["build"]}}
                if isinstance(service, dict) and isinstance(service.get("build"), str) else service
                for name, service in (document.get("services") or {}).items()}
    return {**document, "services": services} if services else document


def _merged(base: dict, over: dict) -> dict:
    """A later file over an earlier one: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def _build(build: dict, root: Path, variables: Mapping[str, str]) -> dict:
    """A build section in compose's normal form: mappings for lists, folders absolute."""
    build = dict(build)
    context = build.get("context", ".")
    build["context"] = context if re.match(r"[a-z]+://|git@", context) else os.path.normpath(root / context)
    if "dockerfile_inline" not in build:
        build.setdefault("dockerfile", "Dockerfile")
    for key in ("args", "labels", "additional_contexts"):
        if key in build:
            build[key] = _mapping(build[key], variables if key == "args" else {})
    contexts = build.get("additional_contexts") or {}
    build["additional_contexts"] = {
        name: value if ":" in value.split("/")[0] else os.path.normpath(root / value) for name, value in contexts.items()}
    build["secrets"] = [{"source": entry} if isinstance(entry, str) else entry for entry in build.get("secrets") or []]
    return {key: value for key, value in build.items() if value not in ({}, [])}


def _mapping(value, environ: Mapping[str, str]) -> dict:
    """A list of NAME=value as compose's mapping, values as strings; a bare NAME takes environ's value, else none."""
    pairs = value.items() if isinstance(value, dict) else [entry.split("=", 1) if "=" in entry else (entry, None)
                                                            for entry in value]
    pairs = [(key, environ.get(key) if item is None else item) for key, item in pairs]
    return {key: _string(item) for key, item in pairs if item is not None}


def _string(value) -> str:
    return {True: "true", False: "false"}.get(value, str(value)) if isinstance(value, bool) else str(value)

"""Where services come from: a compose file when the repository has one, else the folders under
services-dir. Each way returns the same Declared records; project.py analyses them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..settings import Settings


@dataclass(frozen=True)
class Declared:
    """A service as its source declares it, with the settings' overrides applied: what to build and how."""
    name: str
    shown: str                     # how messages name it: services/web, compose.yaml web
    folder: Path                   # where its config templates are
    context: Path
    dockerfile: Path
    image: str                     # the full reference its image is tagged with
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None
    network: str | None = None
    templates: tuple[str, ...] = ()
    secret_args: tuple[str, ...] = ()
    # Named build contexts that stand for images: name -> service:NAME or docker-image://REF.
    contexts: Mapping[str, str] = field(default_factory=dict)


def declared_services(settings: Settings) -> dict[str, Declared | str]:
    """Every service by name: its record, or the one line that says why it cannot be built."""
    from . import compose, folders
    files = compose.compose_files(settings)
    return compose.declared(settings, files) if files else folders.declared(settings)

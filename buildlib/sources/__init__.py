"""Where services come from: a compose file when the repository has one, else the folders under
services-dir. Each way returns the same Declared records; project.py analyses them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from docker.auth import split_repo_name
from docker.utils import parse_repository_tag

from ..settings import HOST_PATTERN, NAME_PATTERN, TAG_PATTERN, Settings, is_folder

MAX_REPOSITORY = 255   # characters of [registry/]name, Docker's limit


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
    # Build secrets by id: env=VARIABLE or src=/path, as buildx takes them; never hashed, never shown.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Named build contexts: name -> service:NAME or docker-image://REF (an image), or a folder's absolute path.
    contexts: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()      # more references the image gets, besides image
    ssh: tuple[str, ...] = ()       # agent sockets or keys RUN --mount=type=ssh may use: default, or id=path


def declared_services(settings: Settings) -> dict[str, Declared | str]:
    """Every service by name: its record, or the one line that says why it cannot be built."""
    from . import compose, folders
    files = compose.compose_files(settings)
    return compose.declared(settings, files) if files else folders.declared(settings)


def arg_secrets(names: Iterable[str]) -> dict[str, str]:
    """Secret build args as build secrets: each one's id is the variable it is read from."""
    return {name: f"env={name}" for name in names}


def resolved(contexts: Mapping[str, str], folder: Path) -> dict[str, str]:
    """Named build contexts with each folder made absolute, from the folder its paths are relative to."""
    return {name: str((folder / value).resolve()) if is_folder(value) else value for name, value in contexts.items()}


def image_name(settings: Settings, service: str, project: str, given: str | None = None) -> tuple[str, str]:
    """The reference a service's image is tagged with, and why Docker would refuse it ('' when it would not).

    The service's own image setting, else the name its source gives (the registry setting in front
    of it instead of its own registry, the tag setting where it names no tag), else the template.
    """
    if settings.for_service(service).image or not given:
        reference = settings.image(service, project)
    else:
        repository, tag = parse_repository_tag(given)
        if settings.registry:
            repository = f"{settings.registry}/{split_repo_name(repository)[1]}"
        reference = f"{repository}:{tag or settings.tag}"
    return reference, reference_defect(reference)


def reference_defect(reference: str) -> str:
    """Why Docker would refuse to tag an image with this reference, in a few words ('' when it would not)."""
    if "@" in reference:
        return "names a digest; a build can only give a tag"
    repository, tag = parse_repository_tag(reference)
    if tag is not None and not TAG_PATTERN.fullmatch(tag):   # no tag: latest
        return f"'{tag}' is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)"
    host, path = split_repo_name(repository)   # Docker's rule: a first part with . or : or localhost is a registry
    if path != repository and not HOST_PATTERN.fullmatch(host):
        return f"'{host}' is not a registry address"
    bad = next((part for part in path.split("/") if not NAME_PATTERN.fullmatch(part)), None)
    if bad is not None:
        return f"'{bad}' cannot be part of an image name (lower-case letters, digits, and . _ - between them)"
    if len(repository) > MAX_REPOSITORY:
        return f"the name is {len(repository)} characters long, Docker allows {MAX_REPOSITORY}"
    return ""

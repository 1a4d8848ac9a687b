"""Services from compose files: every service with a `build:` section, as `docker compose config`
reads them (its own file discovery, overrides, `.env` and interpolation), the answer cached by
the files' stat data and the environment."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Mapping

from docker.utils import parse_repository_tag

from ..dockerfile import REFERENCE
from ..errors import SettingsError
from ..settings import Settings, context_defect
from . import Declared

# What compose finds by itself at a project's root, and what can change its answer.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                  "docker-compose.override.yaml", ".env")
CACHE_FILE = Path(".buildlib") / "compose-config.json"
# The environment compose reads: the variables the files name, and its own settings.
COMPOSE_VARIABLES = ("COMPOSE_FILE", "COMPOSE_PATH_SEPARATOR", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES",
                     "COMPOSE_ENV_FILES")
BUILD_KEYS = {"context", "dockerfile", "args", "target", "network", "platforms", "additional_contexts"}
# Keys that change how a build is cached or pulled, not what it makes.
NEUTRAL_KEYS = {"cache_from", "cache_to", "pull", "no_cache"}


def compose_files(settings: Settings) -> tuple[Path, ...]:
    """The compose files compose would read here: those COMPOSE_FILE names, else the first default name."""
    named = os.environ.get("COMPOSE_FILE")
    if named:
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return tuple(settings.root / part for part in named.split(separator) if part)
    found = next((settings.root / name for name in COMPOSE_FILES if (settings.root / name).is_file()), None)
    return (found,) if found else ()


def declared(settings: Settings, files: tuple[Path, ...]) -> dict[str, Declared | str]:
    model = compose_config(settings.root, files)
    shown = files[0].name
    found: dict[str, Declared | str] = {}
    for name, service in sorted((model.get("services") or {}).items()):
        if "build" in service:
            found[name] = _declared(settings, f"{shown} {name}", name, service, model.get("name") or settings.project)
    for name in settings.services:
        if name not in found:
            raise SettingsError(f"[tool.buildlib.services.{name}]: {shown} has no service {name} with a build section")
    return found


def _declared(settings: Settings, shown: str, name: str, service: Mapping, project: str) -> Declared | str:
    build = service["build"]
    other = sorted(set(build) - BUILD_KEYS - NEUTRAL_KEYS)
    if other:
        return f"{shown}: build.{other[0]} is not supported by buildlib yet"
    platforms = build.get("platforms") or []
    if len(platforms) > 1:
        return f"{shown}: build.platforms names {len(platforms)} platforms; buildlib builds one image per service"
    context = Path(build.get("context") or settings.root)
    if not context.is_absolute():   # compose makes a folder absolute, and leaves a git or https URL as it is
        return f"{shown}: build.context {build.get('context')} is not a folder (buildlib builds local contexts)"
    contexts = build.get("additional_contexts") or {}
    defects = {context_name: context_defect(value) for context_name, value in contexts.items()}
    for context_name, defect in defects.items():
        if defect:
            return f"{shown}: build.additional_contexts.{context_name}: {defect}"
    own = settings.for_service(name)
    image = service.get("image") or f"{project}-{name}"
    # compose passes `args: [NAME]` with no value from its environment only when set; unset ones stay out.
    args = {key: value for key, value in (build.get("args") or {}).items() if value is not None}
    return Declared(
        name=name, shown=shown, folder=context, context=context,
        dockerfile=context / build.get("dockerfile", "Dockerfile"),
        image=(f"{settings.registry}/{image}" if settings.registry else image)
        + ("" if parse_repository_tag(image)[1] else ":latest"),
        args={**args, **own.args}, target=own.target or build.get("target"),
        platform=own.platform or (platforms[0] if platforms else None), network=own.network or build.get("network"),
        templates=own.templates, secret_args=own.secret_args, contexts={**contexts, **own.contexts})


def compose_config(root: Path, files: tuple[Path, ...]) -> dict:
    """compose's own reading of the files, kept in .buildlib until a file or a variable they name changes."""
    watched = sorted({*files, *(root / name for name in COMPOSE_FILES + OVERRIDE_FILES)})
    named = set(COMPOSE_VARIABLES).union(*(REFERENCE.findall(_text(path)) for path in watched))
    key = hashlib.sha256(json.dumps([[[str(path), _stat(path)] for path in watched],
                                     [[name, os.environ.get(name)] for name in sorted(named)]]).encode()).hexdigest()
    cache = root / CACHE_FILE
    try:
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return kept["model"]
    except (OSError, ValueError, AttributeError):
        pass   # no cache, or one that cannot answer: ask compose
    model = _ask_compose(root, files)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "model": model}))
    except OSError:
        pass   # a cache that cannot be written costs the next run one compose call
    return model


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _stat(path: Path) -> list | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _ask_compose(root: Path, files: tuple[Path, ...]) -> dict:
    command = ["docker", "compose", "--project-directory", str(root)]
    for path in files:
        command += ["--file", str(path)]
    try:
        done = subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, timeout=120,
                              cwd=root)
    except FileNotFoundError:
        raise SettingsError(f"{files[0].name}: reading it needs `docker compose`; there is no docker CLI on PATH") from None
    except subprocess.TimeoutExpired:
        raise SettingsError(f"{files[0].name}: `docker compose config` did not answer within 120s") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        if said and "is not a docker command" in said[-1]:
            raise SettingsError(f"{files[0].name}: reading it needs `docker compose` (the compose plugin, v2)")
        raise SettingsError(f"{files[0].name}: docker compose cannot read it: {said[-1] if said else 'no reason given'}")
    return json.loads(done.stdout)

"""Services from compose files: every service with a `build:` section, as `docker compose config`
reads them (its own file discovery, overrides, profiles, `.env` and interpolation), the answer
cached by the files' stat data and the environment. Its YAML, not its JSON: compose 2.40 cannot
write `build.ssh` as JSON."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Mapping

from ..dockerfile import REFERENCE
from ..errors import SettingsError
from ..settings import Settings, context_defect
from . import Declared, arg_secrets, image_name, reference_defect, resolved

# What compose finds by itself at a project's root, and what can change its answer.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                  "docker-compose.override.yaml", ".env")
CACHE_FILE = Path(".buildlib") / "compose-config.json"
# The environment compose reads: the variables the files name, and its own settings.
COMPOSE_VARIABLES = ("COMPOSE_FILE", "COMPOSE_PATH_SEPARATOR", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES",
                     "COMPOSE_ENV_FILES")
BUILD_KEYS = {"context", "dockerfile", "dockerfile_inline", "args", "target", "network", "platforms",
              "additional_contexts", "labels", "tags", "secrets", "ssh"}
INLINE_FOLDER = Path(".buildlib") / "inline"   # where a dockerfile_inline is written, to be built like a file
# Keys that change how a build is cached or pulled, not what it makes.
NEUTRAL_KEYS = {"cache_from", "cache_to", "pull", "no_cache"}


def compose_files(settings: Settings) -> tuple[Path, ...]:
    """The compose files compose would read here: those the settings or COMPOSE_FILE name, else the first default."""
    if settings.compose_files:
        return tuple(settings.root / name for name in settings.compose_files)
    named = os.environ.get("COMPOSE_FILE")
    if named:
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return tuple(settings.root / part for part in named.split(separator) if part)
    found = next((settings.root / name for name in COMPOSE_FILES if (settings.root / name).is_file()), None)
    return (found,) if found else ()


def declared(settings: Settings, files: tuple[Path, ...]) -> dict[str, Declared | str]:
    named = bool(settings.compose_files or os.environ.get("COMPOSE_FILE"))
    model = compose_config(settings.root, files, settings.profiles, named)
    shown = files[0].name
    found: dict[str, Declared | str] = {}
    for name, service in sorted((model.get("services") or {}).items()):
        if "build" in service:
            found[name] = _declared(settings, f"{shown} {name}", name, service, model)
    for name in settings.services:
        if name not in found:
            raise SettingsError(f"[tool.buildlib.services.{name}]: {shown} has no service {name} with a build section")
    return found


def _declared(settings: Settings, shown: str, name: str, service: Mapping, model: Mapping) -> Declared | str:
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
    for context_name, value in contexts.items():
        defect = context_defect(value)
        if defect:
            return f"{shown}: build.additional_contexts.{context_name}: {defect}"
    secrets, why = _secrets(build.get("secrets") or [], model.get("secrets") or {})
    if why:
        return f"{shown}: build.secrets: {why}"
    own = settings.for_service(name)
    image, defect = image_name(settings, name, model.get("name") or settings.project, service.get("image"))
    if defect:
        return f"{shown}: image {image}: {defect}"
    tags = tuple(build.get("tags") or ())
    bad = next((tag for tag in tags if reference_defect(tag)), None)
    if bad:
        return f"{shown}: build.tags: {bad}: {reference_defect(bad)}"
    # compose passes `args: [NAME]` with no value from its environment only when set; unset ones stay out.
    args = {key: value for key, value in (build.get("args") or {}).items() if value is not None}
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    if "dockerfile_inline" in build:
        dockerfile = _written(settings.root / INLINE_FOLDER / f"{name}.Dockerfile", build["dockerfile_inline"])
    return Declared(
        name=name, shown=shown, folder=context, context=context, dockerfile=dockerfile, image=image,
        args={**args, **own.args}, target=own.target or build.get("target"),
        platform=own.platform or (platforms[0] if platforms else None), network=own.network or build.get("network"),
        templates=own.templates, secrets={**secrets, **arg_secrets(own.secret_args)},
        contexts={**contexts, **resolved(own.contexts, context)}, labels=build.get("labels") or {}, tags=tags,
        ssh=tuple(entry.replace(": ", "=", 1) for entry in build.get("ssh") or ()))   # compose writes id: path


def _secrets(wanted: list, defined: Mapping) -> tuple[dict[str, str], str]:
    """Each build secret's id (its target, else its name) -> where buildx takes it from; or why one cannot be had."""
    found = {}
    for entry in wanted:
        source = entry.get("source", "")
        definition = defined.get(source) or {}
        if definition.get("environment"):
            where = f"env={definition['environment']}"
        elif definition.get("file"):
            where = f"src={definition['file']}"
        else:
            return {}, f"secret {source} has neither file nor environment in the top-level secrets"
        found[entry.get("target") or source] = where
    return found, ""


def _written(path: Path, text: str) -> Path:
    """path, holding text; rewritten only when it differs, so that its stat data stay as they were."""
    try:
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as error:
        raise SettingsError(f"{path}: cannot write the dockerfile_inline there ({error.strerror})") from None
    return path


def compose_config(root: Path, files: tuple[Path, ...], profiles: tuple[str, ...] = (), named: bool = True) -> dict:
    """compose's own reading of the files, kept in .buildlib until a file or a variable they name changes."""
    watched = sorted({*files, *(root / name for name in COMPOSE_FILES + OVERRIDE_FILES)})
    named = set(COMPOSE_VARIABLES).union(*(REFERENCE.findall(_text(path)) for path in watched))
    key = hashlib.sha256(json.dumps([[[str(path), _stat(path)] for path in watched], list(profiles),
                                     [[name, os.environ.get(name)] for name in sorted(named)]]).encode()).hexdigest()
    cache = root / CACHE_FILE
    try:
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return kept["model"]
    except (OSError, ValueError, AttributeError):
        pass   # no cache, or one that cannot answer: ask compose
    model = _ask_compose(root, files, profiles, named)
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


def _ask_compose(root: Path, files: tuple[Path, ...], profiles: tuple[str, ...], named: bool) -> dict:
    """compose's model of the files; where compose is not installed, our own reading of them."""
    import yaml   # 10 ms to import, paid only when the cached answer no longer holds
    from . import compose_file
    command = ["docker", "compose", "--project-directory", str(root)]
    for path in files if named else ():   # compose finds a default file itself, and then its override file too
        command += ["--file", str(path)]
    for profile in profiles:
        command += ["--profile", profile]
    try:
        done = subprocess.run([*command, "config"], capture_output=True, text=True, timeout=120, cwd=root)
    except FileNotFoundError:
        return compose_file.config(root, files, profiles, os.environ, named)
    except subprocess.TimeoutExpired:
        raise SettingsError(f"{files[0].name}: `docker compose config` did not answer within 120s") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        if said and "is not a docker command" in said[-1]:
            return compose_file.config(root, files, profiles, os.environ, named)
        raise SettingsError(f"{files[0].name}: docker compose cannot read it: {said[-1] if said else 'no reason given'}")
    return _unescaped(yaml.load(done.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _unescaped(value):
    """compose writes what it read with every $ doubled again, so that its output reads back the same."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {key: _unescaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unescaped(item) for item in value]
    return value

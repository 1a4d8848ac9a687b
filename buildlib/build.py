"""Building a service: its inputs hashed, the registry cache asked, else the engine asked to build it."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, quote_plus

from . import engine, registry
from .builders import BuildRequest, builder_for
from .catalog import remember
from .context import Inputs
from .errors import BuildlibError, EngineError
from .project import Service
from .settings import Settings
from .status import HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL, ImageStatus, current_inputs, service_status

LOG_FOLDER = Path(".buildlib") / "logs"
LOCK_FOLDER = Path(".buildlib") / "locks"
MIN_MASKED = 3    # shorter values would mask ordinary words in the log


def build(service: Service, settings: Settings, revision: str | None) -> dict:
    """Pull a service's image from the registry cache, or build it with its inputs hash in its labels.

    Returns the record the state file keeps: the inputs (to explain the next rebuild), the image
    ID, and either `from_cache` or `cache_note` (why the cache was not used, when it failed), or
    `elsewhere` when another run in this repository built it since this run judged it.
    """
    with _exclusive(settings.root, service.name):
        # Another run in this repository may have built it since this run judged it.
        verdict = None if settings.force else service_status(service, settings.project, None)
        if verdict and verdict.status is ImageStatus.OK:
            return {"inputs_hash": verdict.inputs.digest, "inputs": verdict.inputs.as_record(),
                    "image_id": (engine.inspect(service.image) or {}).get("Id"), "elsewhere": True}
        return _produce(service, settings, revision, verdict.inputs if verdict else None)


@contextlib.contextmanager
def _exclusive(root: Path, service: str) -> Iterator[None]:
    """Hold the service's build lock, so that two runs never build it at once."""
    path = root / LOCK_FOLDER / f"{service}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path, "w")
    except OSError as error:
        raise BuildlibError(f"{path}: cannot create the build lock ({error.strerror})") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the other run's build ends, or when it dies
        yield


def _produce(service: Service, settings: Settings, revision: str | None, known: Inputs | None) -> dict:
    inputs, missing_base = (known, "") if known else current_inputs(service)
    if inputs is None:
        raise EngineError(f"base image {missing_base} is not in the engine (its prefetch or build failed)")
    record = {"inputs_hash": inputs.digest, "inputs": inputs.as_record()}
    cache_note = ""
    if settings.registry and settings.cache and not settings.force:
        image_id, cache_note = registry.fetch_cached(
            service.image, settings.project, service.name, inputs.digest, service.platform, settings.pull)
        if image_id:
            _remember(settings.root, engine.inspect(service.image))
            return {**record, "image_id": image_id, "from_cache": True}
    labels = {
        HASH_LABEL: inputs.digest,
        SERVICE_LABEL: service.name,
        PROJECT_LABEL: settings.project,
        "org.opencontainers.image.title": f"{settings.project}-{service.name}",
        "org.opencontainers.image.created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    log = log_path(settings.root, service.name)
    secrets = secret_values(service)
    request = BuildRequest(
        image=service.image, context=service.context, dockerfile=_analysed_dockerfile(service),
        dockerfile_path=_shown(service.dockerfile, settings.root), args=service.build_args, secrets=secrets,
        labels=labels, target=service.target, platform=service.platform, network=service.network,
        nocache=settings.force, contexts=service.build_contexts)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as output:
            attrs = builder_for(settings.builder).build(request, lambda text: output.write(masked(text, secrets)))
    except EngineError as error:
        raise EngineError(f"{masked(str(error), secrets)}\n    full log: {log.relative_to(settings.root)}") from None
    except BuildlibError as error:   # the engine's words can quote the request, build args and all
        raise BuildlibError(masked(str(error), secrets)) from None
    except OSError as error:
        raise BuildlibError(f"{log}: cannot write the build log ({error.strerror})") from None
    _remember(settings.root, attrs)
    return {**record, "image_id": attrs["Id"], "cache_note": cache_note}


def _remember(root: Path, attrs: dict | None) -> None:
    """Keep the new image's facts, so that the next run's catalog need not inspect it."""
    if attrs is not None:
        remember(root, attrs)


def _analysed_dockerfile(service: Service) -> bytes:
    """The Dockerfile's bytes, as they were when it was analysed and its inputs hashed."""
    try:
        data = Path(service.dockerfile).read_bytes()
    except OSError as error:
        raise BuildlibError(f"{service.dockerfile}: cannot read ({error.strerror})") from None
    if hashlib.sha256(data).hexdigest() != service.dockerfile_sha256:
        raise BuildlibError(f"{service.dockerfile}: changed while its inputs were hashed; run again")
    return data


def _shown(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def secret_values(service: Service) -> dict[str, str]:
    """The secret build args' values, from the environment of the run: the only place they live."""
    missing = [name for name in service.secret_args if name not in os.environ]
    if missing:
        raise BuildlibError(f"secret build arg {missing[0]} is not set: buildlib takes secret values "
                            "from the environment of the run only")
    return {name: os.environ[name] for name in service.secret_args}


def masked(text: str, secrets: dict[str, str]) -> str:
    """The text with every secret value, as is or as it appears in a URL, replaced by ***."""
    for value in secrets.values():
        if len(value) >= MIN_MASKED:
            for form in {value, quote(value), quote_plus(value), quote(json.dumps(value)[1:-1])}:
                text = text.replace(form, "***")
    return text


def log_path(root: Path, service: str) -> Path:
    """Where the output of a service's last build is kept, whole."""
    return root / LOG_FOLDER / f"{service}.log"

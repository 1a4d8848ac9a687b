"""Building a service: its inputs hashed, the registry cache asked, else the engine asked to build it."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import quote, quote_plus

from . import batch, engine, registry
from .builders import BuildRequest, base_failed, builder_for
from .catalog import mark_changed, remember
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
    `elsewhere` when another run in this repository built it since this run judged it. In a doit
    run, the services that are ready by then are built with it, in one BuildKit run (batch.py);
    each keeps its own record or error, which its own task returns.
    """
    with _exclusive(settings.root, service.name):
        found = batch.outcome(service.name)
        if found is not None:
            return batch.returned(found)
        # Another run in this repository may have built it since this run judged it.
        verdict = None if settings.force else service_status(service, settings.project, None)
        if verdict and verdict.status is ImageStatus.OK:
            return {"inputs_hash": verdict.inputs.digest, "inputs": verdict.inputs.as_record(),
                    "image_id": (engine.inspect(service.image) or {}).get("Id"), "elsewhere": True}
        with contextlib.ExitStack() as held:
            known = batch.together(service, verdict.inputs if verdict else None, settings,
                                   lambda name: _try_exclusive(held, settings.root, name))
            others = [name for name in known if name != service.name]
            started = time.monotonic()
            outcomes = produce([service, *map(batch.service, others)], settings, revision, known)
            if others:
                mark_changed(settings.root, [batch.service(name).image for name in others])
            batch.record({name: outcomes[name] for name in others}, time.monotonic() - started)
    mine = outcomes[service.name]
    if isinstance(mine, BuildlibError):
        raise mine
    return mine


@contextlib.contextmanager
def _exclusive(root: Path, service: str) -> Iterator[None]:
    """Hold the service's build lock, so that two runs never build it at once."""
    with _lock_file(root, service) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the other run's build ends, or when it dies
        yield


def _try_exclusive(held: contextlib.ExitStack, root: Path, service: str) -> bool:
    """Take the service's build lock too, until held closes, if nobody holds it now."""
    lock = held.enter_context(_lock_file(root, service))
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_file(root: Path, service: str):
    path = root / LOCK_FOLDER / f"{service}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w")
    except OSError as error:
        raise BuildlibError(f"{path}: cannot create the build lock ({error.strerror})") from None


@dataclass(frozen=True)
class Job:
    """A service to build: the request for the builder, where its log goes, what its log must not show."""
    service: Service
    record: dict
    request: BuildRequest
    secrets: dict[str, str]


def produce(services: list[Service], settings: Settings, revision: str | None,
            known: Mapping[str, Inputs | None]) -> dict[str, dict | BuildlibError]:
    """Each service from the registry cache, or built (all those at once, by the builder's build_many).
    They come bases first: one built with them reaches the others as itself, and one that failed
    fails them."""
    outcomes: dict[str, dict | BuildlibError] = {}
    jobs = []
    for service in services:
        bases = batch.built_with(service, known)
        failed = sorted(base for base in set(bases.values()) if isinstance(outcomes.get(base), BuildlibError))
        try:
            if failed:
                raise base_failed(failed[0])
            prepared = _prepare(service, settings, revision, known.get(service.name), bases)
        except BuildlibError as error:
            outcomes[service.name] = error
            continue
        if isinstance(prepared, Job):
            jobs.append(prepared)
        else:
            outcomes[service.name] = prepared
    if jobs:
        outcomes.update(_built(jobs, settings))
    return outcomes


def _prepare(service: Service, settings: Settings, revision: str | None, known: Inputs | None,
             built_with: Mapping[str, str]) -> dict | Job:
    """The record of an image the registry cache had, or the job of building it (built_with: its bases
    built in the same call, as BuildRequest has them)."""
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
    secrets = secret_values(service)
    request = BuildRequest(
        image=service.image, context=service.context, dockerfile=_analysed_dockerfile(service),
        dockerfile_path=_shown(service.dockerfile, settings.root), args=service.build_args, secrets=secrets,
        secret_sources=service.secrets, labels={**service.labels, **labels}, tags=service.tags, ssh=service.ssh,
        target=service.target, platform=service.platform, network=service.network, nocache=settings.force,
        contexts={**service.build_contexts, **service.folder_contexts}, name=service.name, built_with=built_with)
    return Job(service, {**record, "cache_note": cache_note}, request, secrets)


def _built(jobs: list[Job], settings: Settings) -> dict[str, dict | BuildlibError]:
    """Build the jobs, each log written whole; each service's record, or its error with where its log is."""
    outcomes: dict[str, dict | BuildlibError] = {}
    with contextlib.ExitStack() as logs:
        outputs = []
        for job in jobs:
            log = log_path(settings.root, job.service.name)
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                output = logs.enter_context(open(log, "w", encoding="utf-8"))
            except OSError as error:
                raise BuildlibError(f"{log}: cannot write the build log ({error.strerror})") from None
            outputs.append(lambda text, output=output, secrets=job.secrets: output.write(masked(text, secrets)))
        try:
            results = builder_for(settings.builder).build_many([job.request for job in jobs], outputs)
        except OSError as error:
            raise BuildlibError(f"cannot write a build log ({error.strerror})") from None
    for job, result in zip(jobs, results):
        name = job.service.name
        if isinstance(result, EngineError):
            log = log_path(settings.root, name).relative_to(settings.root)
            outcomes[name] = EngineError(f"{masked(str(result), job.secrets)}\n    full log: {log}")
        elif isinstance(result, BuildlibError):   # the engine's words can quote the request, build args and all
            outcomes[name] = BuildlibError(masked(str(result), job.secrets))
        else:
            _remember(settings.root, result)
            outcomes[name] = {**job.record, "image_id": result["Id"]}
    return outcomes


def _remember(root: Path, attrs: Mapping | None) -> None:
    """Keep the new image's facts, so that the next run's catalog need not inspect it (a record that does
    not know them leaves that to the next lookup)."""
    if attrs is not None and "Os" in attrs:
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
    """The values of the secrets read from the environment of the run, the only place they live, by id."""
    values = {}
    for id_, source in service.secrets.items():
        kind, _, where = source.partition("=")
        if kind == "src":
            if not os.path.isfile(where):
                raise BuildlibError(f"secret {id_}: its file {where} does not exist")
        elif where not in os.environ:
            raise BuildlibError(f"secret build arg {id_} is not set: buildlib takes secret values from the environment "
                                "of the run only" if where == id_ else
                                f"secret {id_} is not set: it comes from the environment variable {where}")
        else:
            values[id_] = os.environ[where]
    return values


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

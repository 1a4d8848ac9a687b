"""The two things that change the engine: pulling base images and building services."""
from __future__ import annotations

from datetime import datetime, timezone

from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag

from . import engine
from .errors import EngineError
from .project import ExternalImage, Service
from .status import HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL, current_inputs

DOCKER_HUB = "docker.io"


def mirror_ref(ref: str, mirror: str) -> str | None:
    """Where a mirror serves a Docker Hub image (alpine:3.20 -> MIRROR/library/alpine:3.20)."""
    repository, tag = parse_repository_tag(ref)
    registry, path = resolve_repository_name(repository)
    if registry != DOCKER_HUB:
        return None
    if "/" not in path:
        path = f"library/{path}"
    separator = "@" if tag and ":" in tag else ":"
    return f"{mirror}/{path}{separator}{tag or 'latest'}"


def prefetch(image: ExternalImage, mirrors: tuple[str, ...]) -> str:
    """Pull an image from upstream, else from the first mirror that has it; return the source."""
    tried = []
    try:
        engine.pull(image.ref, image.platform)
        return "upstream"
    except EngineError as error:
        tried.append(f"upstream: {_short(error)}")
    for mirror in mirrors:
        source = mirror_ref(image.ref, mirror)
        if source is None:
            continue
        try:
            engine.pull(source, image.platform)
        except EngineError as error:
            tried.append(f"{mirror}: {_short(error)}")
            continue
        # Builds and the inputs hash must see the name the Dockerfile uses. The mirror's own
        # name stays: removing it would race with another run tagging from it.
        engine.tag(source, image.ref)
        return mirror
    raise EngineError(f"base image {image.ref} could not be pulled ({'; '.join(tried)})")


def _short(error: Exception) -> str:
    return str(error).split(": ", 1)[-1]


def build(service: Service, project: str, *, nocache: bool, revision: str | None) -> dict:
    """Build a service with its inputs hash in its labels; return the record the state file keeps."""
    inputs, missing_base = current_inputs(service)
    if inputs is None:
        raise EngineError(f"base image {missing_base} is not in the engine (its prefetch or build failed)")
    labels = {
        HASH_LABEL: inputs.digest,
        SERVICE_LABEL: service.name,
        PROJECT_LABEL: project,
        "org.opencontainers.image.title": f"{project}-{service.name}",
        "org.opencontainers.image.created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    image_id = engine.build(
        service.context, service.dockerfile, service.image, args=service.build_args, target=service.target,
        platform=service.platform, labels=labels, nocache=nocache)
    return {"inputs_hash": inputs.digest, "inputs": inputs.as_record(), "image_id": image_id}

"""Building a service: its inputs hashed, its labels set, the engine asked to build and tag it."""
from __future__ import annotations

from datetime import datetime, timezone

from . import engine
from .errors import EngineError
from .project import Service
from .status import HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL, current_inputs


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

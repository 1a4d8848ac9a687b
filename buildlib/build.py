"""Building a service: its inputs hashed, the registry cache asked, else the engine asked to build it."""
from __future__ import annotations

from datetime import datetime, timezone

from . import engine, registry
from .errors import EngineError
from .project import Service
from .settings import Settings
from .status import HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL, current_inputs


def build(service: Service, settings: Settings, revision: str | None) -> dict:
    """Pull a service's image from the registry cache, or build it with its inputs hash in its labels.

    Returns the record the state file keeps: the inputs (to explain the next rebuild), the image
    ID, and either `from_cache` or `cache_note` (why the cache was not used, when it failed).
    """
    inputs, missing_base = current_inputs(service)
    if inputs is None:
        raise EngineError(f"base image {missing_base} is not in the engine (its prefetch or build failed)")
    record = {"inputs_hash": inputs.digest, "inputs": inputs.as_record()}
    cache_note = ""
    if settings.registry and settings.cache and not settings.force:
        image_id, cache_note = registry.fetch_cached(
            service.image, settings.project, service.name, inputs.digest, service.platform, settings.pull)
        if image_id:
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
    image_id = engine.build(
        service.context, service.dockerfile, service.image, args=service.build_args, target=service.target,
        platform=service.platform, labels=labels, nocache=settings.force)
    return {**record, "image_id": image_id, "cache_note": cache_note}

"""Whether a service's image is right: the status words, and how the engine's record is judged."""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Callable, Mapping

from . import engine
from .context import Inputs, changes, context_paths, file_digests, taken_paths
from .dockerfile import trigger_sources
from .filecache import DigestCache
from .project import Service

Lookup = Callable[[str], Mapping | None]    # engine.inspect, or a catalog's answer from one listing

HASH_LABEL = "io.buildlib.inputs-hash"
SERVICE_LABEL = "io.buildlib.service"
PROJECT_LABEL = "io.buildlib.project"
MAX_REASONS = 4


class ImageStatus(str, Enum):
    OK = "OK"              # exists, valid, built by buildlib from the inputs there are now
    MISSING = "MISSING"    # no image under the reference
    INVALID = "INVALID"    # exists but broken
    STALE = "STALE"        # valid, but its inputs changed or something else built it


@dataclass(frozen=True)
class Verdict:
    status: ImageStatus
    reason: str = ""                # one line a person can act on; empty when OK
    inputs: Inputs | None = None    # the inputs there are now, when they were worked out


def current_inputs(service: Service, lookup: Lookup = engine.inspect) -> tuple[Inputs | None, str]:
    """The inputs as they are now, or None and the base image that the engine does not have.

    The files are those that COPY and ADD can take, or the whole context when that cannot be
    known before the build (Inputs.scope says why).
    """
    bases, sources, scope = {}, service.context_sources, service.whole_context
    for ref in service.base_images:
        attrs = lookup(ref)
        if attrs is None:
            return None, ref
        bases[ref] = base_identity(attrs, internal=ref in service.internal_images)
        triggers = (attrs.get("Config") or {}).get("OnBuild")
        if triggers and not scope:
            # The triggers' text is in the base's config, so its identity covers them; what they read is ours.
            taken, unknown = trigger_sources(triggers, ref)
            scope = unknown and f"whole context: {unknown}"
            sources = (*sources, *taken)
    context, dockerfile = Path(service.context), Path(service.dockerfile)
    cache = DigestCache(Path(service.digest_cache) if service.digest_cache else None)
    paths, followed = taken_paths(context_paths(context, dockerfile, cache), None if scope else sources)
    files = file_digests(context, dockerfile, paths, cache)
    for name, folder in sorted(service.folder_contexts.items()):
        # All of a named folder counts (after its own .dockerignore): BuildKit sends it whole.
        own = DigestCache(Path(f"{service.digest_cache[:-len('.json')]}@{name}.json") if service.digest_cache else None)
        files.update({f"@{name}/{path}": digest for path, digest in file_digests(Path(folder), None, cache=own).items()})
    return Inputs(files, service.instructions_digest, dict(service.hashed_args), service.target, service.platform,
                  bases, scope or followed, dict(service.labels), tuple(service.tags)), ""


def base_identity(attrs: Mapping, internal: bool) -> str:
    """What a base image stands for in the inputs hash of the images built from it.

    A base built here is named by its own inputs hash: two machines that build it from the same
    sources get different image IDs (its created label differs), but the same hash, so that the
    images built from it hash alike everywhere and one runner can reuse another's through the
    registry. An external base is named by its image ID, the digest of its config.
    """
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(HASH_LABEL, attrs["Id"]) if internal else attrs["Id"]


def service_status(service: Service, project: str, previous: Mapping | None,
                   lookup: Lookup = engine.inspect) -> Verdict:
    """Judge a service's image from the engine, with the last build's record to explain changes."""
    attrs = lookup(service.image)
    # No image, nothing to compare: the hashing is left to the build that follows.
    inputs, missing_base = current_inputs(service, lookup) if attrs else (None, "")
    return replace(judge(attrs, service, project, inputs, missing_base, previous), inputs=inputs)


def judge(attrs: Mapping | None, service: Service, project: str, inputs: Inputs | None, missing_base: str,
          previous: Mapping | None) -> Verdict:
    """The pure part of service_status: presence, validation, authorship, then the inputs hash."""
    if attrs is None:
        return Verdict(ImageStatus.MISSING, "no image in the engine")
    defect = image_defect(attrs, service.image)
    if defect:
        return Verdict(ImageStatus.INVALID, defect)
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if HASH_LABEL not in labels:
        return Verdict(ImageStatus.STALE, "built by something else (no buildlib label)")
    if labels.get(PROJECT_LABEL) != project or labels.get(SERVICE_LABEL) != service.name:
        return Verdict(ImageStatus.STALE, f"built by buildlib for {labels.get(PROJECT_LABEL)}/{labels.get(SERVICE_LABEL)}")
    if inputs is None:
        return Verdict(ImageStatus.STALE, f"base {missing_base} is not in the engine")
    if labels[HASH_LABEL] == inputs.digest:
        return Verdict(ImageStatus.OK)
    return Verdict(ImageStatus.STALE, _explain(labels[HASH_LABEL], inputs, previous))


def image_defect(attrs: Mapping, ref: str) -> str:
    """Why an image that exists is unusable, or '' (the seeds' size/tag/metadata checks)."""
    if not attrs.get("Size"):
        return "size 0"
    if ref not in (attrs.get("RepoTags") or []):
        return f"not tagged {ref}"
    if not attrs.get("Os") or not attrs.get("Architecture"):
        return "its config has no OS or architecture"
    return ""


def built_from(attrs: Mapping, project: str, service: str) -> str | None:
    """The inputs hash an image's labels claim, when they say buildlib built it for this service."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(PROJECT_LABEL) == project and labels.get(SERVICE_LABEL) == service:
        return labels.get(HASH_LABEL)
    return None


def _explain(label_hash: str, inputs: Inputs, previous: Mapping | None) -> str:
    # The record explains the image only when it describes the build that made it.
    if not previous or previous.get("inputs_hash") != label_hash:
        return "inputs changed"
    reasons = changes(previous.get("inputs", {}), inputs) or ["inputs changed"]
    more = len(reasons) - MAX_REASONS
    return "; ".join(reasons[:MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")

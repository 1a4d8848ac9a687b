"""The registry as the place where runners share builds: push, what it holds, the build cache.

buildlib pushes every image under two tags of one repository: the release tag
({registry}/{project}-{service}:{tag}) and a tag named after the image's inputs hash
(inputs-<hex>). The second is the cache: before building, a runner asks the registry for the
tag of the inputs it has now and pulls that image instead when it is there. A release tag is
current when it names the same manifest as the tag of today's inputs. The inputs tag is pushed
first and the release tag last; a registry moves a tag only once a push's manifest is complete,
so an interrupted push leaves the release tag where it was.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from docker.utils import parse_repository_tag

from . import engine
from .errors import EngineError, EngineUnavailable
from .settings import PullSettings
from .status import built_from, image_defect
from .transfer import Progress, attempt, short_reason

CACHE_TAG_PREFIX = "inputs-"


class RemoteStatus(str, Enum):
    CURRENT = "current"            # the release tag holds an image built from today's inputs
    DIFFERENT = "different"        # the release tag holds something else
    ABSENT = "absent"              # no release tag
    UNREACHABLE = "unreachable"    # the registry did not answer, or refused


@dataclass(frozen=True)
class RemoteVerdict:
    status: RemoteStatus
    reason: str = ""


class PushFailed(EngineError):
    """A push that did not end with the registry's release tag on the image."""


def cache_ref(image: str, inputs_hash: str) -> str:
    """The tag in image's repository under which the image built from inputs_hash is kept."""
    repository, _ = parse_repository_tag(image)
    return f"{repository}:{CACHE_TAG_PREFIX}{inputs_hash.removeprefix('sha256:')}"


def judge_remote(release_digest: str | None, inputs_digest: str | None) -> RemoteVerdict:
    """The pure part of remote_status: the digests of the release tag and of today's inputs tag."""
    if release_digest is None:
        return RemoteVerdict(RemoteStatus.ABSENT, "not pushed")
    if release_digest == inputs_digest:
        return RemoteVerdict(RemoteStatus.CURRENT)
    return RemoteVerdict(RemoteStatus.DIFFERENT, "it holds an image built from other inputs")


def remote_status(image: str, inputs_hash: str | None) -> RemoteVerdict:
    """What the registry holds under image's release tag, compared with the inputs there are now."""
    try:
        release = engine.registry_digest(image)
        if release and inputs_hash is None:
            return RemoteVerdict(RemoteStatus.DIFFERENT, "cannot compare: a base image is not in the engine")
        current = engine.registry_digest(cache_ref(image, inputs_hash)) if release else None
    except EngineUnavailable:
        raise
    except EngineError as error:
        return RemoteVerdict(RemoteStatus.UNREACHABLE, _reason(error))
    return judge_remote(release, current)


def pushable_hash(image: str, project: str, service: str) -> str:
    """The inputs hash of the local image that a push would send; fails when it is not buildlib's."""
    attrs = engine.inspect(image)
    defect = "it is not in the engine" if attrs is None else image_defect(attrs, image)
    if defect:
        raise PushFailed(f"push {image}: {defect}")
    inputs_hash = built_from(attrs, project, service)
    if inputs_hash is None:
        raise PushFailed(f"push {image}: buildlib did not build it for {project}/{service}")
    return inputs_hash


def push(image: str, project: str, service: str, policy: PullSettings, label: str = "") -> dict:
    """Push the local image under its inputs tag, then its release tag; return what was pushed."""
    inputs_hash = pushable_hash(image, project, service)
    cached = cache_ref(image, inputs_hash)
    engine.tag(image, cached)
    progress = Progress(f"{label}{image}", verb="pushing")
    digests = []
    try:
        for ref in (cached, image):
            digest, failure = attempt(lambda: engine.push(ref, policy.timeout, progress.update), policy)
            if failure:
                progress.finish(failure)
                raise PushFailed(f"push {ref}: {failure}")
            digests.append(digest)
    finally:
        _untag(cached)
    progress.finish()
    if digests[0] != digests[1]:
        raise PushFailed(f"push {image}: its release and inputs tags name different images "
                         "(was it rebuilt during the push?); push again")
    return {"digest": digests[1], "inputs_hash": inputs_hash}


def fetch_cached(image: str, project: str, service: str, inputs_hash: str, platform: str | None,
                 policy: PullSettings) -> tuple[str | None, str]:
    """Pull the image a runner pushed for these inputs and tag it image: (its ID, '') or (None, why not)."""
    cached = cache_ref(image, inputs_hash)
    try:
        if engine.registry_digest(cached) is None:
            return None, ""
    except EngineUnavailable:
        raise
    except EngineError as error:
        return None, f"registry cache not used: {_reason(error)}"
    progress = Progress(f"{image} from the registry cache")
    _, failure = attempt(lambda: engine.pull(cached, platform, policy.timeout, progress.update), policy)
    progress.finish(failure)
    if failure:
        return None, f"registry cache not used: {failure}"
    attrs = engine.inspect(cached) or {}
    if built_from(attrs, project, service) != inputs_hash or image_defect(attrs, cached):
        _untag(cached)
        return None, f"registry cache not used: {cached} is not what its tag says"
    engine.tag(attrs["Id"], image)
    _untag(cached)
    return attrs["Id"], ""


def _reason(error: EngineError) -> str:
    return short_reason(str(error).split(": ", 1)[-1])


def _untag(ref: str) -> None:
    """Drop a helper tag; the image keeps its release tag. Gone already is fine."""
    try:
        engine.remove(ref)
    except EngineError:
        pass

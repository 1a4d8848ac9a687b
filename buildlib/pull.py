"""Pulling base images through bad networks: sources, mirrors, digests.

A base image is tried at each of its sources in turn (the upstream registry and its mirrors,
in the order the settings give), each with transfer.attempt's retries. Whatever a mirror serves
is tagged with the original reference, so that builds and the inputs hash see one name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag

from . import engine
from .errors import EngineError
from .settings import DOCKER_HUB, PullSettings
from .transfer import Progress, attempt


@dataclass(frozen=True)
class Source:
    name: str    # the upstream registry or the mirror's address, for people
    ref: str     # what to pull from it


class PullFailed(EngineError):
    """Every source was tried; the message lists each one and what it answered."""


def sources(ref: str, mirrors: Mapping[str, tuple[str, ...]], mirrors_first: bool,
            digest: str | None = None) -> list[Source]:
    """Where ref can come from, in the order to try; by digest when one is given (a lock)."""
    repository, tag = parse_repository_tag(ref)
    registry, path = resolve_repository_name(repository)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    suffix = f"@{digest}" if digest else (f"@{tag}" if tag and tag.startswith("sha256:") else f":{tag or 'latest'}")
    upstream = Source(registry, f"{repository}{suffix}")
    from_mirrors = [Source(mirror, f"{mirror}/{path}{suffix}") for mirror in mirrors.get(registry, ())]
    return [*from_mirrors, upstream] if mirrors_first else [upstream, *from_mirrors]


def prefetch(ref: str, platform: str | None, mirrors: Mapping[str, tuple[str, ...]], policy: PullSettings,
             digest: str | None = None, label: str = "") -> str:
    """Pull ref from the first source that has it, tag it with ref, and return that source's name."""
    tried = []
    for source in sources(ref, mirrors, policy.mirrors_first, digest):
        progress = Progress(f"{label}{ref} from {source.name}")
        _, failure = attempt(lambda: engine.pull(source.ref, platform, policy.timeout, progress.update), policy)
        if failure is None:
            progress.finish()
            if digest and not engine.has_digest(source.ref, digest):
                tried.append(f"{source.name}: served content other than {digest}")
                continue
            if source.ref == ref:
                return source.name
            if "@" in ref:   # the engine refuses tags with digests, so the builder would not find it
                tried.append(f"{source.name}: has it, but the engine cannot name it {ref}; "
                             f"write the tag in the Dockerfile and pin it with `doit lock`")
                continue
            engine.tag(source.ref, ref)
            return source.name
        progress.finish(failure)
        tried.append(f"{source.name}: {failure}")
    raise PullFailed(f"base image {ref} could not be pulled: {'; '.join(tried)}")


def resolve(ref: str, mirrors: Mapping[str, tuple[str, ...]], policy: PullSettings) -> tuple[str, str]:
    """The digest ref stands for now, and the source that said so (for `doit lock`)."""
    tried = []
    for source in sources(ref, mirrors, policy.mirrors_first):
        digest, failure = attempt(lambda: engine.registry_digest(source.ref), policy)
        if digest:
            return digest, source.name
        tried.append(f"{source.name}: {failure or 'not found'}")
    raise PullFailed(f"base image {ref} could not be resolved: {'; '.join(tried)}")

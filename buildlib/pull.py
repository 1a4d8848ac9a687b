"""Pulling base images through bad networks: sources, retries worth making, digests, progress.

A base image is tried at each of its sources in turn (the upstream registry and its mirrors,
in the order the settings give); each source gets a few attempts with exponential backoff and
jitter, but only for errors that a retry can cure. Whatever a mirror serves is tagged with the
original reference, so that builds and the inputs hash see one name.
"""
from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag

from . import engine
from .errors import EngineError
from .settings import DOCKER_HUB, PullSettings

CLEAR_LINE = "\r\033[K"   # back to the start of the terminal line, and erase it

# An error whose message says one of these will not go away by asking again.
PERMANENT = ("manifest unknown", "not found", "unauthorized", "authentication required", "denied",
             "invalid reference", "no such host", "no basic auth credentials", "does not exist",
             "verification failed", "digest did not match")


@dataclass(frozen=True)
class Source:
    name: str    # the upstream registry or the mirror's address, for people
    ref: str     # what to pull from it


class PullFailed(EngineError):
    """Every source was tried; the message lists each one and what it answered."""


def short_reason(message: str) -> str:
    """The engine's error without the request it made: 'connection refused', 'manifest ... not found'."""
    pieces = message.split(": ")
    parts = [piece for i, piece in enumerate(pieces) if i == 0 or piece != pieces[i - 1]]
    if "dial tcp" in message:
        return parts[-1]
    return ": ".join(part for part in parts if not part.startswith(("Get \"", "Head \"")))


def is_permanent(message: str) -> bool:
    lowered = message.lower()
    return any(words in lowered for words in PERMANENT)


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


def attempt(action: Callable[[], object], policy: PullSettings, sleep: Callable[[float], None] = time.sleep):
    """Run action, again after a growing pause while it fails with an error worth retrying.

    Returns (result, None) or (None, 'reason (n attempts)').
    """
    number = 0
    while True:
        number += 1
        try:
            return action(), None
        except EngineError as error:
            reason = short_reason(str(error).split(": ", 1)[-1])
            if is_permanent(reason):
                return None, f"{reason} (not retried)"
            if number >= policy.attempts:
                return None, f"{reason} ({number} attempt{'s' if number > 1 else ''})"
            sleep(policy.backoff * 2 ** (number - 1) * random.uniform(0.5, 1.5))


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
        if failure is None:
            return digest, source.name
        tried.append(f"{source.name}: {failure}")
    raise PullFailed(f"base image {ref} could not be resolved: {'; '.join(tried)}")


class Progress:
    """One line per image on stderr: updated in place on a terminal, plain lines in CI.

    Written to the process's real stderr: doit swaps sys.stderr while actions run.
    """

    def __init__(self, title: str):
        self.title = title
        self.stream = sys.__stderr__
        self.live = self.stream.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
        self.started = time.monotonic()
        self.shown = 0.0
        self.bytes = 0
        if not self.live:
            self.stream.write(f"pulling {title}\n")
            self.stream.flush()

    def update(self, done: int, total: int) -> None:
        self.bytes = done
        now = time.monotonic()
        if self.live and now - self.shown > 0.2:
            self.shown = now
            percent = f" ({100 * done // total}%)" if total else ""
            self.stream.write(f"{CLEAR_LINE}pulling {self.title}: {_megabytes(done)}/{_megabytes(total)}{percent}")
            self.stream.flush()

    def finish(self, failure: str | None = None) -> None:
        seconds = time.monotonic() - self.started
        outcome = f"failed: {failure}" if failure else f"done, {_megabytes(self.bytes)} in {seconds:.1f}s"
        self.stream.write(f"{CLEAR_LINE if self.live else ''}pulling {self.title}: {outcome}\n")
        self.stream.flush()


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"

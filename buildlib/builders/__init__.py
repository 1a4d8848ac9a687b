"""Builders: the ways an image gets built, each behind one call, build(request, output) -> image record.

`buildkit` runs `docker buildx build` as a child process (docker-py has no BuildKit); `classic`
asks the engine's own /build endpoint through docker-py, the fallback where no buildx answers.
Labels, logs, secrets and interruption are the builder's business; the caller only says what to
build and where each line of output goes.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from .. import state


@dataclass(frozen=True)
class BuildRequest:
    """One image to build: the Dockerfile as it was hashed, and everything the build is given."""
    image: str                                  # the reference it is tagged with
    context: str                                # absolute path
    dockerfile: bytes                           # the bytes that were hashed
    dockerfile_path: str                        # where they came from (for .dockerignore and messages)
    args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)   # name -> value, from the run's environment
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None
    network: str | None = None                  # RUN steps' network mode; None: the builder's default
    contexts: Mapping[str, str] = field(default_factory=dict)  # named build contexts: name -> docker-image://REF
    nocache: bool = False


class Builder(Protocol):
    name: str

    def build(self, request: BuildRequest, output: Callable[[str], object]) -> Mapping:
        """Build and tag the image; return the engine's record of it. Raises EngineError, one line."""


@functools.cache
def builder_for(name: str) -> Builder:
    """The builder for this process: BuildKit through buildx, else the classic one with a warning.

    name is the buildx builder to use ('' for buildx's own choice: BUILDX_BUILDER, or the one
    `docker buildx use` picked, by default the engine's own). Asked once per process, and only
    when something is built: a run with nothing to build never starts buildx.
    """
    from . import buildkit, classic   # each imports the engine module; keep this package light
    reason = buildkit.unavailable()
    if not reason:
        return buildkit.BuildKit(name)
    if name:
        return buildkit.Missing(f"builder {name} is set, but {reason}")
    state.warn(f"{reason}: building with the classic builder, which cannot build RUN --mount, COPY --chmod "
               "or --link, heredocs, FROM --platform=$BUILDPLATFORM, named build contexts, and writes build args "
               "into the image history (so secret-args stay out of the stages the image is made of)", sys.__stderr__)
    return classic.Classic()

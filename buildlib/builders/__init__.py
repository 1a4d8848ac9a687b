"""Builders: the ways an image gets built, each behind two calls: build(request, output) -> image
record, and build_many(requests, outputs) -> one record or error each, for images built together.

`buildkit` runs `docker buildx build` as a child process (docker-py has no BuildKit), and
`docker buildx bake` for many at once (`bake`); `classic` asks the engine's own /build endpoint
through docker-py, the fallback where no buildx answers.
Labels, logs, secrets and interruption are the builder's business; the caller only says what to
build and where each line of output goes.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from .. import state
from ..errors import BuildlibError, EngineError


@dataclass(frozen=True)
class BuildRequest:
    """One image to build: the Dockerfile as it was hashed, and everything the build is given."""
    image: str                                  # the reference it is tagged with
    context: str                                # absolute path
    dockerfile: bytes                           # the bytes that were hashed
    dockerfile_path: str                        # where they came from (for .dockerignore and messages)
    args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)   # id -> value, of those from the run's environment
    secret_sources: Mapping[str, str] = field(default_factory=dict)   # id -> env=VARIABLE or src=/path, every one
    labels: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()                  # more references it is tagged with
    ssh: tuple[str, ...] = ()                   # --ssh: default, or id=path
    target: str | None = None
    platform: str | None = None
    network: str | None = None                  # RUN steps' network mode; None: the builder's default
    contexts: Mapping[str, str] = field(default_factory=dict)  # named build contexts: docker-image://REF or a folder
    nocache: bool = False
    name: str = ""                              # the service's: names it among images built together
    # Bases built in the same build_many: each one's reference (or the named context standing for it) ->
    # that request's name. A builder that builds them together gives this one the base it just built.
    built_with: Mapping[str, str] = field(default_factory=dict)


def base_failed(base: str) -> EngineError:
    """The error of an image whose base, built in the same call, failed."""
    return EngineError(f"base {base} was not built, so neither was this")


class Builder(Protocol):
    name: str

    def build(self, request: BuildRequest, output: Callable[[str], object]) -> Mapping:
        """Build and tag the image; return the engine's record of it. Raises EngineError, one line."""

    def build_many(self, requests: Sequence[BuildRequest],
                   outputs: Sequence[Callable[[str], object]]) -> list[Mapping | BuildlibError]:
        """Build each request (output: where its lines go); its record, or the error that is its one line."""


def one_by_one(builder: Builder, requests: Sequence[BuildRequest],
               outputs: Sequence[Callable[[str], object]]) -> list[Mapping | BuildlibError]:
    """build_many for a builder that has no better way: each request in turn, each failure its own."""
    results: list[Mapping | BuildlibError] = []
    for request, output in zip(requests, outputs):
        try:
            results.append(builder.build(request, output))
        except BuildlibError as error:
            results.append(error)
    return results


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

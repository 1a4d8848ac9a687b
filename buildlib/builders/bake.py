"""Many images in one `docker buildx bake`: a generated definition, its output split by target, failures contained.

One bake costs one process and one BuildKit session for all its targets, where a `buildx build`
per image costs each of them its own. bake cancels the other targets when one fails (buildx has
no continue-on-error); each failed target gets its one line from its own part of the output, and
the cancelled ones go to BuildKit again, until each has an image or an error of its own.
BuildKit's cache keeps the steps that finished before the cancel.
"""
from __future__ import annotations

import json
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .. import engine
from ..catalog import familiar
from ..dockerfile import may_have_triggers
from ..errors import BuildlibError, EngineError
from . import BuildRequest, base_failed
from .buildkit import (CONNECTION_STEP, STEP_ERROR, BuildKit, _unreachable, failed_step, failure, run_buildx,
                       sent_dockerfile, target)

VERTEX = re.compile(r"#(\d+) ")
OWNED_VERTEX = re.compile(r"#(\d+) \[([A-Za-z0-9_-]+)[ \]]")     # "#9 [web 2/3] COPY ...", "#5 [web internal] ..."
TARGET_ERROR = re.compile(r"ERROR: target ([A-Za-z0-9_-]+): (.*)")
# BuildKit losing track of a target's job when a bake starts many at once: that target was not built, nor did it fail.
LOST_JOB = "ERROR: failed to receive status: rpc error: code = NotFound desc = no such job"
EPILOGUE_STEP = re.compile(r" > \[([A-Za-z0-9_-]+)[ \]]")          # " > [web 2/3] COPY x /y:", after a failure
# "Dockerfile:3" after the failed steps' blocks: the excerpt of the Dockerfile that the next ERROR line is about.
EXCERPT = re.compile(r".+:\d+")
# How a target cancelled by another's failure may end: its export (on the containerd store a missing
# snapshot) or its context cancelled. Not its own failure while another target has one of its own.
CANCELLED = re.compile(r"context canceled|^exporting ")


def bake(kit: BuildKit, requests: Sequence[BuildRequest],
         outputs: Sequence[Callable[[str], object]]) -> list[Mapping | BuildlibError]:
    """Build the requests together; each one's record, or its error, in their order."""
    names = target_names(requests)
    results: dict[str, Mapping | BuildlibError] = {}
    network = engine.default_network()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="buildlib-bake-") as folder:
        targets, bases = {}, {}
        of_request = {request.name: name for name, request in zip(names, requests)}
        for name, request in zip(names, requests):
            dockerfile = stack.enter_context(sent_dockerfile(request))
            targets[name] = {**target(request, network, dockerfile), "output": ["type=docker"]}
            # A base built here reaches the target as a named context (its image config and all).
            chained = {key if key in request.contexts else named_context(key): of_request[base]
                       for key, base in request.built_with.items() if base in of_request}
            if chained:
                targets[name]["contexts"] = {**targets[name].get("contexts", {}),
                                             **{key: f"target:{base}" for key, base in chained.items()}}
            bases[name] = sorted(set(chained.values()))
        definition = Path(folder) / "bake.json"
        definition.write_text(json.dumps({"target": targets}))
        by_name = dict(zip(names, zip(requests, outputs)))
        waiting = list(names)
        # All of them: a target baked again may reach a base built before only through its `target:` context.
        paths = readable(targets.values())
        while waiting:
            code, parts, metadata = _run(kit, definition, {name: by_name[name][1] for name in waiting}, bases, paths)
            ended = _outcomes(code, parts, metadata, {name: by_name[name][0] for name in waiting}, kit.builder)
            if not ended:   # nothing moved: say the whole failure rather than try again for ever
                ended = {name: EngineError(failure(parts[name], by_name[name][0].dockerfile_path)) for name in waiting}
            results.update(ended)
            for name in waiting:   # bases first: a target built on a failed one fails without another bake
                failed = [base for base in bases[name] if isinstance(results.get(base), BuildlibError)]
                if failed and name not in results:
                    results[name] = base_failed(by_name[failed[0]][0].name)
            waiting = [name for name in waiting if name not in results]
    return [results[name] for name in names]


def named_context(ref: str) -> str:
    """The name under which BuildKit looks an image reference up among the named contexts: its familiar
    form without ':latest' (`FROM shop-web:latest` looks for `shop-web`)."""
    return familiar(ref).removesuffix(":latest")


def target_names(requests: Sequence[BuildRequest]) -> list[str]:
    """A bake target name for each request: its service's name as bake allows it, numbered if taken."""
    names: list[str] = []
    for index, request in enumerate(requests):
        name = re.sub(r"[^A-Za-z0-9_-]", "-", request.name) or f"image{index}"
        names.append(name if name not in names else f"{name}-{index}")
    return names


def readable(definitions) -> list[str]:
    """The folders and files the targets read: bake asks that reading each outside the working folder be allowed."""
    paths = set()
    for found in definitions:
        paths |= {found["context"], str(Path(found["dockerfile"]).parent)}
        paths |= {value for value in found.get("contexts", {}).values() if "://" not in value}
        paths |= {item.split("src=", 1)[1] for item in found.get("secret", []) if "src=" in item}
        paths |= {item.split("=", 1)[1] for item in found.get("ssh", []) if "=" in item}
    return sorted(paths)


def _run(kit: BuildKit, definition: Path, outputs: dict[str, Callable[[str], object]],
         bases: Mapping[str, Sequence[str]], paths: list[str]) -> tuple[int, dict[str, list[str]], dict]:
    """One bake of the targets in outputs; its exit code, each target's lines (shared ones go to all) and
    its metadata (each built target's image)."""
    names = list(outputs)
    metadata = definition.with_name("metadata.json")
    metadata.unlink(missing_ok=True)
    command = ["docker", "buildx", "bake", "--progress=plain", "--file", str(definition),
               "--metadata-file", str(metadata)]
    command += [f"--allow=fs.read={path}" for path in paths]
    if kit.builder:
        command += ["--builder", kit.builder]
    parts: dict[str, list[str]] = {name: [] for name in names}
    router = Router(set(names), bases)

    def send(routed: list[tuple[str, str]]) -> None:
        for name, line in routed:
            outputs[name](line + "\n")
            parts[name].append(line)

    code = run_buildx(command + names, lambda text: send(router.route(text.rstrip("\n"))), [])
    send(router.end())
    try:
        found = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = {}   # a bake that failed may write none
    return code, parts, found if isinstance(found, dict) else {}


class Router:
    """Which targets a line of bake's plain progress belongs to: a step's lines go to the target its name
    starts with; steps shared by several targets (a base image's metadata) and bake's own lines go to all.

    A target built on another through a `target:` context (bases: target -> the targets it is built on)
    runs that base's steps too, and bake may print a step under the name of the target that reached it
    first: a base whose error comes without a failed step of its own gets the failed step a target built
    on it printed."""

    def __init__(self, names: set[str], bases: Mapping[str, Sequence[str]] | None = None):
        self.names = names
        self.under = {name: _all_bases(name, bases or {}) for name in names}
        self.owners: dict[str, str] = {}     # step number -> target
        self.failed: set[str] = set()        # the targets with a failed step
        self.kept: dict[str, list[str]] = {}  # step number -> its lines, for steps of targets built on others
        self.last: list[str] = sorted(names)
        self.epilogue = ""                   # the target whose failure the lines after the steps describe
        self.previous = ""
        self.held: list[str] | None = None   # an excerpt, until the ERROR line says whose it is

    def route(self, line: str) -> list[tuple[str, str]]:
        previous, self.previous = self.previous, line
        if owned := OWNED_VERTEX.match(line):
            if owned[2] in self.names:
                self.owners.setdefault(owned[1], owned[2])
        if failed := TARGET_ERROR.fullmatch(line):
            if failed[1] in self.names:   # "ERROR: target web: failed to solve: ...", as buildx build says it
                return [(failed[1], step) for step in self._failed_step_run_for(failed[1])] + \
                    [(failed[1], held) for held in self._release()] + [(failed[1], f"ERROR: {failed[2]}")]
        if self.held is not None and not line.startswith("ERROR: "):
            self.held.append(line)
            return []
        if self.epilogue and previous == "------" and EXCERPT.fullmatch(line):
            self.held = [line]   # which block came last says nothing: several failed or were cancelled
            return []
        if step := EPILOGUE_STEP.match(line):
            self.epilogue = step[1] if step[1] in self.names else ""
        if vertex := VERTEX.match(line):
            owner = self.owners.get(vertex[1])
            self.last = [owner] if owner else sorted(self.names)
            if owner and STEP_ERROR.fullmatch(line):
                self.failed.add(owner)
            if owner and self.under[owner]:
                self.kept.setdefault(vertex[1], []).append(line)
        elif line and not line.startswith("#"):
            self.last = [self.epilogue] if self.epilogue else sorted(self.names)
        return self.end() + [(name, line) for name in self.last]

    def _failed_step_run_for(self, base: str) -> list[str]:
        """The lines of the failed step that a target built on base printed, when base has none of its own."""
        if base in self.failed:
            return []
        for number, lines in self.kept.items():
            if base in self.under[self.owners[number]] and any(STEP_ERROR.fullmatch(line) for line in lines):
                self.owners[number] = base
                self.failed.add(base)
                return lines
        return []

    def end(self) -> list[tuple[str, str]]:
        """The lines still held back, to where the last line went (the output ended, or not with a target's error)."""
        return [(name, held) for held in self._release() for name in self.last]

    def _release(self) -> list[str]:
        held, self.held = self.held or [], None
        return held


def _all_bases(name: str, bases: Mapping[str, Sequence[str]]) -> set[str]:
    """The targets name is built on, directly or through others."""
    found: set[str] = set()
    todo = list(bases.get(name, ()))
    while todo:
        base = todo.pop()
        if base not in found:
            found.add(base)
            todo += bases.get(base, ())
    return found


def _outcomes(code: int, parts: dict[str, list[str]], metadata: dict, requests: dict[str, BuildRequest],
              builder: str) -> dict[str, Mapping | BuildlibError]:
    """The targets this bake settled: failed with an error of their own, or built (in the metadata, else
    their image carries this build's labels); the others were cancelled."""
    if code != 0:
        engine.ping()   # an engine that died mid-build is its own one line
    ended: dict[str, Mapping | BuildlibError] = {}
    failed = own_failures(parts) if code != 0 else set()
    for name, request in requests.items():
        lines = parts[name]
        if name in failed:
            said = failure(lines, request.dockerfile_path)
            if failed_step(lines) == CONNECTION_STEP:
                _unreachable[builder] = said
            ended[name] = EngineError(said)
            continue
        built = metadata.get(name)
        if isinstance(built, dict) and built.get("containerimage.digest"):
            ended[name] = image_record(request, built)
            continue
        attrs = engine.inspect(request.image)
        labels = ((attrs or {}).get("Config") or {}).get("Labels") or {}
        if attrs is not None and all(labels.get(key) == value for key, value in request.labels.items()):
            ended[name] = attrs
        elif code == 0:
            ended[name] = EngineError(f"build {request.image} ended without an image in the engine "
                                      "(does the builder load its images into this engine?)")
    return ended


def own_failures(parts: Mapping[str, list[str]]) -> set[str]:
    """The targets of a failed bake that failed of themselves: those with an error, less those whose error
    is how a cancel ends (see CANCELLED) when another target failed otherwise."""
    errors = {name: next(line for line in reversed(lines) if line.startswith("ERROR: "))
              for name, lines in parts.items()
              if any(line.startswith("ERROR: ") and not line.startswith(LOST_JOB) for line in lines)}
    cancelled = {name for name, error in errors.items()
                 if CANCELLED.search(error) or CANCELLED.search(failed_step(parts[name]))}
    return set(errors) - cancelled if set(errors) - cancelled else set(errors)


def image_record(request: BuildRequest, built: Mapping) -> dict:
    """A built image's record from bake's metadata, without asking the engine (which, just after a bake,
    answers slowly): its ID (containerimage.digest is the engine's image ID on either store) and, when
    they are certain, the facts of its config that the catalog keeps."""
    record: dict = {"Id": built["containerimage.digest"]}
    provenance = built.get("buildx.build.provenance") or {}
    platform = request.platform or ((provenance.get("invocation") or {}).get("environment") or {}).get("platform")
    if platform and not may_have_triggers(request.dockerfile):
        os_name, _, architecture = platform.partition("/")
        record.update(Os=os_name, Architecture=architecture.split("/")[0], Config={"OnBuild": None})
    return record

"""BuildKit builds: `docker buildx build` as a child process, its plain progress kept in the log.

The Dockerfile goes in as the bytes that were hashed, from a folder of its own with its own
ignore file (stdin would lose <Dockerfile>.dockerignore); labels, build args, secrets, target,
platform and network are flags. The engine tags the image only when the build
succeeded, so an interrupted or failed build leaves nothing that passes for current.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from .. import engine
from ..context import STATE_FOLDER, dockerignore_patterns
from ..errors import BuildlibError, EngineError
from . import BuildRequest, one_by_one

MIN_BUILDX = (0, 10)     # --provenance, --metadata-file and secrets from the environment
LAST_LINES = engine.LAST_LINES
STEP = re.compile(r"#(\d+) (?:\[[^\]]*\] )?(.*)")          # "#6 [build 3/4] RUN make", "#2 resolve image config ..."
STEP_OUTPUT = re.compile(r"#(\d+) \d+\.\d+ (.*)")          # "#6 0.104 compiling"
STEP_ERROR = re.compile(r"#(\d+) ERROR: (.*)")
SOLVE_PREFIXES = ("failed to build: ", "failed to solve: ")
FRONTEND_STEP = "resolve image config for docker-image://"
CONNECTION_STEP = "waiting for connection"                  # a remote builder's first step
BUILDER_LINE = re.compile(r'#0 building with "([^"]+)" instance')

# Builders that could not be reached in this process: the next builds fail at once, not after
# buildx's own wait for each of them.
_unreachable: dict[str, str] = {}


def unavailable() -> str:
    """Why BuildKit cannot build here ('' when it can): no docker CLI, no buildx, or one too old."""
    try:
        done = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return "no docker CLI on PATH (buildlib builds with `docker buildx`)"
    except subprocess.TimeoutExpired:
        return "`docker buildx version` did not answer within 60s"
    if done.returncode != 0:
        return "docker buildx is not installed (apt-get install docker-buildx, or Docker's buildx plugin)"
    version = version_of(done.stdout)
    if version is None or version < MIN_BUILDX:
        shown = done.stdout.split()[1] if len(done.stdout.split()) > 1 else done.stdout.strip()
        return f"docker buildx {shown} is older than {'.'.join(map(str, MIN_BUILDX))}"
    return ""


def version_of(text: str) -> tuple[int, ...] | None:
    """(major, minor) from `docker buildx version`: 'github.com/docker/buildx v0.29.1 abc'."""
    found = re.search(r"\bv?(\d+)\.(\d+)", text.split(" ", 1)[-1])
    return (int(found[1]), int(found[2])) if found else None


@dataclass(frozen=True)
class BuildKit:
    builder: str = ""       # --builder; '' leaves the choice to buildx
    name: str = "buildkit"

    def build(self, request: BuildRequest, output: Callable[[str], object]) -> Mapping:
        if self.builder in _unreachable:
            raise EngineError(_unreachable[self.builder])
        lines: list[str] = []
        with sent_dockerfile(request) as dockerfile:
            code = run_buildx(self.command(request, engine.default_network(), dockerfile), output, lines)
        if code != 0:
            engine.ping()   # an engine that died mid-build is its own one line
            said = failure(lines, request.dockerfile_path)
            if failed_step(lines) == CONNECTION_STEP:
                _unreachable[self.builder] = said
            raise EngineError(said)
        attrs = engine.inspect(request.image)
        if attrs is None:
            raise EngineError(f"build {request.image} ended without an image in the engine "
                              "(does the builder load its images into this engine?)")
        return attrs

    def command(self, request: BuildRequest, default_network: str | None, dockerfile: Path) -> list[str]:
        """The buildx command line: everything but the secrets' values (environment or files)."""
        command = ["docker", "buildx", "build", "--progress=plain", "--load"]
        if self.builder:
            command += ["--builder", self.builder]
        return command + flags(target(request, default_network, dockerfile)) + [request.context]

    def build_many(self, requests: Sequence[BuildRequest],
                   outputs: Sequence[Callable[[str], object]]) -> list[Mapping | BuildlibError]:
        """Several images in one `docker buildx bake`: one process, one session, BuildKit's own parallelism."""
        if len(requests) < 2:
            return one_by_one(self, requests, outputs)
        if self.builder in _unreachable:
            return [EngineError(_unreachable[self.builder]) for _ in requests]
        from .bake import bake   # only runs that build several images at once need it
        return bake(self, requests, outputs)


def run_buildx(command: list[str], output: Callable[[str], object], lines: list[str]) -> int:
    """Run a buildx command, every line of its output to output and lines; its exit code."""
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise EngineError("no docker CLI on PATH (buildlib builds with `docker buildx`)") from None
    try:
        for raw in process.stdout:
            text = raw.decode("utf-8", "replace")
            output(text)
            lines.append(text.rstrip("\n"))
        return process.wait()
    except BaseException:
        # Ctrl-C, SIGTERM or a failure here: the build must not go on without us.
        process.kill()
        process.wait()
        raise


# The bake target's keys in the order of their `docker buildx build` flags.
FLAGS = (("dockerfile", "--file"), ("tags", "--tag"), ("labels", "--label"), ("args", "--build-arg"),
         ("secret", "--secret"), ("ssh", "--ssh"), ("contexts", "--build-context"), ("target", "--target"),
         ("platforms", "--platform"), ("network", "--network"))


def target(request: BuildRequest, default_network: str | None, dockerfile: Path) -> dict:
    """The request as a bake target (buildx's JSON definition), from which the build's flags are made too."""
    found = {"context": request.context, "dockerfile": str(dockerfile), "tags": [request.image, *request.tags],
             "labels": dict(request.labels), "args": dict(request.args),
             "secret": [f"id={name},{source}" for name, source in request.secret_sources.items()],
             "ssh": list(request.ssh), "contexts": dict(request.contexts), "target": request.target,
             "platforms": [request.platform] if request.platform else [],
             "network": request.network or default_network, "no-cache": request.nocache}
    return {key: value for key, value in found.items() if value}


def flags(definition: dict) -> list[str]:
    """A bake target as `docker buildx build` flags, the context excepted."""
    command = []
    for key, flag in FLAGS:
        value = definition.get(key)
        if isinstance(value, dict):
            value = [f"{name}={item}" for name, item in value.items()]
        for item in [value] if isinstance(value, str) else value or []:
            command += [flag, item]
    return command + (["--no-cache"] if definition.get("no-cache") else [])


@contextmanager
def sent_dockerfile(request: BuildRequest) -> Iterator[Path]:
    """The hashed Dockerfile in a folder of its own, beside a copy of its own ignore file if it has one.

    A context that holds buildlib's own folder gets the rules that were hashed, that folder excluded, instead.
    """
    path, context = Path(request.dockerfile_path), Path(request.context)
    ignore = path.with_name(path.name + ".dockerignore")
    with tempfile.TemporaryDirectory(prefix="buildlib-") as folder:
        sent = Path(folder) / path.name
        sent.write_bytes(request.dockerfile)
        if (context / STATE_FOLDER).is_dir():
            (Path(folder) / ignore.name).write_text("".join(f"{line}\n" for line in dockerignore_patterns(context, path)))
        elif ignore.is_file():
            shutil.copyfile(ignore, Path(folder) / ignore.name)
        yield sent


def failure(lines: list[str], dockerfile: str) -> str:
    """One line for a failed buildx build: the failing step, BuildKit's error, the step's last output lines."""
    final = next((line[len("ERROR: "):] for line in reversed(lines) if line.startswith("ERROR: ")), "")
    for prefix in SOLVE_PREFIXES:
        final = final[len(prefix):] if final.startswith(prefix) else final
    failed = _last_error(lines)
    if failed is None:
        last = [line for line in lines if line.strip()][-LAST_LINES:]
        return f"build failed: {final or ' / '.join(last) or 'buildx ended without a word'}"
    number = failed[1]
    step = failed_step(lines)
    if step == CONNECTION_STEP:
        builder = next((match[1] for line in lines if (match := BUILDER_LINE.match(line))), "")
        return f"builder {builder} cannot be reached: {final or failed[2]}"
    if step.startswith(FRONTEND_STEP):
        frontend = step[len(FRONTEND_STEP):]
        return (f"{dockerfile}: the Dockerfile frontend {frontend} that its # syntax= line names cannot be had: "
                f"{final or failed[2]}")
    said = [match[2] for line in lines if (match := STEP_OUTPUT.fullmatch(line)) and match[1] == number]
    tail = "".join(f"\n    | {line}" for line in said[-LAST_LINES:])
    return f"build failed at {step!r}: {failed[2]}{tail}"


def failed_step(lines: list[str]) -> str:
    """The name of the step whose ERROR line came last ('' when none did)."""
    failed = _last_error(lines)
    if failed is None:
        return ""
    return next((match[2] for line in lines if (match := STEP.fullmatch(line)) and match[1] == failed[1]), "")


def _last_error(lines: list[str]) -> re.Match | None:
    return next((match for line in reversed(lines) if (match := STEP_ERROR.fullmatch(line))), None)


@dataclass(frozen=True)
class Missing:
    """A builder that was asked for and cannot be had: every build fails with the reason."""
    reason: str
    name: str = "missing"

    def build(self, request: BuildRequest, output: Callable[[str], object]) -> Mapping:
        raise EngineError(self.reason)

    def build_many(self, requests, outputs):
        return one_by_one(self, requests, outputs)

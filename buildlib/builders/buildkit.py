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
from typing import Callable, Iterator, Mapping

from .. import engine
from ..errors import EngineError
from . import BuildRequest

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
            code = self._run(self.command(request, engine.default_network(), dockerfile), request, output, lines)
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

    @staticmethod
    def _run(command: list[str], request: BuildRequest, output: Callable[[str], object], lines: list[str]) -> int:
        """Run buildx, every line of its output to output and lines; its exit code."""
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env={**os.environ, **request.secrets})
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

    def command(self, request: BuildRequest, default_network: str | None, dockerfile: Path) -> list[str]:
        """The buildx command line: everything but the secrets' values (environment)."""
        command = ["docker", "buildx", "build", "--progress=plain", "--file", str(dockerfile),
                   "--tag", request.image, "--load"]
        if self.builder:
            command += ["--builder", self.builder]
        for key, value in request.labels.items():
            command += ["--label", f"{key}={value}"]
        for key, value in request.args.items():
            command += ["--build-arg", f"{key}={value}"]
        for name in request.secrets:
            command += ["--secret", f"id={name},env={name}"]
        for name, value in request.contexts.items():
            command += ["--build-context", f"{name}={value}"]
        network = request.network or default_network
        for flag, value in (("--target", request.target), ("--platform", request.platform), ("--network", network)):
            if value:
                command += [flag, value]
        if request.nocache:
            command.append("--no-cache")
        return command + [request.context]


@contextmanager
def sent_dockerfile(request: BuildRequest) -> Iterator[Path]:
    """The hashed Dockerfile in a folder of its own, beside a copy of its own ignore file if it has one."""
    path = Path(request.dockerfile_path)
    ignore = path.with_name(path.name + ".dockerignore")
    with tempfile.TemporaryDirectory(prefix="buildlib-") as folder:
        sent = Path(folder) / path.name
        sent.write_bytes(request.dockerfile)
        if ignore.is_file():
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

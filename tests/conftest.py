"""Fixtures: a private copy of the sample repository per test, built on the real engine.

Every test gets its own image tag (BUILDLIB_TAG), so tests can run side by side on one engine
and share its layer cache; its images are removed afterwards.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run, so a red CI is the code's doing and not the
# seed's. `scripts/test --hypothesis-profile=explore tests/test_properties.py` draws new ones.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("reproducible")

import shims
from engines import Engine
from images import listed
from registries import Registry

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_LINE = re.compile(r"^([^\s[]\S*)\s+(built|pulled from cache|up to date|failed)\b")   # summary rows


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def results(self) -> dict[str, str]:
        """service -> built / up to date / failed, from the summary the run ends with."""
        return {m[1]: m[2] for line in self.stderr.splitlines() if (m := SUMMARY_LINE.match(line))}

    def built(self) -> set[str]:
        return {service for service, result in self.results().items() if result == "built"}


class Started:
    """A doit run going on in the background; its stderr so far, and its Run once it ended."""

    def __init__(self, process: subprocess.Popen, log):
        self.process, self.log = process, log

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_for(self, pattern: str, seconds: float = 120) -> re.Match:
        return self.wait_until(lambda: re.search(pattern, self.stderr(), re.MULTILINE), repr(pattern), seconds)

    def wait_until(self, check, what: str, seconds: float = 120):
        """check()'s first true answer while the run goes on."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if found := check():
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended before {what}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {seconds}s:\n{self.stderr()}")

    def end(self, seconds: float = 600) -> Run:
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            # PYTHONFAULTHANDLER (start): SIGABRT has every process of the run write its stacks to the log.
            os.killpg(self.process.pid, signal.SIGABRT)
            time.sleep(2)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"the run did not end within {seconds}s:\n{self.stderr()[-30000:]}") from None
        run = Run(self.process.returncode, "", self.stderr())
        self.log.close()
        return run


def _as_in_a_terminal() -> None:
    """Ctrl-C as a terminal's foreground run gets it: a shell's background job (a CI script run with `&`)
    ignores SIGINT, its children inherit that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Repo:
    """A copy of the sample repository in a temporary folder, with its own tag."""

    def __init__(self, path: Path, tag: str, client: docker.APIClient, project: str = "ai-infra"):
        self.path, self.tag, self.client, self.project = path, tag, client, project
        self.registry = ""         # BUILDLIB_REGISTRY for every run, when set
        self.env: dict = {}        # more environment for every run

    def environment(self, env: dict | None = None) -> dict:
        """What every run here gets: this test's tag, and its registry when it has one."""
        environment = {**os.environ, "BUILDLIB_TAG": self.tag, **self.env, **(env or {})}
        if self.registry:
            environment["BUILDLIB_REGISTRY"] = self.registry
        return environment

    def doit(self, *args: str, env: dict | None = None, wrapper: tuple[str, ...] = ()) -> Run:
        """A doit run in the repository (under wrapper, a command that runs the rest, when given)."""
        return self.run(sys.executable, "-m", "doit", *args, env=env, wrapper=wrapper)

    def run(self, *command: str, env: dict | None = None, wrapper: tuple[str, ...] = ()) -> Run:
        """A command run in the repository with this test's environment."""
        done = subprocess.run([*wrapper, *command], cwd=self.path, env=self.environment(env), capture_output=True,
                              text=True, timeout=600)
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> Started:
        """A run in the background, in a process group of its own (as a terminal's Ctrl-C would reach it)."""
        log = tempfile.TemporaryFile("w+")
        process = subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=self.path,
                                   env=self.environment({"PYTHONFAULTHANDLER": "1"}),
                                   stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True,
                                   preexec_fn=_as_in_a_terminal)
        return Started(process, log)

    def status(self) -> dict[str, dict]:
        run = self.doit("status", "format=json")
        assert run.returncode == 0, run.stderr
        return {row["service"]: row for row in json.loads(run.stdout)}

    def image(self, service: str) -> str:
        prefix = f"{self.registry}/" if self.registry else ""
        return f"{prefix}{self.project}-{service}:{self.tag}"

    def runner(self, path: Path, engine: Engine) -> Repo:
        """The same sources (without the state file) on another engine: a second CI runner."""
        shutil.copytree(self.path, path, ignore=shutil.ignore_patterns(".doit.db"))
        other = Repo(path, self.tag, engine.client, self.project)
        other.registry, other.env = self.registry, {**self.env, "DOCKER_HOST": engine.host}
        return other

    def inspect(self, service: str) -> dict:
        return self.client.inspect_image(self.image(service))

    def edit(self, relative: str, text: str) -> None:
        path = self.path / relative
        path.write_text(path.read_text() + text)

    def remove_images(self) -> None:
        for image in listed(self.client, filters={"label": f"io.buildlib.project={self.project}"}):
            for ref in image.get("RepoTags") or []:
                if ref.endswith(f":{self.tag}"):
                    self.client.remove_image(ref, force=True)


@pytest.fixture(scope="session")
def client() -> docker.APIClient:
    if not os.environ.get("DOCKER_HOST"):
        pytest.skip("no engine: run the tests through scripts/test, which starts one")
    return docker.APIClient(version="auto", **docker.utils.kwargs_from_env())


@pytest.fixture
def repo(tmp_path: Path, client: docker.APIClient):
    path = tmp_path / "repo"
    path.mkdir()
    shutil.copytree(ROOT / "services", path / "services")
    for name in ("pyproject.toml", "dodo.py", ".env.example"):
        shutil.copy(ROOT / name, path / name)
    repo = Repo(path, f"t-{uuid.uuid4().hex[:10]}", client)
    repo.env = {"MODEL_TOKEN": "sample-token"}   # model-server's secret
    yield repo
    repo.remove_images()


@pytest.fixture
def uid() -> str:
    """A name part of this test's own, for base images nobody else pulls."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_repo(tmp_path: Path, client: docker.APIClient, uid: str):
    """Write a repository of the given services (name -> Dockerfile) and [tool.buildlib] lines."""
    made: list[Repo] = []

    def make(services: dict[str, str], settings: str = "") -> Repo:
        path = tmp_path / f"repo{len(made)}"
        for name, dockerfile in services.items():
            (path / "services" / name).mkdir(parents=True)
            (path / "services" / name / "Dockerfile").write_text(dockerfile)
        (path / "pyproject.toml").write_text(f'[tool.buildlib]\nproject = "bt{uid}"\n{settings}')
        shutil.copy(ROOT / "dodo.py", path / "dodo.py")
        made.append(Repo(path, "t", client, project=f"bt{uid}"))
        return made[-1]

    yield make
    for repo in made:
        repo.remove_images()
    for image in listed(client):
        for ref in image.get("RepoTags") or []:
            if uid in ref:
                client.remove_image(ref, force=True)


@pytest.fixture
def registry(tmp_path):
    """A docker-registry process of this test's own, on a loopback port."""
    started = Registry(tmp_path / "registry")
    yield started
    started.stop()


@pytest.fixture
def second_engine():
    """An empty Docker engine of this test's own: another CI runner."""
    started = Engine()
    yield started
    started.stop()


@pytest.fixture
def without_buildx(tmp_path: Path):
    """The environment of a machine whose docker CLI has no buildx (or, given a version line, an old one).

    Its docker is the real CLI for everything else, so builds go to the real engine's classic builder.
    """
    return functools.partial(shims.without_buildx, tmp_path / "without-buildx")

"""Faults injected for real: Ctrl-C and SIGTERM mid-build, dockerd killed mid-build, two runs at
once, a damaged or unwritable state file. Each loop must never skip what it should build."""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import docker
import pytest

from buildlib.interrupt import MESSAGE
from images import file_in_image

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'
SERVICES = ("a", "b", "c")
ROUNDS = 5
FINISHED = r"^\[\d+/\d+\] built (\S+)"


def slow_services(make_repo, uid: str, seconds: float = 1.5, first: float | None = None):
    """Three independent services, each with a step that takes a while and names this test; with `first`,
    service a's step takes that long instead, so that a's image is there while the others still build."""
    dockerfile = "FROM busybox:1.36\nCOPY round.txt /round\nRUN sleep {seconds} # {uid} {name}\n"
    lengths = {**dict.fromkeys(SERVICES, seconds), **({} if first is None else {"a": first})}
    repo = make_repo({name: dockerfile.format(seconds=lengths[name], uid=uid, name=name) for name in SERVICES},
                     MIRRORS)
    next_round(repo, 0)
    return repo


def next_round(repo, number: int) -> None:
    """Every service's inputs change: all of them are out of date."""
    for name in SERVICES:
        (repo.path / "services" / name / "round.txt").write_text(f"{number}\n")


def finished(stderr: str) -> set[str]:
    return set(re.findall(FINISHED, stderr, re.MULTILINE))


def image_ids(client, repo) -> dict[str, str | None]:
    return {name: image_id(client, repo.image(name)) for name in SERVICES}


def image_id(client, ref: str) -> str | None:
    """The image's ID while builds go on: the containerd store may answer an inspect of an image being
    tagged at that moment with "consistency error: data changed during operation, retry"."""
    for _ in range(20):
        try:
            return client.inspect_image(ref)["Id"]
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as error:
            if "retry" not in str(error.explanation):
                raise
            time.sleep(0.1)
    raise AssertionError(f"the engine never answered an inspect of {ref} soundly")


def wait_for_a_new_image(started, client, repo, before: dict[str, str | None]) -> None:
    """Until one of the run's builds has ended in the engine. Built with others in one BuildKit run,
    an image is there well before the run reports it, and the run reports them all at the end."""
    started.wait_until(lambda: image_ids(client, repo) != before, "a new image in the engine")


def changed(client, repo, before: dict[str, str | None]) -> set[str]:
    return {name for name, found in image_ids(client, repo).items() if found != before[name]}


def build_processes(uid: str) -> list[str]:
    """Processes still at this test's builds: the `docker buildx build` children (their --tag names the
    test) and the shells of RUN steps (their command does), wherever the builder runs them."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name == str(os.getpid()):
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                words = cmdline.read().decode(errors="replace").split("\0")
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError, PermissionError):
            continue
        if any(uid in word for word in words):
            found.append(" ".join(words).strip())
    return found


def wait_until_gone(uid: str, seconds: float = 20) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := build_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def assert_said_without_a_traceback(run, *expected: str) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    for text in expected:
        assert text in run.stderr, run.stderr


def assert_only_unfinished_builds_are_redone(repo, client, done: set[str], run) -> None:
    """What the run built (reported, or put in the engine) passes for current, and every image that passes
    holds today's files (a build can finish in the engine after the run lost sight of it: that one is current
    too)."""
    current = {name for name, row in repo.status().items() if row["status"] == "OK"}
    assert done <= current, run.stderr
    for name in current:
        assert file_in_image(client, repo.image(name), "/round") == (repo.path / "services" / name / "round.txt").read_bytes()
    after = repo.doit("build_all")
    assert after.results() == {name: "up to date" if name in current else "built" for name in SERVICES}, after.stderr


@pytest.fixture
def bystander(client):
    """A container this test did not start through buildlib: nothing may touch it."""
    container = client.create_container("busybox:1.36", ["sleep", "600"],
                                        host_config=client.create_host_config(network_mode="none"))
    client.start(container)
    yield container["Id"]
    client.remove_container(container, force=True)


def test_an_interrupted_run_keeps_what_finished_and_the_next_builds_only_the_rest(make_repo, uid, client, bystander):
    repo = slow_services(make_repo, uid, seconds=3, first=0)
    for number in range(ROUNDS):
        next_round(repo, number + 1)
        parallel = ["-n", "2"] if number % 2 else []
        by_terminal = number % 2 == 0    # Ctrl-C reaches the whole process group; SIGTERM only the run
        before = image_ids(client, repo)
        started = repo.start(*parallel, "build_all")
        wait_for_a_new_image(started, client, repo, before)
        signalled = time.monotonic()
        if by_terminal:
            os.killpg(started.process.pid, signal.SIGINT)
        else:
            started.process.send_signal(signal.SIGTERM)
        run = started.end(60)
        assert time.monotonic() - signalled < 15, run.stderr
        assert run.returncode == -signal.SIGINT, (run.returncode, run.stderr)
        assert "Traceback" not in run.stderr and run.stderr.strip().splitlines()[-1] == MESSAGE, run.stderr
        done = finished(run.stderr)
        assert done != set(SERVICES), run.stderr
        assert wait_until_gone(uid) == []
        assert client.inspect_container(bystander)["State"]["Running"]
        assert_only_unfinished_builds_are_redone(repo, client, done | changed(client, repo, before), run)


def test_two_runs_at_once_build_each_image_once_and_keep_a_sound_state_file(make_repo, uid):
    repo = slow_services(make_repo, uid, seconds=1)
    assert repo.doit("build_all").returncode == 0
    for number in range(ROUNDS):
        next_round(repo, number + 1)
        parallel = ["-n", "2"] if number % 2 else []
        first, second = repo.start(*parallel, "build_all"), repo.start("build_all")
        runs = [first.end(), second.end()]
        assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
        built = [run.built() for run in runs]
        assert built[0] | built[1] == set(SERVICES) and not built[0] & built[1], [run.stderr for run in runs]
        for run, other in zip(runs, reversed(built)):
            assert {name for name, result in run.results().items() if result == "up to date"} == other, run.stderr
        assert {row["status"] for row in repo.status().values()} == {"OK"}
        with sqlite3.connect(repo.path / ".doit.db") as state:
            assert state.execute("pragma quick_check").fetchone() == ("ok",)


def spoil(state, damage: str) -> None:
    """Damage the state file: sqlite's own kinds, or a sound database holding a record doit cannot read."""
    if damage == "record":
        with sqlite3.connect(state) as connection:
            connection.execute("update doit set task_data = '{not json' where task_id = 'build:b'")
        return
    data = state.read_bytes()
    state.write_bytes({"garbage": os.urandom(len(data)), "truncated": data[: len(data) // 2],
                       "text": b"not a database\n"}[damage])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "text", "record"])
def test_a_damaged_state_file_is_set_aside_with_a_warning_and_nothing_is_rebuilt(make_repo, uid, damage):
    repo = slow_services(make_repo, uid, seconds=0)
    for name in SERVICES:   # state records large enough that cutting the file in half breaks a page
        (repo.path / "services" / name / "data.txt").write_text("x" * 100_000)
    assert repo.doit("build_all").returncode == 0
    spoil(repo.path / ".doit.db", damage)
    run = repo.doit("build_all")
    assert run.returncode == 0 and run.results() == dict.fromkeys(SERVICES, "up to date"), run.stderr
    assert_said_without_a_traceback(run, "warning: ", ".doit.db is damaged", "moved to .doit.db.damaged")
    assert (repo.path / ".doit.db.damaged").exists()
    again = repo.doit("build_all")
    assert "warning" not in again.stderr and again.results() == dict.fromkeys(SERVICES, "up to date")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB file system of this test's own, to fill up."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder) -> None:
    try:
        with open(folder / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 65536)
    except OSError:
        pass


def test_a_full_disk_costs_the_state_file_not_the_builds(make_repo, uid, small_disk):
    repo = slow_services(make_repo, uid, seconds=0)
    moved = small_disk / "repo"
    shutil.copytree(repo.path, moved)
    repo.path = moved
    assert repo.doit("build_all").returncode == 0
    next_round(repo, 1)
    fill(small_disk)
    run = repo.doit("build_all")
    assert run.results() == dict.fromkeys(SERVICES, "built"), run.stderr
    assert_said_without_a_traceback(run, "warning: .doit.db not written (database or disk is full)")
    assert run.returncode == 0, run.stderr
    (small_disk / "filler").unlink()
    again = repo.doit("build_all")
    assert again.results() == dict.fromkeys(SERVICES, "up to date"), again.stderr


def test_a_killed_engine_fails_the_run_in_one_line_and_the_next_builds_only_what_was_unfinished(
        make_repo, uid, second_engine):
    repo = slow_services(make_repo, uid, seconds=3, first=0)
    repo.env = {"DOCKER_HOST": second_engine.host}
    for number in range(ROUNDS):
        next_round(repo, number + 1)
        before = image_ids(second_engine.client, repo)
        started = repo.start(*(["-n", "2"] if number % 2 else []), "build_all")
        wait_for_a_new_image(started, second_engine.client, repo, before)
        second_engine.kill()
        run = started.end(120)
        second_engine.start()
        done = finished(run.stderr) | changed(second_engine.client, repo, before)
        assert run.returncode == 2 and done != set(SERVICES), run.stderr
        assert_said_without_a_traceback(run, "FAILED")
        failures = [line for line in run.stderr.splitlines() if "FAILED" in line]
        assert failures and all("cannot reach a Docker engine" in line for line in failures), run.stderr
        assert_only_unfinished_builds_are_redone(repo, second_engine.client, done, run)

"""What a run reads and asks, against the real engine: only copied files count, and a run with
nothing to do makes the same few engine calls however many services there are."""
from __future__ import annotations

import os
import shutil

import pytest

from engine_calls import EngineCalls

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'


def write(repo, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = repo.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_file_no_copy_takes_changes_nothing_and_a_copied_one_rebuilds(make_repo, uid):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY src/ /app\n"}, MIRRORS)
    write(repo, {"services/app/src/main.txt": "v1\n", "services/app/README.md": "docs\n",
                 "services/app/tests/test_main.txt": "test\n"})
    assert repo.doit("build_all").results() == {"app": "built"}
    repo.edit("services/app/README.md", "more docs\n")
    write(repo, {"services/app/tests/test_new.txt": "another\n"})
    run = repo.doit("build_all")
    assert run.results() == {"app": "up to date"}, run.stderr
    assert repo.status()["app"]["inputs"] == "files COPY/ADD and bind mounts take"
    repo.edit("services/app/src/main.txt", "v2\n")
    assert repo.status()["app"]["reason"] == "src/main.txt changed"
    assert repo.doit("build_all").results() == {"app": "built"}


def test_a_source_with_a_variable_counts_the_whole_context_and_status_says_so(make_repo, uid):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nARG DIR=src\nCOPY ${{DIR}}/ /app\n"}, MIRRORS)
    write(repo, {"services/app/src/main.txt": "v1\n", "services/app/README.md": "docs\n"})
    assert repo.doit("build_all").results() == {"app": "built"}
    row = repo.status()["app"]
    assert row["inputs"] == "whole context: line 4: COPY source ${DIR}/ uses a variable"
    shown = repo.doit("status")
    assert "whole context: line 4" in shown.stdout
    repo.edit("services/app/README.md", "more docs\n")
    assert repo.doit("build_all").results() == {"app": "built"}


@pytest.fixture
def engine_calls():
    proxy = EngineCalls(os.environ["DOCKER_HOST"])
    yield proxy
    proxy.close()


def chained_services(uid: str, prefix: str, count: int) -> dict[str, str]:
    """count services, each other one built FROM the one before it."""
    services = {}
    for index in range(count):
        base = f"bt{uid}-{prefix}{index - 1}:t" if index % 2 else "busybox:1.36"
        services[f"{prefix}{index}"] = f"FROM {base}\nLABEL uid={uid}\nCOPY src/ /app/{prefix}{index}/\n"
    return services


def test_a_run_with_nothing_to_do_makes_as_many_engine_calls_for_10_services_as_for_2(
        make_repo, uid, engine_calls):
    counted = {}
    for prefix, count in (("a", 2), ("b", 10)):
        repo = make_repo(chained_services(uid, prefix, count), MIRRORS)
        write(repo, {f"services/{prefix}{index}/src/main.txt": f"{index}\n" for index in range(count)})
        assert set(repo.doit("-n", "2", "build_all").results().values()) == {"built"}
        engine_calls.reset()
        run = repo.doit("build_all", env={"DOCKER_HOST": engine_calls.host})
        assert set(run.results().values()) == {"up to date"}, run.stderr
        counted[count] = engine_calls.total()
    assert counted[2] == counted[10], counted
    assert counted[10] <= 6, engine_calls.calls


def test_a_serial_run_that_rebuilds_one_service_makes_as_many_engine_calls_for_10_services_as_for_2(
        make_repo, uid, engine_calls):
    counted = {}
    for prefix, count in (("a", 2), ("b", 10)):
        repo = make_repo({f"{prefix}{index}": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY src/ /app/\n"
                          for index in range(count)}, MIRRORS)
        write(repo, {f"services/{prefix}{index}/src/main.txt": f"{index}\n" for index in range(count)})
        assert set(repo.doit("-n", "2", "build_all").results().values()) == {"built"}
        repo.edit(f"services/{prefix}0/src/main.txt", "changed\n")   # those checked after it are not asked again
        engine_calls.reset()
        run = repo.doit("build_all", env={"DOCKER_HOST": engine_calls.host})
        assert run.built() == {f"{prefix}0"}, run.stderr
        counted[count] = engine_calls.total()
    assert counted[2] == counted[10], (counted, engine_calls.calls)


@pytest.mark.parametrize("parallel", [[], ["-n", "2"]])
def test_a_changed_base_service_rebuilds_its_dependent_in_the_same_run(make_repo, uid, parallel):
    repo = make_repo(chained_services(uid, "c", 2), MIRRORS)
    write(repo, {"services/c0/src/main.txt": "0\n", "services/c1/src/main.txt": "1\n"})
    assert repo.doit(*parallel, "build_all").built() == {"c0", "c1"}
    repo.edit("services/c0/src/main.txt", "changed\n")
    run = repo.doit(*parallel, "build_all")
    assert run.built() == {"c0", "c1"}, run.stderr
    assert repo.doit(*parallel, "build_all").built() == set()


def test_damaged_or_deleted_caches_change_no_answer(make_repo, uid):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY src/ /app\n"}, MIRRORS)
    write(repo, {"services/app/src/main.txt": "v1\n"})
    assert repo.doit("build_all").results() == {"app": "built"}
    caches = repo.path / ".buildlib"
    (caches / "image-facts.json").write_bytes(b"\x00garbage")
    (caches / "digests/app.json").write_text('{"files": {"main.txt": [1, 2, 3, 4, "not a digest"]}}')
    (caches / "engine-changed").unlink()
    assert repo.doit("build_all").results() == {"app": "up to date"}
    write(repo, {"services/app/src/main.txt": "v2\n"})        # same size
    assert repo.doit("build_all").results() == {"app": "built"}
    for path in ("image-facts.json", "digests", "engine-changed"):
        target = caches / path
        target.unlink() if target.is_file() else shutil.rmtree(target)
    assert repo.doit("build_all").results() == {"app": "up to date"}

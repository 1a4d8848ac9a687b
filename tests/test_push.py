"""Push, remote status and the build cache shared through a registry (issue 4).

Runner A is the test engine, runner B a second dockerd of the test's own that starts empty;
the registry is a docker-registry process of the test's own on a loopback port.
"""
from __future__ import annotations

import re

from registries import docker_config, locked_registry

SERVICES = {"apphub", "backend", "frontend", "jupyterhub", "model-server", "nginx", "postgres-init", "singleuser",
            "slurm-controller"}
# Quick retries, so that an outage costs seconds.
FAST = "\n[tool.buildlib.pull]\nattempts = 2\nbackoff = 0.1\ntimeout = 10\n"


def pushed(run) -> set[str]:
    """The images the run pushed."""
    return set(re.findall(r"^pushing \[\d+/\d+\] (\S+): done", run.stderr, re.M))


def with_registry(repo, address: str):
    repo.registry = f"{address}/team"
    with open(repo.path / "pyproject.toml", "a") as settings:
        settings.write(FAST)
    return repo


def test_a_second_runner_pulls_what_the_first_pushed_and_builds_nothing(repo, registry, second_engine, tmp_path):
    runner_a = with_registry(repo, registry.address)
    first = runner_a.doit("-n", "4", "build_all")
    assert first.returncode == 0, first.stderr
    assert first.built() == SERVICES
    assert pushed(first) == {runner_a.image(name) for name in SERVICES}
    tags = registry.tags("team/ai-infra-backend")
    assert runner_a.tag in tags and any(tag.startswith("inputs-") for tag in tags)

    runner_b = runner_a.runner(tmp_path / "runner-b", second_engine)
    second = runner_b.doit("-n", "4", "build_all")
    assert second.returncode == 0, second.stderr
    assert second.results() == {name: "pulled from cache" for name in SERVICES}
    assert pushed(second) == set()
    for name in SERVICES:   # the very images runner A built, not look-alikes
        assert runner_b.inspect(name)["Id"] == runner_a.inspect(name)["Id"]
    status = runner_b.status()
    assert {(row["status"], row["registry"]) for row in status.values()} == {("OK", "current")}


def test_after_a_change_only_that_service_and_those_built_from_it_are_built_and_pushed(
        repo, registry, second_engine, tmp_path):
    runner_a = with_registry(repo, registry.address)
    assert runner_a.doit("-n", "4", "build_all").returncode == 0
    runner_b = runner_a.runner(tmp_path / "runner-b", second_engine)
    runner_b.edit("services/jupyterhub/config/jupyterhub_config.py", "c.JupyterHub.log_level = 'DEBUG'\n")
    run = runner_b.doit("-n", "4", "build_all")
    assert run.returncode == 0, run.stderr
    assert run.built() == {"jupyterhub", "singleuser"}
    assert {name for name, result in run.results().items() if result == "pulled from cache"} == \
        SERVICES - {"jupyterhub", "singleuser"}
    assert pushed(run) == {runner_b.image("jupyterhub"), runner_b.image("singleuser")}
    # Runner A has not seen the change: its images now differ from the registry's.
    status = runner_a.status()
    assert status["jupyterhub"]["registry"] == "different" and status["backend"]["registry"] == "current"


def test_a_second_push_with_nothing_changed_pushes_nothing(repo, registry):
    with_registry(repo, registry.address)
    assert pushed(repo.doit("build_all")) == {repo.image(name) for name in SERVICES}
    again = repo.doit("push_all")
    assert again.returncode == 0, again.stderr
    assert pushed(again) == set() and again.built() == set()
    assert re.search(r"^\s+9\s+0\s+9\s+0$", again.stderr, re.M), again.stderr   # 9 already in the registry


def test_push_without_a_registry_is_one_line(repo):
    run = repo.doit("push_all")
    assert run.returncode != 0
    assert "no registry to push to: set registry in [tool.buildlib]" in run.stderr
    assert "Traceback" not in run.stderr


def test_credentials_for_push_come_from_the_docker_config_and_never_show(make_repo, tmp_path, uid):
    password = f"pw-{uid}-push"
    locked = locked_registry(tmp_path / "locked", "pusher", password)
    repo = make_repo({"base": "FROM busybox:1.36\nRUN echo base > /b\n",
                      "app": "ARG REGISTRY=\nARG TAG=latest\nFROM ${REGISTRY}bt" + uid + "-base:${TAG}\n"},
                     'mirrors = ["127.0.0.1:5000"]\n' + FAST)
    repo.registry = f"{locked.address}/team"

    wrong = repo.doit("build_all", env=docker_config(tmp_path / "wrong", locked.address, "pusher", "wrong-password"))
    assert wrong.returncode != 0
    assert re.search(r"^FAILED push:app: push \S+: .*(?i:unauthorized|authentication required).* \(not retried\)$",
                     wrong.stderr, re.M), wrong.stderr
    assert wrong.built() == {"base", "app"}   # builds stay done
    assert "wrong-password" not in wrong.stdout + wrong.stderr

    right = docker_config(tmp_path / "right", locked.address, "pusher", password)
    run = repo.doit("build_all", env=right)
    assert run.returncode == 0, run.stderr
    assert pushed(run) == {repo.image("base"), repo.image("app")}
    status = repo.doit("status", env=right)
    assert password not in run.stdout + run.stderr + status.stdout + status.stderr
    assert password not in (repo.path / ".doit.db").read_bytes().decode(errors="replace")
    locked.stop()


def test_registry_down_during_push_keeps_the_builds_and_the_next_run_pushes_what_is_missing(repo, registry):
    with_registry(repo, registry.address)
    assert repo.doit("build_all").returncode == 0
    old_digest = registry_digest(repo, "backend")
    repo.edit("services/backend/src/main.go", "// changed\n")
    registry.stop()
    down = repo.doit("-n", "4", "build_all")
    assert down.returncode != 0
    assert down.built() == {"backend"}
    assert re.search(r"^FAILED push:backend: push \S+: connection refused \(2 attempts\)$", down.stderr, re.M), \
        down.stderr
    status = repo.status()
    assert {row["status"] for row in status.values()} == {"OK"}
    assert status["backend"]["registry"] == "unreachable"

    registry.start()
    assert registry_digest(repo, "backend") == old_digest   # the failed push left the release tag alone
    assert repo.status()["backend"]["registry"] == "different"
    back = repo.doit("-n", "4", "build_all")
    assert back.returncode == 0, back.stderr
    assert back.built() == set() and pushed(back) == {repo.image("backend")}
    assert repo.status()["backend"]["registry"] == "current"


def test_a_cache_entry_that_is_not_what_its_tag_says_is_not_used(repo, registry, second_engine, tmp_path):
    runner_a = with_registry(repo, registry.address)
    assert runner_a.doit("build_all").returncode == 0
    runner_b = runner_a.runner(tmp_path / "runner-b", second_engine)
    # Someone pushes frontend's image under backend's inputs tag.
    backend_inputs = next(tag for tag in registry.tags("team/ai-infra-backend") if tag.startswith("inputs-"))
    impostor = f"{registry.address}/team/ai-infra-backend:{backend_inputs}"
    runner_a.client.tag(runner_a.image("frontend"), impostor.rsplit(":", 1)[0], backend_inputs)
    for chunk in runner_a.client.push(impostor, stream=True, decode=True):
        assert "error" not in chunk, chunk
    runner_a.client.remove_image(impostor)

    run = runner_b.doit("build_all", "push=0", "cache=1")
    assert run.returncode == 0, run.stderr
    assert run.results()["backend"] == "built"
    assert re.search(r"^backend\s+built .*registry cache not used: \S+ is not what its tag says", run.stderr, re.M)
    assert runner_b.status()["backend"]["status"] == "OK"


def test_two_runners_that_build_the_same_sources_hash_alike(repo, registry, second_engine, tmp_path):
    runner_a = with_registry(repo, registry.address)
    assert runner_a.doit("build_all").returncode == 0
    runner_b = runner_a.runner(tmp_path / "runner-b", second_engine)
    run = runner_b.doit("build_all", "cache=0", "push=0")   # cache=0: build, though the registry has them
    assert run.returncode == 0, run.stderr
    assert run.built() == SERVICES
    # singleuser is built FROM jupyterhub, whose image ID differs between the runners.
    assert runner_b.inspect("jupyterhub")["Id"] != runner_a.inspect("jupyterhub")["Id"]
    for name in ("jupyterhub", "singleuser"):
        assert inputs_hash(runner_b, name) == inputs_hash(runner_a, name)
    assert runner_b.status()["singleuser"]["registry"] == "current"


def inputs_hash(repo, service: str) -> str:
    return repo.inspect(service)["Config"]["Labels"]["io.buildlib.inputs-hash"]


def registry_digest(repo, service: str) -> str | None:
    try:
        return repo.client.inspect_distribution(repo.image(service))["Descriptor"]["digest"]
    except Exception:
        return None

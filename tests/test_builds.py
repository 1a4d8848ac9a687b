"""What the foundation promises, shown on the real engine (issue 2, a-k)."""
from __future__ import annotations

import re

from images import listed

SERVICES = {"apphub", "backend", "frontend", "jupyterhub", "nginx", "postgres-init", "singleuser", "model-server",
            "slurm-controller"}


def test_fresh_engine_builds_everything_once(repo):
    assert {row["status"] for row in repo.status().values()} == {"MISSING"}
    first = repo.doit("build_all")
    assert first.returncode == 0, first.stderr
    assert first.built() == SERVICES
    assert {row["status"] for row in repo.status().values()} == {"OK"}
    second = repo.doit("build_all")
    assert second.returncode == 0, second.stderr
    assert second.built() == set()
    assert set(second.results()) == SERVICES


def test_changed_file_rebuilds_its_service_and_those_built_from_it(repo):
    assert repo.doit("build_all").returncode == 0
    repo.edit("services/jupyterhub/config/jupyterhub_config.py", "c.JupyterHub.log_level = 'DEBUG'\n")
    status = repo.status()
    assert status["jupyterhub"]["status"] == "STALE"
    assert "config/jupyterhub_config.py changed" in status["jupyterhub"]["reason"]
    assert status["singleuser"]["status"] == "STALE"
    assert status["backend"]["status"] == "OK"
    run = repo.doit("build_all")
    assert run.built() == {"jupyterhub", "singleuser"}, run.stderr


def test_without_state_the_reason_is_inputs_changed(repo):
    assert repo.doit("build_all").returncode == 0
    (repo.path / ".doit.db").unlink()
    repo.edit("services/backend/src/main.go", "// more\n")
    assert repo.status()["backend"] == {
        "service": "backend", "status": "STALE", "image": repo.image("backend"), "reason": "inputs changed",
        "inputs": "files COPY/ADD and bind mounts take",
        "registry": None, "registry_reason": None}


def test_file_excluded_by_dockerignore_rebuilds_nothing(repo):
    assert repo.doit("build_all").returncode == 0
    repo.edit("services/backend/README.md", "more words\n")
    repo.edit("services/backend/src/main_test.go", "// a test\n")
    assert repo.status()["backend"]["status"] == "OK"
    assert repo.doit("build_all").built() == set()


def test_build_arg_target_and_dockerfile_changes_rebuild_that_service(repo):
    assert repo.doit("build_all").returncode == 0
    settings = repo.path / "pyproject.toml"
    settings.write_text(settings.read_text().replace('NOTEBOOK_USER = "jovyan"', 'NOTEBOOK_USER = "alice"'))
    assert repo.status()["singleuser"]["reason"] == "build arg NOTEBOOK_USER changed"
    assert repo.doit("build_all").built() == {"singleuser"}

    settings.write_text(settings.read_text().replace('target = "runtime"', 'target = "debug"'))
    assert repo.status()["singleuser"]["reason"] == "target changed to debug"
    assert repo.doit("build_all").built() == {"singleuser"}

    repo.edit("services/postgres-init/Dockerfile", "LABEL tier=db\n")
    assert repo.status()["postgres-init"]["reason"] == "Dockerfile changed"
    assert repo.doit("build_all").built() == {"postgres-init"}


def test_removed_image_is_missing_and_only_it_is_rebuilt(repo, client):
    assert repo.doit("build_all").returncode == 0
    client.remove_image(repo.image("backend"))
    status = repo.status()
    assert status["backend"]["status"] == "MISSING"
    assert [name for name, row in status.items() if row["status"] != "OK"] == ["backend"]
    assert repo.doit("build_all").built() == {"backend"}


def test_image_of_something_else_under_the_reference_is_rebuilt(repo, client):
    assert repo.doit("build_all").returncode == 0
    client.tag("alpine:3.20", "ai-infra-nginx", repo.tag)
    status = repo.status()["nginx"]
    assert status["status"] == "STALE"
    assert "built by something else" in status["reason"]
    run = repo.doit("build_all")
    assert run.built() == {"nginx"}, run.stderr
    assert repo.status()["nginx"]["status"] == "OK"


def test_deleting_the_state_file_rebuilds_nothing(repo):
    assert repo.doit("build_all").returncode == 0
    (repo.path / ".doit.db").unlink()
    run = repo.doit("build_all")
    assert run.returncode == 0
    assert run.built() == set()


def test_force_rebuilds_everything_without_the_layer_cache(repo):
    assert repo.doit("build_all").returncode == 0
    layers_before = repo.inspect("backend")["RootFS"]["Layers"]
    run = repo.doit("build_all", "force=1")
    assert run.returncode == 0, run.stderr
    assert run.built() == SERVICES
    # A cached RUN step would give the very same layer; without the cache it is made anew.
    assert repo.inspect("backend")["RootFS"]["Layers"] != layers_before


def test_broken_dockerfile_fails_alone_with_file_and_line(repo):
    (repo.path / "services/nginx/Dockerfile").write_text("# proxy\nRUN echo too early\nFROM nginx:1.27-alpine\n")
    repo.edit("services/postgres-init/Dockerfile", "RUN false\n")
    run = repo.doit("build_all")
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    results = run.results()
    assert results["nginx"] == "failed" and results["postgres-init"] == "failed"
    assert results["singleuser"] == "built" and run.built() == SERVICES - {"nginx", "postgres-init"}, run.stderr
    error = [line for line in run.stderr.splitlines() if re.match(rf"\[\d+/{len(SERVICES)}\] FAILED nginx", line)]
    assert len(error) == 1 and re.search(
        r" FAILED nginx in \S+: services/nginx/Dockerfile:2: RUN before the first FROM \(only ARG may come first\)$",
        error[0])
    assert re.search(r"FAILED postgres-init in \S+: build failed at 'RUN false': .*exit code: 1", run.stderr)
    assert "full log: .buildlib/logs/postgres-init.log" in run.stderr


def test_no_engine_is_one_line_and_non_zero(repo):
    run = repo.doit("build_all", env={"DOCKER_HOST": "unix:///tmp/buildlib-no-such-engine.sock"})
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cannot reach a Docker engine at unix:///tmp/buildlib-no-such-engine.sock" in lines[0]
    assert "DOCKER_HOST" in lines[0]


def test_parallel_runs_give_the_same_images_as_a_serial_run(repo, tmp_path, client):
    def hashes():
        return {service: repo.inspect(service)["Config"]["Labels"]["io.buildlib.inputs-hash"]
                for service in SERVICES - {"singleuser"}}   # singleuser's base ID differs per build

    assert repo.doit("build_all").returncode == 0
    serial = hashes()
    for mode in ("process", "thread"):
        repo.remove_images()
        (repo.path / ".doit.db").unlink()
        run = repo.doit("-n", "4", "-P", mode, "build_all")
        assert run.returncode == 0, run.stderr
        assert run.built() == SERVICES
        assert hashes() == serial
        assert {row["status"] for row in repo.status().values()} == {"OK"}


def test_clean_removes_only_images_buildlib_built(repo, client):
    assert repo.doit("build:backend").returncode == 0
    client.tag("alpine:3.20", "ai-infra-nginx", repo.tag)
    run = repo.doit("clean", "build:backend", "build:nginx")
    assert run.returncode == 0, run.stderr
    assert listed(client, name=repo.image("backend")) == []
    assert listed(client, name=repo.image("nginx")) != []
    client.remove_image(repo.image("nginx"))


def test_a_damaged_lock_file_is_one_line(repo):
    (repo.path / "images.lock").write_text("{not json")
    run = repo.doit("build_all")
    assert run.returncode == 3
    assert run.stderr.strip().splitlines() == [
        f"ERROR: {repo.path / 'images.lock'}: not a lock file buildlib can read "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); run `doit lock` again"]

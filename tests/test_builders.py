"""Which builder builds, on the real engine: BuildKit through buildx; the classic builder only where
no buildx answers, with one warning line; every builder failure is one line."""
from __future__ import annotations

import subprocess

import pytest

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'
BUILDKIT_ONLY = ("FROM busybox:1.36\nRUN --mount=type=cache,target=/cache echo cached > /cache/x  # {uid}\n"
                 "COPY --chmod=700 run.sh /run.sh\n")
PLAIN = "FROM busybox:1.36\nRUN echo plain > /plain  # {uid}\n"


def test_buildkit_builds_what_the_classic_builder_cannot(make_repo, uid, client):
    repo = make_repo({"modern": BUILDKIT_ONLY.format(uid=uid)}, MIRRORS)
    (repo.path / "services/modern/run.sh").write_text("echo run\n")
    run = repo.doit("build_all")
    assert run.results() == {"modern": "built"} and "classic builder" not in run.stderr, run.stderr
    assert "using docker driver" in (repo.path / ".buildlib/logs/modern.log").read_text()
    assert repo.status()["modern"]["status"] == "OK"


@pytest.mark.parametrize("version_line, reason", [
    (None, "docker buildx is not installed"),
    ("github.com/docker/buildx v0.9.1 ed00243", "docker buildx v0.9.1 is older than 0.10"),
])
def test_without_buildx_the_classic_builder_builds_after_one_warning(make_repo, uid, without_buildx, version_line,
                                                                    reason):
    repo = make_repo({"plain": PLAIN.format(uid=uid), "modern": BUILDKIT_ONLY.format(uid=uid)}, MIRRORS)
    (repo.path / "services/modern/run.sh").write_text("echo run\n")
    repo.env = without_buildx(version_line)
    run = repo.doit("build_all")
    assert run.results() == {"plain": "built", "modern": "failed"}, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {reason}"), run.stderr
    assert "building with the classic builder, which cannot build RUN --mount" in warnings[0]
    assert "the --mount option requires BuildKit" in run.stderr and "Traceback" not in run.stderr
    assert "Step 1/" in (repo.path / ".buildlib/logs/plain.log").read_text()   # the classic builder's words


def test_a_builder_that_is_named_but_cannot_be_had_fails_each_build_in_one_line(make_repo, uid, without_buildx):
    repo = make_repo({"plain": PLAIN.format(uid=uid)}, MIRRORS)
    missing = repo.doit("build_all", f"builder=nosuch{uid}")
    assert missing.results() == {"plain": "failed"}, missing.stderr
    assert 'FAILED plain in' in missing.stderr and f'no builder "nosuch{uid}" found' in missing.stderr
    repo.env = without_buildx()
    unavailable = repo.doit("build_all", "builder=remote")
    assert unavailable.results() == {"plain": "failed"}, unavailable.stderr
    assert "builder remote is set, but docker buildx is not installed" in unavailable.stderr
    assert "Traceback" not in missing.stderr + unavailable.stderr


def test_a_builder_that_does_not_answer_fails_every_build_in_one_line_and_is_waited_for_once(make_repo, uid,
                                                                                             tmp_path):
    repo = make_repo({"one": PLAIN.format(uid=uid), "two": PLAIN.format(uid=uid + "2")}, MIRRORS)
    repo.env = {"BUILDX_CONFIG": str(tmp_path / "buildx")}   # buildx's own state, for this test alone
    subprocess.run(["docker", "buildx", "create", "--name", f"far{uid}", "--driver", "remote", "tcp://127.0.0.1:9"],
                   env=repo.environment(), check=True, capture_output=True)
    run = repo.doit("build_all", f"builder=far{uid}")
    assert run.results() == {"one": "failed", "two": "failed"}, run.stderr
    said = [line for line in run.stderr.splitlines() if " FAILED " in line]
    assert len(said) == 2 and all(f"builder far{uid} cannot be reached: " in line for line in said), run.stderr
    logs = [(repo.path / f".buildlib/logs/{name}.log").read_text() for name in ("one", "two")]
    together = "1 more that are ready, in one BuildKit run" in run.stderr   # one wait, in both logs
    assert sum("waiting for connection" in log for log in logs) == (2 if together else 1), logs
    assert "Traceback" not in run.stderr


def test_a_failing_step_is_one_line_with_its_last_output(make_repo, uid):
    repo = make_repo({"bad": f"FROM busybox:1.36\nRUN echo {uid}-last-words && false\n",
                      "good": PLAIN.format(uid=uid)}, MIRRORS)
    run = repo.doit("build_all")
    assert run.results() == {"bad": "failed", "good": "built"}, run.stderr
    assert f"build failed at 'RUN echo {uid}-last-words && false': process " in run.stderr
    assert "did not complete successfully: exit code: 1" in run.stderr
    assert f"    | {uid}-last-words" in run.stderr and "full log: .buildlib/logs/bad.log" in run.stderr


def test_a_syntax_line_whose_frontend_cannot_be_pulled_is_one_line(make_repo, uid):
    repo = make_repo({"app": f"# syntax=docker/dockerfile:1\nFROM busybox:1.36\nLABEL uid={uid}\n"}, MIRRORS)
    run = repo.doit("build_all")
    assert run.results() == {"app": "failed"}, run.stderr
    assert ("services/app/Dockerfile: the Dockerfile frontend docker.io/docker/dockerfile:1 that its # syntax= "
            "line names cannot be had") in run.stderr
    assert "Traceback" not in run.stderr

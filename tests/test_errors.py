"""The error catalogue of README.md, row by row: each mistake a user can make gets one line that
names the file, the key or the service, never a traceback, and the exit code the README gives."""
from __future__ import annotations

import os
import shutil

import pytest

from images import listed

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'
NO_ENGINE = {"DOCKER_HOST": "unix:///tmp/buildlib-no-such-engine.sock"}


def one_line(run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.parametrize("settings, variables, expected", [
    ('colour = "red"\n', [], "pyproject.toml [tool.buildlib]: unknown key 'colour'"),
    ("push = 3\n", [], "pyproject.toml [tool.buildlib] push: must be true or false, not 3"),
    ('[tool.buildlib.pull]\nattempts = "many"\n', [], "[tool.buildlib.pull] attempts: must be a whole number"),
    ("", ["tag=Not A Tag"], "tag 'Not A Tag': not a valid image tag"),
    ("", ["registry=https://registry.example/x"], "not a registry address like host[:port][/path]"),
])
def test_settings_mistakes_stop_the_run_before_the_engine_is_asked(make_repo, settings, variables, expected):
    repo = make_repo({"app": "FROM busybox:1.36\n"}, settings)
    run = repo.doit("build_all", *variables, env=NO_ENGINE)   # settings come first: no engine is needed
    assert run.returncode == 3 and expected in one_line(run), run.stderr


def test_a_toml_syntax_error_is_dodos_traceback_ending_in_the_position(make_repo):
    # doit reads pyproject.toml for its own [tool.doit] before it loads dodo.py and buildlib: the
    # one error buildlib cannot word. The last line still says what and where.
    repo = make_repo({"app": "FROM busybox:1.36\n"}, "services = [\n")
    run = repo.doit("build_all", env=NO_ENGINE)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and last == "tomllib.TOMLDecodeError: Invalid value (at end of document)", run.stderr


def test_malformed_dockerfiles_and_bad_folder_names_fail_alone_with_file_and_line(make_repo, uid):
    broken = {
        "no-from": (b"RUN echo hi\n", "no-from/Dockerfile:1: RUN before the first FROM"),
        "only-arg": (b"ARG V=1\n", "only-arg/Dockerfile: has no FROM instruction"),
        "arg-without-value": (b"ARG BASE\nFROM ${BASE}\n", "arg-without-value/Dockerfile:2: FROM uses $BASE, "
                                                         "which is declared without a value"),
        "empty": (b"", "empty/Dockerfile: is empty"),
        "binary": (bytes(range(256)), "binary/Dockerfile: is not a text file"),
        "unterminated": (b"FROM busybox:1.36\nRUN echo \\\n", "unterminated/Dockerfile:2: RUN ends with a line "
                                                             "continuation and the file ends there"),
        "later-stage": (b"FROM busybox:1.36\nCOPY --from=later /a /a\nFROM busybox:1.36 AS later\n",
                        "later-stage/Dockerfile:2: stage 'later' is used before it is defined"),
        "Upper": (b"FROM busybox:1.36\n", "'Upper' cannot be part of an image name"),
        "with space": (b"FROM busybox:1.36\n", "'with space' cannot be part of an image name"),
        "a..b": (b"FROM busybox:1.36\n", "'a..b' cannot be part of an image name"),
        "n" * 250: (b"FROM busybox:1.36\n", "characters long, Docker allows 255: use a shorter folder name"),
    }
    repo = make_repo({"good": f"FROM busybox:1.36\nLABEL uid={uid}\n"}, MIRRORS)
    for name, (data, _) in broken.items():
        (repo.path / "services" / name).mkdir()
        (repo.path / "services" / name / "Dockerfile").write_bytes(data)
    run = repo.doit("build_all")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.results() == {"good": "built", **{name: "failed" for name in broken if " " not in name}}, run.stderr
    failed = [line for line in run.stderr.splitlines() if " FAILED " in line]
    for name, (_, message) in broken.items():
        assert any(message in line for line in failed), (name, run.stderr)


def test_a_dockerignore_that_excludes_the_dockerfile_changes_nothing(make_repo, uid):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY . /app\n"}, MIRRORS)
    (repo.path / "services/app/.dockerignore").write_text("Dockerfile\n*.md\n")
    (repo.path / "services/app/main.txt").write_text("v1\n")
    assert repo.doit("build_all").results() == {"app": "built"}   # Docker sends the Dockerfile anyway
    repo.edit("services/app/Dockerfile", "LABEL more=1\n")
    assert repo.doit("build_all").results() == {"app": "built"}   # and its changes count


def test_a_symlink_out_of_the_context_counts_as_a_link_and_copying_through_it_is_dockers_error(make_repo, uid, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("v1\n")
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY . /app\n",
                      "through": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY config /config\n"}, MIRRORS)
    for name in ("app", "through"):
        (repo.path / "services" / name / "config").symlink_to(outside)
    run = repo.doit("build_all")
    assert run.results() == {"app": "built", "through": "failed"}, run.stderr
    assert '"/config": not found' in run.stderr and "Traceback" not in run.stderr   # BuildKit's words
    outside.write_text("v2\n")    # Docker copies the link, never what it points to
    assert repo.doit("build:app").results() == {"app": "up to date"}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="drops root's file capabilities")
def test_an_unreadable_file_fails_its_service_in_one_line(make_repo, uid):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\nCOPY src/ /app\n",
                      "other": f"FROM busybox:1.36\nLABEL uid={uid}\n"}, MIRRORS)
    (repo.path / "services/app/src").mkdir()
    secret = repo.path / "services/app/src/key.pem"
    secret.write_text("k")
    secret.chmod(0)
    # root reads anything; without these capabilities it meets file modes like any user
    as_a_user = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
                 "--bounding-set=-dac_override,-dac_read_search", "--")
    run = repo.doit("build_all", wrapper=as_a_user)
    assert run.results() == {"app": "failed", "other": "built"}, run.stderr
    assert "services/app/src/key.pem: cannot read (Permission denied)" in run.stderr and "Traceback" not in run.stderr


def test_clean_keeps_an_image_a_container_uses_and_says_so_in_one_line(make_repo, uid, client):
    repo = make_repo({"app": f"FROM busybox:1.36\nLABEL uid={uid}\n", "other": f"FROM busybox:1.36\nLABEL uid={uid}\n"},
                     MIRRORS)
    assert repo.doit("build_all").returncode == 0
    holder = client.create_container(repo.image("app"), "true")
    try:
        run = repo.doit("clean", "build:app", "build:other")
        # doit's clean always exits 0; what matters is that the line names the image and the reason
        assert run.returncode == 0
        assert one_line(run).startswith(f"warning: {repo.image('app')} kept: remove ") and "container" in run.stderr
        assert listed(client, name=repo.image("app")) != [] and listed(client, name=repo.image("other")) == []
    finally:
        client.remove_container(holder)

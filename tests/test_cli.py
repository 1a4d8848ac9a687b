"""The buildlib command: a repository with buildlib.toml and no Python files of its own."""
from __future__ import annotations

import shutil
import sys

import pytest

APP = "FROM 127.0.0.1:5000/library/busybox:1.36\nCOPY a.txt /a.txt\n"


@pytest.fixture
def plain_repo(make_repo, uid):
    """A repository whose settings are in buildlib.toml: no pyproject.toml, no dodo.py."""
    repo = make_repo({"app": APP, "api": APP})
    for name in ("app", "api"):
        (repo.path / "services" / name / "a.txt").write_text(name)
    (repo.path / "pyproject.toml").unlink()
    (repo.path / "dodo.py").unlink()
    (repo.path / "buildlib.toml").write_text(f'project = "bt{uid}"\n')
    return repo


def test_the_command_runs_buildlibs_tasks_without_a_dodo_file(plain_repo):
    built = plain_repo.run(sys.executable, "-m", "buildlib")      # build_all is the default task
    assert built.results() == {"app": "built", "api": "built"}, built.stderr
    command = shutil.which("buildlib")
    assert command, "the buildlib console script is not installed (pip install -e .)"
    status = plain_repo.run(command, "status")
    assert status.returncode == 0 and status.stdout.count(" OK ") == 2, status.stdout + status.stderr
    (plain_repo.path / "services/app/a.txt").write_text("changed")
    again = plain_repo.run(command, "-n", "2", "build_all")
    assert again.results() == {"app": "built", "api": "up to date"}, again.stderr


def test_a_broken_pyproject_is_one_line_not_a_traceback(plain_repo):
    (plain_repo.path / "pyproject.toml").write_text("[tool.buildlib\n")
    run = plain_repo.run(sys.executable, "-m", "buildlib", "status")
    assert run.returncode == 3
    assert run.stderr.startswith("ERROR: pyproject.toml: not valid TOML") and run.stderr.count("\n") == 1, run.stderr

"""Config templates: the pure rendering and .env parsing, then render:<service> on the real engine."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from buildlib.errors import TemplateError
from buildlib.templates import read_env, render, values


def test_placeholders_are_replaced_and_everything_else_is_kept():
    text = "listen {{ PORT }};\nproxy_set_header Host $host;\nname {{NAME}}-{{ NAME }}\n"
    assert render(text, {"PORT": "80", "NAME": "hub"}, "t.tpl") == \
        "listen 80;\nproxy_set_header Host $host;\nname hub-hub\n"


def test_a_variable_without_a_value_names_template_line_and_variable():
    with pytest.raises(TemplateError, match=r"^conf/a\.tpl:3: variable MISSING has no value"):
        render("a\nb {{ A }}\nc {{ MISSING }}\n", {"A": "1"}, "conf/a.tpl")


def test_code_in_a_template_or_a_value_is_text():
    code = "{{ __import__('os').system('true') }} $(rm -rf /) `id` {{ A.__class__ }} {% for x in y %}"
    assert render(code + "{{ A }}", {"A": "$(id)"}, "t.tpl") == code + "$(id)"


def test_env_file_lines(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text("# comment\n\nexport A=1\nB = two words \nC='$(id)'\nD=\"x=y\"\nE=\n")
    assert read_env(env) == {"A": "1", "B": "two words", "C": "$(id)", "D": "x=y", "E": ""}
    env.write_text("A=1\nthis is not a line\n")
    with pytest.raises(TemplateError, match=r"^\.env:2: not a KEY=VALUE line$"):
        read_env(env)


def test_env_file_falls_back_to_the_example_and_the_environment_wins(tmp_path: Path):
    (tmp_path / ".env.example").write_text("A=example\nB=example\n")
    assert values(tmp_path, {"B": "environment"}) == {"A": "example", "B": "environment"}
    (tmp_path / ".env").write_text("A=mine\n")
    assert values(tmp_path, {}) == {"A": "mine"}


# --- on the engine ----------------------------------------------------------------------------

def templated_repo(make_repo, texts: dict[str, str], env: str):
    """Services that copy app.conf, rendered from their app.conf.tpl with the given .env."""
    settings = "".join(f'[tool.buildlib.services.{name}]\ntemplates = ["app.conf.tpl"]\n' for name in texts)
    repo = make_repo({name: "FROM busybox:1.36\nCOPY app.conf /app.conf\n" for name in texts},
                     'mirrors = ["127.0.0.1:5000"]\n' + settings)
    for name, text in texts.items():
        (repo.path / "services" / name / "app.conf.tpl").write_text(text)
    (repo.path / ".env").write_text(env)
    return repo


def test_a_changed_value_rebuilds_only_the_services_whose_rendered_files_changed(make_repo):
    repo = templated_repo(make_repo, {"s1": "a={{ A }}\n", "s2": "b={{ B }}\n", "s3": "a={{ A }} b={{ B }}\n"},
                          "A=1\nB=1\nUNUSED=1\n")
    first = repo.doit("-n", "2", "build_all")
    assert first.returncode == 0, first.stderr
    assert first.built() == {"s1", "s2", "s3"}
    assert (repo.path / "services/s3/app.conf").read_text() == "a=1 b=1\n"

    (repo.path / ".env").write_text("A=1\nB=2\nUNUSED=1\n")
    second = repo.doit("-n", "2", "build_all")
    assert second.returncode == 0, second.stderr
    assert second.built() == {"s2", "s3"}

    (repo.path / ".env").write_text("A=1\nB=2\nUNUSED=2\n")
    assert repo.doit("build_all").built() == set()
    assert repo.doit("build_all", env={"A": "from-the-environment"}).built() == {"s1", "s3"}


def test_a_missing_variable_is_one_line_and_the_other_services_build(make_repo):
    repo = templated_repo(make_repo, {"s1": "a={{ A }}\n", "s2": "b={{ B }}\nc={{ NOWHERE }}\n", "s3": "x\n"},
                          "A=1\nB=1\n")
    run = repo.doit("build_all")
    assert run.returncode != 0
    assert "FAILED render:s2: services/s2/app.conf.tpl:2: variable NOWHERE has no value " \
           "(set it in .env or the environment)" in run.stderr
    assert run.results() == {"s1": "built", "s2": "failed", "s3": "built"}
    assert "Traceback" not in run.stderr


def test_code_in_a_template_is_rendered_as_text_never_run(make_repo, uid):
    witness = Path(f"/tmp/buildlib-{uid}-ran")
    text = ("{{ __import__('os').system('touch " + str(witness) + "') }}\n"
            f"$(touch {witness}) `touch {witness}`\nvalue={{{{ A }}}}\n")
    repo = templated_repo(make_repo, {"s1": text}, f"A=$(touch {witness})\n")
    run = repo.doit("build_all")
    assert run.returncode == 0, run.stderr
    rendered = (repo.path / "services/s1/app.conf").read_text()
    assert rendered == text.replace("{{ A }}", f"$(touch {witness})")
    assert re.search(r"__import__", rendered) and not witness.exists()

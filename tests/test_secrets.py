"""Secret build args: BuildKit secrets whose values reach the build and nothing else (labels,
history, logs, status, errors, state); with the classic builder, build args that a Dockerfile may
not declare in a stage the image is made of."""
from __future__ import annotations

import json

import pytest

from buildlib.errors import SettingsError
from buildlib.settings import load_settings
from images import file_in_image

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\nsecret-args = ["NPM_TOKEN"]\n'
# A BuildKit secret is a file for one RUN step: in the image's own stage, and still in no layer.
USES_IT = """FROM busybox:1.36
RUN --mount=type=secret,id=NPM_TOKEN echo "fetching with $(cat /run/secrets/NPM_TOKEN)" \\
    && wc -c < /run/secrets/NPM_TOKEN > /length  # {uid}
"""
FAILS_WITH_IT = """FROM busybox:1.36
RUN --mount=type=secret,id=NPM_TOKEN echo "denied for $(cat /run/secrets/NPM_TOKEN)" && false  # {uid}
"""
# The classic builder's way: a build arg, used in a stage the image only copies from.
CLASSIC_USES_IT = """FROM busybox:1.36 AS fetch
ARG NPM_TOKEN
RUN echo "fetching with $NPM_TOKEN" && echo -n "$NPM_TOKEN" | wc -c > /length  # {uid}
FROM busybox:1.36
COPY --from=fetch /length /length
"""
BAKES_IT = "FROM busybox:1.36\nARG NPM_TOKEN\nRUN echo building  # {uid}\n"


def everything_written(repo) -> str:
    """Every file the runs left in the repository, as text."""
    return "\n".join(path.read_bytes().decode(errors="replace") for path in repo.path.rglob("*") if path.is_file())


def test_a_secret_reaches_the_build_and_shows_nowhere(make_repo, uid, client):
    repo = make_repo({"app": USES_IT.format(uid=uid), "broken": FAILS_WITH_IT.format(uid=uid)}, MIRRORS)
    secret = f"s3cr3t-{uid}"
    repo.env = {"NPM_TOKEN": secret}
    run = repo.doit("build_all")
    assert run.results() == {"app": "built", "broken": "failed"}, run.stderr
    assert "denied for ***" in run.stderr
    image = repo.image("app")
    assert str(len(secret)).encode() in file_in_image(client, image, "/length")   # the build had the value
    shown = [run.stderr, run.stdout, json.dumps(client.inspect_image(image)), json.dumps(client.history(image)),
             repo.doit("status").stdout, json.dumps(repo.status()), repo.doit("explain:app").stdout,
             repo.doit("history").stdout, everything_written(repo)]
    assert not [text for text in shown if secret in text]
    assert "fetching with ***" in (repo.path / ".buildlib/logs/app.log").read_text()
    repo.env = {"NPM_TOKEN": f"rotated-{uid}"}
    assert repo.doit("build:app").results() == {"app": "up to date"}   # a new token rebuilds nothing
    repo.env = {}
    repo.edit("services/app/Dockerfile", "LABEL edited=1\n")
    unset = repo.doit("build:app")
    assert unset.results() == {"app": "failed"} and "secret build arg NPM_TOKEN is not set" in unset.stderr


def test_the_classic_builder_gets_secrets_as_build_args_only_where_the_image_does_not_keep_them(
        make_repo, uid, client, without_buildx):
    repo = make_repo({"app": CLASSIC_USES_IT.format(uid=uid), "leaky": BAKES_IT.format(uid=uid)}, MIRRORS)
    secret = f"s3cr3t-{uid}"
    repo.env = {"NPM_TOKEN": secret, **without_buildx()}
    run = repo.doit("build_all")
    assert run.results() == {"app": "built", "leaky": "failed"}, run.stderr
    assert "secret build arg NPM_TOKEN is declared in a stage the image is made of" in run.stderr
    assert str(len(secret)).encode() in file_in_image(client, repo.image("app"), "/length")
    image = repo.image("app")
    assert secret not in json.dumps(client.history(image)) + json.dumps(client.inspect_image(image)) + run.stderr
    assert "fetching with ***" in (repo.path / ".buildlib/logs/app.log").read_text()


def test_a_secret_value_in_the_settings_file_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\nsecret-args = ["TOKEN"]\n[tool.buildlib.services.app]\nargs = {TOKEN = "x"}\n')
    with pytest.raises(SettingsError, match=r"args.TOKEN: a secret build arg takes its value from the environment"):
        load_settings(tmp_path, {}, {})
    (tmp_path / "pyproject.toml").write_text('[tool.buildlib]\nproject = "p"\nsecret-args = ["NOT A NAME"]\n')
    with pytest.raises(SettingsError, match="'NOT A NAME' is not a build arg name"):
        load_settings(tmp_path, {}, {})

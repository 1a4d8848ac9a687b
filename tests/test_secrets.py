"""Secret build args: their values reach the build and nothing else (labels, history, logs,
status, errors, state), and a Dockerfile that would bake one into the image's history is refused."""
from __future__ import annotations

import json

import pytest

from buildlib.errors import SettingsError
from buildlib.settings import load_settings

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\nsecret-args = ["NPM_TOKEN"]\n'
# The token is used in a stage the image only copies from: its history never holds the value.
USES_IT = """FROM busybox:1.36 AS fetch
ARG NPM_TOKEN
RUN echo "fetching with $NPM_TOKEN" && echo "$NPM_TOKEN" | wc -c > /length  # {uid}
FROM busybox:1.36
COPY --from=fetch /length /length
"""
FAILS_WITH_IT = """FROM busybox:1.36 AS fetch
ARG NPM_TOKEN
RUN echo "denied for $NPM_TOKEN" && false  # {uid}
FROM busybox:1.36
COPY --from=fetch /length /length
"""
BAKES_IT = "FROM busybox:1.36\nARG NPM_TOKEN\nRUN echo building  # {uid}\n"


def everything_written(repo) -> str:
    """Every file the runs left in the repository, as text."""
    return "\n".join(path.read_bytes().decode(errors="replace") for path in repo.path.rglob("*") if path.is_file())


def test_a_secret_reaches_the_build_and_shows_nowhere(make_repo, uid, client):
    repo = make_repo({"app": USES_IT.format(uid=uid), "broken": FAILS_WITH_IT.format(uid=uid),
                      "leaky": BAKES_IT.format(uid=uid)}, MIRRORS)
    secret = f"s3cr3t-{uid}"
    repo.env = {"NPM_TOKEN": secret}
    run = repo.doit("build_all")
    assert run.results() == {"app": "built", "broken": "failed", "leaky": "failed"}, run.stderr
    assert "denied for ***" in run.stderr
    assert "secret build arg NPM_TOKEN is declared in a stage the image is made of" in run.stderr
    image = repo.image("app")
    length = client.create_container(image, ["true"])
    try:
        stream, _ = client.get_archive(length, "/length")
        assert str(len(secret) + 1).encode() in b"".join(stream)   # the build had the value
    finally:
        client.remove_container(length)
    shown = [run.stderr, run.stdout, json.dumps(client.inspect_image(image)), json.dumps(client.history(image)),
             repo.doit("status").stdout, json.dumps(repo.status()), repo.doit("explain:app").stdout,
             repo.doit("history").stdout, everything_written(repo)]
    assert not [text for text in shown if secret in text]
    assert "fetching with ***" in (repo.path / ".buildlib/logs/app.log").read_text()
    repo.env = {"NPM_TOKEN": f"rotated-{uid}"}
    assert repo.doit("build:app").results() == {"app": "up to date"}   # a new token rebuilds nothing
    repo.env = {}
    repo.edit("services/app/Dockerfile", "\n")
    unset = repo.doit("build:app")
    assert unset.results() == {"app": "failed"} and "secret build arg NPM_TOKEN is not set" in unset.stderr


def test_a_secret_value_in_the_settings_file_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\nsecret-args = ["TOKEN"]\n[tool.buildlib.services.app]\nargs = {TOKEN = "x"}\n')
    with pytest.raises(SettingsError, match=r"args.TOKEN: a secret build arg takes its value from the environment"):
        load_settings(tmp_path, {}, {})
    (tmp_path / "pyproject.toml").write_text('[tool.buildlib]\nproject = "p"\nsecret-args = ["NOT A NAME"]\n')
    with pytest.raises(SettingsError, match="'NOT A NAME' is not a build arg name"):
        load_settings(tmp_path, {}, {})

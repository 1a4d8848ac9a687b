"""Compose files read without compose: the same answers as `docker compose config`, compared here with it."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildlib.errors import SettingsError
from buildlib.sources import compose_file
from buildlib.sources.compose import COMPOSE_FILES
from test_compose import shop  # noqa: F401 - the fixture repository, shared

pytestmark = pytest.mark.skipif(not shutil.which("docker") or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0, reason="needs docker compose to compare with")
BUILD_KEYS = ("context", "dockerfile", "dockerfile_inline", "args", "target", "labels", "tags", "additional_contexts",
              "secrets", "ssh", "network", "platforms")


def theirs(root, *args, environ=None):
    done = subprocess.run(["docker", "compose", *args, "config"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(environ or {})})
    if done.returncode:
        return "error"
    return yaml.safe_load(done.stdout.replace("$$", "$"))


def ours(root, profiles=(), environ=None, files=None):
    found = files or tuple(root / name for name in COMPOSE_FILES if (root / name).is_file())[:1]
    try:
        return compose_file.config(root, found, profiles, {**os.environ, **(environ or {})}, named=files is not None)
    except SettingsError:
        return "error"


def builds(model):
    """What buildlib reads of a model: each built service's build keys and image, the secrets, the name."""
    if model == "error":
        return model
    services = {name: ({key: service["build"][key] for key in BUILD_KEYS if key in service["build"]},
                       service.get("image")) for name, service in model["services"].items() if "build" in service}
    for build, _ in services.values():
        build["ssh"] = [entry.replace(": ", "=", 1) for entry in build.get("ssh", [])] or None
        build["secrets"] = build.get("secrets") or None
    secrets = {name: {key: value for key, value in item.items() if key in ("file", "environment")}
               for name, item in (model.get("secrets") or {}).items()}
    return model["name"], services, secrets


def test_the_shop_reads_as_compose_reads_it(shop, monkeypatch):   # noqa: F811
    assert builds(ours(shop)) == builds(theirs(shop))
    assert builds(ours(shop, profiles=("debug",))) == builds(theirs(shop, "--profile", "debug"))
    (shop / "compose.override.yaml").write_text(
        "services:\n  web:\n    build:\n      args: [MODE=prod, FROM_ENV]\n      labels: [team=web]\n"
        "    image: ${IMAGE_NAME}/web:${WEB_TAG:-1}\n")
    assert builds(ours(shop, environ={"FROM_ENV": "x"})) == builds(theirs(shop, environ={"FROM_ENV": "x"}))
    (shop / "other.yaml").write_text("name: Other_Shop\nservices:\n  solo:\n    build:\n      context: src/web\n")
    named = (shop / "other.yaml",)
    assert builds(ours(shop, files=named)) == builds(theirs(shop, "--file", str(named[0])))


PIECES = ["plain", " ", "-", "$$", "$A", "${A}", "${A:-dflt}", "${A-dflt}", "${A:+alt}", "${A+alt}", "${B:-${A}}",
          "${B-$A}", "${A:?A is needed}", "${A?A is needed}", "$A_B", "${A}B", "${", "$", "}"]
VALUES = st.one_of(st.none(), st.sampled_from(["", "one", "two words", "a$b"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("".join), a=VALUES, b=VALUES)
def test_interpolation_is_composes(tmp_path_factory, template, a, b):
    root = tmp_path_factory.mktemp("interpolate")
    (root / "compose.yaml").write_text(yaml.safe_dump({"services": {"s": {"build": ".", "labels": {"t": template}}}}))
    environ = {name: value for name, value in (("A", a), ("B", b)) if value is not None}
    clean = {key: value for key, value in os.environ.items() if key not in ("A", "B", "A_B")}
    done = subprocess.run(["docker", "compose", "config"], cwd=root, capture_output=True, text=True,
                          env={**clean, **environ})
    expected = "error" if done.returncode else yaml.safe_load(done.stdout.replace("$$", "$"))["services"]["s"]["labels"]["t"]
    try:
        got = compose_file.config(root, (root / "compose.yaml",), (), {**clean, **environ}, named=False)
        got = got["services"]["s"]["labels"]["t"]
    except SettingsError:
        got = "error"
    assert got == expected


def test_dotenv_as_compose_reads_it(tmp_path):
    (tmp_path / ".env").write_text(
        "# a comment\nexport ONE=1\nTWO='two ${ONE}'\nTHREE=\"three ${ONE}\\nline\"\nFOUR=four # said\n"
        "FIVE=${TWO}-${MISSING:-none}\n  SIX = spaced \n")
    labels = {name: f"${{{name}}}" for name in ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX")}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump({"services": {"s": {"build": ".", "labels": labels}}}))
    clean = {key: value for key, value in os.environ.items() if key not in labels and key != "MISSING"}
    expected = yaml.safe_load(subprocess.run(["docker", "compose", "config"], cwd=tmp_path, capture_output=True, text=True,
                                             env=clean, check=True).stdout.replace("$$", "$"))
    got = compose_file.config(tmp_path, (tmp_path / "compose.yaml",), (), clean, named=False)
    assert got["services"]["s"]["labels"] == expected["services"]["s"]["labels"]

"""Settings: command line over environment over pyproject.toml, and one clear line per mistake."""
from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.errors import SettingsError
from buildlib.settings import ServiceSettings, load_settings

BASE = '[tool.buildlib]\nproject = "ai-infra"\ntag = "v0.1.0"\n'


def settings_of(tmp_path: Path, text: str, variables: dict | None = None, environ: dict | None = None):
    (tmp_path / "pyproject.toml").write_text(text)
    return load_settings(tmp_path, variables or {}, environ or {})


def test_command_line_beats_environment_beats_file(tmp_path):
    assert settings_of(tmp_path, BASE).tag == "v0.1.0"
    assert settings_of(tmp_path, BASE, environ={"BUILDLIB_TAG": "env"}).tag == "env"
    assert settings_of(tmp_path, BASE, {"tag": "cli"}, {"BUILDLIB_TAG": "env"}).tag == "cli"
    assert settings_of(tmp_path, BASE, {"force": "1"}).force is True
    assert settings_of(tmp_path, BASE, environ={"BUILDLIB_FORCE": "no"}).force is False


def test_image_names(tmp_path):
    settings = settings_of(tmp_path, BASE, {"registry": "127.0.0.1:5000/team"})
    assert settings.image("backend") == "127.0.0.1:5000/team/ai-infra-backend:v0.1.0"
    assert settings_of(tmp_path, BASE).image("backend") == "ai-infra-backend:v0.1.0"


def test_mirrors_per_registry_and_pull_settings(tmp_path):
    assert settings_of(tmp_path, BASE + 'mirrors = ["m:5000"]\n').mirrors == {"docker.io": ("m:5000",)}
    table = BASE + 'mirrors = { "docker.io" = ["a:1"], "ghcr.io" = ["b:2", "c:3"] }\n'
    assert settings_of(tmp_path, table).mirrors == {"docker.io": ("a:1",), "ghcr.io": ("b:2", "c:3")}
    pull = settings_of(tmp_path, BASE + "[tool.buildlib.pull]\nattempts = 5\ntimeout = 2.5\nmirrors-first = true\n").pull
    assert (pull.attempts, pull.timeout, pull.backoff, pull.mirrors_first) == (5, 2.5, 1.0, True)


def test_service_overrides(tmp_path):
    text = BASE + '[tool.buildlib.services.hub]\ntarget = "runtime"\nargs = { PY = "3.12" }\n'
    assert settings_of(tmp_path, text).for_service("hub") == ServiceSettings(target="runtime", args={"PY": "3.12"})
    assert settings_of(tmp_path, text).for_service("other") == ServiceSettings()


@pytest.mark.parametrize("text, variables, message", [
    (BASE + "colour = 1\n", {}, "unknown key 'colour'"),
    (BASE + "mirrors = 'x'\n", {}, "mirrors: must be a list of Docker Hub mirrors, or a table of lists"),
    (BASE + "mirrors = [1]\n", {}, "mirrors.docker.io: must be a list of strings"),
    (BASE + "mirrors = { 'ghcr.io' = 'm' }\n", {}, "mirrors.ghcr.io: must be a list of strings"),
    (BASE + "[tool.buildlib.pull]\nattempts = 0\n", {}, "[tool.buildlib.pull] attempts: must be more than 0"),
    (BASE + "[tool.buildlib.pull]\nattempts = true\n", {}, "attempts: must be a whole number"),
    (BASE + "[tool.buildlib.pull]\nretries = 2\n", {}, "[tool.buildlib.pull]: unknown key 'retries'"),
    ('[tool.buildlib]\nproject = 3\n', {}, "project: must be a string, not 3"),
    (BASE + "[tool.buildlib.services.a]\nimages = 'x'\n", {}, "[tool.buildlib.services.a]: unknown key 'images'"),
    (BASE + "[tool.buildlib.services.a]\nimage = 'team/{name}'\n", {},
     "[tool.buildlib.services.a] image: 'team/{name}' names {name}; a template may name {registry}, {project}"),
    (BASE + "image = '{registry}/{service'\n", {}, "[tool.buildlib] image: '{registry}/{service' names a malformed"),
    (BASE + "profiles = 'debug'\n", {}, "profiles: must be a list of compose profile names"),
    (BASE + "[tool.buildlib.services.a]\nargs = { N = 1 }\n", {}, "args.N: must be a string, not 1"),
    (BASE, {"tag": "bad tag"}, "tag 'bad tag': not a valid image tag"),
    (BASE, {"tag": ".hidden"}, "not a valid image tag"),
    (BASE, {"registry": "http://x"}, "registry 'http://x': not a registry address"),
    (BASE, {"force": "maybe"}, "force=maybe: must be 1 or 0"),
    ('[tool.buildlib]\nproject = "AI"\n', {}, "project 'AI': not a valid image name"),
    ("tool = { buildlib = 3 }\n", {}, "tool.buildlib must be a table, not 3"),
    ("[tool.buildlib\n", {}, "not valid TOML"),
])
def test_mistakes_are_one_line_naming_the_key(tmp_path, text, variables, message):
    with pytest.raises(SettingsError) as caught:
        settings_of(tmp_path, text, variables)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_without_settings_every_key_has_its_default_and_the_project_is_named_as_compose_names_it(tmp_path):
    root = tmp_path / "My Shop_2"
    root.mkdir()
    assert load_settings(root, {}, {}).project == "myshop_2"
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')     # a Python project's own file
    assert load_settings(root, {}, {"BUILDLIB_TAG": "7"}).tag == "7"
    (root / "pyproject.toml").write_text('[tool.buildlib]\ntag = "x"\n')
    assert load_settings(root, {}, {}).project == "myshop_2"
    odd = tmp_path / "__"
    odd.mkdir()
    with pytest.raises(SettingsError, match="its folder name gives no valid project name"):
        load_settings(odd, {}, {})


def test_buildlib_toml_holds_the_same_keys_at_its_top(tmp_path):
    (tmp_path / "buildlib.toml").write_text('project = "shop"\ntag = "7"\n[services.web]\nargs = { A = "1" }\n')
    settings = load_settings(tmp_path, {}, {})
    assert (settings.project, settings.tag, settings.for_service("web").args) == ("shop", "7", {"A": "1"})
    (tmp_path / "buildlib.toml").write_text('project = "shop"\n[services.web]\nargs = { A = 1 }\n')
    with pytest.raises(SettingsError, match=r"^buildlib.toml \[services.web\] args.A: must be a string, not 1$"):
        load_settings(tmp_path, {}, {})
    (tmp_path / "buildlib.toml").write_text('project = "shop"\ncolour = "red"\n')
    with pytest.raises(SettingsError, match=r"^buildlib.toml: unknown key 'colour'"):
        load_settings(tmp_path, {}, {})
    (tmp_path / "pyproject.toml").write_text('[tool.buildlib]\nproject = "other"\n')
    with pytest.raises(SettingsError, match="both buildlib.toml and pyproject.toml .tool.buildlib. hold"):
        load_settings(tmp_path, {}, {})
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')   # a Python project's own file: fine
    (tmp_path / "buildlib.toml").write_text('project = "shop"\n')
    assert load_settings(tmp_path, {}, {}).project == "shop"
    (tmp_path / "buildlib.toml").write_text('project = \n')
    with pytest.raises(SettingsError, match="buildlib.toml: not valid TOML"):
        load_settings(tmp_path, {}, {})

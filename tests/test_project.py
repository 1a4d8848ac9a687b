"""The sample platform as buildlib sees it: services, their bases, the graph."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from buildlib.errors import SettingsError
from buildlib.project import ExternalImage, _resolved, load_project
from buildlib.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "services", tmp_path / "services")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def project_of(root: Path, **variables):
    return load_project(load_settings(root, variables, {}))


def test_sample_platform(sample):
    project = project_of(sample)
    assert project.broken == {}
    assert len(project.names) == 9
    assert project.services["singleuser"].base_services == ("jupyterhub",)
    assert project.services["singleuser"].base_images == ("ai-infra-jupyterhub:v0.1.0",)
    assert project.services["jupyterhub"].base_images == ("python:3.12-alpine",)    # the settings' override
    assert project.services["apphub"].base_images == ("alpine:3.20", "busybox:1.36")
    assert ExternalImage("alpine:3.20", "linux/amd64") in project.external_images
    assert {image.ref for image in project.external_images} == {
        "alpine:3.20", "busybox:1.36", "golang:1.23-alpine", "nginx:1.27-alpine", "node:20-alpine",
        "postgres:16-alpine", "python:3.12-alpine"}


def test_registry_and_tag_flow_into_the_chain(sample):
    project = project_of(sample, tag="v2", registry="127.0.0.1:5000/team")
    singleuser = project.services["singleuser"]
    assert singleuser.image == "127.0.0.1:5000/team/ai-infra-singleuser:v2"
    assert singleuser.base_images == ("127.0.0.1:5000/team/ai-infra-jupyterhub:v2",)
    assert singleuser.hashed_args == {"REGISTRY": "127.0.0.1:5000/team/", "TAG": "v2", "NOTEBOOK_USER": "jovyan"}


def test_broken_services_are_recorded_not_fatal(sample):
    (sample / "services/nginx/Dockerfile").write_text("RUN x\n")
    (sample / "services/Bad Name").mkdir()
    (sample / "services/Bad Name/Dockerfile").write_text("FROM alpine\n")
    project = project_of(sample)
    assert project.broken["nginx"] == "services/nginx/Dockerfile:1: RUN before the first FROM (only ARG may come first)"
    assert "'Bad Name' cannot be part of an image name" in project.broken["Bad Name"]
    assert "backend" in project.services


def test_services_built_from_each_other_are_refused(sample):
    (sample / "services/jupyterhub/Dockerfile").write_text("ARG TAG\nFROM ai-infra-singleuser:${TAG}\n")
    project = project_of(sample)
    assert "built from each other" in project.broken["singleuser"]
    assert "built from each other" in project.broken["jupyterhub"]


def test_settings_for_a_service_without_a_folder(sample):
    with open(sample / "pyproject.toml", "a") as file:
        file.write('\n[tool.buildlib.services.ghost]\ntarget = "x"\n')
    with pytest.raises(SettingsError, match=r"\[tool.buildlib.services.ghost\]: no folder services/ghost"):
        project_of(sample)


def test_a_named_context_stands_for_another_services_image_or_an_image(tmp_path):
    for name, dockerfile in {"app": "FROM base\nCOPY --from=tools /x /x\n", "lib": "FROM alpine:3.20\n"}.items():
        (tmp_path / "services" / name).mkdir(parents=True)
        (tmp_path / "services" / name / "Dockerfile").write_text(dockerfile)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\n[tool.buildlib.services.app]\n'
        'contexts = { base = "service:lib", tools = "docker-image://busybox:1.36" }\n')
    app = project_of(tmp_path).services["app"]
    assert (app.base_services, app.base_images) == (("lib",), ("busybox:1.36", "p-lib:latest"))
    assert app.build_contexts == {"base": "docker-image://p-lib:latest", "tools": "docker-image://busybox:1.36"}
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\n[tool.buildlib.services.app]\ncontexts = { base = "service:nope" }\n')
    assert project_of(tmp_path).broken["app"] == (
        "services/app: build context base is service:nope, which is not a service buildlib builds here")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\n[tool.buildlib.services.app]\ncontexts = { base = "../lib" }\n')
    app = project_of(tmp_path).services["app"]     # a folder, relative to the service's: its files, not an image
    assert (app.folder_contexts, app.base_images) == ({"base": str(tmp_path / "services/lib")}, ("tools",))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildlib]\nproject = "p"\n[tool.buildlib.services.app]\ncontexts = { base = "https://x/y.git" }\n')
    with pytest.raises(SettingsError, match=r"services.app\] contexts.base: 'https://x/y.git' is not supported by "
                                            "buildlib yet .* and folders, not URLs"):
        project_of(tmp_path)


def test_paths_resolve_as_pathlib_does_with_each_folder_resolved_once(tmp_path, monkeypatch):
    (tmp_path / "real" / "app").mkdir(parents=True)
    (tmp_path / "real" / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "services").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "app" / "link.Dockerfile").symlink_to("Dockerfile")
    monkeypatch.chdir(tmp_path)
    paths = [Path("services/app"), Path("services/app/Dockerfile"), Path("services/app/link.Dockerfile"),
             tmp_path / "services" / "app" / "..", tmp_path / "services" / "gone" / "Dockerfile", Path("/")]
    folders: dict[str, str] = {}
    assert [_resolved(path, folders) for path in paths + paths] == [str(path.resolve()) for path in paths + paths]

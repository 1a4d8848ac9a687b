"""Services from a compose file, against compose's own reading of it (`docker compose config`)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from buildlib.project import load_project
from buildlib.settings import load_settings

# A shop as public monorepos write it: contexts at the root, Dockerfiles under src/<svc>/ named
# through .env, image names from variables, a service without a build, one FROM another's image.
COMPOSE = """
services:
  base:
    build:
      context: .
      dockerfile: src/base/${BASE_DOCKERFILE}
    image: ${IMAGE_NAME}:${DEMO_VERSION}-base
  cart:
    build:
      context: .
      dockerfile: src/cart/Dockerfile
      args:
        BASE: ${IMAGE_NAME}:${DEMO_VERSION}-base
        LEVEL: ${LEVEL:-info}
      target: run
    image: ${IMAGE_NAME}:${DEMO_VERSION}-cart
  web:
    build: ./src/web
  api:
    build:
      context: ./src/api
      additional_contexts:
        base: service:base
        tools: docker-image://127.0.0.1:5000/library/busybox:1.36
  db:
    image: postgres:16
"""
ENV = "IMAGE_NAME=sh{uid}\nDEMO_VERSION=1.2\nBASE_DOCKERFILE=base.Dockerfile\n"
FILES = {
    "src/base/base.Dockerfile": "FROM 127.0.0.1:5000/library/busybox:1.36\nCOPY src/base/lib.txt /lib.txt\n",
    "src/base/lib.txt": "lib\n",
    "src/cart/Dockerfile": "ARG BASE\nFROM ${BASE} AS run\nARG LEVEL\nRUN echo $LEVEL > /level\nCOPY src/cart/ /cart/\n"
                           "FROM run AS debug\n",
    "src/cart/cart.txt": "cart\n",
    "src/web/Dockerfile": "FROM 127.0.0.1:5000/library/busybox:1.36\nCOPY page.html /page.html\n",
    "src/web/page.html": "<p>shop</p>\n",
    "src/api/Dockerfile": "FROM base\nCOPY --from=tools /bin/true /tools-true\nCOPY api.txt /api.txt\n",
    "src/api/api.txt": "api\n",
    "README.md": "no instruction reads me\n",
}


@pytest.fixture
def shop(tmp_path, uid):
    root = tmp_path / f"shop{uid}"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "compose.yaml").write_text(COMPOSE)
    (root / ".env").write_text(ENV.format(uid=uid))
    (root / "buildlib.toml").write_text(f'project = "sh{uid}"\n')
    return root


def compose_says(root: Path, *args: str) -> str:
    done = subprocess.run(["docker", "compose", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def project_of(root: Path):
    return load_project(load_settings(root, {}, {}))


@pytest.fixture(autouse=True)
def needs_compose():
    if not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.skip("no docker compose: run the tests through scripts/test, which installs it")


def test_services_are_those_with_a_build_named_as_compose_names_them(shop, uid):
    (shop / "buildlib.toml").unlink()      # nothing written for buildlib
    project = project_of(shop)
    assert project.broken == {}
    built = {service.image for service in project.services.values()}
    theirs = set(compose_says(shop, "config", "--images").split()) - {"postgres:16"}
    assert built == {f"{ref}:latest" if ":" not in ref else ref for ref in theirs}
    assert project.services["web"].image == f"shop{uid}-web:latest"     # compose's project is the folder's name
    assert project.services["cart"].base_services == ("base",)
    api = project.services["api"]     # FROM base, COPY --from=tools: the named contexts' images
    assert (api.base_services, api.base_images) == (("base",), ("127.0.0.1:5000/library/busybox:1.36", f"sh{uid}:1.2-base"))
    assert api.build_contexts == {"base": f"docker-image://sh{uid}:1.2-base",
                                  "tools": "docker-image://127.0.0.1:5000/library/busybox:1.36"}


def test_build_keys_follow_compose(shop, uid, monkeypatch):
    model = json.loads(compose_says(shop, "config", "--format", "json"))
    cart = project_of(shop).services["cart"]
    assert cart.context == model["services"]["cart"]["build"]["context"] == str(shop)
    assert cart.dockerfile == str(shop / "src/cart/Dockerfile")
    assert cart.target == "run"
    assert {key: cart.build_args[key] for key in ("BASE", "LEVEL")} == model["services"]["cart"]["build"]["args"]
    assert cart.context_sources == ("src/cart",)       # a root context narrowed to what COPY takes
    monkeypatch.setenv("LEVEL", "debug")
    assert project_of(shop).services["cart"].build_args["LEVEL"] == "debug"   # the environment over the default
    (shop / "buildlib.toml").write_text(f'project = "sh{uid}"\n[services.cart]\ntarget = "debug"\nargs = {{ LEVEL = "warn" }}\n')
    overridden = project_of(shop).services["cart"]
    assert (overridden.target, overridden.build_args["LEVEL"]) == ("debug", "warn")


def test_what_buildlib_cannot_build_yet_is_one_line_per_service(shop):
    (shop / "compose.yaml").write_text(COMPOSE + "  tools:\n    build:\n      context: .\n      ssh: [default]\n"
                                       "  docs:\n    build:\n      context: .\n      additional_contexts:\n"
                                       "        assets: ./src/web\n")
    broken = project_of(shop).broken
    assert broken["tools"] == "compose.yaml tools: build.ssh is not supported by buildlib yet"
    assert broken["docs"].startswith(f"compose.yaml docs: build.additional_contexts.assets: '{shop}/src/web' is not "
                                     "supported by buildlib yet (it takes service:NAME and docker-image://REF")


def test_compose_is_asked_again_only_when_a_file_or_the_environment_changes(shop, tmp_path, monkeypatch):
    project_of(shop)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))     # no docker CLI: only the cache can answer
    assert sorted(project_of(shop).services) == ["api", "base", "cart", "web"]
    (shop / ".env").write_text((shop / ".env").read_text() + "LEVEL=warn\n")
    with pytest.raises(Exception, match="reading it needs `docker compose`; there is no docker CLI on PATH"):
        project_of(shop)


def test_buildlib_builds_the_compose_services_in_order(shop, client, uid):
    run = subprocess.run(["buildlib", "build_all"], cwd=shop, capture_output=True, text=True, timeout=600)
    try:
        assert run.returncode == 0, run.stderr
        rows = {row["service"]: row for row in json.loads(subprocess.run(
            ["buildlib", "status", "format=json"], cwd=shop, capture_output=True, text=True, check=True).stdout)}
        assert {name: row["status"] for name, row in rows.items()} == {"api": "OK", "base": "OK", "cart": "OK", "web": "OK"}
        assert rows["cart"]["image"] == f"sh{uid}:1.2-cart"      # compose's name, in what status says too
        (shop / "README.md").write_text("edited\n")
        (shop / "src/base/lib.txt").write_text("lib 2\n")
        again = subprocess.run(["buildlib", "status"], cwd=shop, capture_output=True, text=True, check=True).stdout
        assert "src/base/lib.txt changed" in again and again.count("base service base is STALE") == 2, again
    finally:
        for ref in (f"sh{uid}:1.2-base", f"sh{uid}:1.2-cart", f"shop{uid}-web:latest", f"shop{uid}-api:latest"):
            try:
                client.remove_image(ref, force=True)
            except Exception:   # noqa: BLE001 - not built when the run failed
                pass

"""Services from a compose file, against compose's own reading of it (`docker compose config`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from buildlib.errors import SettingsError
from buildlib.project import NATIVE_PLATFORM, load_project
from buildlib.settings import load_settings
from images import file_in_image

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
  tools:
    build:
      context: .
      dockerfile_inline: |
        FROM 127.0.0.1:5000/library/busybox:1.36
        COPY --from=assets page.html /assets/page.html
        RUN --mount=type=secret,id=npmrc wc -c < /run/secrets/npmrc > /npmrc-size
        RUN --mount=type=secret,id=api_key wc -c < /run/secrets/api_key > /api-size
        RUN --mount=type=ssh,id=deploy test -S "$$SSH_AUTH_SOCK" && echo ok > /ssh
      additional_contexts:
        assets: ./src/web
      labels:
        shop.team: payments
      tags: ["${IMAGE_NAME}-tools:extra"]
      secrets:
        - npmrc
        - source: api
          target: api_key
      ssh: ["deploy=${SHOP_KEY}"]
      network: none
      platforms: ["${SHOP_PLATFORM}"]
    image: ${IMAGE_NAME}:${DEMO_VERSION}-tools
  debug:
    build: ./src/web
    profiles: [debug]
  db:
    image: postgres:16
secrets:
  npmrc:
    file: ./src/npmrc
  api:
    environment: SHOP_API_KEY
"""
ENV = "IMAGE_NAME=sh{uid}\nDEMO_VERSION=1.2\nBASE_DOCKERFILE=base.Dockerfile\nSHOP_KEY={root}/deploy_key\nSHOP_PLATFORM={platform}\n"
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
    "src/npmrc": "//registry/:_authToken=not-for-images\n",
    "README.md": "no instruction reads me\n",
}
SERVICES = ["api", "base", "cart", "tools", "web"]


@pytest.fixture
def shop(tmp_path, uid):
    root = tmp_path / f"shop{uid}"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "compose.yaml").write_text(COMPOSE)
    (root / ".env").write_text(ENV.format(uid=uid, root=root, platform=NATIVE_PLATFORM))
    (root / "buildlib.toml").write_text(f'project = "sh{uid}"\n')
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "deploy_key")], check=True)
    return root


def compose_says(root: Path, *args: str) -> str:
    done = subprocess.run(["docker", "compose", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def compose_model(root: Path, *args: str) -> dict:
    """compose's reading, as YAML (its JSON cannot hold build.ssh), with the $ it doubles on output single again."""
    return yaml.safe_load(compose_says(root, *args, "config").replace("$$", "$"))


def project_of(root: Path):
    return load_project(load_settings(root, {}, {}))


@pytest.fixture(autouse=True)
def needs_compose():
    if not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.skip("no docker compose: run the tests through scripts/test, which installs it")


def test_services_are_those_with_a_build_named_as_compose_names_them(shop, uid):
    (shop / "buildlib.toml").unlink()      # nothing written for buildlib
    project = project_of(shop)
    assert project.broken == {} and sorted(project.services) == SERVICES     # not debug: its profile is off
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
    model = compose_model(shop)
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


def test_the_other_build_keys_follow_compose(shop, uid):
    theirs = compose_model(shop)
    build = theirs["services"]["tools"]["build"]
    tools = project_of(shop).services["tools"]
    inline = Path(tools.dockerfile)
    assert inline.read_text() == build["dockerfile_inline"] and not inline.is_relative_to(shop / "src")
    assert tools.folder_contexts == build["additional_contexts"] == {"assets": str(shop / "src/web")}
    assert (tools.labels, list(tools.tags)) == (build["labels"], build["tags"]) == ({"shop.team": "payments"},
                                                                                  [f"sh{uid}-tools:extra"])
    # A secret's id is its target, else its name; where its value comes from is never hashed.
    assert tools.secrets == {"npmrc": f"src={theirs['secrets']['npmrc']['file']}",
                             "api_key": f"env={theirs['secrets']['api']['environment']}"} == {
        "npmrc": f"src={shop}/src/npmrc", "api_key": "env=SHOP_API_KEY"}
    assert tools.ssh == (f"deploy={shop}/deploy_key",) and build["ssh"] == [f"deploy: {shop}/deploy_key"]
    assert (tools.network, tools.platform) == (build["network"], build["platforms"][0]) == ("none", NATIVE_PLATFORM)
    assert tools.base_images == ("127.0.0.1:5000/library/busybox:1.36",)     # assets is a folder, not an image
    assert tools.context_sources == () and tools.whole_context == ""         # COPY --from=assets takes no root file


def test_a_dockerfile_outside_its_context_brings_its_own_ignore_file(shop):
    from buildlib.context import context_paths
    (shop / "docker").mkdir()
    (shop / "docker/api.Dockerfile").write_text("FROM 127.0.0.1:5000/library/busybox:1.36\nCOPY . /api/\n")
    (shop / "docker/api.Dockerfile.dockerignore").write_text("*.txt\n")
    model = yaml.safe_load(COMPOSE)
    model["services"]["api"]["build"] = {"context": "./src/api", "dockerfile": "../../docker/api.Dockerfile"}
    (shop / "compose.yaml").write_text(yaml.safe_dump(model))
    api = project_of(shop).services["api"]
    assert compose_model(shop)["services"]["api"]["build"]["dockerfile"] == "../../docker/api.Dockerfile"
    assert Path(api.dockerfile) == shop / "docker/api.Dockerfile"
    assert (api.context, api.context_sources) == (str(shop / "src/api"), ("",))
    assert set(context_paths(Path(api.context), Path(api.dockerfile))) == {"Dockerfile"}   # api.txt ignored


def test_profiles_count_when_asked_as_compose_asks_them(shop, uid, monkeypatch):
    assert "debug" not in project_of(shop).services
    (shop / "buildlib.toml").write_text(f'project = "sh{uid}"\nprofiles = ["debug"]\n')
    theirs = set(compose_says(shop, "--profile", "debug", "config", "--services").split()) - {"db"}
    assert sorted(project_of(shop).services) == sorted(theirs) == sorted(SERVICES + ["debug"])
    (shop / "buildlib.toml").write_text(f'project = "sh{uid}"\n')
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    assert "debug" in project_of(shop).services


def test_image_names_follow_compose_then_the_settings(shop, uid, monkeypatch):
    (shop / "buildlib.toml").write_text(f'project = "sh{uid}"\nregistry = "127.0.0.1:5000/team"\ntag = "v2"\n'
                                        'image = "{registry}/shop/{service}:{tag}"\n'
                                        '[services.web]\nimage = "{registry}/front:{tag}"\n')
    project = project_of(shop)
    # compose's own name keeps its tag; the registry setting goes in front; the template names only the unnamed.
    assert project.services["cart"].image == f"127.0.0.1:5000/team/sh{uid}:1.2-cart"
    assert project.services["api"].image == "127.0.0.1:5000/team/shop/api:v2"
    assert project.services["web"].image == "127.0.0.1:5000/team/front:v2"
    (shop / ".env").write_text(ENV.format(uid=uid, root=shop, platform=NATIVE_PLATFORM).replace(
        f"IMAGE_NAME=sh{uid}", "IMAGE_NAME=ghcr.io/acme/Shop"))
    broken = project_of(shop).broken
    assert broken["cart"] == ("compose.yaml cart: image 127.0.0.1:5000/team/acme/Shop:1.2-cart: 'Shop' cannot be part "
                              "of an image name (lower-case letters, digits, and . _ - between them)")


def test_what_buildlib_cannot_build_yet_is_one_line_per_service(shop):
    more = {"shm": {"context": ".", "shm_size": "1g"}, "remote": "https://example.invalid/repo.git",
            "tagged": {"context": ".", "tags": ["ok:1", "Not/ok"]},
            "docs": {"context": ".", "additional_contexts": {"assets": "https://example.invalid/a.git"}},
            "multi": {"context": ".", "platforms": ["linux/amd64", "linux/arm64"]}}
    model = yaml.safe_load(COMPOSE)
    model["services"].update({name: {"build": build} for name, build in more.items()})
    (shop / "compose.yaml").write_text(yaml.safe_dump(model))
    broken = project_of(shop).broken
    assert broken == {
        "shm": "compose.yaml shm: build.shm_size is not supported by buildlib yet",
        "tagged": "compose.yaml tagged: build.tags: Not/ok: 'Not' cannot be part of an image name (lower-case letters, "
                  "digits, and . _ - between them)",
        "remote": "compose.yaml remote: build.context https://example.invalid/repo.git is not a folder "
                  "(buildlib builds local contexts)",
        "docs": "compose.yaml docs: build.additional_contexts.assets: 'https://example.invalid/a.git' is not supported "
                "by buildlib yet (it takes service:NAME, docker-image://REF and folders, not URLs)",
        "multi": "compose.yaml multi: build.platforms names 2 platforms; buildlib builds one image per service"}
    model["services"] = {"web": {"build": "./src/web", "image": "shop"}, "worker": {"build": "./src/web", "image": "shop"}}
    (shop / "compose.yaml").write_text(yaml.safe_dump(model))
    assert project_of(shop).broken == {"worker": "compose.yaml worker: its image shop:latest is also web's; give each "
                                                 "service an image of its own"}
    (shop / "compose.yaml").write_text("services:\n  web:\n    build: ./src/web\n    image: ${NAME?set NAME first}\n")
    with pytest.raises(SettingsError, match="docker compose cannot read it: .*required variable NAME is missing a "
                                            "value: set NAME first"):
        project_of(shop)


def test_compose_is_asked_again_only_when_a_file_or_the_environment_changes(shop, tmp_path, monkeypatch):
    first = project_of(shop)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))     # no docker CLI: the cache answers, or our own reading
    assert project_of(shop) == first
    (shop / ".env").write_text((shop / ".env").read_text() + "LEVEL=warn\n")
    without_compose = project_of(shop)
    assert without_compose.services["cart"].build_args["LEVEL"] == "warn"
    assert without_compose.services.keys() == first.services.keys()
    assert {name: service.image for name, service in without_compose.services.items()} == {
        name: service.image for name, service in first.services.items()}


def test_buildlib_builds_the_compose_services_in_order(shop, client, uid):
    environment = {**os.environ, "SHOP_API_KEY": "k3y-of-the-shop"}
    run = subprocess.run(["buildlib", "build_all"], cwd=shop, capture_output=True, text=True, timeout=600, env=environment)
    images = [f"sh{uid}:1.2-base", f"sh{uid}:1.2-cart", f"sh{uid}:1.2-tools", f"sh{uid}-tools:extra",
              f"shop{uid}-web:latest", f"shop{uid}-api:latest"]
    try:
        assert run.returncode == 0, run.stderr
        rows = {row["service"]: row for row in json.loads(subprocess.run(
            ["buildlib", "status", "format=json"], cwd=shop, capture_output=True, text=True, check=True,
            env=environment).stdout)}
        assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(SERVICES, "OK")
        assert rows["cart"]["image"] == f"sh{uid}:1.2-cart"      # compose's name, in what status says too
        tools = client.inspect_image(f"sh{uid}:1.2-tools")
        assert f"sh{uid}-tools:extra" in tools["RepoTags"] and tools["Config"]["Labels"]["shop.team"] == "payments"
        made = {path: file_in_image(client, tools["Id"], path) for path in ("/npmrc-size", "/api-size", "/ssh", "/assets/page.html")}
        assert made == {"/npmrc-size": b"38\n", "/api-size": b"15\n", "/ssh": b"ok\n", "/assets/page.html": b"<p>shop</p>\n"}
        (shop / "README.md").write_text("edited\n")
        (shop / "src/base/lib.txt").write_text("lib 2\n")
        (shop / "src/web/page.html").write_text("<p>shop 2</p>\n")
        again = subprocess.run(["buildlib", "status"], cwd=shop, capture_output=True, text=True, check=True,
                               env=environment).stdout
        assert "src/base/lib.txt changed" in again and again.count("base service base is STALE") == 2, again
        assert "@assets/page.html changed" in again, again     # tools' folder context
        # compose builds the same service from the same keys: each secret under the id buildlib gave it.
        theirs = subprocess.run(["docker", "compose", "build", "tools"], cwd=shop, capture_output=True, text=True,
                                env=environment)
        assert theirs.returncode == 0, theirs.stderr[-2000:]
    finally:
        for ref in images:
            try:
                client.remove_image(ref, force=True)
            except Exception:   # noqa: BLE001 - not built when the run failed
                pass


def test_the_compose_sample_builds_with_nothing_but_its_compose_file(tmp_path, client, uid):
    root = tmp_path / "compose-shop"
    shutil.copytree(Path(__file__).parent.parent / "examples" / "compose-shop", root)
    environment = {**os.environ, "IMAGE_NAME": f"shop{uid}", "COMPOSE_PROJECT_NAME": f"shop{uid}", "PAYMENT_KEY": "k"}
    theirs = set(subprocess.run(["docker", "compose", "config", "--images"], cwd=root, capture_output=True, text=True,
                                env=environment, check=True).stdout.split()) - {"redis:7"}
    try:
        run = subprocess.run(["buildlib", "-n", "2", "build_all"], cwd=root, capture_output=True, text=True,
                             timeout=600, env=environment)
        assert run.returncode == 0, run.stderr
        rows = json.loads(subprocess.run(["buildlib", "status", "format=json"], cwd=root, capture_output=True,
                                         text=True, check=True, env=environment).stdout)
        assert {row["image"] for row in rows if row["status"] == "OK"} == {
            ref if ":" in ref else f"{ref}:latest" for ref in theirs}
    finally:
        for ref in theirs:
            try:
                client.remove_image(ref if ":" in ref else f"{ref}:latest", force=True)
            except Exception:   # noqa: BLE001 - not built when the run failed
                pass

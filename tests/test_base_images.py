"""The base images our analysis extracts against the ones BuildKit itself resolves (its `load
metadata for` steps), for Dockerfile constructs met in public repositories, written anew here:
quotes in FROM, platform args without an ARG, nested and conditional defaults, stage names in
any case, stages nothing reaches, images used by COPY --from and RUN --mount=from=."""
from __future__ import annotations

import re
import subprocess

import pytest

from buildlib.dockerfile import analyse

SEED_IMAGE = "127.0.0.1:5000/library/busybox:1.36"
LOADED = re.compile(r"#\d+ \[internal\] load metadata for (\S+)")

# (Dockerfile with {p} for this test's name prefix, build args, target)
CASES = [
    ('ARG RELEASE=trixie\nFROM {p}debian:"${{RELEASE}}-slim"\n', {}, None),
    ('ARG RELEASE=trixie\nFROM {p}debian:"${{RELEASE}}-slim"\n', {"RELEASE": "bookworm"}, None),
    ("FROM {p}bin-${{TARGETOS}}-${{TARGETARCH}}:1\n", {}, None),
    ("ARG GO=1.23\nFROM {p}golang:${{GO}}-alpine AS build\nFROM {p}distroless:${{TAG:-latest}}\n"
     "COPY --from=build /bin/true /t\n", {}, None),
    ("ARG GO=1.23\nFROM {p}golang:${{GO}}-alpine AS build\nARG TAG\nFROM {p}distroless:${{TAG:-latest}}\n"
     "COPY --from=build /bin/true /t\n", {"GO": "1.24", "TAG": "nonroot"}, None),
    ("ARG BASE={p}node:20\nARG RUNTIME=${{BASE}}-slim\nFROM ${{RUNTIME}}\n", {}, None),
    ("ARG BASE={p}node:20\nARG RUNTIME=${{BASE}}-slim\nFROM ${{RUNTIME}}\n", {"BASE": "{p}node:22"}, None),
    ("ARG SUFFIX\nFROM {p}app${{SUFFIX:+-$SUFFIX}}:1\n", {}, None),
    ("ARG SUFFIX\nFROM {p}app${{SUFFIX:+-$SUFFIX}}:1\n", {"SUFFIX": "debug"}, None),
    ("FROM '{p}alpine:3'\n", {}, None),
    ("FROM {p}alpine AS Build\nFROM build\nCOPY --from=BUILD /bin/true /t\n", {}, None),
    ("FROM {p}golang AS dev\nFROM {p}unused AS spare\nFROM {p}alpine AS prod\n", {}, None),
    ("FROM {p}golang AS dev\nFROM {p}unused AS spare\nFROM {p}alpine AS prod\n", {}, "dev"),
    ("FROM --platform=$BUILDPLATFORM {p}golang AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"
     "FROM {p}alpine\nCOPY --from=build /arch /arch\n", {}, None),
    ("FROM scratch\nCOPY --from={p}alpine /bin/true /t\n", {}, None),
    ("FROM {p}alpine\nCOPY --from={p}other:1 /bin/true /t\nRUN --mount=from={p}tools:1,target=/x /x/bin/true\n", {}, None),
]


def familiar(ref: str) -> str:
    """A reference as BuildKit names it: docker.io/library/ for a bare name, :latest for no tag."""
    name, _, digest = ref.partition("@")
    if ":" not in name.rsplit("/", 1)[-1] and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + ("library/" if "/" not in name else "") + name
    return name + (f"@{digest}" if digest else "")


def test_familiar_names_are_buildkits():
    assert familiar("alpine") == "docker.io/library/alpine:latest"
    assert familiar("team/app:2") == "docker.io/team/app:2"
    assert familiar("127.0.0.1:5000/x") == "127.0.0.1:5000/x:latest"


@pytest.fixture
def cases(uid, client):
    """The cases with this test's prefix, and the images we read in them tagged in the engine (a name
    BuildKit asks for beyond those fails its build, and the test shows which)."""
    prefix = f"br{uid}-"
    made = [(text.format(p=prefix), {key: value.format(p=prefix) for key, value in args.items()}, target)
            for text, args, target in CASES]
    names = {use.ref for text, args, target in made for use in analyse(text.encode(), "D", args, target).images}
    client.pull(SEED_IMAGE)
    for ref in names:
        client.tag(SEED_IMAGE, *ref.rsplit(":", 1))
    yield made
    for ref in names:
        client.remove_image(ref, force=True)


def test_the_base_images_we_read_are_those_buildkit_resolves(cases, tmp_path):
    mismatches = []
    for text, args, target in cases:
        command = ["docker", "buildx", "build", "--progress=plain", "--network", "none", "--output", "type=cacheonly",
                   "--file", "-", *(f"--build-arg={key}={value}" for key, value in args.items())]
        command += ["--target", target] if target else []
        done = subprocess.run([*command, str(tmp_path)], input=text.encode(), capture_output=True, timeout=300)
        output = done.stdout.decode() + done.stderr.decode()
        loaded = sorted(set(LOADED.findall(output)))
        ours = sorted({familiar(use.ref) for use in analyse(text.encode(), "D", args, target).images})
        if loaded != ours or done.returncode != 0:
            mismatches.append(f"{text!r} {args} {target}: BuildKit {loaded}, ours {ours}"
                              + ("" if done.returncode == 0 else f"\n{output[-600:]}"))
    assert not mismatches, "\n".join(mismatches)

"""The catalog against the real engine: after a change its own process made, it asks again only
about the name that changed; after another process's change, about everything."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tarfile

import docker
import pytest

from buildlib import engine
from buildlib.catalog import catalog, expect_images, mark_changed

ANOTHER_PROCESS = "import pathlib, sys\nfrom buildlib.catalog import mark_changed\nmark_changed(pathlib.Path(sys.argv[1]))"


@pytest.fixture
def image_of(client, uid):
    """Tag ref with a new image of one file, made without a base image, and return its ID."""
    made = []

    def make(ref: str, content: str) -> str:
        data = f"{uid} {content}\n".encode()
        member, archive = tarfile.TarInfo("content"), io.BytesIO()
        member.size = len(data)
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.addfile(member, io.BytesIO(data))
        repository, tag = ref.rsplit(":", 1)
        client.import_image_from_data(archive.getvalue(), repository=repository, tag=tag)
        made.append(client.inspect_image(ref)["Id"])
        return made[-1]

    yield make
    for image_id in made:
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_image(image_id, force=True)


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The references the catalog asks the engine about, one by one (the engine still answers)."""
    refs: list[str] = []
    inspect = engine.inspect
    monkeypatch.setattr(engine, "inspect", lambda ref: refs.append(ref) or inspect(ref))
    return refs


def test_after_its_own_build_a_catalog_asks_only_about_that_name_and_after_another_process_about_all(
        tmp_path, uid, image_of, asked):
    refs = [f"catalog{uid}-{index}:t" for index in range(4)]
    ids = {ref: image_of(ref, "first") for ref in refs}
    images = catalog(tmp_path)

    def answers() -> dict[str, str]:
        return {ref: images.inspect(ref)["Id"] for ref in refs}

    assert answers() == ids
    asked.clear()
    assert answers() == ids and asked == []   # all from memory

    ids[refs[0]] = image_of(refs[0], "rebuilt")   # what a build does to its own tag
    mark_changed(tmp_path, [refs[0]])
    assert answers() == ids and asked == [refs[0]]

    asked.clear()
    ids[refs[1]] = image_of(refs[1], "built elsewhere")
    subprocess.run([sys.executable, "-c", ANOTHER_PROCESS, str(tmp_path)], check=True)
    assert answers() == ids and sorted(asked) == refs

    asked.clear()
    ids[refs[2]] = image_of(refs[2], "built elsewhere, then here")
    subprocess.run([sys.executable, "-c", ANOTHER_PROCESS, str(tmp_path)], check=True)
    ids[refs[3]] = image_of(refs[3], "rebuilt again")
    mark_changed(tmp_path, [refs[3]])   # the mark had moved before this process moved it
    assert answers() == ids and sorted(asked) == refs


def test_the_listing_returns_only_the_images_the_project_said_it_uses(tmp_path, image_of, client, uid, monkeypatch):
    ours, pushed, theirs = f"ours{uid}:1", f"127.0.0.1:5000/team/ours{uid}:2", f"theirs{uid}:1"
    for ref in (ours, pushed, theirs):
        image_of(ref, ref)
    listed = []
    images = engine.images
    monkeypatch.setattr(engine, "images", lambda filters: listed.append(images(filters)) or listed[-1])
    expect_images(tmp_path, [f"docker.io/library/{ours}", pushed, "alpine"])
    assert catalog(tmp_path).inspect(ours) is not None
    # The engine matches the familiar names buildlib asks for, however the project wrote them.
    assert sorted(tag for summary in listed[0] for tag in summary["RepoTags"]) == sorted([pushed, ours])
    assert catalog(tmp_path).inspect(theirs) is not None      # not listed: asked about by itself


def test_a_catalog_told_of_no_image_lists_none_and_inspects_what_it_is_asked(tmp_path, image_of, uid, monkeypatch):
    ref = f"nothing{uid}:1"
    image_id = image_of(ref, ref)
    listed = []
    monkeypatch.setattr(engine, "images", lambda filters: listed.append(filters) or [])
    expect_images(tmp_path, [])   # force=1 with no base image: every image is rebuilt, none is judged
    assert catalog(tmp_path).inspect(ref)["Id"] == image_id and listed == []

"""What the engine holds: its tagged images, and the files inside one read through a container that never runs."""
from __future__ import annotations

import io
import tarfile
import time

import docker

from buildlib.engine import ATTEMPTS, PASSING_TROUBLE


def listed(client: docker.APIClient, **query) -> list[dict]:
    """client.images(**query), asked again as buildlib asks: a containerd store listing that meets an image
    another test removes at that moment fails with "content digest ...: not found"."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return client.images(**query)
        except docker.errors.NotFound as error:
            if attempt == ATTEMPTS or not PASSING_TROUBLE.search(str(error)):
                raise
            time.sleep(0.2 * attempt)


def image_file(client: docker.APIClient, image: str, path: str) -> tarfile.TarInfo:
    """The archive entry of one file in the image: its mode, owner and size."""
    return _archive(client, image, path).getmembers()[0]


def file_in_image(client: docker.APIClient, image: str, path: str) -> bytes:
    archive = _archive(client, image, path)
    return archive.extractfile(archive.getmembers()[0]).read()


def _archive(client: docker.APIClient, image: str, path: str) -> tarfile.TarFile:
    container = client.create_container(image, ["true"])
    try:
        stream, _ = client.get_archive(container, path)
        return tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    finally:
        client.remove_container(container)

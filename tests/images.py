"""What is inside a built image: its files read through a container that never runs."""
from __future__ import annotations

import io
import tarfile

import docker


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

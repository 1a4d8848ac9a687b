"""Modern Dockerfiles end to end, on the real engine: what only BuildKit builds is built, reads as
OK, rebuilds nothing when nothing changed, and a change to a bind-mounted file rebuilds that
service alone, naming the file."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from images import file_in_image, image_file

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'
ASSET = b"an asset served on loopback\n"
# Each BuildKit feature buildlib reads, in one service: platform args in FROM and in a stage, bind
# mounts from the context and from a stage, a mount from an image, a cache mount, COPY's
# BuildKit-only flags, ADD of a pinned remote file, a heredoc.
MODERN = """FROM --platform=$BUILDPLATFORM busybox:1.36 AS build
ARG TARGETARCH
RUN --mount=type=bind,source=src,target=/src cat /src/main.txt > /built-$TARGETARCH  # {uid}
RUN --mount=type=cache,target=/cache echo warm >> /cache/count

FROM busybox:1.36
ARG TARGETARCH
COPY --from=build /built-* /out/
RUN --mount=type=bind,from=build,source=/built-${{TARGETARCH}},target=/probe cp /probe /out/probed
RUN --mount=from=busybox:1.36,source=/bin,target=/bb /bb/true
COPY --link --chmod=750 --chown=1000:1000 run.sh /run.sh
COPY --exclude=*.md docs /docs
ADD --checksum=sha256:{checksum} http://127.0.0.1:{port}/asset.txt /asset.txt
RUN <<EOF
set -e
echo heredoc > /heredoc
EOF
"""
PLAIN = "FROM busybox:1.36\nLABEL test={uid}\nCOPY note.txt /note\n"


@pytest.fixture
def asset_server(tmp_path):
    """An HTTP server on a loopback port of its own, serving ASSET as /asset.txt."""
    (tmp_path / "served").mkdir()
    (tmp_path / "served/asset.txt").write_bytes(ASSET)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_buildkit_only_service_builds_reads_ok_and_rebuilds_only_for_its_bind_mounted_file(
        make_repo, uid, client, asset_server):
    modern = MODERN.format(uid=uid, checksum=hashlib.sha256(ASSET).hexdigest(), port=asset_server)
    repo = make_repo({"modern": modern, "plain": PLAIN.format(uid=uid)}, MIRRORS)
    files = {"modern/src/main.txt": "first\n", "modern/run.sh": "echo run\n", "modern/docs/guide.txt": "guide\n",
             "modern/docs/notes.md": "notes\n", "plain/note.txt": "note\n"}
    for name, text in files.items():
        (repo.path / "services" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / "services" / name).write_text(text)

    first = repo.doit("build_all")
    assert first.results() == {"modern": "built", "plain": "built"}, first.stderr
    assert {name: row["status"] for name, row in repo.status().items()} == {"modern": "OK", "plain": "OK"}
    image = repo.image("modern")
    assert file_in_image(client, image, "/out/probed") == b"first\n"
    assert file_in_image(client, image, "/asset.txt") == ASSET
    assert file_in_image(client, image, "/heredoc") == b"heredoc\n"
    run_sh = image_file(client, image, "/run.sh")
    assert (run_sh.mode & 0o777, run_sh.uid, run_sh.gid) == (0o750, 1000, 1000)
    with pytest.raises(Exception, match="notes.md"):
        file_in_image(client, image, "/docs/notes.md")

    again = repo.doit("build_all")
    assert again.results() == {"modern": "up to date", "plain": "up to date"}, again.stderr

    (repo.path / "services/modern/src/main.txt").write_text("second\n")
    status = repo.status()
    assert status["modern"]["status"] == "STALE" and "src/main.txt changed" in status["modern"]["reason"], status
    assert status["plain"]["status"] == "OK"
    rebuilt = repo.doit("build_all")
    assert rebuilt.results() == {"modern": "built", "plain": "up to date"}, rebuilt.stderr
    assert file_in_image(client, image, "/out/probed") == b"second\n"

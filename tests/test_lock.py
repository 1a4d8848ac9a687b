"""images.lock: written whole and sorted, read back, and a damaged one is one clear line."""
from __future__ import annotations

import json

import pytest

from buildlib.errors import SettingsError
from buildlib.lock import read_lock, write_lock

DIGEST = "sha256:" + "b" * 64


def test_round_trip_sorted(tmp_path):
    assert read_lock(tmp_path) == {}
    write_lock(tmp_path, {"node:20": (DIGEST, "m:5000"), "alpine:3.20": (DIGEST, "docker.io")})
    assert read_lock(tmp_path) == {"alpine:3.20": DIGEST, "node:20": DIGEST}
    assert list(json.loads((tmp_path / "images.lock").read_text())["images"]) == ["alpine:3.20", "node:20"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("text", ["{", "[]", '{"images": {"a": {"digest": "md5:1"}}}', '{"images": 3}'])
def test_damaged_lock_is_one_line(tmp_path, text):
    (tmp_path / "images.lock").write_text(text)
    with pytest.raises(SettingsError, match="not a lock file buildlib can read.*run `doit lock` again"):
        read_lock(tmp_path)

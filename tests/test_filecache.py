"""The file digest cache: a file is read again whenever its stat data cannot vouch for it."""
from __future__ import annotations

import json
import os
import time

from buildlib.context import context_paths, file_digests
from buildlib.filecache import DigestCache


def digests(context, cache_file, reads: list) -> dict:
    cache = DigestCache(cache_file)
    original = cache.digest

    def counting(relative, info, read):
        return original(relative, info, lambda: reads.append(relative) or read())

    cache.digest = counting
    return file_digests(context, context / "Dockerfile", None, cache)


def age(path, seconds: float = 5) -> None:
    """Move a file's mtime into the past, as if it was written before the cache."""
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_unchanged_files_are_not_read_again_and_changed_ones_are(tmp_path):
    context, cache_file = tmp_path / "ctx", tmp_path / "cache.json"
    context.mkdir()
    for name in ("a.txt", "b.txt"):
        (context / name).write_text(name)
        age(context / name)
    reads: list = []
    first = digests(context, cache_file, reads)
    assert sorted(reads) == ["a.txt", "b.txt"]
    reads.clear()
    assert digests(context, cache_file, reads) == first and reads == []
    (context / "a.txt").write_text("A.txt")     # same size: the mtime, ctime and cache time tell
    changed = digests(context, cache_file, reads)
    assert reads == ["a.txt"] and changed["a.txt"] != first["a.txt"]


def test_an_entry_not_older_than_the_cache_is_not_trusted_as_git_treats_racily_clean_entries(tmp_path):
    context, cache_file = tmp_path / "ctx", tmp_path / "cache.json"
    context.mkdir()
    (context / "a.txt").write_text("two")
    info = os.stat(context / "a.txt")
    # What a change inside the timestamp's granularity of the cache write leaves: an entry whose
    # stat data equal the file's, holding the digest of what the file was before.
    cache_file.write_text(json.dumps({"files": {"a.txt": [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, "old"]}}))
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    os.utime(cache_file, ns=(newest, newest))
    reads: list = []
    assert digests(context, cache_file, reads)["a.txt"] != "file 644 old" and reads == ["a.txt"]
    # Once the cache is written later than the file changed, the stat data vouch for it.
    later = newest + 10**9
    cache_file.write_text(json.dumps({"files": {"a.txt": [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, "old"]}}))
    os.utime(cache_file, ns=(later, later))
    reads.clear()
    assert digests(context, cache_file, reads)["a.txt"] == f"file {os.stat(context / 'a.txt').st_mode & 0o777:o} old"
    assert reads == []


def test_a_missing_or_damaged_cache_changes_no_answer(tmp_path):
    context, cache_file = tmp_path / "ctx", tmp_path / "cache.json"
    (context / "sub").mkdir(parents=True)
    (context / "sub/x.bin").write_bytes(os.urandom(3 << 20))   # larger than one read
    expected = file_digests(context, context / "Dockerfile")
    assert digests(context, cache_file, []) == expected
    cache_file.write_bytes(b"\x00{garbage")
    assert digests(context, cache_file, []) == expected
    cache_file.write_text('{"files": {"sub/x.bin": [1, 2, 3, 4, "sha"]}, "listing": ["key", ["nothing"]]}')
    assert digests(context, cache_file, []) == expected
    cache_file.unlink()
    assert digests(context, cache_file, []) == expected


def test_the_remembered_dockerignore_verdicts_follow_the_rules_and_the_listing(tmp_path):
    context, cache_file = tmp_path / "ctx", tmp_path / "cache.json"
    (context / "docs").mkdir(parents=True)
    for name in ("a.txt", "b.log", "docs/c.txt"):
        (context / name).write_text(name)
    (context / ".dockerignore").write_text("*.log\n")

    def sent() -> set[str]:
        fresh = set(context_paths(context, context / "Dockerfile"))
        assert set(context_paths(context, context / "Dockerfile", DigestCache(cache_file))) == fresh
        digests(context, cache_file, [])   # writes the cache
        return fresh

    assert sent() == {".dockerignore", "a.txt", "docs", "docs/c.txt"}
    (context / ".dockerignore").write_text("*.log\ndocs\n")
    assert sent() == {".dockerignore", "a.txt"}
    (context / "new.log").write_text("x")
    (context / "new.txt").write_text("x")
    assert sent() == {".dockerignore", "a.txt", "new.txt"}

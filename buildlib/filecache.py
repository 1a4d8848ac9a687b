"""File digests remembered by size, mtime, ctime and inode, as git's index does: only a cache.

A file is read again when any of those changed, or when it was modified at or after the moment
the cache was written (a "racily clean" entry: a change within the timestamp's granularity of
that write could leave every stat field equal). Deleting or damaging the cache file changes no
answer, it only costs reading every file once more.

It also remembers which paths .dockerignore kept the last time, keyed by the rules and the full
listing of the context: a pure function's memo, so it needs no timestamps.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class DigestCache:
    """The digests of one build context's files, keyed by their path in the context."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.listing: list = ["", []]   # [key of the rules and listing, the paths they keep]
        self.trusted_before = 0    # ns: entries of files modified from then on are not trusted
        self.changed = False
        if path is None:
            return
        try:
            self.trusted_before = path.stat().st_mtime_ns
            saved = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return   # no cache, or a damaged one: every file is read
        if isinstance(saved, dict) and isinstance(saved.get("files"), dict):
            self.entries = saved["files"]
        if isinstance(saved, dict) and _is_listing(saved.get("listing")):
            self.listing = saved["listing"]

    def digest(self, relative: str, info: os.stat_result, read) -> str:
        """The file's digest from the cache when its stat data vouch for it, else read()."""
        key = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
        entry = self.entries.get(relative)
        if (isinstance(entry, list) and entry[:4] == key and len(entry) == 5
                and max(info.st_mtime_ns, info.st_ctime_ns) < self.trusted_before):
            return entry[4]
        digest = read()
        self.entries[relative] = [*key, digest]
        self.changed = True
        return digest

    def kept_paths(self, key: str, decide) -> list[str]:
        """The paths kept for this key last time, else decide() and remember it."""
        if self.listing[0] != key:
            self.listing = [key, decide()]
            self.changed = True
        return self.listing[1]

    def save(self, kept: set[str]) -> None:
        """Write the entries of the files still there; a failure only loses the cache."""
        if self.path is None:
            return
        stale = set(self.entries) - kept
        if not self.changed and not stale:
            return
        for relative in stale:
            del self.entries[relative]
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"files": self.entries, "listing": self.listing}, separators=(",", ":")), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)


def _is_listing(value: object) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], list) and all(isinstance(path, str) for path in value[1]))

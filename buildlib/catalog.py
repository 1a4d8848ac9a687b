"""The engine's images listed once per run, so that a run with nothing to do costs a constant
number of engine calls instead of one inspect per service and base image.

The listing lacks two things an inspect has: the OS and architecture (validation) and the
ONBUILD triggers (which read the context). Both are part of the image's config, whose digest is
the image ID, so they are remembered per ID in .buildlib/image-facts.json and never go stale.
buildlib's own pulls and builds leave a mark (.buildlib/engine-changed), in whatever process
they ran; every lookup compares it, and once it moved, what was known is forgotten and the
images asked about next are inspected one by one (a listing costs as much as dozens of inspects).
A build that says which name it changed costs its own process only that name, as long as no
other process moved the mark meanwhile: a serial run does not inspect everything after each build.
The listing asks only for the references the project uses, once it said which (expect_images): on the
containerd store a listing costs about 10 ms for each image it returns, and a developer's engine
holds many images that are not the project's.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterable

from . import engine

FACTS_FILE = Path(".buildlib") / "image-facts.json"
CHANGED_MARK = Path(".buildlib") / "engine-changed"
MAX_FACTS = 10_000    # the oldest are forgotten first: about 1 MB
HUB_HOSTS = ("docker.io/", "index.docker.io/")


_catalogs: dict[tuple[int, Path], "Catalog"] = {}
_expected: dict[Path, tuple[str, ...]] = {}   # by repository: kept across fork, as doit -n forks after loading


def expect_images(root: Path, refs: Iterable[str]) -> None:
    """The references the catalogs of this repository will be asked about; others are inspected one by one."""
    _expected[root] = tuple(sorted({familiar(ref) for ref in refs}))


def catalog(root: Path) -> "Catalog":
    """The catalog of this process for a repository: it lists the images on first use."""
    key = (os.getpid(), root)
    if key not in _catalogs:
        _catalogs[key] = Catalog(root)
    return _catalogs[key]


def mark_changed(root: Path, changed_refs: Iterable[str] | None = None) -> None:
    """Say that the engine's images changed, so that every catalog forgets what it knew.

    changed_refs: the only names this process changed, which are all its own catalog forgets.
    """
    mark = root / CHANGED_MARK
    temporary = mark.with_name(f".{mark.name}.{os.getpid()}")
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        with open(mark.with_name(f"{mark.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # no other move between the look before and the move
            before = _stamp(mark)
            temporary.write_text(f"{time.time_ns()} {os.getpid()}\n")
            after = _stamp(temporary)   # a rename keeps inode, mtime and size
            os.replace(temporary, mark)   # a new inode each time: the stamp always moves
    except OSError:
        # A mark that cannot move must not stay: catalogs with none to compare inspect every time.
        for path in (temporary, mark):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        return
    own = _catalogs.get((os.getpid(), root))
    if own is not None and changed_refs is not None:
        own.changed_here(before, after, changed_refs)


def remember(root: Path, attrs: dict) -> None:
    """Keep an inspected image's facts for every catalog of this repository, in any process."""
    fact = _facts(attrs)
    path = root / FACTS_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f"{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # several builds finish at once under -n
            facts = read_facts(root)
            facts.pop(attrs["Id"], None)
            facts[attrs["Id"]] = fact
            kept = dict(list(facts.items())[-MAX_FACTS:])
            temporary.write_text(json.dumps(kept, separators=(",", ":")), encoding="utf-8")
            os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)   # only a cache


def read_facts(root: Path) -> dict[str, list]:
    """Image ID -> [OS, architecture, ONBUILD triggers]; {} when there is no readable file."""
    try:
        facts = json.loads((root / FACTS_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(facts, dict):
        return {}
    return {key: value for key, value in facts.items() if isinstance(value, list) and len(value) == 3}


def familiar(ref: str) -> str:
    """A reference as the engine's listing names it: Docker Hub's prefixes dropped, ':latest' added."""
    if "@" in ref:
        return ref
    host = next((host for host in HUB_HOSTS if ref.startswith(host)), "")
    ref = ref[len(host):]
    if ref.startswith("library/"):
        ref = ref[len("library/"):]
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


class Catalog:
    """Inspect-shaped records of the engine's images: the first from one listing, later ones
    (once buildlib changed the engine) from an inspect each, remembered until the next change."""

    def __init__(self, root: Path):
        self.root = root
        self.facts: dict[str, list] = {}
        self.stamp: tuple | None = None
        self.listed = False
        self.known: dict[str, dict] = {}    # familiar reference -> inspect-shaped record

    def inspect(self, ref: str) -> dict | None:
        """What engine.inspect(ref) says, from memory when nothing changed since it was asked."""
        self._refresh()
        key = familiar(ref)
        if key not in self.known:
            attrs = engine.inspect(ref)   # not listed (missing, or named another way), or changed since
            if attrs is None:
                return None
            if attrs["Id"] not in self.facts:
                remember(self.root, attrs)
                self.facts[attrs["Id"]] = _facts(attrs)
            self.known[key] = attrs
        return self.known[key]

    def has_digest(self, ref: str, digest: str) -> bool:
        return engine.has_digest(ref, digest, self.inspect)

    def changed_here(self, before: tuple | None, after: tuple | None, refs: Iterable[str]) -> None:
        """This process moved the mark from before to after, changing only refs."""
        if before is None or before != self.stamp:
            return   # another process moved it first: the next lookup forgets everything
        self.stamp = after
        for ref in refs:
            self.known.pop(familiar(ref), None)

    def _refresh(self) -> None:
        stamp = _stamp(self.root / CHANGED_MARK)
        if stamp is None:
            mark_changed(self.root)   # the first run here: a mark to compare from now on
            stamp = _stamp(self.root / CHANGED_MARK)
        if stamp is not None and stamp == self.stamp:
            return
        self.stamp, self.known = stamp, {}
        self.facts = read_facts(self.root)   # builds in other processes add theirs
        if self.listed:
            return   # after a change, only the few images asked about next: inspected one by one
        self.listed = True
        wanted = _expected.get(self.root)
        if wanted == ():
            return   # nothing to list: what it is asked about is inspected
        for summary in engine.images({"reference": list(wanted)} if wanted else {}):
            facts = self.facts.get(summary["Id"])
            for tag in summary.get("RepoTags") or []:
                if facts is not None:
                    self.known[tag] = _record(summary, facts)


def _stamp(mark: Path) -> tuple | None:
    try:
        info = mark.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _facts(attrs: dict) -> list:
    return [attrs.get("Os"), attrs.get("Architecture"), (attrs.get("Config") or {}).get("OnBuild")]


def _record(summary: dict, facts: list) -> dict:
    """An inspect-shaped record from the listing's summary and the facts of its config."""
    os_name, architecture, onbuild = facts
    return {"Id": summary["Id"], "RepoTags": summary.get("RepoTags") or [],
            "RepoDigests": summary.get("RepoDigests") or [], "Size": summary.get("Size"),
            "Os": os_name, "Architecture": architecture,
            "Config": {"Labels": summary.get("Labels") or {}, "OnBuild": onbuild}}

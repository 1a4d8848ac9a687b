"""The engine's images listed once per run, so that a run with nothing to do costs a constant
number of engine calls instead of one inspect per service and base image.

The listing lacks two things an inspect has: the OS and architecture (validation) and the
ONBUILD triggers (which read the context). Both are part of the image's config, whose digest is
the image ID, so they are remembered per ID in .buildlib/image-facts.json and never go stale.
The listing is taken again after buildlib's own actions changed the engine: they leave a mark
(.buildlib/engine-changed) that every lookup compares, in whatever process they ran.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import engine

FACTS_FILE = Path(".buildlib") / "image-facts.json"
CHANGED_MARK = Path(".buildlib") / "engine-changed"
PROJECT_LABEL = "io.buildlib.project"
MAX_FACTS = 10_000    # the oldest are forgotten first: about 1 MB
HUB_HOSTS = ("docker.io/", "index.docker.io/")


@dataclass(frozen=True)
class ImageSet:
    """The images of a repository that a catalog lists: its project's, and its external bases."""
    root: Path
    project: str
    external_refs: tuple[str, ...]


_catalogs: dict[tuple[int, ImageSet], "Catalog"] = {}


def catalog(images: ImageSet) -> "Catalog":
    """The catalog of this process for a repository's images: listed on first use."""
    key = (os.getpid(), images)
    if key not in _catalogs:
        _catalogs[key] = Catalog(images.root, images.project, images.external_refs)
    return _catalogs[key]


def mark_changed(root: Path) -> None:
    """Say that the engine's images changed, so that every catalog lists them again."""
    mark = root / CHANGED_MARK
    temporary = mark.with_name(f".{mark.name}.{os.getpid()}")
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(f"{time.time_ns()} {os.getpid()}\n")
        os.replace(temporary, mark)   # a new inode each time: the stamp always moves
    except OSError:
        temporary.unlink(missing_ok=True)   # catalogs with no mark to compare list every time


def remember(root: Path, attrs: dict) -> None:
    """Keep an inspected image's facts for every catalog of this repository, in any process."""
    config = attrs.get("Config") or {}
    fact = [attrs.get("Os"), attrs.get("Architecture"), config.get("OnBuild")]
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
    """Inspect-shaped records of the engine's images, answered from one listing."""

    def __init__(self, root: Path, project: str, external_refs: tuple[str, ...]):
        self.root, self.project, self.external_refs = root, project, external_refs
        self.facts: dict[str, list] = {}
        self.stamp: tuple | None = None
        self.by_ref: dict[str, dict] = {}

    def inspect(self, ref: str) -> dict | None:
        """What engine.inspect(ref) says, from the listing when it knows the image."""
        self._refresh()
        summary = self.by_ref.get(familiar(ref))
        facts = self.facts.get(summary["Id"]) if summary else None
        if facts is None:
            return self._inspect(ref)   # not listed (missing, or named another way), or never seen
        os_name, architecture, onbuild = facts
        return {"Id": summary["Id"], "RepoTags": summary.get("RepoTags") or [],
                "RepoDigests": summary.get("RepoDigests") or [], "Size": summary.get("Size"),
                "Os": os_name, "Architecture": architecture,
                "Config": {"Labels": summary.get("Labels") or {}, "OnBuild": onbuild}}

    def has_digest(self, ref: str, digest: str) -> bool:
        return engine.has_digest(ref, digest, self.inspect)

    def _refresh(self) -> None:
        stamp = self._stamp()
        if stamp is None:
            mark_changed(self.root)   # the first run here: a mark to compare from now on
            stamp = self._stamp()
        if stamp is not None and stamp == self.stamp:
            return
        self.stamp = stamp
        self.facts = read_facts(self.root)   # builds in other processes add theirs
        listed = engine.images({"label": f"{PROJECT_LABEL}={self.project}"})
        if self.external_refs:
            listed += engine.images({"reference": [familiar(ref) for ref in self.external_refs]})
        self.by_ref = {tag: summary for summary in listed for tag in summary.get("RepoTags") or []}

    def _stamp(self) -> tuple | None:
        try:
            info = (self.root / CHANGED_MARK).stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _inspect(self, ref: str) -> dict | None:
        attrs = engine.inspect(ref)
        if attrs is not None and attrs["Id"] not in self.facts:
            remember(self.root, attrs)
            self.facts = read_facts(self.root)
        return attrs

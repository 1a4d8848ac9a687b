"""images.lock: the digest each external base image stood for when `doit lock` last ran.

While the file exists, prefetch pulls those digests and tags them with the original names, so
every machine builds from the same bases until the lock is written again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from .errors import SettingsError

LOCK_FILE = "images.lock"
NOTE = "Written by `doit lock`: the digest each base image stood for. Review changes like any lock file."


def read_lock(root: Path) -> dict[str, str]:
    """Reference -> digest; {} when the repository has no lock file."""
    path = root / LOCK_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise SettingsError(f"{path}: not a lock file buildlib can read ({error}); run `doit lock` again") from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict) or not all(
            isinstance(entry, dict) and str(entry.get("digest", "")).startswith("sha256:") for entry in images.values()):
        raise SettingsError(f"{path}: not a lock file buildlib can read (no images with digests); run `doit lock` again")
    return {ref: entry["digest"] for ref, entry in images.items()}


def write_lock(root: Path, resolved: Mapping[str, tuple[str, str]]) -> None:
    """Write reference -> (digest, source), sorted, so that a review shows only what moved."""
    images = {ref: {"digest": digest, "source": source} for ref, (digest, source) in sorted(resolved.items())}
    text = json.dumps({"note": NOTE, "images": images}, indent=2) + "\n"
    temporary = root / f".{LOCK_FILE}.tmp"
    temporary.write_text(text)
    temporary.replace(root / LOCK_FILE)   # never a half-written lock

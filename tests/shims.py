"""A docker CLI without buildx: a `docker` on PATH that answers `buildx` as a machine without it would
(or with an old one) and hands every other command to the real CLI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def without_buildx(folder: Path, version_line: str | None = None) -> dict:
    """The environment (PATH) under which `docker buildx` is missing, or answers version_line."""
    folder.mkdir(parents=True, exist_ok=True)
    answer = (f'echo "{version_line}"; exit 0' if version_line
              else "echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1")
    script = folder / "docker"
    script.write_text(f'#!/bin/sh\nif [ "$1" = buildx ]; then {answer}; fi\nexec {shutil.which("docker")} "$@"\n')
    script.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}

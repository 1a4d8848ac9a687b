"""Build history: one JSON line per build and per run, beside the state file, for trends.

The file is append-only and read leniently (a damaged line is skipped): losing or breaking it
loses nothing but the history. Each line is self-describing, so later versions can add fields.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

HISTORY_FILE = Path(".buildlib") / "history.jsonl"


def append(root: Path, records: list[dict]) -> str:
    """Add records; returns '' or why they could not be kept (the history is never worth a failure)."""
    path = root / HISTORY_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records).encode()
        # One write to a file opened for appending: runs that end together never interleave lines.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(descriptor, data)
        finally:
            os.close(descriptor)
        if written < len(data):
            return f"{path}: history cut short (disk full?)"
    except OSError as error:
        return f"{path}: history not kept ({error.strerror})"
    return ""


def read(root: Path) -> list[dict]:
    """Every record that can be read, oldest first."""
    try:
        lines = (root / HISTORY_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") in ("build", "run"):
            records.append(record)
    return records


def recent_runs(records: list[dict], limit: int) -> list[dict]:
    """The last runs, newest first."""
    return [record for record in records if record["kind"] == "run"][-limit:][::-1]


def trends(records: list[dict]) -> list[dict]:
    """Per service, the durations of its builds (not cache pulls): count, last, median, slowest."""
    durations: dict[str, list[float]] = {}
    for record in records:
        if record["kind"] == "build" and record.get("result") == "built":
            durations.setdefault(record["service"], []).append(float(record.get("duration", 0)))
    return [{"service": service, "builds": len(values), "last": values[-1], "median": statistics.median(values),
             "slowest": max(values)} for service, values in sorted(durations.items())]

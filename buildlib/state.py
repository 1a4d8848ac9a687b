"""The state file (.doit.db): it only explains rebuilds, so damage to it or a failure to write it
costs a warning, never a run, a traceback or a rebuild.

doit opens the file before it loads any task, so the damage check runs when dodo.py imports
buildlib.tasks; the write happens when doit closes its dependency manager at the end of the run.
"""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

STATE_FILE = ".doit.db"
BUSY_SECONDS = 60    # another run's commit takes milliseconds; a minute means something is stuck


def set_aside_if_damaged(path: Path) -> str:
    """The state file's name for doit, after moving a damaged one aside with a warning."""
    problem = damage(path)
    if problem:
        aside = path.with_name(f"{path.name}.damaged")
        try:
            os.replace(path, aside)
            warn(f"{path} is damaged ({problem}): moved to {aside.name}; a new one is started "
                 f"(it only explains rebuilds, nothing is rebuilt for its loss)")
        except OSError as error:
            warn(f"{path} is damaged ({problem}) and cannot be moved aside ({error.strerror}): remove it")
    return str(path)


def damage(path: Path) -> str:
    """What is wrong with the file for sqlite or for doit, or '' (also for a missing file)."""
    if not path.is_file():
        return ""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS)
        try:
            verdict = connection.execute("pragma quick_check").fetchone()[0]
            if verdict == "ok":
                verdict = unreadable_record(connection)
        finally:
            connection.close()
    except sqlite3.Error as error:
        return str(error)
    return "" if verdict == "ok" else verdict


def unreadable_record(connection: sqlite3.Connection) -> str:
    """'ok', or which task's record doit could not read: it would stop the run with a traceback."""
    if not connection.execute("select 1 from sqlite_master where type = 'table' and name = 'doit'").fetchone():
        return "ok"   # doit creates the table
    # In SQL: a few milliseconds where decoding every record in Python costs tens on 300 services.
    try:
        bad = connection.execute("select task_id from doit where case when json_valid(task_data) "
                                 "then json_type(task_data) end is not 'object' limit 1").fetchone()
    except sqlite3.OperationalError as error:
        if "no such function" in str(error):
            return "ok"   # an SQLite built without JSON functions (before 3.38): not checked
        raise
    return f"the record of {bad[0]} is not a JSON object" if bad else "ok"


def write_failures_are_warnings(dependencies) -> None:
    """Make doit's end-of-run write of the state file warn instead of failing (disk full, read-only)."""
    backend = dependencies.backend
    dump = backend.dump

    def guarded_dump():
        try:
            dump()
        except (sqlite3.Error, OSError) as error:
            warn(f"{STATE_FILE} not written ({error}): the next run cannot say which inputs changed")

    backend.dump = guarded_dump


def warn(message: str, stream=None) -> None:
    (stream or sys.stderr).write(f"warning: {message}\n")

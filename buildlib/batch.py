"""Services of one doit run built together: the first build to start takes every service that is ready.

doit hands each worker one task at a time, and a `docker buildx build` per image costs each one
a process, a BuildKit session and a wait; bake builds many in one. So the build that starts
first also takes the other services this run will build whose dependencies have ended well
(the tasks doit reported done, or images built together earlier), and builds them all in one
builder call. A service built FROM one of those comes too: it is judged and hashed with its
base standing for the image the base's build will give (named by its inputs hash, as any base
built here is), and BuildKit hands it that image in the same bake. Each service's outcome is
kept in the run's folder until its own task runs and returns it: decisions, records, reasons
and failures stay per service.

A service is claimed (a file made with O_EXCL) before it is built, so that two workers of a run
never take the same one, and its build lock is held as for any build, so that two runs never
do. The run's folder lives from the reporter's first event to its last (report.py).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Mapping

from .catalog import catalog
from .context import Inputs
from .errors import BuildlibError, EngineError
from .project import Project, Service
from .settings import Settings
from .status import HASH_LABEL, ImageStatus, current_inputs, service_status

RUNS_FOLDER = Path(".buildlib") / "runs"
DONE_FILE = "done"         # one line per task the run's reporter saw end well
# At most this many in one bake: with 300 targets BuildKit (28.5) loses track of some jobs ("no such job"),
# and bake cancels all the others each time; 100 never did here. The rest go to the next build's bake.
MOST_TOGETHER = 100


@dataclass(frozen=True)
class Run:
    folder: Path
    project: Project
    planned: Mapping[str, tuple[str, ...]]     # service -> the task_dep of its build task, for this run's builds
    owners: Mapping[str, str]                  # image reference -> the service that builds it


_offered: Project | None = None     # the project the tasks were made from, set while doit loads them
_run: Run | None = None
_recorded: dict[str, dict] = {}     # the outcomes this process recorded: its own tasks need no file to read them
_current: set[str] = set()          # services this process judged current while it chose what to build


def offer(project: Project) -> None:
    """Keep the project the tasks come from; a run that builds may then build its services together."""
    global _offered
    _offered = project


def begin(root: Path, planned: Mapping[str, tuple[str, ...]]) -> None:
    """Start the run's folder, before doit starts its workers (they inherit this module's state)."""
    global _run
    if _offered is None or not planned:
        return
    runs = root / RUNS_FOLDER
    _prune(runs)
    folder = runs / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True)
    except OSError:
        return   # nothing is lost: each service builds alone, and the build itself says what is wrong
    _run = Run(folder, _offered, dict(planned), {image: name for name, image in _offered.images.items()})


def end() -> None:
    global _run
    if _run is not None:
        shutil.rmtree(_run.folder, ignore_errors=True)
        _run = None
        _recorded.clear()
        _current.clear()


def _prune(runs: Path) -> None:
    """Remove the folders of runs whose process is gone (killed before its end)."""
    for folder in runs.glob("*-*") if runs.is_dir() else []:
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def task_done(name: str) -> None:
    """The reporter saw a task end well (built, pulled, up to date): what waits on it may go."""
    if _run is not None:
        try:
            with open(_run.folder / DONE_FILE, "a", encoding="utf-8") as done:
                done.write(f"{name}\n")
        except OSError:
            pass   # a full disk: what waits on it is left to its own task


def outcome(name: str) -> dict | None:
    """What this run's builds together gave the service (its record, or {'error': ...}); None if nothing."""
    if _run is None:
        return None
    if name in _recorded:
        return _recorded[name]
    try:
        return json.loads((_run.folder / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def handled(name: str) -> bool:
    """Whether a build of this run took the service with another: its task must run to return the outcome."""
    return _run is not None and ((_run.folder / f"{name}.claim").exists() or outcome(name) is not None)


def judged_current(name: str) -> bool:
    """Whether a build of this process found the service's image current in this run. It stays so: what
    it is built from was built already, or was being built and judged as the image that build gives."""
    return _run is not None and name in _current


def reason(name: str) -> str:
    """Why the build that took the service with another built it."""
    try:
        return (_run.folder / f"{name}.claim").read_text(encoding="utf-8")
    except (OSError, AttributeError):
        return ""


def returned(found: dict) -> dict:
    """The record a service's task returns for its outcome; a failure is raised as its one line."""
    if "error" in found:
        raise (EngineError if found.get("engine") else BuildlibError)(found["error"])
    return found


def service(name: str) -> Service:
    return _run.project.services[name]


def together(leader: Service, inputs: Inputs | None, settings: Settings,
             lock: Callable[[str], bool]) -> dict[str, Inputs | None]:
    """The services to build now: the leader first, then the other services of the run that are ready,
    claimed and locked, each after its bases; name -> its inputs (None: its build hashes them).

    Ready: planned in this run, not built or failed yet, every task it depends on ended well, or
    built in this run together, or the build of a base that is built now (BuildKit builds the two
    in one run: the base's image reaches the other as a named context). Its image is not current
    (force: rebuilt all the same).
    """
    from .builders import builder_for   # the builder module starts buildx; only a build gets here
    if _run is None or leader.name not in _run.planned or builder_for(settings.builder).name != "buildkit":
        return {leader.name: inputs}
    inspect = catalog(settings.root).inspect
    chosen: dict[str, Inputs | None] = {leader.name: inputs or current_inputs(leader, inspect)[0]}
    bases: dict[str, str] = {}    # services built now that others may be built on: name -> inputs hash

    def lookup(ref: str) -> Mapping | None:
        """The engine's image, or for a base built now what its image will say: its inputs hash."""
        digest = bases.get(_run.owners.get(ref, ""))
        return {"Id": f"sha256:{digest}", "Config": {"Labels": {HASH_LABEL: digest}}} if digest else inspect(ref)

    def settle(name: str) -> None:
        if chosen[name] is not None and not _run.project.services[name].has_triggers:
            bases[name] = chosen[name].digest

    settle(leader.name)
    done, judged = _done(), {leader.name}
    added = True
    while added:   # a pass adds what the one before made ready: bases before what is built from them
        added = False
        for name in _run.project.names:
            if len(chosen) >= MOST_TOGETHER:
                break
            if (name in judged or name not in _run.planned or name in _run.project.broken
                    or f"build:{name}" in done or handled(name) or not _ready(name, done, bases)):
                continue
            judged.add(name)
            service = _run.project.services[name]
            try:
                verdict = None if settings.force else service_status(service, settings.project, None, lookup)
                known = verdict.inputs if verdict and verdict.inputs else current_inputs(service, lookup)[0]
            except BuildlibError:
                continue   # its own task will meet the same problem and say it
            if verdict and verdict.status is ImageStatus.OK:
                _current.add(name)
                continue
            if not _claim(name, verdict.reason if verdict else "force=1"):
                continue
            if not lock(name):   # another run builds it now: its own task will wait for that run
                (_run.folder / f"{name}.claim").unlink(missing_ok=True)
                continue
            chosen[name] = known
            settle(name)
            added = True
    if len(chosen) > 1:
        others = [name for name in chosen if name != leader.name]
        shown = ", ".join(others[:8]) + (", ..." if len(others) > 8 else "")
        sys.__stderr__.write(f"building {leader.name} and {len(others)} more that are ready, in one BuildKit run: "
                             f"{shown}\n")
        sys.__stderr__.flush()
    return chosen


def built_with(service: Service, together: Collection[str]) -> dict[str, str]:
    """The images of a service's bases that are built in the same call, as its Dockerfile or its named
    contexts name them -> the base service."""
    if _run is None:
        return {}
    found = {ref: _run.owners[ref] for ref in service.internal_images if _run.owners.get(ref) in together}
    for key, value in service.build_contexts.items():
        base = _run.owners.get(value.removeprefix("docker-image://"))
        if base in together:
            found[key] = base
    return found


def _ready(name: str, done: set[str], bases: Mapping[str, str]) -> bool:
    for task in _run.planned[name]:
        kind, _, other = task.partition(":")
        if not (task in done or _built_together(task) or (kind == "build" and other in bases)):
            return False
    return True


def record(outcomes: Mapping[str, dict | BuildlibError], seconds: float) -> None:
    """Keep each service's outcome for its task (written whole, then renamed: a reader never sees half)."""
    if _run is None:
        return
    for name, found in outcomes.items():
        if isinstance(found, BuildlibError):
            found = {"error": str(found), "engine": isinstance(found, EngineError)}
        _recorded[name] = found = {**found, "seconds": round(seconds, 3)}
        path = _run.folder / f"{name}.json"
        partial = path.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(found), encoding="utf-8")
            partial.replace(path)
        except OSError:   # a full disk: a task in another worker finds no outcome and judges the engine again
            partial.unlink(missing_ok=True)


def _done() -> set[str]:
    try:
        return set((_run.folder / DONE_FILE).read_text(encoding="utf-8").split())
    except OSError:
        return set()


def _built_together(task: str) -> bool:
    kind, _, name = task.partition(":")
    found = outcome(name) if kind == "build" else None
    return found is not None and "error" not in found


def _claim(name: str, why: str) -> bool:
    path = _run.folder / f"{name}.claim"
    try:
        claim = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:   # taken by another worker, or a full disk
        return False
    try:
        with os.fdopen(claim, "w", encoding="utf-8") as file:
            file.write(why)
    except OSError:
        path.unlink(missing_ok=True)
        return False
    return True

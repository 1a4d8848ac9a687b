"""doit tasks over a repository's services: plain task dicts, module-level actions.

Actions and uptodate callables are module-level functions with picklable arguments, so that
`doit -n 4` works with processes and with threads. uptodate answers from the engine, never from
the state file: deleting .doit.db rebuilds nothing. The state file only keeps each build's
inputs, to say later which file changed.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from doit import get_var
from doit.dependency import Dependency, SqliteDB
from doit.exceptions import InvalidDodoFile, TaskFailed
from doit.globals import Globals
from tabulate import tabulate

from . import batch, build, engine, graph, history, interrupt, pull, registry, state, templates
from .catalog import Catalog, catalog, expect_images, mark_changed
from .context import changes
from .errors import BuildlibError, TemplateError
from .lock import LOCK_FILE, read_lock, write_lock
from .project import ExternalImage, Project, Service, load_project
from .registry import RemoteStatus
from .report import BuildReporter
from .settings import OVERRIDABLE, Settings, load_settings
from .status import ImageStatus, Verdict, built_from, current_inputs, service_status

STATE_FILE = state.STATE_FILE
GRAPH_FILE = Path(".buildlib") / "graph.dot"

DOIT_CONFIG = {
    "dep_file": state.set_aside_if_damaged(Path(STATE_FILE)),   # doit opens it before loading tasks
    "backend": "sqlite3",          # the backend that keeps both records when two runs overlap
    "continue": True,              # one failing service does not stop the others
    "reporter": BuildReporter,
    "default_tasks": ["build_all"],
}
COPIED_FILES = "files COPY/ADD and bind mounts take"
NO_REGISTRY = ("no registry to push to: set registry in [tool.buildlib], BUILDLIB_REGISTRY "
               "or registry=host[:port][/path] on the command line")


# --- loading, once per doit run ------------------------------------------------------------

def current_project() -> Project:
    """The project of the current folder with doit's and the environment's overrides."""
    variables = tuple((key, get_var(key)) for key in OVERRIDABLE)
    environment = tuple((key, value) for key, value in os.environ.items() if key.startswith("BUILDLIB_"))
    return _load(Path.cwd(), variables, environment)


@functools.cache
def _load(root: Path, variables: tuple, environment: tuple) -> Project:
    interrupt.stop_on_signals()
    if Globals.dep_manager is not None:
        state.write_failures_are_warnings(Globals.dep_manager)
    settings = as_doit_error(load_settings, root, dict(variables), dict(environment))
    project = as_doit_error(load_project, settings)
    as_doit_error(engine.ping)
    # force=1 rebuilds every service: the listing need not pay for their images (10 ms each on containerd).
    own = [] if settings.force else project.images.values()
    expect_images(root, [*own, *(image.ref for image in project.external_images)])
    batch.offer(project)
    return project


def as_doit_error(function, *args):
    """Call function; a user's mistake becomes the error doit prints as one line (exit 3)."""
    try:
        return function(*args)
    except BuildlibError as error:
        raise InvalidDodoFile(str(error)) from None


def as_task_result(function, *args):
    """Call an action's work; its error becomes the task's failure, printed as one line."""
    try:
        return function(*args)
    except BuildlibError as error:
        return TaskFailed(str(error))


@functools.cache
def git_revision(root: Path) -> str | None:
    """The commit the images are built from, asked once a process and only when something is built."""
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# --- actions and uptodate checks -----------------------------------------------------------

def base_image_ready(ref: str, digest: str | None, force: bool, root: Path) -> bool:
    """uptodate of prefetch: the engine has the image (with the locked digest, when locked)."""
    if force:
        return False   # refresh moving tags
    try:
        if digest:
            return catalog(root).has_digest(ref, digest)
        return catalog(root).inspect(ref) is not None
    except BuildlibError:
        return False   # the action will meet the same problem and say it


def run_prefetch(image: ExternalImage, settings: Settings, digest: str | None, label: str):
    """Action: pull one base image; the source it came from is kept in the state file."""
    try:
        source = as_task_result(pull.prefetch, image.ref, image.platform, settings.mirrors, settings.pull, digest, label)
    finally:
        mark_changed(settings.root)
    return source if isinstance(source, TaskFailed) else {"source": source}


def run_lock(project: Project):
    """Action of `lock`: resolve every external image to its digest and write images.lock."""
    settings, resolved, failures = project.settings, {}, []
    for image in project.external_images:
        try:
            resolved[image.ref] = pull.resolve(image.ref, settings.mirrors, settings.pull)
        except BuildlibError as error:
            failures.append(str(error))
    if failures:
        return TaskFailed("; ".join(failures) + f" ({LOCK_FILE} left as it was)")
    write_lock(settings.root, resolved)
    return None


def build_is_current(task, values, service: Service, project: str, force: bool, root: Path) -> bool:
    """uptodate: the engine holds a valid image with today's inputs hash (force: never)."""
    if force:
        task.meta["reason"] = "force=1"
        return False
    if batch.handled(service.name):   # built with another service in this run: its task returns what came of it
        task.meta["reason"] = batch.reason(service.name)
        return False
    if batch.judged_current(service.name):
        task.meta["reason"] = ""
        return True
    try:
        verdict = service_status(service, project, values, catalog(root).inspect)
    except BuildlibError as error:
        verdict = Verdict(ImageStatus.MISSING, str(error))
    task.meta["reason"] = verdict.reason
    return verdict.status is ImageStatus.OK


def templates_rendered(service_templates: tuple[templates.Template, ...], root: Path) -> bool:
    """uptodate of render: every output on disk is what its template renders to now."""
    try:
        return not templates.out_of_date(service_templates, templates.values(root, os.environ))
    except BuildlibError:
        return False   # the action will meet the same problem and say it


def run_render(service_templates: tuple[templates.Template, ...], root: Path):
    """Action: render a service's templates; only outputs whose text changes are written."""
    return as_task_result(templates.render_in_place, service_templates, root, dict(os.environ))


def run_build(service: Service, settings: Settings):
    """Action: build one service; its inputs are kept in the state file to explain the next rebuild."""
    try:
        return as_task_result(build.build, service, settings, git_revision(settings.root))
    finally:
        mark_changed(settings.root, [service.image])   # a build moves only its own tag


def pushed_already(image: str, service: str, settings: Settings) -> bool:
    """uptodate of push: the registry's release tag holds the local image's inputs (force: never)."""
    if settings.force:
        return False
    try:
        inputs_hash = registry.pushable_hash(image, settings.project, service)
        return registry.remote_status(image, inputs_hash).status is RemoteStatus.CURRENT
    except BuildlibError:
        return False   # the action will meet the same problem and say it


def run_push(image: str, service: str, settings: Settings, label: str):
    """Action: push one service's image under its inputs tag and its release tag."""
    return as_task_result(registry.push, image, settings.project, service, settings.pull, label)


def refuse(message: str):
    """Action of a service that cannot be built (a malformed Dockerfile): fail with its one line."""
    return TaskFailed(message)


def remove_built_image(service: Service, project: str) -> None:
    """clean: remove the service's image, only when buildlib built it for this service."""
    try:
        attrs = engine.inspect(service.image)
        if attrs and built_from(attrs, project, service.name):
            engine.remove(service.image)
    except BuildlibError as error:
        # doit's clean would print a failure as a traceback and carry on anyway; it also captures
        # an action's stderr, hence the process's own.
        state.warn(f"{service.image} kept: {error}", sys.__stderr__)


def previous_records(root: Path, names: list[str]) -> dict[str, dict]:
    """Each service's last build record from the state file ({} when there is none)."""
    path = root / STATE_FILE
    if not path.exists():
        return {}
    state = Dependency(SqliteDB, str(path))
    try:
        return {name: state.get_values(f"build:{name}") for name in names}
    finally:
        state.close()


def local_verdicts(project: Project) -> Callable[[str], Verdict]:
    """Each service's verdict from the engine, worked out once and only when asked for."""
    records = previous_records(project.settings.root, project.names)
    lock = read_lock(project.settings.root)
    known = templates.values(project.settings.root, os.environ)
    engine_images = catalog(project.settings.root)
    verdicts: dict[str, Verdict] = {}

    def verdict_of(name: str) -> Verdict:
        if name not in verdicts:
            verdicts[name] = _verdict(project, name, records.get(name), lock, known, engine_images, verdict_of)
        return verdicts[name]

    return verdict_of


def statuses(project: Project) -> list[dict]:
    """service, status, image, reason and the registry's word for every service: the interface of `status`."""
    verdict_of = local_verdicts(project)
    rows, remote = [], None
    for name in project.names:
        verdict, image = verdict_of(name), project.image(name)
        # Once the registry is unreachable it is not asked again.
        if project.settings.registry and (remote is None or remote.status is not RemoteStatus.UNREACHABLE):
            remote = registry.remote_status(image, _inputs_hash(project, name, verdict))
        rows.append({"service": name, "status": verdict.status.value, "image": image, "reason": verdict.reason,
                     "inputs": _inputs_scope(project, name, verdict),
                     "registry": remote.status.value if remote else None,
                     "registry_reason": remote.reason if remote else None})
    return rows


def _inputs_scope(project: Project, name: str, verdict: Verdict) -> str:
    """Which files count: what COPY and ADD take, or the whole context and why."""
    if verdict.inputs is not None:
        return verdict.inputs.scope or COPIED_FILES
    service = project.services.get(name)
    return (service.whole_context or COPIED_FILES) if service else ""


def _inputs_hash(project: Project, name: str, verdict: Verdict) -> str | None:
    """Today's inputs hash, to ask the registry about; worked out here for an image the engine lacks."""
    inputs = verdict.inputs
    if inputs is None and name in project.services:
        inputs, _ = current_inputs(project.services[name], catalog(project.settings.root).inspect)
    return inputs.digest if inputs else None


def _verdict(project: Project, name: str, record: dict | None, lock: dict[str, str], known: dict[str, str],
             engine_images: Catalog, verdict_of) -> Verdict:
    if name in project.broken:
        exists = engine_images.inspect(project.image(name)) is not None
        return Verdict(ImageStatus.STALE if exists else ImageStatus.MISSING, project.broken[name])
    service = project.services[name]
    verdict = service_status(service, project.settings.project, record, engine_images.inspect)
    if verdict.status is ImageStatus.OK:
        # A base that prefetch or a build will replace makes this image out of date too.
        for image in service.external_images:
            if image.ref in lock and not engine_images.has_digest(image.ref, lock[image.ref]):
                return replace(verdict, status=ImageStatus.STALE, reason=f"base {image.ref} differs from {LOCK_FILE}")
        for base in service.base_services:
            if verdict_of(base).status is not ImageStatus.OK:
                return replace(verdict, status=ImageStatus.STALE,
                               reason=f"base service {base} is {verdict_of(base).status.value}")
        try:
            pending = templates.out_of_date(service.templates, known)
        except TemplateError as error:
            return replace(verdict, status=ImageStatus.STALE, reason=str(error))
        if pending:
            return replace(verdict, status=ImageStatus.STALE, reason=f"{pending[0][0].shown} renders differently now")
    return verdict


def print_status(project: Project, output_format: str):
    """Action of `status`: the only task that writes to stdout."""
    try:
        rows = statuses(project)
    except BuildlibError as error:
        return TaskFailed(str(error))
    if output_format == "json":
        print(json.dumps(rows, indent=2))
        return None
    columns = ["service", "status", "image", "reason"] + (["registry"] if project.settings.registry else [])
    print(tabulate([[_cell(row, column) for column in columns] for row in rows], headers=columns))
    return None


def print_explanation(project: Project, name: str):
    """Action of explain:<service>: its status, then every input that changed since its last build."""
    try:
        verdict = local_verdicts(project)(name)
        record = previous_records(project.settings.root, [name]).get(name) or {}
    except BuildlibError as error:
        return TaskFailed(str(error))
    print(f"{name}: {verdict.status.value}" + (f" ({verdict.reason})" if verdict.reason else ""))
    if verdict.status is ImageStatus.OK or verdict.inputs is None:
        return None
    if not record.get("inputs"):
        print(f"  no record of its last build in {STATE_FILE}: what changed cannot be listed")
        return None
    reasons = changes(record["inputs"], verdict.inputs, listed=None)
    for reason in reasons or ["its inputs are those of its last build here"]:
        print(f"  {reason}")
    return None


def print_history(root: Path, limit: int):
    """Action of `history`: the last runs, then each service's build durations."""
    records = history.read(root)
    if not records:
        print(f"no builds recorded yet ({history.HISTORY_FILE})")
        return None
    words = ("built", "pulled_from_cache", "up_to_date", "failed")
    runs = [[run["start"], f"{run.get('duration', 0):.1f}s", *(run.get(word, 0) for word in words)]
            for run in history.recent_runs(records, limit)]
    print(tabulate(runs, headers=["run started", "took", "built", "from cache", "up to date", "failed"]))
    print()
    trends = [[row["service"], row["builds"], *(f"{row[key]:.1f}s" for key in ("last", "median", "slowest"))]
              for row in history.trends(records)]
    print(tabulate(trends, headers=["service", "builds", "last", "median", "slowest"]))
    return None


def write_graph(project: Project, output: Path, picture: str):
    """Action of `graph`: the DOT file, and its picture when Graphviz's dot is installed."""
    try:
        verdict_of = local_verdicts(project)
        status_of = {name: verdict_of(name).status.value for name in project.names}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(graph.to_dot(project, status_of), encoding="utf-8")
    except BuildlibError as error:
        return TaskFailed(str(error))
    except OSError as error:
        return TaskFailed(f"{output}: cannot write ({error.strerror})")
    print(f"wrote {output}")
    if not shutil.which("dot"):
        print("no picture: Graphviz's dot is not installed (apt-get install graphviz)")
        return None
    drawn = output.with_suffix(f".{picture}")
    done = subprocess.run(["dot", f"-T{picture}", "-o", str(drawn), str(output)], capture_output=True, text=True)
    if done.returncode != 0:
        return TaskFailed(f"dot could not draw {output}: {done.stderr.strip()}")
    print(f"wrote {drawn}")
    return None


def _cell(row: dict, column: str) -> str:
    if column == "registry" and row["registry_reason"]:
        return f"{row['registry']} ({row['registry_reason']})"
    if column == "reason" and row["inputs"].startswith("whole context"):
        return "; ".join(filter(None, [row["reason"], row["inputs"]]))
    return row[column]


# --- task creators -------------------------------------------------------------------------

def task_prefetch():
    """Pull the base images the engine lacks (upstream and mirrors, with retries; force=1: all)."""
    project = current_project()
    settings = project.settings
    lock = as_doit_error(read_lock, settings.root)
    images = project.external_images
    for index, image in enumerate(images, 1):
        digest = lock.get(image.ref)
        yield {
            "name": image.ref,
            "actions": [(run_prefetch, [image, settings, digest, f"[{index}/{len(images)}] "])],
            "uptodate": [(base_image_ready, [image.ref, digest, settings.force, settings.root])],
            "meta": {"base_image": image.ref},
            "doc": f"pull {image.ref}" + (f" ({image.platform})" if image.platform else ""),
        }


def task_lock():
    """Resolve every external base image to its digest and write images.lock."""
    project = current_project()
    return {"actions": [(run_lock, [project])], "uptodate": [False], "doc": f"write {LOCK_FILE}"}


def task_render():
    """Render each service's config templates (*.tpl) with values from .env and the environment."""
    project = current_project()
    values_file = templates.env_file(project.settings.root)
    for name, service in sorted(project.services.items()):
        if not service.templates:
            continue
        yield {
            "name": name,
            "actions": [(run_render, [service.templates, project.settings.root])],
            "file_dep": [template.source for template in service.templates]
                        + ([str(values_file)] if values_file else []),
            "targets": [template.output for template in service.templates],
            "uptodate": [(templates_rendered, [service.templates, project.settings.root])],
            "clean": True,
            "meta": {"rendered": name},
            "doc": f"render {', '.join(template.shown for template in service.templates)}",
        }


def task_build():
    """Build each service whose image is missing, invalid or stale (force=1: all, no layer cache)."""
    project = current_project()
    settings = project.settings
    for name in project.names:
        if name in project.broken:
            yield {"name": name, "actions": [(refuse, [project.broken[name]])],
                   "meta": {"service": name, "image": project.image(name)},
                   "doc": f"build {project.image(name)}"}
            continue
        service = project.services[name]
        yield {
            "name": name,
            "actions": [(run_build, [service, settings])],
            "uptodate": [(build_is_current, [service, settings.project, settings.force, settings.root])],
            "task_dep": [f"prefetch:{image.ref}" for image in service.external_images]
                        + [f"build:{base}" for base in service.base_services]
                        + ([f"render:{name}"] if service.templates else []),
            "clean": [(remove_built_image, [service, settings.project])],
            "meta": {"service": name, "image": service.image},
            "doc": f"build {service.image}",
        }


def task_push():
    """Push each service's image unless the registry holds its inputs already (force=1: all)."""
    project = current_project()
    settings, names = project.settings, project.names
    for index, name in enumerate(names, 1):
        image = project.image(name)
        task = {"name": name, "meta": {"pushed": name}, "doc": f"push {image}"}
        if not settings.registry:
            yield {**task, "actions": [(refuse, [NO_REGISTRY])]}
            continue
        yield {**task, "actions": [(run_push, [image, name, settings, f"[{index}/{len(names)}] "])],
               "uptodate": [(pushed_already, [image, name, settings])], "task_dep": [f"build:{name}"]}


def task_build_all():
    """Pull missing base images, build what needs it in dependency order; with a registry, push (push=0: don't)."""
    project = current_project()
    settings = project.settings
    pushes = [f"push:{name}" for name in project.names] if settings.registry and settings.push else []
    return {"actions": None, "task_dep": ["prefetch"] + [f"build:{name}" for name in project.names] + pushes}


def task_push_all():
    """Build what needs it, then push every image the registry does not hold yet."""
    project = current_project()
    if not project.settings.registry:
        return {"actions": [(refuse, [NO_REGISTRY])]}
    return {"actions": None, "task_dep": ["prefetch"] + [f"push:{name}" for name in project.names]}


def task_explain():
    """Say why a service is not OK: every file, build arg and base image that changed."""
    project = current_project()
    for name in project.names:
        yield {"name": name, "actions": [(print_explanation, [project, name])], "verbosity": 2,
               "uptodate": [False], "doc": f"why {name} would be built"}


def task_history():
    """Print the last runs (limit=10) and each service's build durations: last, median, slowest."""
    limit = get_var("limit", "10")
    if not limit.isdigit() or int(limit) == 0:
        raise InvalidDodoFile(f"limit={limit}: must be a whole number above 0")
    return {"actions": [(print_history, [Path.cwd(), int(limit)])], "verbosity": 2, "uptodate": [False]}


def task_graph():
    """Write the service graph as Graphviz DOT (output=.buildlib/graph.dot) and draw it (picture=svg|png)."""
    output = Path(get_var("output", str(GRAPH_FILE)))
    picture = get_var("picture", "svg")
    if picture not in ("svg", "png"):
        raise InvalidDodoFile(f"picture={picture}: must be svg or png")
    return {"actions": [(write_graph, [current_project(), output, picture])], "verbosity": 2, "uptodate": [False]}


def task_status():
    """Print service, status, image and reason for every service (format=json for scripts)."""
    output_format = get_var("format", "table")
    if output_format not in ("table", "json"):
        raise InvalidDodoFile(f"format={output_format}: must be table or json")
    return {"actions": [(print_status, [current_project(), output_format])], "verbosity": 2, "uptodate": [False]}

"""What a person sees during a doit run: progress lines, then one line per service.

Everything goes to stderr, so that stdout carries only what a task prints on purpose
(`doit status format=json`). The stream is taken once, at the start: in thread mode doit
swaps sys.stderr while actions run.
"""
from __future__ import annotations

import sys
import time

from doit.exceptions import TaskFailed, UnmetDependency
from doit.reporter import ConsoleReporter
from tabulate import tabulate

BUILT, FROM_CACHE, UP_TO_DATE, FAILED = "built", "pulled from cache", "up to date", "failed"
PULLED, PRESENT = "pulled", "already present"
PUSHED, HELD = "pushed", "already in the registry"


def service_of(task) -> str | None:
    return (task.meta or {}).get("service")


def base_image_of(task) -> str | None:
    return (task.meta or {}).get("base_image")


def pushed_service_of(task) -> str | None:
    return (task.meta or {}).get("pushed")


class BuildReporter(ConsoleReporter):
    desc = "buildlib progress and summary, on stderr"

    def __init__(self, outstream, options):
        super().__init__(sys.stderr, options)
        self.results: dict[str, tuple[str, str, float | None]] = {}   # service -> result, reason, seconds
        self.pulls: dict[str, tuple[str, str]] = {}    # base image -> pulled / already present / failed, detail
        self.pushes: dict[str, tuple[str, str]] = {}   # service -> pushed / already in the registry / failed, detail
        self.messages: dict[str, str] = {}             # failed task -> its one line
        self.started: dict[str, float] = {}
        self.reasons: dict[str, str] = {}
        self.total = 0
        self.begun = 0   # services started or found up to date, for [k/N]

    def initialize(self, tasks, selected_tasks):
        reached, todo = set(), list(selected_tasks or [])
        while todo:
            name = todo.pop()
            if name in tasks and name not in reached:
                reached.add(name)
                todo += tasks[name].task_dep
        self.total = sum(1 for name in reached if service_of(tasks[name]))

    def execute_task(self, task):
        self.started[task.name] = time.monotonic()
        service = service_of(task)
        if service:
            self.begun += 1
            self.reasons[service] = (task.meta or {}).get("reason", "")
            why = f" ({self.reasons[service]})" if self.reasons[service] else ""
            self.write(f"[{self.begun}/{self.total}] building {service}{why}\n")

    def add_success(self, task):
        seconds = self._elapsed(task)
        service = service_of(task)
        values = task.values or {}
        if service:
            result = FROM_CACHE if values.get("from_cache") else BUILT
            reason = "; ".join(part for part in (self.reasons.get(service, ""), values.get("cache_note")) if part)
            self.results[service] = (result, reason, seconds)
            self.write(f"{result} {service} in {seconds:.1f}s\n")
        elif base_image_of(task):
            self.pulls[base_image_of(task)] = (PULLED, values.get("source", ""))
        elif pushed_service_of(task):
            self.pushes[pushed_service_of(task)] = (PUSHED, "")

    def add_failure(self, task, fail):
        if isinstance(fail, UnmetDependency):
            message = self._dependency_failure(fail.message)
        elif isinstance(fail, TaskFailed):
            message = fail.message.strip()
        else:   # not an error a user made: keep the traceback for whoever fixes it
            message = fail.get_msg().strip()
        self.messages[task.name] = message
        service = service_of(task)
        if service:
            self.results[service] = (FAILED, message, self._elapsed(task))
        elif base_image_of(task):
            self.pulls[base_image_of(task)] = (FAILED, message)
        elif pushed_service_of(task):
            self.pushes[pushed_service_of(task)] = (FAILED, message)
        elif isinstance(fail, UnmetDependency):
            return   # a group such as build_all: its services already said what failed
        self.write(f"FAILED {service or task.name}: {message}\n")

    def skip_uptodate(self, task):
        service = service_of(task)
        if service:
            self.begun += 1
            self.results[service] = (UP_TO_DATE, "", None)
        elif base_image_of(task):
            self.pulls[base_image_of(task)] = (PRESENT, "")
        elif pushed_service_of(task):
            self.pushes[pushed_service_of(task)] = (HELD, "")

    def skip_ignore(self, task):
        pass

    def _dependency_failure(self, bad_tasks: str) -> str:
        """doit names the failed dependencies; say what they mean for this service."""
        reasons = []
        for name in bad_tasks.split():
            kind, _, subject = name.partition(":")
            pulled = kind == "prefetch" and name in self.messages
            reasons.append(self.messages[name] if pulled else f"not built: {subject} failed")
        return "; ".join(reasons)

    def complete_run(self):
        if self.pulls:
            self._transfers("base images", self.pulls, (PULLED, PRESENT, FAILED))
        if self.results:
            rows = [(service, result, "" if seconds is None else f"{seconds:.1f}s", reason)
                    for service, (result, reason, seconds) in sorted(self.results.items())]
            self.write(tabulate(rows, tablefmt="plain") + "\n")
            words = (BUILT, FROM_CACHE, UP_TO_DATE, FAILED)
            counts = [sum(1 for result, _, _ in self.results.values() if result == word) for word in words]
            self.write("total: " + ", ".join(f"{count} {word}" for count, word in zip(counts, words)) + "\n")
        if self.pushes:
            self._transfers("pushes", self.pushes, (PUSHED, HELD, FAILED))
        if self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")

    def _transfers(self, title: str, outcomes: dict[str, tuple[str, str]], words: tuple[str, ...]) -> None:
        """A one-row table of how many transfers ended each way, then each failure's line."""
        counts = [sum(1 for result, _ in outcomes.values() if result == word) for word in words]
        self.write(f"{title}:\n" + tabulate([[len(outcomes), *counts]], headers=["total", *words]) + "\n")
        for message in sorted(detail for result, detail in outcomes.values() if result == FAILED):
            self.write(f"  {message}\n")

    def _elapsed(self, task) -> float | None:
        """Seconds since the task started; None for a task that never started."""
        started = self.started.get(task.name)
        return None if started is None else time.monotonic() - started

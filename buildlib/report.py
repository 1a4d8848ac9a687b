"""What a person sees during a doit run: progress, failures, then a summary, and the history kept.

Everything goes to stderr, so that stdout carries only what a task prints on purpose
(`doit status format=json`). The stream is taken once, at the start: in thread mode doit
swaps sys.stderr while actions run. On a terminal the last line shows what is building now
and results are coloured (not with NO_COLOR); in CI (no terminal, or CI=true) plain lines.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from doit.exceptions import TaskFailed, UnmetDependency
from doit.reporter import ConsoleReporter
from tabulate import tabulate

from . import batch, history
from .transfer import CLEAR_LINE

BUILT, FROM_CACHE, UP_TO_DATE, FAILED = "built", "pulled from cache", "up to date", "failed"
PULLED, PRESENT = "pulled", "already present"
PUSHED, HELD = "pushed", "already in the registry"
COLOURS = {BUILT: "32", FROM_CACHE: "36", FAILED: "31"}   # green, cyan, red


def service_of(task) -> str | None:
    return (task.meta or {}).get("service")


def base_image_of(task) -> str | None:
    return (task.meta or {}).get("base_image")


def pushed_service_of(task) -> str | None:
    return (task.meta or {}).get("pushed")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


class BuildReporter(ConsoleReporter):
    desc = "buildlib progress and summary, on stderr"

    def __init__(self, outstream, options):
        super().__init__(sys.stderr, options)
        self.results: dict[str, tuple[str, str, float | None]] = {}   # service -> result, reason, seconds
        self.pulls: dict[str, tuple[str, str]] = {}    # base image -> pulled / already present / failed, detail
        self.pushes: dict[str, tuple[str, str]] = {}   # service -> pushed / already in the registry / failed, detail
        self.messages: dict[str, str] = {}             # failed task -> its message
        self.started: dict[str, float] = {}
        self.building: dict[str, float] = {}           # service -> when it started, while it runs
        self.reasons: dict[str, str] = {}
        self.total = 0
        self.begun = 0      # services started or found up to date, for [k/N]
        self.ended = 0
        self.run = {"kind": "run", "run": uuid.uuid4().hex[:12], "start": iso(time.time())}
        self.run_started = time.monotonic()
        self.records: list[dict] = []                  # for the history
        terminal = sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
        self.live = terminal
        self.colour = terminal and "NO_COLOR" not in os.environ

    # --- doit's events ---------------------------------------------------------------------

    def initialize(self, tasks, selected_tasks):
        reached, todo = set(), list(selected_tasks or [])
        while todo:
            name = todo.pop()
            if name in tasks and name not in reached:
                reached.add(name)
                todo += tasks[name].task_dep
        self.total = sum(1 for name in reached if service_of(tasks[name]))
        batch.begin(Path.cwd(), {service_of(tasks[name]): tuple(tasks[name].task_dep)
                                 for name in reached if name.startswith("build:") and service_of(tasks[name])})

    def execute_task(self, task):
        self.started[task.name] = time.monotonic()
        service = service_of(task)
        if service:
            self.begun += 1
            self.building[service] = time.monotonic()
            self.reasons[service] = (task.meta or {}).get("reason", "")
            why = f" ({self.reasons[service]})" if self.reasons[service] else ""
            self.say(f"[{self.begun}/{self.total}] building {service}{why}")

    def add_success(self, task):
        batch.task_done(task.name)
        values = task.values or {}
        seconds = values.get("seconds", self._elapsed(task))   # built with others: how long that took
        service = service_of(task)
        if service:
            result = FROM_CACHE if values.get("from_cache") else UP_TO_DATE if values.get("elsewhere") else BUILT
            note = "built meanwhile by another run" if values.get("elsewhere") else values.get("cache_note")
            reason = "; ".join(part for part in (self.reasons.get(service, ""), note) if part)
            self._finish(task, service, result, reason, seconds)
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
            self._finish(task, service, FAILED, message, self._elapsed(task))
            return
        if base_image_of(task):
            self.pulls[base_image_of(task)] = (FAILED, message)
        elif pushed_service_of(task):
            self.pushes[pushed_service_of(task)] = (FAILED, message)
        elif isinstance(fail, UnmetDependency):
            return   # a group such as build_all: its services already said what failed
        self.say(f"{self._paint(FAILED, 'FAILED')} {task.name}: {message}")

    def skip_uptodate(self, task):
        batch.task_done(task.name)
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

    def complete_run(self):
        batch.end()
        self._draw_live("")
        if self.pulls:
            self._transfers("base images", self.pulls, (PULLED, PRESENT, FAILED))
        if self.results:
            rows = [(service, self._paint(result, result), "" if seconds is None else f"{seconds:.1f}s",
                     reason.splitlines()[0] if reason else "")
                    for service, (result, reason, seconds) in sorted(self.results.items())]
            self.write(tabulate(rows, headers=["service", "result", "duration", "reason"]) + "\n")
            words = (BUILT, FROM_CACHE, UP_TO_DATE, FAILED)
            counts = dict(zip(words, (sum(1 for result, _, _ in self.results.values() if result == word)
                                      for word in words)))
            seconds = time.monotonic() - self.run_started
            self.write("total: " + ", ".join(f"{count} {word}" for word, count in counts.items())
                       + f" in {seconds:.1f}s\n")
            self.records.append({**self.run, "duration": round(seconds, 3), **{
                word.replace(" ", "_"): count for word, count in counts.items()}})
        if self.pushes:
            self._transfers("pushes", self.pushes, (PUSHED, HELD, FAILED))
        if self.records:
            problem = history.append(Path.cwd(), self.records)
            if problem:
                self.write(f"warning: {problem}\n")
        if self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")

    # --- helpers ---------------------------------------------------------------------------

    def _finish(self, task, service: str, result: str, reason: str, seconds: float | None) -> None:
        """A service's build ended: its line, its row in the summary, its record in the history."""
        self.ended += 1
        self.building.pop(service, None)
        self.results[service] = (result, reason, seconds)
        took = f" in {seconds:.1f}s" if seconds is not None else ""
        detail = f": {reason}" if result == FAILED else ""
        word = "FAILED" if result == FAILED else result
        self.say(f"[{self.ended}/{self.total}] {self._paint(result, word)} {service}{took}{detail}")
        values = task.values or {}
        self.records.append({
            "kind": "build", "run": self.run["run"], "service": service, "image": (task.meta or {}).get("image"),
            "inputs_hash": values.get("inputs_hash"), "image_id": values.get("image_id"), "result": result,
            "start": self.run["start"] if seconds is None else iso(time.time() - seconds),
            "duration": None if seconds is None else round(seconds, 3)})

    def say(self, line: str) -> None:
        """One line of progress; on a terminal the live line is drawn again under it."""
        self._draw_live(line + "\n")

    def _draw_live(self, text: str) -> None:
        if not self.live:
            self.write(text)
            return
        now_building = ", ".join(f"{service} {time.monotonic() - since:.0f}s"
                                 for service, since in sorted(self.building.items()))
        live = f"building now: {now_building}" if now_building else ""
        self.write(f"{CLEAR_LINE}{text}{live}")

    def _paint(self, result: str, text: str) -> str:
        code = COLOURS.get(result)
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def _dependency_failure(self, bad_tasks: str) -> str:
        """doit names the failed dependencies; say what they mean for this service."""
        reasons = []
        for name in bad_tasks.split():
            kind, _, subject = name.partition(":")
            own_words = kind in ("prefetch", "render") and name in self.messages
            reasons.append(self.messages[name] if own_words else f"not built: {subject} failed")
        return "; ".join(reasons)

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

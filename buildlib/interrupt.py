"""Ctrl-C and SIGTERM stop a run at once, with one line and exit code 130, and lose nothing finished.

Both become KeyboardInterrupt, which doit lets through its actions: it still writes the state of
the tasks that finished and the summary, and a parallel run terminates only the workers it
forked. A build whose client goes away is cancelled by the engine, which tags an image only
once its build succeeded, so no image carries the inputs hash of a build that did not finish.
"""
from __future__ import annotations

import multiprocessing
import signal
import sys

MESSAGE = "interrupted: finished builds are kept; the next run builds only what was left"
WORKER_SECONDS = 5   # how long a doit worker that was told to stop may take before it is killed


def stop_on_signals() -> None:
    """SIGTERM acts as Ctrl-C, and an interrupted run ends with one line instead of a traceback."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous_hook = sys.excepthook

    def one_line(kind, error, trace):
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write(f"{MESSAGE}\n")
            _end_workers()
        else:
            previous_hook(kind, error, trace)

    sys.excepthook = one_line


def _end_workers() -> None:
    """At exit Python waits for every worker doit forked, without a limit. doit told them to stop; one that
    does not (a CI run once waited over a minute after SIGTERM, cause not found) must not hold the run."""
    for worker in multiprocessing.active_children():
        worker.join(WORKER_SECONDS)
        if worker.is_alive():
            worker.kill()
            worker.join()

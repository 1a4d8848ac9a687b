"""Ctrl-C and SIGTERM stop a run at once, with one line and exit code 130, and lose nothing finished.

Both become KeyboardInterrupt, which doit lets through its actions: it still writes the state of
the tasks that finished and the summary, and a parallel run terminates only the workers it
forked. A build whose client goes away is cancelled by the engine, which tags an image only
once its build succeeded, so no image carries the inputs hash of a build that did not finish.
"""
from __future__ import annotations

import signal
import sys

MESSAGE = "interrupted: finished builds are kept; the next run builds only what was left"


def stop_on_signals() -> None:
    """SIGTERM acts as Ctrl-C, and an interrupted run ends with one line instead of a traceback."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous_hook = sys.excepthook

    def one_line(kind, error, trace):
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write(f"{MESSAGE}\n")
        else:
            previous_hook(kind, error, trace)

    sys.excepthook = one_line

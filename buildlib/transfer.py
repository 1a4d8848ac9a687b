"""Transfers to and from registries: which errors are worth a retry, the retries, the progress lines.

Each transfer gets a few attempts with exponential backoff and jitter, but only for errors that
a retry can cure; the others fail at once with the registry's own words.
"""
from __future__ import annotations

import os
import random
import sys
import time
from typing import Callable

from .errors import EngineError
from .settings import PullSettings

CLEAR_LINE = "\r\033[K"   # back to the start of the terminal line, and erase it

# An error whose message says one of these will not go away by asking again.
PERMANENT = ("manifest unknown", "not found", "unauthorized", "authentication required", "denied",
             "invalid reference", "no such host", "no basic auth credentials", "does not exist",
             "verification failed", "digest did not match",
             "failed precondition")   # the containerd store's word for content that is not what its digest says


def short_reason(message: str) -> str:
    """The engine's error without the request it made: 'connection refused', 'manifest ... not found'."""
    pieces = message.split(": ")
    parts = [piece for i, piece in enumerate(pieces) if i == 0 or piece != pieces[i - 1]]
    if "dial tcp" in message:
        return parts[-1]
    return ": ".join(part for part in parts if not part.startswith(("Get \"", "Head \"")))


def is_permanent(message: str) -> bool:
    lowered = message.lower()
    return any(words in lowered for words in PERMANENT)


def attempt(action: Callable[[], object], policy: PullSettings, sleep: Callable[[float], None] = time.sleep):
    """Run action, again after a growing pause while it fails with an error worth retrying.

    Returns (result, None) or (None, 'reason (n attempts)').
    """
    number = 0
    while True:
        number += 1
        try:
            return action(), None
        except EngineError as error:
            reason = short_reason(str(error).split(": ", 1)[-1])
            if is_permanent(reason):
                return None, f"{reason} (not retried)"
            if number >= policy.attempts:
                return None, f"{reason} ({number} attempt{'s' if number > 1 else ''})"
            sleep(policy.backoff * 2 ** (number - 1) * random.uniform(0.5, 1.5))


class Progress:
    """One line per transfer on stderr: updated in place on a terminal, plain lines in CI.

    Written to the process's real stderr: doit swaps sys.stderr while actions run.
    """

    def __init__(self, title: str, verb: str = "pulling"):
        self.title = f"{verb} {title}"
        self.stream = sys.__stderr__
        self.live = self.stream.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
        self.started = time.monotonic()
        self.shown = 0.0
        self.bytes = 0
        if not self.live:
            self.stream.write(f"{self.title}\n")
            self.stream.flush()

    def update(self, done: int, total: int) -> None:
        self.bytes = done
        now = time.monotonic()
        if self.live and now - self.shown > 0.2:
            self.shown = now
            percent = f" ({100 * done // total}%)" if total else ""
            self.stream.write(f"{CLEAR_LINE}{self.title}: {_megabytes(done)}/{_megabytes(total)}{percent}")
            self.stream.flush()

    def finish(self, failure: str | None = None) -> None:
        seconds = time.monotonic() - self.started
        outcome = f"failed: {failure}" if failure else f"done, {_megabytes(self.bytes)} in {seconds:.1f}s"
        self.stream.write(f"{CLEAR_LINE if self.live else ''}{self.title}: {outcome}\n")
        self.stream.flush()


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"

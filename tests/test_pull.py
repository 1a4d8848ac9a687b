"""The pure parts of pulling: where an image can come from, and which errors are worth retrying."""
from __future__ import annotations

import pytest

from buildlib.errors import EngineError
from buildlib.pull import Source, sources
from buildlib.transfer import attempt, is_permanent, short_reason
from buildlib.settings import PullSettings

MIRRORS = {"docker.io": ("m1:5000", "m2:5000"), "ghcr.io": ("g:5000",)}


def test_sources_in_order_with_docker_hub_paths():
    assert sources("alpine:3.20", MIRRORS, mirrors_first=False) == [
        Source("docker.io", "alpine:3.20"), Source("m1:5000", "m1:5000/library/alpine:3.20"),
        Source("m2:5000", "m2:5000/library/alpine:3.20")]
    assert sources("org/tool", MIRRORS, mirrors_first=True)[0] == Source("m1:5000", "m1:5000/org/tool:latest")
    assert sources("ghcr.io/o/x:1", MIRRORS, mirrors_first=False) == [
        Source("ghcr.io", "ghcr.io/o/x:1"), Source("g:5000", "g:5000/o/x:1")]
    assert sources("quay.io/o/x:1", MIRRORS, mirrors_first=False) == [Source("quay.io", "quay.io/o/x:1")]


def test_sources_by_digest():
    digest = "sha256:" + "a" * 64
    assert sources("alpine:3.20", MIRRORS, False, digest)[1].ref == f"m1:5000/library/alpine@{digest}"
    assert sources(f"alpine@{digest}", {}, False) == [Source("docker.io", f"alpine@{digest}")]


@pytest.mark.parametrize("message, permanent", [
    ("manifest for x not found: manifest unknown", True),
    ("unauthorized: authentication required", True),
    ("pull access denied for x, repository does not exist", True),
    ("invalid reference format", True),
    ("manifest verification failed for digest sha256:1", True),
    ("no such host", True),
    ("connection refused", False),
    ("no answer in time", False),
    ("received unexpected HTTP status: 502 Bad Gateway", False),
    ("EOF", False),
])
def test_what_is_worth_retrying(message, permanent):
    assert is_permanent(message) is permanent


def test_short_reason_drops_the_request():
    assert short_reason('Get "http://r:5000/v2/": dial tcp r:5000: connect: connection refused') == "connection refused"
    assert short_reason("manifest for x not found: manifest unknown: manifest unknown") == \
        "manifest for x not found: manifest unknown"


def test_attempts_back_off_and_stop():
    pauses, calls = [], []

    def failing():
        calls.append(1)
        raise EngineError("pull x: connection refused")

    policy = PullSettings(attempts=3, backoff=1.0)
    assert attempt(failing, policy, pauses.append) == (None, "connection refused (3 attempts)")
    assert len(calls) == 3 and len(pauses) == 2
    assert 0.5 <= pauses[0] <= 1.5 and 1.0 <= pauses[1] <= 3.0


def test_permanent_errors_are_not_retried_and_success_returns():
    calls = []

    def missing():
        calls.append(1)
        raise EngineError("pull x: manifest unknown")

    assert attempt(missing, PullSettings(attempts=5), lambda _: None) == (None, "manifest unknown (not retried)")
    assert len(calls) == 1
    assert attempt(lambda: "sha256:1", PullSettings(), lambda _: None) == ("sha256:1", None)

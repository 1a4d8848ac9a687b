"""The Docker engine, through docker-py: every call buildlib makes to it goes through here.

Errors leave this module as EngineUnavailable (nobody answers) or EngineError (the engine
said no), each one line; docker-py's and requests' exceptions never escape.
"""
from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import docker
import requests
import urllib3
from docker.api.build import process_dockerfile
from docker.auth import get_config_header, resolve_repository_name
from docker.utils import kwargs_from_env, parse_repository_tag

from .errors import EngineError, EngineUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"
HOW_TO_POINT = ("start one (in buildlib's repository: `eval \"$(scripts/engine up)\"`) "
                "or set DOCKER_HOST to an engine that runs")

LAST_LINES = 10    # of a failed build's output, shown with its error
# The classic builder's own lines, left out of those: the steps' output is what explains a failure.
BUILDER_CHATTER = ("Step ", "--->", "Removing intermediate container", "Successfully")

# Answers of the containerd store that meet an image changing at that moment: the same question, asked
# again, gets a sound answer.
PASSING_TROUBLE = re.compile(r"content digest sha256:[0-9a-f]+: not found|data changed during operation, retry")
ATTEMPTS = 4

PUSHED_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")

_clients: dict[tuple[int, int], docker.APIClient] = {}


def host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def client() -> docker.APIClient:
    """A client for this process and thread: doit runs actions in forked processes or threads."""
    key = (os.getpid(), threading.get_ident())
    if key not in _clients:
        with _translated_errors():
            _clients[key] = docker.APIClient(version="auto", **kwargs_from_env())
    return _clients[key]


@contextmanager
def _translated_errors(subject: str = "") -> Iterator[None]:
    prefix = f"{subject}: " if subject else ""
    try:
        yield
    except docker.errors.APIError as error:
        raise EngineError(f"{prefix}{error.explanation or error}") from None
    # A stream cut mid-answer (the engine died) comes as urllib3's own error: docker-py reads streams raw.
    except (requests.exceptions.RequestException, docker.errors.DockerException, urllib3.exceptions.HTTPError) as error:
        # requests reports a read that timed out inside a stream as a ConnectionError.
        if isinstance(error, requests.exceptions.Timeout) or "timed out" in str(error):
            raise EngineError(f"{prefix}no answer in time") from None
        if isinstance(error, requests.exceptions.RequestException) and not isinstance(
                error, requests.exceptions.ConnectionError):
            raise EngineError(f"{prefix}{_os_reason(error)}") from None
        raise EngineUnavailable(f"cannot reach a Docker engine at {host()} ({_os_reason(error)}); {HOW_TO_POINT}") from None


def _os_reason(error: Exception) -> str:
    """The operating system's words deep inside requests' and urllib3's wrapping, when there are any."""
    text = str(error)
    found = (re.search(r"\[Errno \d+\] ([^'\")\]]+)", text) or re.search(r"Error\(\d+, '([^']+)'\)", text)
             or re.search(r"Disconnected\('([^']+)'\)", text) or re.search(r"'(Connection broken)", text))
    return found.group(1).strip() if found else text[:160]


def ping() -> None:
    """Fail with EngineUnavailable, once and early, when no engine answers."""
    with _translated_errors():
        client().ping()


def inspect(ref: str) -> dict | None:
    """The engine's record of an image, or None when it has no image by that reference."""
    return _asked_again(_inspected, ref)


def _inspected(ref: str) -> dict | None:
    with _translated_errors(ref):
        try:
            return client().inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None


def images(filters: Mapping[str, object]) -> list[dict]:
    """The engine's summary of every tagged image that passes the filters, in one call."""
    return _asked_again(_listed, filters)


def _listed(filters: Mapping[str, object]) -> list[dict]:
    with _translated_errors("list images"):
        return client().images(filters=dict(filters))


def _asked_again(ask: Callable, question):
    """ask(question), asked again after trouble that passes.

    On the containerd store a listing that meets an image being removed at that moment (by
    another build, `docker rmi`, a prune) fails with "content digest ...: not found" (moby
    #46077, nerdctl #3513), and an inspect of an image being tagged by another build with
    "consistency error: data changed during operation, retry"; the next answer is sound.
    """
    for attempt in range(1, ATTEMPTS):
        try:
            return ask(question)
        except EngineError as error:
            if not PASSING_TROUBLE.search(str(error)):
                raise
            time.sleep(0.2 * attempt)
    return ask(question)


def pull(ref: str, platform: str | None, timeout: float, on_progress: Callable[[int, int], None]) -> None:
    """Pull one image within timeout seconds; on_progress(bytes done, bytes known) as layers arrive."""
    repository, tag_name = parse_repository_tag(ref)
    params = {"fromImage": repository, "tag": tag_name or "latest"}
    if platform:
        params["platform"] = platform
    _stream(client()._url("/images/create"), repository, params, timeout, "Downloading", on_progress, f"pull {ref}")


def push(ref: str, timeout: float, on_progress: Callable[[int, int], None]) -> str:
    """Push one tag within timeout seconds; return the manifest digest the registry stored."""
    repository, tag_name = parse_repository_tag(ref)
    url = client()._url("/images/{0}/push", repository)
    messages = _stream(url, repository, {"tag": tag_name or "latest"}, timeout, "Pushing", on_progress, f"push {ref}")
    digests = [digest for message in messages if (digest := _pushed_digest(message))]
    if not digests:
        raise EngineError(f"push {ref}: the engine did not report a digest")
    return digests[-1]


def _pushed_digest(message: dict) -> str | None:
    """overlay2 engines report the pushed digest in an aux message; the containerd store only in a status line."""
    aux = message.get("aux") or {}
    if "Digest" in aux:
        return aux["Digest"]
    found = PUSHED_DIGEST.search(message.get("status", ""))
    return found[1] if found else None


def _stream(url: str, repository: str, params: dict, timeout: float, moving: str,
            on_progress: Callable[[int, int], None], subject: str) -> list[dict]:
    """POST a pull or push and follow its messages; return the ones that are not progress.

    docker-py's pull and push set no timeout, and a stalled registry would hang them for ever;
    so this makes the same request with one: no message for `timeout` seconds ends the attempt,
    and the engine drops the transfer when the connection closes. Errors inside the stream
    become EngineError. Credentials come from the user's Docker config, as docker-py reads it.
    """
    api = client()
    registry, _ = resolve_repository_name(repository)
    auth_header = get_config_header(api, registry)
    headers = {"X-Registry-Auth": auth_header} if auth_header else {}
    deadline = time.monotonic() + timeout
    layers: dict[str, tuple[int, int]] = {}
    kept = []
    with _translated_errors(subject):
        response = api._post_json(url, None, params=params, headers=headers, stream=True, timeout=timeout)
        api._raise_for_status(response)
        for chunk in api._stream_helper(response, decode=True):
            if "error" in chunk:
                raise EngineError(f"{subject}: {chunk['error']}")
            detail = chunk.get("progressDetail") or {}
            if chunk.get("status") == moving and detail.get("total"):
                layers[chunk.get("id", "")] = (detail.get("current", 0), detail["total"])
                on_progress(sum(done for done, _ in layers.values()), sum(total for _, total in layers.values()))
            elif not detail:
                kept.append(chunk)
            if time.monotonic() > deadline:
                response.close()
                raise EngineError(f"{subject}: timed out after {timeout:g}s")
    return kept


def registry_digest(ref: str) -> str | None:
    """The digest a registry serves for a reference, without pulling it; None when it has none."""
    with _translated_errors(f"look up {ref}"):
        try:
            found = client().inspect_distribution(ref)
        except docker.errors.NotFound:
            return None
    return found["Descriptor"]["digest"]


def has_digest(ref: str, digest: str, lookup: Callable[[str], dict | None] = inspect) -> bool:
    """Whether the engine's image under ref is the one a registry serves as digest."""
    known = (lookup(ref) or {}).get("RepoDigests") or []
    return any(name.endswith(f"@{digest}") for name in known)


def tag(source: str, ref: str) -> None:
    repository, tag_name = parse_repository_tag(ref)
    with _translated_errors(f"tag {ref}"):
        client().tag(source, repository, tag_name or "latest")


def remove(ref: str) -> None:
    """Remove a reference (untag, or delete when it was the last)."""
    with _translated_errors(f"remove {ref}"):
        client().remove_image(ref)


def default_network() -> str | None:
    """'none' on an engine without a bridge network (dockerd --bridge=none), where BuildKit's RUN needs it."""
    if host() not in _networks:
        with _translated_errors("list networks"):
            found = client().networks(names=["bridge"])
        _networks[host()] = None if any(network["Name"] == "bridge" for network in found) else "none"
    return _networks[host()]


_networks: dict[str, str | None] = {}


def build(context: str, dockerfile: str, ref: str, *, exclude: list[str], args: Mapping[str, str],
          target: str | None, platform: str | None, network: str | None, nocache: bool,
          output: Callable[[str], object]) -> None:
    """Build and tag an image with the classic builder. The engine tags only once the build succeeded.

    The context is sent without what the exclude patterns name (docker-py would read only the
    context's .dockerignore). Every line the build prints goes to output; a failure names the
    failing step and ends with the last lines of the output.
    """
    step, tail = "", []
    with _translated_errors(f"build {ref}"), _context_tar(context, dockerfile, exclude) as (sent, name):
        stream = client().build(
            fileobj=sent, custom_context=True, dockerfile=name, tag=ref, buildargs=dict(args), target=target,
            platform=platform, network_mode=network, nocache=nocache, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            text = chunk.get("stream", "") + (chunk["error"].rstrip() + "\n" if "error" in chunk else "")
            output(text)
            lines = [line for line in text.splitlines() if line.strip()]
            step = next((line for line in reversed(lines) if line.startswith("Step ")), step)
            tail = (tail + [line for line in lines if not line.strip().startswith(BUILDER_CHATTER)])[-LAST_LINES:]
            if "error" in chunk:
                where = f" at {step.split(' : ', 1)[-1]!r}" if step else ""
                last = "".join(f"\n    | {line}" for line in tail[:-1])
                raise EngineError(f"build failed{where}: {chunk['error'].strip()}{last}")


@contextmanager
def _context_tar(context: str, dockerfile: str, exclude: list[str]) -> Iterator[tuple]:
    """The build context as docker-py's own build would tar it, and the Dockerfile's name in it."""
    sent = process_dockerfile(dockerfile, context)
    with docker.utils.tar(context, exclude=exclude, dockerfile=sent) as tar:
        yield tar, sent[0]

"""Real registries and network faults for the tests: a private docker-registry process per test,
a loopback TCP proxy that delays or cuts connections, and unique base images to pull."""
from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import docker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.05)


class Registry:
    """docker-registry serving on a loopback port of its own; stop() is a real outage."""

    def __init__(self, folder: Path, htpasswd: Path | None = None):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        auth = f"auth: {{htpasswd: {{realm: buildlib-test, path: {htpasswd}}}}}\n" if htpasswd else ""
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "registry.yml"
        self.config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {self.address}}}\n{auth}")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def tags(self, repository: str) -> list[str]:
        """The tags the registry holds for a repository (of a registry without a password)."""
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/{repository}/tags/list", timeout=5) as answer:
                return sorted(json.load(answer).get("tags") or [])
        except urllib.error.HTTPError:
            return []

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1)
            return True
        except urllib.error.HTTPError:
            return True    # 401: up, and asking for credentials
        except OSError:
            return False


class Proxy:
    """A loopback TCP proxy in front of a registry: it can stall or cut connections, and counts them."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_next = 0          # connections to close at once, without a word
        self.stall = False         # accept, then forward nothing
        self.connections = 0
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cut = self.cut_next > 0
                self.cut_next -= 1 if cut else 0
            if cut:
                client.close()
            else:
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            if self.stall:
                time.sleep(30)
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
            pump.start()
            self._pump(client, upstream)
            pump.join()
        finally:
            with self.lock:
                self.active -= 1
            client.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def locked_registry(folder: Path, user: str, password: str) -> Registry:
    """A registry that asks for a user and password (htpasswd, bcrypt)."""
    import bcrypt
    folder.mkdir(parents=True, exist_ok=True)
    htpasswd = folder / "htpasswd"
    htpasswd.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
    return Registry(folder, htpasswd)


def docker_config(folder: Path, registry: str, user: str, password: str) -> dict:
    """Environment for a Docker config of its own that logs in to registry; folder must be new."""
    folder.mkdir(parents=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return {"DOCKER_CONFIG": str(folder)}


def seed_image(client: docker.APIClient, registry: str, path: str, marker: str, auth: dict | None = None) -> str:
    """Push a small image of its own content to registry/path (path as on Docker Hub: org/name:tag).

    Nothing of it stays in the engine, so a later pull must fetch it. Returns its registry digest.
    """
    target = f"{registry}/{path}"
    dockerfile = f"FROM alpine:3.20\nRUN echo {marker} > /marker\n".encode()
    for chunk in client.build(fileobj=io.BytesIO(dockerfile), tag=target, rm=True, decode=True):
        assert "error" not in chunk, chunk
    for chunk in client.push(target, stream=True, decode=True, auth_config=auth):
        assert "error" not in chunk, chunk
    digest = client.inspect_distribution(target, auth_config=auth)["Descriptor"]["digest"]
    client.remove_image(target, force=True)
    return digest


class LyingMirror:
    """An HTTP front for a registry that answers requests for one manifest with another's bytes."""

    def __init__(self, backend: str, lie_about: str, serve_instead: str):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            # A TLS hello must get a status line back, so that the engine falls back to plain HTTP
            # (the containerd store does only on "server gave HTTP response to HTTPS client").
            default_request_version = "HTTP/1.0"

            def do_GET(self):
                path = self.path.replace(lie_about, serve_instead)
                request = urllib.request.Request(f"http://{backend}{path}", method=self.command,
                                                 headers={"Accept": self.headers.get("Accept", "*/*")})
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, headers, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, headers, body = error.code, error.headers, error.read()
                self.send_response(status)
                for name in ("Content-Type", "Docker-Distribution-Api-Version"):
                    if headers.get(name):
                        self.send_header(name, headers[name])
                if path != self.path:
                    self.send_header("Docker-Content-Digest", lie_about)
                # A HEAD answer has no body, but its length is what the containerd store reads as the size.
                self.send_header("Content-Length", headers.get("Content-Length") or str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

"""A unix-socket proxy in front of a Docker engine that counts the API requests made through it."""
from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
from collections import Counter

# A request line at the start of a request: method, path without the API version, query ignored.
REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD) (?:/v[0-9.]+)?(/[^ ?]*)[^ ]* HTTP/1\.[01]\r\n")


class EngineCalls:
    """DOCKER_HOST for clients is `host`; `calls` counts requests by 'METHOD /path'."""

    def __init__(self, target: str):
        self.target = target.removeprefix("unix://")
        self.folder = tempfile.mkdtemp(prefix="engine-calls-")
        self.path = os.path.join(self.folder, "docker.sock")
        self.host = f"unix://{self.path}"
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(1024)   # bake opens a connection per target, hundreds at once
        threading.Thread(target=self._accept, daemon=True).start()

    def total(self) -> int:
        with self.lock:
            return sum(self.calls.values())

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()

    def close(self) -> None:
        self.listener.close()
        os.unlink(self.path)
        os.rmdir(self.folder)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to engine: count each chunk that starts with a request line (bodies rarely do)."""
        try:
            while data := client.recv(1 << 16):
                if found := REQUEST_LINE.match(data):
                    with self.lock:
                        self.calls[f"{found[1].decode()} {found[2].decode()}"] += 1
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(sink)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass

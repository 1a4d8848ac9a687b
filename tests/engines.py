"""A second Docker engine for the tests: its own dockerd, data root and socket, standing for
another CI runner on this machine. It starts empty and is deleted with everything it held."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import docker

from registries import wait_until


class Engine:
    def __init__(self):
        # Short: a unix socket path must stay under 108 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="ble-", dir="/tmp"))
        self.host = f"unix://{self.folder}/docker.sock"
        self.log = open(self.folder / "dockerd.log", "wb")
        self.client = docker.APIClient(base_url=self.host, version="1.41")
        self.start()

    def start(self) -> None:
        """Start dockerd on this engine's folders (again, after kill: the images it held are still there)."""
        # The exec root lives in /run, which a restart finds empty; a stale containerd.pid stalls dockerd.
        shutil.rmtree(self.folder / "exec", ignore_errors=True)
        # The same dockerd and image store as the engine scripts/engine started.
        config = self.folder / "daemon.json"
        snapshotter = os.environ.get("BUILDLIB_IMAGE_STORE", "containerd") == "containerd"
        config.write_text(json.dumps({"features": {"containerd-snapshotter": snapshotter}}))
        self.process = subprocess.Popen(
            [os.environ.get("BUILDLIB_DOCKERD") or shutil.which("dockerd") or "dockerd", "--config-file", str(config),
             "--data-root", str(self.folder / "data"),
             "--exec-root", str(self.folder / "exec"), "--host", self.host, "--pidfile", str(self.folder / "pid"),
             "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, 60)

    def kill(self) -> None:
        """What a crash of the service does: dockerd and its containerd gone at once, nothing cleaned up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"dockerd ended: {(self.folder / 'dockerd.log').read_text()[-2000:]}")
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.client.close()
        shutil.rmtree(self.folder, ignore_errors=True)

"""Benchmark: pull 25 unique base images from a loopback registry, serially and with doit -n 4.

    DOCKER_HOST=... python benchmarks/prefetch.py [--images 25] [--rounds 3]

Each round seeds fresh images (so every pull really transfers), then times `doit prefetch` in a
generated repository, once serially and once with `-n 4`. Prints medians and the ratio.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from registries import Registry, seed_image  # noqa: E402


def repository(folder: Path, bases: list[str], mirror: str) -> Path:
    for index, base in enumerate(bases):
        (folder / "services" / f"s{index}").mkdir(parents=True)
        (folder / "services" / f"s{index}" / "Dockerfile").write_text(f"FROM {base}\n")
    (folder / "pyproject.toml").write_text(f'[tool.buildlib]\nproject = "bench"\nmirrors = ["{mirror}"]\n')
    shutil.copy(ROOT / "dodo.py", folder / "dodo.py")
    return folder


def timed_prefetch(client, registry: Registry, work: Path, count: int, jobs: list[str]) -> float:
    marker = uuid.uuid4().hex[:10]
    bases = [f"bench/{marker}-{index}:1" for index in range(count)]
    for index, base in enumerate(bases):
        seed_image(client, registry.address, base, f"{marker}-{index}")
    repo = repository(work / marker, bases, registry.address)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", *jobs, "prefetch"], cwd=repo, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"prefetch failed:\n{done.stderr}")
    for base in bases:
        for name in (base, f"{registry.address}/{base}"):
            client.remove_image(name, force=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    with tempfile.TemporaryDirectory(prefix="buildlib-bench-") as folder:
        work = Path(folder)
        registry = Registry(work / "registry")
        try:
            times = {"serial": [], "-n 4": []}
            for _ in range(options.rounds):
                times["serial"].append(timed_prefetch(client, registry, work, options.images, []))
                times["-n 4"].append(timed_prefetch(client, registry, work, options.images, ["-n", "4"]))
        finally:
            registry.stop()
    serial, parallel = statistics.median(times["serial"]), statistics.median(times["-n 4"])
    rows = [[mode, f"{statistics.median(values):.2f}", " ".join(f"{v:.2f}" for v in values)]
            for mode, values in times.items()]
    print(f"doit prefetch of {options.images} unique images from a loopback registry, {options.rounds} rounds")
    print(tabulate(rows, headers=["mode", "median s", "runs s"]))
    print(f"ratio serial / -n 4: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()

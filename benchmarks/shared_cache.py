"""Benchmark: a second CI runner with an empty engine, with and without the registry's build cache.

    DOCKER_HOST=... python benchmarks/shared_cache.py [--rounds 3]

Runner A (the engine DOCKER_HOST points at) builds the sample services once and pushes them to a
loopback registry of the benchmark's own. Then, each round, two fresh engines stand for runner B:
one runs `doit build_all` (base images from the mirror, service images from the registry cache),
the other `doit build_all cache=0 push=0` (base images from the mirror, every service built from
scratch). Both serially and with -n 4. Prints medians and the ratio. Needs root (it starts dockerd).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from engines import Engine  # noqa: E402
from registries import Registry  # noqa: E402

MODES = {"from the registry cache": [], "from scratch (cache=0)": ["cache=0", "push=0"]}


def doit(folder: Path, environment: dict, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", *args], cwd=folder, env=environment,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="buildlib-bench-") as folder:
        work = Path(folder)
        registry = Registry(work / "registry")
        repo = work / "repo"
        repo.mkdir()
        shutil.copytree(ROOT / "services", repo / "services")
        for name in ("pyproject.toml", "dodo.py", ".env.example"):
            shutil.copy(ROOT / name, repo / name)
        environment = {**os.environ, "BUILDLIB_TAG": f"bench-{uuid.uuid4().hex[:8]}",
                       "BUILDLIB_REGISTRY": f"{registry.address}/bench", "CI": "true"}
        times: dict[tuple[str, str], list[float]] = {}
        try:
            doit(repo, environment, "-n", "4", "build_all")   # runner A builds and pushes
            for _ in range(options.rounds):
                for jobs in ([], ["-n", "4"]):
                    for mode, extra in MODES.items():
                        engine = Engine()
                        try:
                            seconds = doit(repo, {**environment, "DOCKER_HOST": engine.host},
                                           *jobs, "build_all", *extra)
                        finally:
                            engine.stop()
                        times.setdefault((" ".join(jobs) or "serial", mode), []).append(seconds)
        finally:
            registry.stop()
    rows = [[jobs, mode, f"{statistics.median(values):.2f}", " ".join(f"{v:.2f}" for v in values)]
            for (jobs, mode), values in times.items()]
    print(f"runner B, empty engine, 8 sample services, {options.rounds} rounds")
    print(tabulate(rows, headers=["jobs", "images", "median s", "runs s"]))
    for jobs in ("serial", "-n 4"):
        cached, scratch = (statistics.median(times[(jobs, mode)]) for mode in MODES)
        print(f"{jobs}: from scratch / from the cache = {scratch / cached:.2f}x")


if __name__ == "__main__":
    main()

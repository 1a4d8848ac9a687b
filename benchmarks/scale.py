"""Benchmark: buildlib against `docker buildx bake`, `docker compose build` and a build.sh loop.

    DOCKER_HOST=... python benchmarks/scale.py [--services 300] [--files 200] [--rounds 3]
        [--tools "buildlib,docker buildx bake"] [--scenarios "cold,no-op"] [--sizes 10,30]

Generates one monorepo per tool (N services of M files; every --chain-th service starts a chain
of services built FROM the one before; a tenth of each service's files are docs no COPY takes;
each has a .dockerignore). bake and compose read a compose file whose chained services name the
one before as a build context (`additional_contexts: base: service:...`), their way of ordering
a chain in one run. The repositories differ only in a salt line in every file, so the builder's
cache never serves one tool with another's layers; a tool's images are removed once its rows are
measured, so that each meets an engine holding only its own. On the engine DOCKER_HOST names, side by side:

  cold      every image of the tool removed first (buildlib: its .doit.db and caches too), and
            BuildKit's build cache emptied: a fresh runner
  no-op     nothing changed since the last run
  one file  one file of one service (at the end of a chain) changed
  chain     one file of a chain's first service changed: the chain rebuilds
  force     buildlib force=1, the others --no-cache
  base bump the base image every chain starts from replaced by one with a new layer: all rebuild

for buildlib (BuildKit) serial and with -n 4, buildlib -n 4 on the classic builder (a docker CLI
without buildx), bake, compose and build.sh (`docker build` per service in order). Each cell:
the median wall time over the rounds, the images whose ID changed, the Docker API requests
(counted by a proxy on the engine's socket; BuildKit's session is one of them) and the peak
memory of the largest process. Then the no-op time against N for each tool, as a table and a plot
(benchmarks/results/noop.png). Needs the docker CLI with buildx and compose (scripts/engine up
installs them) and matplotlib; base images come from the loopback mirror 127.0.0.1:5000.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import shims  # noqa: E402
from engine_calls import EngineCalls  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BASE = "busybox:1.36"
MIRROR_BASE = f"127.0.0.1:5000/library/{BASE}"
SCENARIOS = ("cold", "no-op", "one file", "chain", "force", "base bump")
TOOLS = ("buildlib", "buildlib -n 4", "buildlib -n 4 (classic builder)", "docker buildx bake", "docker compose build",
         "build.sh (docker build loop)")


@dataclass(frozen=True)
class Shape:
    services: int
    files: int
    file_bytes: int
    chain: int

    def name(self, index: int) -> str:
        return f"s{index:03d}"

    def base_of(self, index: int) -> int | None:
        """The service this one is built FROM, or None for the base image."""
        return None if index % self.chain == 0 else index - 1

    def leaf(self) -> int:
        """A service at the end of a chain, near the middle: nobody is built from it."""
        index = self.services // 2
        while index % self.chain != self.chain - 1 and index + 1 < self.services:
            index += 1
        return index


@dataclass
class Tool:
    name: str
    folder: Path
    prefix: str                        # its images are {prefix}-sNNN:latest
    command: list[str]
    force: list[str]
    environment: dict = field(default_factory=dict)
    named_base: bool = False           # chained services are FROM a named context (see generate)

    def image(self, shape: Shape, index: int) -> str:
        return f"{self.prefix}-{shape.name(index)}:latest"


def generate(folder: Path, salt: str, prefix: str, shape: Shape, named_base: bool = False) -> None:
    """The services, with files whose bytes are the same for every tool but the salt line.

    A chained service is FROM the image before it; with named_base, FROM `base`, a build context
    the compose file names (`additional_contexts: base: service:...`), as bake and compose need
    to build a chain in one run.
    """
    randomness = random.Random(7)
    for index in range(shape.services):
        service = folder / "services" / shape.name(index)
        base = BASE if shape.base_of(index) is None else f"{prefix}-{shape.name(shape.base_of(index))}:latest"
        (service / "src").mkdir(parents=True)
        (service / "docs").mkdir()
        from_line = "base" if named_base and shape.base_of(index) is not None else base
        (service / "Dockerfile").write_text(f"FROM {from_line}\nCOPY src/ /app/{shape.name(index)}/\n")
        (service / ".dockerignore").write_text("*.log\n.git\n")
        for number in range(shape.files):
            where = "docs" if number % 10 == 9 else "src"
            body = randomness.randbytes(shape.file_bytes // 2).hex()
            (service / where / f"f{number:03d}.txt").write_text(f"{salt}\n{body}\n")


def compose_file(folder: Path, prefix: str, shape: Shape) -> None:
    lines = ["services:"]
    for index in range(shape.services):
        name = shape.name(index)
        lines += [f"  {name}:", f"    image: {prefix}-{name}:latest", "    build:", f"      context: ./services/{name}"]
        if shape.base_of(index) is not None:
            lines += ["      additional_contexts:", f"        base: service:{shape.name(shape.base_of(index))}"]
    (folder / "compose.yaml").write_text("\n".join(lines) + "\n")


def make_tools(work: Path, shape: Shape, wanted: set[str] | None = None) -> list[Tool]:
    """The tools to compare, each on a monorepo of its own; wanted (names) picks some."""
    tools = []
    doit = [sys.executable, "-m", "doit"]
    buildlib = work / "buildlib"
    classic = work / "classic"
    for folder, prefix in ((buildlib, "benchbl"), (classic, "benchcl")):
        generate(folder, folder.name, prefix, shape)
        (folder / "pyproject.toml").write_text(
            f'[tool.buildlib]\nproject = "{prefix}"\ntag = "latest"\nmirrors = ["127.0.0.1:5000"]\n')
        shutil.copy(ROOT / "dodo.py", folder / "dodo.py")
    tools.append(Tool("buildlib", buildlib, "benchbl", doit + ["build_all"], ["force=1"]))
    tools.append(Tool("buildlib -n 4", buildlib, "benchbl", doit + ["-n", "4", "build_all"], ["force=1"]))
    tools.append(Tool("buildlib -n 4 (classic builder)", classic, "benchcl", doit + ["-n", "4", "build_all"], ["force=1"],
                      shims.without_buildx(work / "without-buildx")))

    for name, prefix, command, force in (
            ("docker buildx bake", "benchbk", ["docker", "buildx", "bake", "--progress=quiet", "--load"],
             ["--no-cache"]),
            ("docker compose build", "benchdc", ["docker", "compose", "build", "-q"], ["--no-cache"])):
        folder = work / prefix
        generate(folder, prefix, prefix, shape, named_base=True)
        compose_file(folder, prefix, shape)
        tools.append(Tool(name, folder, prefix, command, force, named_base=True))

    loop = work / "loop"
    generate(loop, "loop", "benchsh", shape)
    steps = [f'docker build -q "$@" -t benchsh-{shape.name(i)}:latest services/{shape.name(i)} >/dev/null || exit 1'
             for i in range(shape.services)]
    (loop / "build.sh").write_text("#!/bin/sh\n" + "\n".join(steps) + "\n")
    tools.append(Tool("build.sh (docker build loop)", loop, "benchsh", ["sh", "build.sh"], ["--no-cache"]))
    return [tool for tool in tools if not wanted or tool.name in wanted]


@dataclass
class Measure:
    seconds: float
    rebuilt: int
    calls: int
    peak_mb: float
    failed: str = ""     # the failed run's last words: a tool that breaks at some size is a row too


class ToolFailed(Exception):
    """A measured command exited non-zero."""


def run(argv: list[str], folder: Path, environment: dict, calls: EngineCalls) -> tuple[float, float]:
    """Run a command through the counting proxy; its wall time and its largest process's peak MB."""
    calls.reset()
    started = time.perf_counter()
    # A user's installed packages have their bytecode; a machine that says not to write it would have
    # buildlib (an editable install here) compile its modules on every run, which no user pays.
    given = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    process = subprocess.Popen(argv, cwd=folder, env={**given, **environment, "DOCKER_HOST": calls.host},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        said = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
        print(f"{' '.join(argv)} failed in {folder}:\n" + "\n".join(said[-20:]), file=sys.stderr)
        raise ToolFailed(next((line for line in reversed(said) if "ERROR" in line), said[-1] if said else "no output"))
    return seconds, usage.ru_maxrss / 1024


def images_made(client: docker.APIClient, prefix: str) -> dict[str, str]:
    """Each of the tool's tags and when its image was made: a rebuild makes it anew.

    Not the image ID: on the containerd store every --load of a fully cached BuildKit build gives
    a new index digest (provenance), though the image is the same.
    """
    refs = [ref for image in client.images() for ref in image.get("RepoTags") or [] if ref.startswith(f"{prefix}-")]
    return {ref: client.inspect_image(ref)["Created"] for ref in refs}


def remove_images(client: docker.APIClient, tool: Tool) -> None:
    for ref in images_made(client, tool.prefix):
        client.remove_image(ref, force=True)
    client.prune_images(filters={"dangling": True})
    for state in (".doit.db", ".buildlib"):
        path = tool.folder / state
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def touch(tool: Tool, shape: Shape, index: int, round_number: int) -> None:
    path = tool.folder / "services" / shape.name(index) / "src" / "f000.txt"
    with open(path, "a") as file:
        file.write(f"edit {round_number}\n")


def bump_base(salt: str) -> None:
    """A new image under the base's name: the mirror's base and a layer of its own (what a security update does)."""
    dockerfile = f"FROM {MIRROR_BASE}\nRUN echo {salt} > /bumped\n"
    subprocess.run(["docker", "buildx", "build", "--quiet", "--network", "none", "--load", "--tag", BASE, "-"],
                   input=dockerfile.encode(), check=True, stdout=subprocess.DEVNULL)


def measure(client, calls: EngineCalls, tool: Tool, shape: Shape, scenario: str, rounds: int) -> Measure:
    results = []
    for number in range(rounds):
        if scenario == "base bump":
            bump_base(f"{tool.prefix}-{number}-{time.time_ns()}")
        if scenario == "cold":   # a fresh runner: no images, and no layers in BuildKit's cache either
            remove_images(client, tool)
            client.prune_builds(all=True)
        elif scenario == "one file":
            touch(tool, shape, shape.leaf(), number)
        elif scenario == "chain":
            touch(tool, shape, shape.leaf() - shape.leaf() % shape.chain, number)
        before = images_made(client, tool.prefix)
        argv = tool.command + (tool.force if scenario == "force" else [])
        try:
            seconds, peak = run(argv, tool.folder, tool.environment, calls)
        except ToolFailed as failure:
            return Measure(float("nan"), 0, calls.total(), 0, failed=str(failure)[:100])
        after = images_made(client, tool.prefix)
        rebuilt = sum(1 for ref, made in after.items() if before.get(ref) != made)
        results.append(Measure(seconds, rebuilt, calls.total(), peak))
    return Measure(statistics.median(r.seconds for r in results), max(r.rebuilt for r in results),
                   max(r.calls for r in results), max(r.peak_mb for r in results))


def single_build(calls: EngineCalls, tool: Tool, shape: Shape, rounds: int) -> Measure:
    """One `docker build` of the changed service alone, after the same one-file change."""
    name, times = shape.name(shape.leaf()), []
    for number in range(rounds):
        touch(tool, shape, shape.leaf(), 100 + number)
        argv = ["docker", "build", "-q", "-t", tool.image(shape, shape.leaf()), f"services/{name}"]
        times.append(run(argv, tool.folder, tool.environment, calls))
    return Measure(statistics.median(t for t, _ in times), 1, calls.total(), max(p for _, p in times))


def stat_walk(calls: EngineCalls, tool: Tool, rounds: int) -> Measure:
    """The floor: a Python process that stats every file of the services and lists the tool's images once
    (only those: on the containerd store a listing costs for each image it returns)."""
    script = ("import os, docker\n"
              "for top, dirs, files in os.walk('services'):\n"
              "    for name in files + dirs: os.stat(os.path.join(top, name))\n"
              "docker.APIClient(version='auto', **docker.utils.kwargs_from_env())"
              f".images(filters={{'reference': '{tool.prefix}-*'}})\n")
    times = [run([sys.executable, "-c", script], tool.folder, {}, calls) for _ in range(rounds)]
    return Measure(statistics.median(t for t, _ in times), 0, calls.total(), max(p for _, p in times))


def noop_curve(client, calls: EngineCalls, sizes: list[int], shape: Shape, rounds: int,
               wanted: set[str]) -> dict[str, dict[int, float]]:
    """No-op seconds against the number of services, for each tool and for the stat walk."""
    curve: dict[str, dict[int, float]] = {}
    for size in sizes:
        smaller = Shape(size, shape.files, shape.file_bytes, shape.chain)
        with tempfile.TemporaryDirectory(prefix="buildlib-scale-") as work:
            tools = [tool for tool in make_tools(Path(work), smaller, wanted) if tool.name != "buildlib -n 4"]
            for tool in tools:
                print(f"  N={size}: {tool.name}", file=sys.stderr, flush=True)
                remove_images(client, tool)
                try:
                    run(tool.command, tool.folder, tool.environment, calls)
                except ToolFailed:
                    curve.setdefault(tool.name, {})[size] = float("nan")
                    remove_images(client, tool)
                    continue
                curve.setdefault(tool.name, {})[size] = measure(client, calls, tool, smaller, "no-op", rounds).seconds
                if tool is tools[0]:   # while its images are there, as in the table
                    curve.setdefault("stat walk + 1 listing", {})[size] = stat_walk(calls, tool, rounds).seconds
                remove_images(client, tool)
    return curve


def plot(curve: dict[str, dict[int, float]], path: Path, shape: Shape) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for tool, points in curve.items():
        sizes = sorted(points)
        axes.plot(sizes, [points[size] for size in sizes], marker="o", label=tool)
    axes.set_xlabel("services")
    axes.set_ylabel("no-op run, seconds (median)")
    axes.set_yscale("log")
    axes.set_title(f"Nothing changed: {shape.files} files per service")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def ratio(seconds: float, reference: float | None) -> str:
    """seconds as a multiple of the reference's ('' without one)."""
    return f"{seconds / reference:.2f}x" if reference and not math.isnan(reference) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-bytes", type=int, default=2048)
    parser.add_argument("--chain", type=int, default=3, help="services per chain (1: no chains)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cheap scenario (median)")
    parser.add_argument("--heavy-rounds", type=int, default=1, help="runs of cold, force and base bump")
    parser.add_argument("--sizes", default="10,30,100", help="more service counts for the no-op curve ('': none)")
    parser.add_argument("--tools", default="", help=f"comma-separated, of: {', '.join(TOOLS)} (default: all)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    options = parser.parse_args()
    wanted = {name.strip() for name in options.tools.split(",") if name.strip()}
    scenarios = [name.strip() for name in options.scenarios.split(",") if name.strip()]
    unknown = sorted(wanted - set(TOOLS)) + [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown tool or scenario: {', '.join(unknown)} (tools: {', '.join(TOOLS)}; "
                 f"scenarios: {', '.join(SCENARIOS)})")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        sys.exit("needs the docker CLI with the buildx and compose plugins (scripts/engine up installs them)")
    shape = Shape(options.services, options.files, options.file_bytes, max(1, options.chain))
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    client.pull(MIRROR_BASE)
    client.tag(MIRROR_BASE, BASE.split(":")[0], BASE.split(":")[1])
    calls = EngineCalls(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="buildlib-scale-") as work:
        tools = make_tools(Path(work), shape, wanted)
        plain = next((tool for tool in tools if not tool.named_base), None)
        for tool, following in zip(tools, [*tools[1:], None]):
            for scenario in scenarios:
                print(f"{tool.name}: {scenario}", file=sys.stderr, flush=True)
                heavy = scenario in ("cold", "force", "base bump")
                result = measure(client, calls, tool, shape, scenario, options.heavy_rounds if heavy else options.rounds)
                rows.append([scenario, tool.name, result])
            if tool is plain and "one file" in scenarios:
                rows.append(["one file", "docker build of that service alone",
                             single_build(calls, plain, shape, options.rounds)])
            if tool is plain:   # while its images are there: the listing costs for each one it returns
                rows.append(["no-op", "stat walk + 1 listing (floor)", stat_walk(calls, plain, options.rounds)])
            if following is None or following.prefix != tool.prefix:
                # On the containerd store every call slows with the images held: each tool meets only its own.
                remove_images(client, tool)
    rows.sort(key=lambda row: SCENARIOS.index(row[0]))
    bake = {scenario: m.seconds for scenario, tool, m in rows if tool == "docker buildx bake"}
    failures = [f"{scenario}, {tool}: {m.failed}" for scenario, tool, m in rows if m.failed]
    table = tabulate([[scenario, tool, "failed *" if m.failed else f"{m.seconds:.2f}",
                       "" if m.failed else ratio(m.seconds, bake.get(scenario)), m.rebuilt, m.calls, f"{m.peak_mb:.0f}"]
                      for scenario, tool, m in rows],
                     headers=["scenario", "tool", "seconds", "/ bake", "images rebuilt", "API calls", "peak MB"])
    table += "".join(f"\n* {failure}" for failure in failures)   # the cell stays narrow; the reason is below
    heading = (f"{shape.services} services x {shape.files} files of {shape.file_bytes} bytes, chains of {shape.chain}; "
               f"median of {options.rounds} (cold, force, base bump: {options.heavy_rounds}); {os.cpu_count()} cores")
    print(heading)
    print(table)
    sizes = sorted({int(size) for size in options.sizes.split(",") if size} | {shape.services})
    curve = noop_curve(client, calls, [size for size in sizes if size != shape.services], shape, options.rounds,
                       wanted)
    for scenario, tool, m in rows:
        if scenario == "no-op":
            key = "stat walk + 1 listing" if tool.startswith("stat walk") else tool
            curve.setdefault(key, {})[shape.services] = m.seconds
    curve.pop("buildlib -n 4", None)
    curve_table = tabulate([[tool, *(f"{points.get(size, float('nan')):.2f}" for size in sizes)]
                            for tool, points in curve.items()], headers=["no-op seconds", *map(str, sizes)])
    print(curve_table)
    calls.close()
    if wanted or scenarios != list(SCENARIOS) or len(sizes) < 2:
        print(f"a partial run: {RESULTS} left as it was")
        return
    RESULTS.mkdir(exist_ok=True)
    plot(curve, RESULTS / "noop.png", shape)
    (RESULTS / "scale.md").write_text(f"{heading}\n\n```\n{table}\n```\n\n```\n{curve_table}\n```\n")
    print(f"wrote {RESULTS / 'noop.png'} and {RESULTS / 'scale.md'}")


if __name__ == "__main__":
    main()

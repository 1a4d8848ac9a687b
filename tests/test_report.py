"""What a person sees: build logs, history, reasons and the graph (issue 5), on the real engine."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from test_builds import SERVICES


def test_parallel_builds_keep_one_intact_log_each_and_a_failure_shows_its_last_lines(make_repo, uid):
    # The uid keeps the layer cache of earlier runs from answering instead of the steps.
    steps = "".join(f"RUN echo {{name}}-line-{index} && echo {uid} > /dev/null\n" for index in range(6))
    dockerfiles = {name: "FROM busybox:1.36\n" + steps.format(name=name) for name in ("l1", "l2", "l3", "l4")}
    dockerfiles["l4"] += "RUN echo l4-last-words && false\n"
    repo = make_repo(dockerfiles, 'mirrors = ["127.0.0.1:5000"]\n')
    run = repo.doit("-n", "4", "build_all")
    assert run.returncode != 0
    assert run.results() == {"l1": "built", "l2": "built", "l3": "built", "l4": "failed"}
    for name in ("l1", "l2", "l3", "l4"):
        log = (repo.path / ".buildlib/logs" / f"{name}.log").read_text()
        # BuildKit's plain progress: "#7 0.113 l1-line-0" for what a step printed
        assert [f"{name}-line-{index}" for index in range(6)] == re.findall(rf"^#\d+ [\d.]+ ({name}-line-\d)$", log, re.M)
        assert not re.search(r"^#\d+ [\d.]+ l\d-line", log.replace(f"{name}-line", ""), re.M)   # nobody else's output
        assert ("naming to " in log) == (name != "l4")
    failure = run.stderr[run.stderr.index("FAILED l4"):]
    assert "build failed at 'RUN echo l4-last-words && false'" in failure
    assert "    | l4-last-words" in failure
    assert "    full log: .buildlib/logs/l4.log" in failure
    assert "l1-line" not in run.stderr   # build output goes to the logs, not the screen


def test_history_shows_every_run_with_durations(repo):
    assert repo.doit("build_all").returncode == 0
    repo.edit("services/backend/src/main.go", "// again\n")
    assert repo.doit("build_all").returncode == 0
    shown = repo.doit("history")
    assert shown.returncode == 0, shown.stderr
    runs = re.findall(r"^\d{4}-\d\d-\d\dT\S+\s+(\d+\.\d)s\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", shown.stdout, re.M)
    assert [tuple(map(int, row[1:])) for row in runs] == [(1, 0, 8, 0), (9, 0, 0, 0)]   # newest first
    trend = re.search(r"^backend\s+2\s+(\d+\.\d)s\s+(\d+\.\d)s\s+(\d+\.\d)s$", shown.stdout, re.M)
    assert trend, shown.stdout
    assert re.search(r"^frontend\s+1\s", shown.stdout, re.M)


def test_history_damage_costs_only_the_damaged_lines(repo):
    assert repo.doit("build_all").returncode == 0
    with open(repo.path / ".buildlib/history.jsonl", "a") as history:
        history.write("{not json\n\x00\x01\n")
    shown = repo.doit("history")
    assert shown.returncode == 0 and re.search(r"^backend\s+1\s", shown.stdout, re.M), shown.stdout + shown.stderr


def test_status_and_explain_name_each_file_edited_added_and_removed(repo):
    assert repo.doit("build_all").returncode == 0
    repo.edit("services/backend/src/main.go", "// edited\n")
    (repo.path / "services/backend/src/extra.go").write_text("package main\n")
    (repo.path / "services/backend/go.mod").unlink()
    reason = repo.status()["backend"]["reason"]
    assert reason == "src/main.go changed; src/extra.go added; go.mod removed"
    for index in range(5):
        (repo.path / f"services/backend/src/more{index}.go").write_text("package main\n")
    assert "and 3 more added" in repo.status()["backend"]["reason"]
    explained = repo.doit("explain:backend")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.splitlines()[1:] == [
        "  src/main.go changed", "  src/extra.go added", *(f"  src/more{index}.go added" for index in range(5)),
        "  go.mod removed"]


def test_graph_is_dot_with_a_node_per_service_and_base_image_and_an_edge_per_dependency(repo):
    run = repo.doit("graph")
    assert run.returncode == 0, run.stderr
    dot = (repo.path / ".buildlib/graph.dot").read_text()
    nodes = set(re.findall(r'^  "([^"]+)" \[', dot, re.M))
    edges = set(re.findall(r'^  "([^"]+)" -> "([^"]+)";$', dot, re.M))
    bases = {"alpine:3.20", "busybox:1.36", "golang:1.23-alpine", "node:20-alpine", "nginx:1.27-alpine",
             "python:3.12-alpine", "postgres:16-alpine"}
    assert nodes == {f"service:{name}" for name in SERVICES} | {f"image:{ref}" for ref in bases} \
        | {"template:services/nginx/conf/default.conf.tpl"}
    assert ("service:jupyterhub", "service:singleuser") in edges
    assert ("image:golang:1.23-alpine", "service:backend") in edges
    assert ("template:services/nginx/conf/default.conf.tpl", "service:nginx") in edges
    assert all(target.startswith("service:") for _, target in edges)
    assert re.search(r'"service:backend" \[label="backend\\nMISSING".*fillcolor=lightgrey', dot)
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed: the DOT text was checked, not drawn")
    assert subprocess.run(["dot", "-Tcanon", str(repo.path / ".buildlib/graph.dot")],
                          capture_output=True).returncode == 0
    assert (repo.path / ".buildlib/graph.svg").read_text().lstrip().startswith("<?xml")

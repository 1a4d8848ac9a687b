"""Services built together in one `docker buildx bake` (batch.py, builders/bake.py): each keeps its own
result, reason, log and failure; a failure costs the others a restart, never their result."""
from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.builders import BuildRequest
from buildlib.builders.bake import Router, image_record, named_context, own_failures, readable, target_names
from buildlib.builders.buildkit import failure, flags, target
from images import file_in_image

MIRRORS = 'mirrors = ["127.0.0.1:5000"]\n'

# What bake printed here for three targets, b failing while a and c ran (trimmed).
BAKE_FAILURE = """#0 building with "default" instance using docker driver
#1 [internal] load local bake definitions
#1 DONE 0.0s
#5 [b internal] load metadata for docker.io/library/busybox:1.36
#5 DONE 0.0s
#9 [b 1/2] FROM docker.io/library/busybox:1.36@sha256:5627
#9 CACHED
#10 [b 2/2] RUN echo boom && exit 3
#10 0.071 boom
#10 ERROR: process "/bin/sh -c echo boom && exit 3" did not complete successfully: exit code: 3

#11 [c 2/2] RUN sleep 2 && echo c > /c
#11 CANCELED

#12 [a 2/2] RUN sleep 3 && echo a > /a
#12 CANCELED
------
 > [b 2/2] RUN echo boom && exit 3:
0.071 boom
------
Dockerfile:2
ERROR: target b: failed to solve: process "/bin/sh -c echo boom && exit 3" did not complete successfully: exit code: 3"""


def split(text: str, names: set[str], bases: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    router, parts = Router(names, bases), {name: [] for name in names}
    for line in text.splitlines():
        for name, routed in router.route(line):
            parts[name].append(routed)
    return parts


def test_bakes_output_goes_to_the_target_each_step_belongs_to():
    parts = split(BAKE_FAILURE, {"a", "b", "c"})
    assert "#10 0.071 boom" in parts["b"] and not any("boom" in line for line in parts["a"] + parts["c"])
    assert "#12 CANCELED" in parts["a"] and "#12 CANCELED" not in parts["c"]
    assert all('#0 building with "default" instance using docker driver' in part for part in parts.values())
    assert parts["b"][-1] == 'ERROR: failed to solve: process "/bin/sh -c echo boom && exit 3" did not complete ' \
                             'successfully: exit code: 3'
    assert not any(line.startswith("ERROR: ") for line in parts["a"] + parts["c"])   # cancelled, not failed
    said = failure(parts["b"], "services/b/Dockerfile")
    assert said.startswith("build failed at 'RUN echo boom && exit 3': process ") and said.endswith("    | boom")


def test_the_dockerfile_excerpt_goes_to_the_target_the_error_names_not_to_the_last_block():
    cancelled_after = BAKE_FAILURE.replace("------\nDockerfile:2", "------\n------\n > [a] exporting to image:\n"
                                           "------\nDockerfile:2\n--------------------\n   2 | >>> RUN echo boom")
    parts = split(cancelled_after, {"a", "b", "c"})
    assert "   2 | >>> RUN echo boom" in parts["b"] and not any("boom" in line for line in parts["a"] + parts["c"])
    assert parts["b"][-4:-1] == ["Dockerfile:2", "--------------------", "   2 | >>> RUN echo boom"]


# What bake printed here when a target built on another (`target:` context) ran the other's failing step
# first: the step named after the wrong target, or after both (trimmed).
BASE_FAILURE_SEEN_FROM_ABOVE = """#26 [orphan 2/2] RUN echo last-words && exit 3
#26 ...

#26 [orphan 2/2] RUN echo last-words && exit 3
#26 3.914 last-words
#26 ERROR: process "/bin/sh -c echo last-words && exit 3" did not complete successfully: exit code: 3

#27 [other 2/2] RUN sleep 2
#27 CANCELED
------
 > [orphan 2/2] RUN echo last-words && exit 3:
3.914 last-words
------
ERROR: target bad: failed to run Build function: process "/bin/sh -c echo last-words && exit 3" did not complete successfully: exit code: 3"""
NAMED_AFTER_BOTH = BASE_FAILURE_SEEN_FROM_ABOVE.replace("#26 [orphan 2/2] RUN echo last-words && exit 3\n#26 3",
                                                        "#26 [bad 2/2] RUN echo last-words && exit 3\n#26 3")


@pytest.mark.parametrize("printed", [BASE_FAILURE_SEEN_FROM_ABOVE, NAMED_AFTER_BOTH])
def test_a_failed_step_of_a_base_built_in_the_same_bake_is_the_bases_whatever_name_bake_printed(printed):
    parts = split(printed, {"bad", "orphan", "other"}, {"orphan": ["bad"], "bad": []})
    assert failure(parts["bad"], "services/bad/Dockerfile") == (
        "build failed at 'RUN echo last-words && exit 3': process \"/bin/sh -c echo last-words && exit 3\" did not "
        "complete successfully: exit code: 3\n    | last-words")
    assert own_failures(parts) == {"bad"}
    assert failure(split(printed, {"bad", "orphan", "other"})["bad"], "D").startswith("build failed: failed to run")


# On the containerd store a target cancelled while it exported may end in an error of its own making.
CANCELLED_EXPORT = """#14 [good] exporting to image
#14 exporting layers done
#14 ERROR: failed to commit c1xw to gvvx during finalize: snapshot c1xw does not exist: not found
ERROR: target good: failed to solve: failed to commit c1xw to gvvx during finalize: snapshot c1xw does not exist"""


def test_a_target_cancelled_by_anothers_failure_has_not_failed_itself():
    parts = split(BAKE_FAILURE.replace("#12 [a 2/2]", "#12 [good 2/2]") + "\n" + CANCELLED_EXPORT, {"b", "good"})
    assert own_failures(parts) == {"b"}
    assert own_failures({"good": parts["good"]}) == {"good"}    # alone, the same error is its own
    assert own_failures({"b": parts["b"], "good": []}) == {"b"}


def test_a_request_is_one_bake_target_and_the_same_build_flags():
    request = BuildRequest(image="p-a:t", context="/repo/a", dockerfile=b"", dockerfile_path="a/Dockerfile",
                           args={"V": "1"}, labels={"k": "v"}, secret_sources={"npmrc": "src=/home/me/.npmrc"},
                           ssh=("deploy=/keys/id",), contexts={"assets": "/repo/assets", "base": "docker-image://b:1"},
                           platform="linux/arm64", nocache=True, name="a")
    definition = target(request, "none", Path("/tmp/x/Dockerfile"))
    assert definition == {"context": "/repo/a", "dockerfile": "/tmp/x/Dockerfile", "tags": ["p-a:t"],
                          "labels": {"k": "v"}, "args": {"V": "1"}, "secret": ["id=npmrc,src=/home/me/.npmrc"],
                          "ssh": ["deploy=/keys/id"], "contexts": {"assets": "/repo/assets", "base": "docker-image://b:1"},
                          "platforms": ["linux/arm64"], "network": "none", "no-cache": True}
    assert flags(definition)[:4] == ["--file", "/tmp/x/Dockerfile", "--tag", "p-a:t"]
    assert flags(definition)[-1] == "--no-cache"
    # bake refuses to read outside its working folder unless told it may: each path the targets read.
    assert readable([definition]) == ["/home/me/.npmrc", "/keys/id", "/repo/a", "/repo/assets", "/tmp/x"]
    named = [BuildRequest(image=f"i{n}", context="/c", dockerfile=b"", dockerfile_path="D", name=name)
             for n, name in enumerate(["web.api", "web-api", ""])]
    assert target_names(named) == ["web-api", "web-api-1", "image2"]


def test_ready_services_build_together_and_a_failure_is_only_its_own(make_repo, uid):
    services = {f"s{n}": f"FROM busybox:1.36\nRUN sleep 1 && echo {uid}-{n} > /n\n" for n in range(5)}
    services["bad"] = f"FROM busybox:1.36\nRUN echo {uid}-last-words && exit 3\n"
    services["child"] = f"ARG REGISTRY\nARG TAG\nFROM ${{REGISTRY}}bt{uid}-s0:${{TAG}}\nRUN echo child > /c\n"
    services["orphan"] = f"ARG REGISTRY\nARG TAG\nFROM ${{REGISTRY}}bt{uid}-bad:${{TAG}}\nRUN echo orphan\n"
    repo = make_repo(services, MIRRORS)
    run = repo.doit("build_all")
    assert run.returncode != 0
    assert run.results() == {**{f"s{n}": "built" for n in range(5)}, "bad": "failed", "child": "built",
                             "orphan": "failed"}, run.stderr
    assert "more that are ready, in one BuildKit run" in run.stderr, run.stderr
    failed = next(line for line in run.stderr.splitlines() if "FAILED bad" in line)
    assert f"build failed at 'RUN echo {uid}-last-words && exit 3'" in failed and "full log: .buildlib/logs/bad.log" \
        in run.stderr
    assert "not built: build:bad failed" in run.stderr or "not built: bad failed" in run.stderr
    logs = {name: (repo.path / f".buildlib/logs/{name}.log").read_text() for name in ("s1", "bad")}
    assert f"{uid}-last-words" in logs["bad"] and f"{uid}-last-words" not in logs["s1"]
    assert f"[s1 2/2] RUN sleep 1 && echo {uid}-1" in logs["s1"]
    statuses = repo.status()
    assert {name for name, row in statuses.items() if row["status"] == "OK"} == {*(f"s{n}" for n in range(5)), "child"}
    assert statuses["child"]["reason"] == ""
    assert list((repo.path / ".buildlib/runs").iterdir()) == []   # the run's folder went with the run
    again = repo.doit("build_all")
    assert again.results() == {**{f"s{n}": "up to date" for n in range(5)}, "bad": "failed", "child": "up to date",
                               "orphan": "failed"}, again.stderr


def test_in_parallel_every_image_is_built_and_each_rebuild_explained(make_repo, uid, client):
    services = {f"s{n}": f"FROM busybox:1.36\nRUN echo {uid}-{n} > /n\n" for n in range(10)}
    repo = make_repo(services, MIRRORS)
    run = repo.doit("-n", "4", "build_all")
    assert run.results() == {name: "built" for name in services}, run.stderr
    assert run.stderr.count("] built ") == 10
    first = {name: repo.inspect(name)["Id"] for name in services}
    repo.edit("services/s3/Dockerfile", "RUN echo more\n")
    repo.edit("services/s7/Dockerfile", "RUN echo more\n")
    changed = repo.doit("-n", "4", "build_all")
    assert changed.built() == {"s3", "s7"}, changed.stderr
    starts = [line for line in changed.stderr.splitlines() if line.startswith("[") and "] building " in line]
    assert len(starts) == 2 and all(line.endswith("(Dockerfile changed)") for line in starts), changed.stderr
    assert {name for name in services if repo.inspect(name)["Id"] != first[name]} == {"s3", "s7"}


def test_a_named_build_leaves_other_stale_services_alone(make_repo, uid):
    repo = make_repo({"a": f"FROM busybox:1.36\nRUN echo {uid}a\n", "b": f"FROM busybox:1.36\nRUN echo {uid}b\n"},
                     MIRRORS)
    run = repo.doit("build:a")
    assert run.results() == {"a": "built"}, run.stderr
    assert repo.status()["b"]["status"] == "MISSING"


def test_a_base_built_in_the_same_bake_is_named_as_buildkit_looks_it_up():
    # BuildKit looks `FROM shop-web:latest` up among the named contexts as `shop-web`: checked on buildx 0.29.
    assert named_context("shop-web:latest") == "shop-web"
    assert named_context("docker.io/library/shop-web:1") == "shop-web:1"
    assert named_context("127.0.0.1:5000/shop/web") == "127.0.0.1:5000/shop/web"


def test_an_image_built_by_bake_is_known_from_its_metadata():
    built = {"containerimage.digest": "sha256:ab", "buildx.build.provenance": {
        "invocation": {"environment": {"platform": "linux/arm64/v8"}}}}
    request = BuildRequest(image="p-a:t", context="/c", dockerfile=b"FROM x\n", dockerfile_path="D")
    assert image_record(request, built) == {"Id": "sha256:ab", "Os": "linux", "Architecture": "arm64",
                                            "Config": {"OnBuild": None}}
    # Its own ONBUILD lines would be in its config: left for an inspect to say.
    triggers = BuildRequest(image="p-a:t", context="/c", dockerfile=b"FROM x\n  onbuild COPY . /\n", dockerfile_path="D")
    assert image_record(triggers, built) == {"Id": "sha256:ab"}


def test_a_chain_is_built_in_one_bake_each_on_the_base_just_built(make_repo, uid, client):
    chained = "ARG REGISTRY\nARG TAG\nFROM ${{REGISTRY}}bt{uid}-{base}:${{TAG}}\nRUN cat /chain > /below && echo {name} >> /chain\n"
    repo = make_repo({"base": f"FROM busybox:1.36\nCOPY round.txt /chain\n",
                      "mid": chained.format(uid=uid, base="base", name="mid"),
                      "top": chained.format(uid=uid, base="mid", name="top"),
                      "side": f"FROM busybox:1.36\nRUN echo {uid} > /side\n"}, MIRRORS)
    for number in range(2):
        (repo.path / "services/base/round.txt").write_text(f"round {number}\n")
        run = repo.doit("build_all")
        assert run.built() == ({"base", "mid", "top", "side"} if number == 0 else {"base", "mid", "top"}), run.stderr
        assert run.stderr.count("in one BuildKit run") == 1, run.stderr
        assert file_in_image(client, repo.image("top"), "/chain") == f"round {number}\nmid\ntop\n".encode()
        assert repo.doit("build_all").built() == set()
        assert {row["status"] for row in repo.status().values()} == {"OK"}


def test_a_service_cancelled_after_its_base_was_built_is_baked_again_on_it(make_repo, uid, client):
    # bad fails while top still sleeps and base is done: the next bake has top alone, base only through
    # top's `target:` context, and bake must still be allowed to read base's files.
    repo = make_repo({"base": f"FROM busybox:1.36\nRUN echo {uid} > /base\n",
                      "top": f"ARG REGISTRY\nARG TAG\nFROM ${{REGISTRY}}bt{uid}-base:${{TAG}}\nRUN sleep 6\n",
                      "bad": f"FROM busybox:1.36\nRUN sleep 2 && echo {uid} && exit 3\n"}, MIRRORS)
    run = repo.doit("build_all")
    assert run.results() == {"base": "built", "top": "built", "bad": "failed"}, run.stderr
    assert file_in_image(client, repo.image("top"), "/base") == f"{uid}\n".encode()


def test_a_chain_on_a_base_that_fails_fails_in_one_line_each(make_repo, uid):
    repo = make_repo({"base": f"FROM busybox:1.36\nRUN echo {uid} && exit 3\n",
                      "mid": f"ARG REGISTRY\nARG TAG\nFROM ${{REGISTRY}}bt{uid}-base:${{TAG}}\nRUN true\n",
                      "side": f"FROM busybox:1.36\nRUN echo {uid} > /side\n"}, MIRRORS)
    run = repo.doit("build_all")
    assert run.results() == {"base": "failed", "mid": "failed", "side": "built"}, run.stderr
    assert "Traceback" not in run.stderr
    assert repo.status()["mid"]["status"] == "MISSING"

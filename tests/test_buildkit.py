"""The BuildKit builder's pure parts: its command line, buildx's version, and a failure in one line."""
from __future__ import annotations

from pathlib import Path

from buildlib.builders import BuildRequest
from buildlib.builders.buildkit import BuildKit, failure, version_of

FAILED_RUN = """#0 building with "default" instance using docker driver
#5 [2/4] RUN echo first
#5 0.097 first
#5 DONE 0.1s
#6 [build 3/4] RUN echo explaining line && false
#6 0.104 explaining line
#6 0.104 more
#6 ERROR: process "/bin/sh -c echo explaining line && false" did not complete successfully: exit code: 1
------
 > [build 3/4] RUN echo explaining line && false:
0.104 explaining line
------
ERROR: failed to build: failed to solve: process "/bin/sh -c echo explaining line && false" did not complete successfully: exit code: 1"""

NO_FRONTEND = """#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#2 resolve image config for docker-image://docker.io/docker/dockerfile:1
#2 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": no such host
ERROR: failed to build: failed to solve: failed to resolve source metadata for docker.io/docker/dockerfile:1: no such host"""


def test_a_failed_step_is_named_with_its_error_and_last_lines():
    said = failure(FAILED_RUN.splitlines(), "services/a/Dockerfile")
    assert said == ("build failed at 'RUN echo explaining line && false': process \"/bin/sh -c echo explaining "
                    "line && false\" did not complete successfully: exit code: 1\n    | explaining line\n    | more")


def test_an_error_outside_any_step_is_buildkits_last_words():
    lines = ["#1 [internal] load build definition from Dockerfile",
             "ERROR: failed to build: failed to solve: dockerfile parse error on line 3: unknown instruction: FORM"]
    assert failure(lines, "D") == "build failed: dockerfile parse error on line 3: unknown instruction: FORM"
    assert failure([], "D") == "build failed: buildx ended without a word"


def test_a_frontend_that_cannot_be_had_says_so_in_one_line():
    said = failure(NO_FRONTEND.splitlines(), "services/a/Dockerfile")
    assert said.startswith("services/a/Dockerfile: the Dockerfile frontend docker.io/docker/dockerfile:1 that its "
                           "# syntax= line names cannot be had: failed to resolve source metadata")
    assert "\n" not in said


def test_a_remote_builder_that_does_not_answer_is_named():
    lines = ['#0 building with "far" instance using remote driver', "#1 [internal] waiting for connection",
             "#1 ERROR: context deadline exceeded", "ERROR: failed to build: context deadline exceeded"]
    assert failure(lines, "D") == "builder far cannot be reached: context deadline exceeded"


def test_buildx_versions():
    assert version_of("github.com/docker/buildx 0.29.1+ds1 0.29.1+ds1-4") == (0, 29)
    assert version_of("github.com/docker/buildx v0.9.1 ed00243") == (0, 9)
    assert version_of("something else") is None


def test_the_command_line_carries_everything_but_the_secret_values():
    request = BuildRequest(image="p-a:t", context="/repo/a", dockerfile=b"FROM x\n", dockerfile_path="a/Dockerfile",
                           args={"V": "1"}, secrets={"TOKEN": "s3cr3t"}, labels={"k": "v w"}, target="run",
                           secret_sources={"TOKEN": "env=TOKEN", "npmrc": "src=/home/me/.npmrc"}, tags=("x/a:1",),
                           ssh=("default",),
                           platform="linux/arm64", nocache=True)
    command = BuildKit("remote").command(request, default_network="none", dockerfile=Path("/tmp/x/Dockerfile"))
    assert command == ["docker", "buildx", "build", "--progress=plain", "--load", "--builder", "remote",
                       "--file", "/tmp/x/Dockerfile", "--tag", "p-a:t", "--tag", "x/a:1", "--label", "k=v w", "--build-arg", "V=1",
                       "--secret", "id=TOKEN,env=TOKEN", "--secret", "id=npmrc,src=/home/me/.npmrc", "--ssh", "default",
                       "--target", "run", "--platform", "linux/arm64",
                       "--network", "none", "--no-cache", "/repo/a"]
    assert "s3cr3t" not in " ".join(command)
    plain = BuildRequest(image="p-a:t", context="/c", dockerfile=b"", dockerfile_path="D", network="host")
    assert BuildKit().command(plain, "none", Path("D"))[-3:] == ["--network", "host", "/c"]
    assert "--network" not in BuildKit().command(plain.__class__(image="i", context="/c", dockerfile=b"",
                                                                dockerfile_path="D"), None, Path("D"))

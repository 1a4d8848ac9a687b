"""Property tests: the Dockerfile analysis and the .dockerignore handling against the libraries
that define them for Python (dockerfile-parse, docker-py), and the parser under fuzzing."""
from __future__ import annotations

import io
import shutil

from dockerfile_parse import DockerfileParser
from docker.utils.build import exclude_paths
from hypothesis import HealthCheck, given, settings, strategies as st

from buildlib.context import context_paths
from buildlib.dockerfile import analyse, instructions, with_labels
from buildlib.errors import DockerfileError
from buildlib.filecache import DigestCache

IMAGES = st.sampled_from(["busybox:1.36", "alpine", "registry.local:5000/team/app:2", "golang@sha256:" + "a" * 64])
WORDS = st.text(alphabet="abcxyz019._-/", min_size=1, max_size=8)
SOURCES = WORDS.filter(lambda word: not word.startswith("--"))   # Docker reads a leading "--" as a flag


@st.composite
def dockerfiles(draw) -> str:
    """Multi-stage Dockerfiles with literal images: what both parsers must read alike."""
    lines = []
    for index in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(["", f" AS stage{index}", f" as Stage{index}"]))
        lines.append(f"FROM {draw(IMAGES)}{name}")
        for _ in range(draw(st.integers(0, 4))):
            lines.append(draw(st.sampled_from([
                f"RUN echo {draw(WORDS)}",
                f"RUN echo {draw(WORDS)} && \\\n    echo {draw(WORDS)}",
                f"COPY {draw(SOURCES)} /app/",
                f"ADD {draw(SOURCES)} {draw(WORDS)} /opt/",
                f"ENV KEY_{index}={draw(WORDS)}",
                f"# {draw(WORDS)}",
                f"WORKDIR /{draw(WORDS)}",
                f"LABEL k{index}={draw(WORDS)}",
            ])))
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None)
@given(dockerfiles())
def test_instructions_and_base_images_match_dockerfile_parse(text):
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    theirs = [(entry["instruction"], entry["startline"] + 1) for entry in parser.structure
              if entry["instruction"] != "COMMENT"]
    assert [(step.keyword, step.line) for step in instructions(text.encode(), "D")] == theirs
    analysis = analyse(text.encode(), "D", {})
    # Stages FROM literal images that copy from none: BuildKit builds (and resolves the image of) the last alone.
    assert [use.ref for use in analysis.images] == parser.parent_images[-1:]


@settings(max_examples=150, deadline=None)
@given(dockerfiles())
def test_labels_end_the_target_stage_and_change_nothing_else(text):
    before = analyse(text.encode(), "D", {})
    labelled = with_labels(text.encode(), "D", {"io.buildlib.inputs-hash": "sha256:1"}, None)
    after = analyse(labelled, "D", {})
    assert (after.stages, after.images, after.context_sources) == (before.stages, before.images, before.context_sources)
    assert instructions(labelled, "D")[-1].keyword == "LABEL"


FRAGMENTS = st.sampled_from([
    "FROM busybox", "FROM $BASE", "FROM ${BASE:-alpine} AS b", "ARG BASE", "ARG BASE=alpine", "ARG", "ARG 1X",
    "COPY --from=b /a /b", "COPY --from=9 /a /b", "COPY a", "COPY [\"a\", \"b\"]", "COPY [broken", "RUN <<EOF",
    "EOF", "RUN echo \\", "  continued", "# escape=`", "FROM --platform=$P x", "FROM --platform x", "ONBUILD RUN x",
    "RUN --mount=type=cache,from=b,target=/c x", "FROM a AS b c", "FROM scratch", "COPY ${X:?needed} /", "\t", "",
    "\x00", "é", "\r", "ADD https://example.invalid/x /", "FROM b AS B", "HEALTHCHECK NONE", "FRUM x",
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, max_size=12), st.dictionaries(st.sampled_from(["BASE", "P", "X"]), WORDS, max_size=2),
       st.one_of(st.none(), st.sampled_from(["b", "B", "missing"])))
def test_the_parser_fuzzed_with_dockerfile_fragments_raises_only_its_own_error(fragments, args, target):
    data = "\n".join(fragments).encode()
    try:
        analysis = analyse(data, "Dockerfile", args, target)
        with_labels(data, "Dockerfile", {"k": "v"}, target)
    except DockerfileError:
        return
    assert all(use.ref for use in analysis.images)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_the_parser_fuzzed_with_random_bytes_raises_only_its_own_error(data):
    try:
        analyse(data, "Dockerfile", {})
    except DockerfileError:
        pass


PATH_PARTS = st.sampled_from(["a", "b", "c.md", "d.log", ".git", "node_modules", "x y"])
PATTERN_PARTS = st.sampled_from(["a", "b", "*", "?", "**", "*.md", "*.log", ".git", "node_modules", "[ab]", "x y", ".."])


@st.composite
def ignore_rules(draw) -> list[str]:
    rules = []
    for _ in range(draw(st.integers(0, 5))):
        path = "/".join(draw(st.lists(PATTERN_PARTS, min_size=1, max_size=3)))
        rules.append(draw(st.sampled_from(["", "!", "/"])) + path + draw(st.sampled_from(["", "/"])))
    return rules


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(PATH_PARTS, min_size=1, max_size=3), min_size=1, max_size=8), ignore_rules())
def test_dockerignore_handling_is_docker_pys_fresh_and_from_the_cache(tmp_path_factory, paths, rules):
    root = tmp_path_factory.mktemp("ctx")
    (root / "Dockerfile").write_text("FROM a\n")
    for parts in paths:
        target = root.joinpath(*parts)
        if any(parent.is_file() for parent in target.parents) or target.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
    (root / ".dockerignore").write_text("\n".join(rules) + "\n")
    expected = exclude_paths(str(root), [rule for rule in rules if rule.strip()], dockerfile="Dockerfile")
    cache = DigestCache(root.parent / f"{root.name}.json")
    assert set(context_paths(root, root / "Dockerfile", cache)) == expected
    cache.save(set())
    assert set(context_paths(root, root / "Dockerfile", DigestCache(cache.path))) == expected
    shutil.rmtree(root)

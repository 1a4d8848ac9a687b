"""Dockerfile analysis follows Docker's rules, including where dockerfile-parse does not."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from buildlib.dockerfile import analyse, expand, instructions, trigger_sources, with_labels
from buildlib.errors import DockerfileError


def refs(text: str, args: dict | None = None, target: str | None = None) -> list[str]:
    return [use.ref for use in analyse(text.encode(), "Dockerfile", args or {}, target).images]


def error(text: str | bytes, args: dict | None = None) -> str:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(DockerfileError) as caught:
        analyse(data, "svc/Dockerfile", args or {})
    return str(caught.value)


def test_arg_before_from_default_and_override():
    text = "ARG V=3.11\nFROM python:${V}-alpine\n"
    assert refs(text) == ["python:3.11-alpine"]
    assert refs(text, {"V": "3.12"}) == ["python:3.12-alpine"]


def test_default_and_alternative_value_forms():
    assert refs("ARG A\nFROM golang:${A:-1.23}-alpine\n") == ["golang:1.23-alpine"]
    assert refs("ARG A=\nFROM golang:${A:-1.23}\n") == ["golang:1.23"]
    assert refs("ARG R=x\nFROM ${R:+127.0.0.1:5000/}alpine:3.20\n") == ["127.0.0.1:5000/alpine:3.20"]
    assert refs("ARG R=\nFROM ${R:+127.0.0.1:5000/}alpine:3.20\n") == ["alpine:3.20"]


def test_empty_registry_arg_is_a_value():
    text = "ARG REGISTRY=\nARG TAG=latest\nFROM ${REGISTRY}ai-infra-hub:${TAG}\n"
    assert refs(text) == ["ai-infra-hub:latest"]
    assert refs(text, {"REGISTRY": "reg:5000/", "TAG": "v1"}) == ["reg:5000/ai-infra-hub:v1"]


def test_only_global_args_reach_from():
    assert "which is not declared before FROM" in error("FROM alpine\nARG V=1\nFROM python:$V\n")


def test_quotes_in_from_and_arg_defaults_are_removed():
    assert refs('ARG RELEASE=trixie\nFROM debian:"${RELEASE}-slim"\n') == ["debian:trixie-slim"]
    assert refs("ARG V='1.36'\nFROM busybox:$V\n") == ["busybox:1.36"]
    assert refs('ARG A="x" B=\'y\'\nFROM "$A$B"\n') == ["xy"]
    assert refs('ARG R=trixie\nFROM debian:"${R}-slim"\n', {"R": "bookworm"}) == ["debian:bookworm-slim"]


def test_in_stage_arg_does_not_shadow_for_copy_from_scope():
    text = "ARG SRC=busybox:1\nFROM alpine\nARG SRC=busybox:2\nCOPY --from=${SRC} /a /b\n"
    assert refs(text) == ["alpine", "busybox:2"]


def test_platform_flag_with_equals_is_kept_and_space_form_is_refused():
    [use] = analyse(b"ARG P=linux/arm64\nFROM --platform=$P alpine:3.20\n", "Dockerfile", {}).images
    assert (use.ref, use.platform) == ("alpine:3.20", "linux/arm64")
    assert "--platform=VALUE" in error("ARG P=linux/amd64\nFROM --platform $P alpine:3.20\n")


def test_stages_are_case_insensitive_and_not_images():
    text = ("FROM golang:1.23-alpine AS Builder\nFROM builder AS test\n"
            "FROM scratch\nCOPY --from=BUILDER /a /a\nCOPY --from=0 /b /b\nCOPY --from=nginx:1 /c /c\n")
    assert refs(text) == ["golang:1.23-alpine", "nginx:1"]


def test_run_mount_from_names_an_image_or_a_stage():
    text = ("FROM alpine AS base\nFROM alpine\n"
            "RUN --mount=type=bind,from=base,target=/x --mount=type=bind,from=node:20,target=/y true\n")
    assert refs(text) == ["alpine", "alpine", "node:20"]


def test_target_limits_the_stages_reached():
    text = "FROM golang AS build\nFROM alpine AS runtime\nFROM busybox AS debug\n"
    assert refs(text, target="RUNTIME") == ["alpine"]     # BuildKit builds no stage the target does not use
    assert refs(text + "COPY --from=build /a /a\n", target=None) == ["golang", "busybox"]
    with pytest.raises(DockerfileError, match="target stage 'nope' is not defined"):
        analyse(text.encode(), "Dockerfile", {}, "nope")


def test_heredoc_bodies_are_not_instructions():
    text = "FROM alpine\nRUN <<EOF\nFROM evil:latest\necho hi\nEOF\nCOPY <<-A <<B /x\n\tFROM a\n\tA\nFROM b\nB\n"
    assert refs(text) == ["alpine"]
    assert "heredoc <<EOF is never closed" in error("FROM alpine\nRUN <<EOF\necho\n")


def test_blank_lines_and_comments_inside_a_continuation():
    steps = instructions(b"FROM alpine\nRUN echo a \\\n\n# note\n  && echo b\nCOPY x y\n", "Dockerfile")
    assert [(step.keyword, step.line) for step in steps] == [("FROM", 1), ("RUN", 2), ("COPY", 6)]


def test_escape_directive():
    steps = instructions(b"# escape=`\nFROM alpine\nRUN echo a `\n  && echo b\n", "Dockerfile")
    assert [step.keyword for step in steps] == ["FROM", "RUN"]


def test_set_versus_non_empty():
    assert expand("${A-x}", {"A": ""}, "Dockerfile", 1, strict=True) == ""
    assert expand("${A:-x}", {"A": ""}, "Dockerfile", 1, strict=True) == "x"
    assert expand("${A-x}", {"A": None}, "Dockerfile", 1, strict=True) == "x"
    assert expand("${A+y}", {"A": ""}, "Dockerfile", 1, strict=True) == "y"
    assert expand("${A:+y}", {"A": ""}, "Dockerfile", 1, strict=True) == ""
    with pytest.raises(DockerfileError, match="A: set it"):
        expand("${A:?set it}", {}, "Dockerfile", 1, strict=True)


def test_escaped_dollar_is_literal():
    assert expand(r"a\$b", {}, "Dockerfile", 1, strict=True) == "a$b"


@pytest.mark.parametrize("text, message", [
    ("", "svc/Dockerfile: is empty"),
    (b"FROM a\x00\n", "svc/Dockerfile: is not a text file"),
    (b"FROM \xff\xfe\n", "svc/Dockerfile: is not a text file (not UTF-8)"),
    ("# nothing\nLABEL a=b\n", "svc/Dockerfile:2: LABEL before the first FROM (only ARG may come first)"),
    ("RUN true\n", "svc/Dockerfile:1: RUN before the first FROM"),
    ("ARG X=1\n", "svc/Dockerfile: has no FROM instruction"),
    ("ARG V\nFROM python:$V\n", "svc/Dockerfile:2: FROM uses $V, which is declared without a value"),
    ("FROM a AS one\nCOPY --from=two /x /y\nFROM b AS two\n",
     "svc/Dockerfile:2: stage 'two' is used before it is defined"),
    ("FROM a AS one\nFROM two\nFROM b AS two\n", "svc/Dockerfile:2: stage 'two' is used before it is defined"),
    ("FROM a\nCOPY --from=1 /x /y\nFROM b\n", "svc/Dockerfile:2: --from=1: stage 1 is not defined before this one"),
    ("FROM a AS 1x\n", "svc/Dockerfile:1: '1x' is not a valid stage name"),
    ("FROM a b\n", "svc/Dockerfile:1: FROM takes an image and an optional 'AS name'"),
    ("FROM a\nFORM b\n", "svc/Dockerfile:2: unknown instruction 'FORM'"),
    ("FROM ${X\n", "svc/Dockerfile:1: missing '}'"),
])
def test_malformed_dockerfiles_name_file_and_line(text, message):
    assert error(text).startswith(message)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$\\'\""), max_size=40))
def test_text_without_variables_or_quotes_expands_to_itself_and_quoting_it_changes_nothing(word):
    assert expand(word, {}, "Dockerfile", 1, strict=True) == word
    assert expand(f'"{word}"', {}, "Dockerfile", 1, strict=True) == word
    assert expand(f"'{word}$X'", {"X": "no"}, "Dockerfile", 1, strict=True) == f"{word}$X"   # single quotes: literal


def test_quotes_and_escapes_are_removed_as_buildkit_does():
    scope = {"RELEASE": "trixie"}
    assert expand('debian:"${RELEASE}-slim"', scope, "D", 1, strict=True) == "debian:trixie-slim"
    assert expand("'$RELEASE'-x", scope, "D", 1, strict=True) == "$RELEASE-x"
    assert expand('"a\\$b\\c"', {}, "D", 1, strict=False) == "a$b\\c"   # in "...", \\ escapes only " $ \\
    assert expand("a\\ b", {}, "D", 1, strict=False) == "a b"
    with pytest.raises(DockerfileError, match="no closing \""):
        expand('"open', {}, "D", 1, strict=False)


def sources(text: str, target: str | None = None) -> tuple[tuple[str, ...], str]:
    analysis = analyse(text.encode(), "Dockerfile", {}, target)
    return analysis.context_sources, analysis.unresolved


def test_context_sources_are_the_copy_and_add_sources_of_the_stages_the_target_uses():
    text = ("FROM golang:1.23 AS build\nCOPY go.mod go.sum ./\nCOPY ./src/ /app/src\n"
            "FROM alpine AS docs\nCOPY docs /docs\n"
            "FROM alpine\nCOPY --from=build /app /app\nADD [\"conf/a b.conf\", \"/etc/\"]\n"
            "COPY --chown=1:1 /bin/*.sh /usr/local/bin/\nCOPY <<EOF /etc/motd\nhello\nEOF\n")
    assert sources(text) == (("bin/*.sh", "conf/a b.conf", "go.mod", "go.sum", "src"), "")
    assert sources(text, "docs") == (("docs",), "")
    assert sources("FROM alpine\nCOPY . /app\n") == (("",), "")
    assert sources("FROM alpine\nCOPY ../../x /app\n") == (("x",), "")   # cleaned inside the context
    assert sources("FROM alpine\nCOPY \"src\" 'conf' /app/\n") == (("conf", "src"), "")   # quotes removed


def test_sources_that_cannot_be_known_before_the_build_are_said():
    assert sources("FROM alpine\nARG D=src\nCOPY $D /app\n")[1] == "line 3: COPY source $D uses a variable"
    assert sources("FROM alpine\nADD https://example.invalid/a.tgz /a\n")[1] == \
        "line 2: ADD source https://example.invalid/a.tgz is remote"
    # a checksum pins it: nothing from the context, nothing unknown
    assert sources(f"FROM alpine\nADD --checksum=sha256:{'0' * 64} https://example.invalid/a.tgz /a\nCOPY b /b\n") \
        == (("b",), "")
    assert "uses [ ] or \\ patterns" in sources("FROM alpine\nCOPY [ab].txt /\n")[1]
    # a stage the target does not use is not a reason
    assert sources("FROM alpine AS x\nCOPY $D /\nFROM alpine\nCOPY a /a\n") == (("a",), "")


def test_copy_without_a_destination_is_an_error_with_its_line():
    assert error("FROM alpine\nCOPY onlyone\n") == "svc/Dockerfile:2: COPY needs a source and a destination"


def test_labels_end_the_target_stage_as_one_instruction():
    text = b"FROM alpine AS base\nRUN true\n\nFROM base AS app\nCOPY a /a\nFROM scratch\nCOPY --from=app /a /a"
    labels = {"io.x/hash": "sha256:1", "title": 'say "hi"'}
    last = with_labels(text, "D", labels, None).decode()
    assert last.endswith('COPY --from=app /a /a\nLABEL "io.x/hash"="sha256:1" "title"="say \\"hi\\""\n')
    middle = with_labels(text, "D", labels, "APP").decode()
    assert middle.splitlines()[5].startswith("LABEL ") and middle.splitlines()[6] == "FROM scratch"
    # what the analysis reads is unchanged but for the one instruction
    assert [step.keyword for step in instructions(middle.encode(), "D")].count("LABEL") == 1


def test_inherited_args_are_those_of_the_target_and_the_stages_it_is_built_from():
    data = (b"FROM busybox AS fetch\nARG TOKEN\nFROM fetch AS mid\nARG MID\nFROM busybox AS final\nARG FINAL\n"
            b"COPY --from=mid /a /a\nFROM final\nARG LAST\n")
    assert analyse(data, "D", {}).inherited_args == {"FINAL", "LAST"}     # mid is only copied from
    assert analyse(data, "D", {}, "mid").inherited_args == {"MID", "TOKEN"}


def test_platform_args_are_predefined_for_from_and_for_stage_args():
    text = ("FROM --platform=$BUILDPLATFORM golang:1.23 AS build\nARG TARGETARCH\nRUN echo $TARGETARCH\n"
            "FROM bin-${TARGETOS}-${TARGETARCH}\nCOPY --from=build /a /a\n")
    analysis = analyse(text.encode(), "Dockerfile", {}, platform="linux/arm64/v8", native="linux/amd64")
    assert [(use.ref, use.platform) for use in analysis.images] == [
        ("golang:1.23", "linux/amd64"), ("bin-linux-arm64", None)]
    assert refs("FROM img-$TARGETARCH\n") == ["img-amd64"]   # the native platform when none is set


def test_bind_mounts_read_the_context_like_copy():
    text = ("FROM alpine\nRUN --mount=type=bind,source=go.sum,target=/s --mount=type=cache,target=/c "
            "--mount=type=bind,from=alpine,source=/etc,target=/e true\nRUN --mount=target=/all true\n")
    assert analyse(text.encode(), "D", {}).context_sources == ("", "go.sum")
    narrow = analyse(b"FROM alpine\nRUN --mount=type=bind,src=./lib/../go.mod,dst=/m true\n", "D", {})
    assert narrow.context_sources == ("go.mod",)
    varied = analyse(b"FROM alpine\nARG F=x\nRUN --mount=source=$F,target=/m true\n", "D", {})
    assert varied.unresolved == "line 3: RUN --mount source $F uses a variable"


def test_bind_mounts_of_stages_nothing_reaches_do_not_count():
    text = "FROM alpine AS tools\nRUN --mount=source=tools.txt,target=/t true\nFROM alpine\nCOPY app /app\n"
    assert analyse(text.encode(), "D", {}).context_sources == ("app",)


def test_secret_mounts_are_found_by_id_target_or_env():
    text = ("FROM alpine\nRUN --mount=type=secret,id=NPM_TOKEN true\n"
            "RUN --mount=type=secret,target=/run/secrets/pip_conf --mount=type=secret,env=AWS_KEY true\n")
    assert analyse(text.encode(), "D", {}).secret_ids == {"NPM_TOKEN", "pip_conf", "AWS_KEY"}


def test_copy_flags_of_buildkit_leave_the_sources():
    text = "FROM alpine\nCOPY --link --chmod=755 --chown=1:1 --exclude=*.md --parents a/b c /d/\nADD --checksum=sha256:0 x /x\n"
    assert analyse(text.encode(), "D", {}).context_sources == ("a/b", "c", "x")


def digest(text: str, target: str | None = None) -> str:
    return analyse(text.encode(), "svc/Dockerfile", {}, target).instructions_digest


def test_comments_and_blank_lines_leave_the_instructions_digest_alone():
    plain = "FROM alpine\nRUN apk add a \\\n    b\nCOPY x /x\n"
    assert digest("# the base\n" + plain.replace("RUN", "\n\n# install\nRUN").replace("    b", "# b and\n    b")) \
        == digest(plain)
    assert digest(plain.replace("apk add a", "apk add c")) != digest(plain)
    assert digest(plain.replace("    b", "  b")) != digest(plain)      # the RUN command's own text
    assert digest("# syntax=docker/dockerfile:1\n" + plain) != digest(plain)
    heredoc = "FROM alpine\nRUN <<EOF\necho one\nEOF\n"
    assert digest(heredoc.replace("one", "two")) != digest(heredoc)


def test_only_the_stages_the_target_reaches_count_in_the_instructions_digest():
    text = "FROM alpine AS tools\nRUN echo tools\nFROM alpine AS docs\nRUN echo docs\nFROM alpine\nCOPY --from=tools /t /t\n"
    assert digest(text.replace("echo docs", "echo other")) == digest(text)
    assert digest(text.replace("echo tools", "echo other")) != digest(text)
    assert digest(text.replace("echo tools", "echo other"), "docs") == digest(text, "docs")


def seen(text: str, target: str | None = None) -> set[str]:
    return set(analyse(text.encode(), "svc/Dockerfile", {}, target).seen_args)


def test_a_build_arg_counts_where_buildkits_cache_sees_it():
    assert seen("FROM alpine\nARG A\nRUN make\n") == {"A"}                      # in RUN's environment
    assert seen("FROM alpine\nRUN make\nARG A\nCOPY x /x\n") == set()           # declared after the last RUN
    assert seen("FROM alpine\nRUN make\nARG A\nENV V=$A\n") == {"A"}           # named by an instruction
    assert seen("FROM alpine\nRUN make\nARG A B\nCOPY ${B:-x} /x\n") == {"B"}
    assert seen("ARG V=1\nFROM alpine:$V\nRUN make\n") == {"V"}                 # a global ARG in FROM
    assert seen("ARG V=1\nARG W=$V\nFROM alpine:$W\n") == {"V", "W"}            # through another's default
    assert seen("ARG V=1\nFROM alpine\nRUN echo $V\n") == set()                 # not declared in the stage
    assert seen("FROM alpine AS unused\nARG A\nRUN make\nFROM alpine\nRUN make\n") == set()


def test_onbuild_triggers_take_what_they_copy_and_bind():
    assert trigger_sources(["COPY src/ /src/", "RUN --mount=target=/d,source=data cat /d/*", "RUN make"], "b") == (
        ("data", "src"), "")
    assert trigger_sources(["COPY . /app"], "b") == (("",), "")
    assert trigger_sources(["COPY --from=build /out /out"], "b") == ((), "")
    assert trigger_sources(["RUN x", "COPY $DIR /app"], "b") == ((), "ONBUILD of b: COPY source $DIR uses a variable")
    assert trigger_sources(["COPY only-one"], "b") == ((), "ONBUILD of b: COPY needs a source and a destination")

"""Dockerfile analysis: the stages, build args and images a build needs, by Docker's own rules.

Pure functions over the Dockerfile's bytes and the build args. dockerfile-parse splits the
instructions; on top of it we apply what it leaves out (see shared/library-notes.md): blank
lines inside continuations, heredocs, `${VAR:-x}` / `${VAR:+x}`, the scope of ARGs for FROM,
case-insensitive stage names, and the errors Docker itself would raise.
"""
from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Mapping

from dockerfile_parse import DockerfileParser

from .errors import DockerfileError

KNOWN_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"})
STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*")
HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LEADING_FLAGS = re.compile(r"(?:--\S+\s+)*")
ONBUILD_LINE = re.compile(rb"^[ \t]*onbuild[ \t]", re.IGNORECASE | re.MULTILINE)
DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S*)\s*")
REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
TRIGGER_LINE = 2    # an ONBUILD trigger, read after a FROM line of its own
REMOTE_SOURCE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str   # upper case
    value: str     # arguments, continuation lines joined
    line: int      # 1-based line where it starts
    text: str = ""  # its lines as written, without comment and blank lines, then its heredoc bodies


@dataclass(frozen=True)
class ImageUse:
    """An image a build pulls in: a FROM base, or the source of COPY --from / RUN --mount from=."""
    ref: str
    platform: str | None
    line: int


@dataclass(frozen=True)
class Analysis:
    stages: tuple[str | None, ...]   # stage names (lower case) by index; None when unnamed
    images: tuple[ImageUse, ...]     # images used by the stages the build reaches
    declared_args: frozenset[str]    # every ARG name the Dockerfile declares
    # What COPY and ADD of the stages the target reaches take from the context, as cleaned
    # paths with * and ? wildcards ('' is the whole context); unresolved says why they cannot
    # be known before the build (then the whole context counts).
    context_sources: tuple[str, ...] = ()
    unresolved: str = ""
    # ARGs of the target stage and the stages it is built FROM: the classic builder writes their
    # values into the image's history (the RUN steps' "created by"), which the image carries.
    inherited_args: frozenset[str] = frozenset()
    secret_ids: frozenset[str] = frozenset()    # what RUN --mount=type=secret of the reached stages read
    # The build args BuildKit's cache sees in the reached stages: named by one of their
    # instructions (FROM included) or declared before a RUN; a value change of any other
    # changes no step.
    seen_args: frozenset[str] = frozenset()
    # sha256 of the instructions of the reached stages, the global ARGs and the parser directives:
    # comments and blank lines change nothing that BuildKit builds.
    instructions_digest: str = ""


def analyse(data: bytes, path: str, build_args: Mapping[str, str], target: str | None = None,
            platform: str | None = None, native: str = "linux/amd64") -> Analysis:
    """Analyse a Dockerfile as `docker buildx build --build-arg ... --target target --platform platform` reads it.

    native is the builder's own platform, which BUILDPLATFORM names.
    """
    analyser = _Analyser(path, build_args, platform_args(platform or native, native))
    return analyser.run(instructions(data, path), target, directives(data))


def trigger_sources(triggers: list[str], base: str) -> tuple[tuple[str, ...], str]:
    """What a base image's ONBUILD triggers take from the context, and why that cannot be known ('' when it can)."""
    sources: set[str] = set()
    for trigger in triggers:
        # A trigger runs as if written right after the child's FROM: read each as such a stage's one instruction.
        try:
            found = analyse(f"FROM scratch\n{trigger}\n".encode(), base, {})
        except DockerfileError as error:
            return (), f"ONBUILD of {base}: {error.message}"
        if found.unresolved:
            return (), f"ONBUILD of {base}: {found.unresolved.removeprefix(f'line {TRIGGER_LINE}: ')}"
        sources.update(found.context_sources)
    return tuple(sorted(sources)), ""


def may_have_triggers(data: bytes) -> bool:
    """Whether an image built from this Dockerfile can carry ONBUILD triggers: only its own ONBUILD lines
    give it some (a base's triggers run in the child's build and stop there)."""
    return ONBUILD_LINE.search(data) is not None


def directives(data: bytes) -> tuple[str, ...]:
    """The parser directives at the top (# syntax=, # escape=, # check=): they change how the rest is read."""
    found = []
    for line in data.decode("utf-8", "replace").splitlines():
        match = DIRECTIVE.fullmatch(line.strip())
        if not match:
            break
        found.append(f"{match[1].lower()}={match[2]}")
    return tuple(found)


def platform_args(target: str, build: str) -> dict[str, str]:
    """The ARGs BuildKit predefines in the global scope: BUILDPLATFORM, TARGETARCH and the others."""
    values = {}
    for prefix, platform in (("TARGET", target), ("BUILD", build)):
        os_name, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        values.update({f"{prefix}PLATFORM": platform, f"{prefix}OS": os_name, f"{prefix}ARCH": arch,
                       f"{prefix}VARIANT": variant})
    return values


def instructions(data: bytes, path: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, skipping comments, blank lines and heredoc bodies."""
    text = _decode(data, path)
    # dockerfile-parse ends an instruction at a blank line inside a continuation; Docker skips
    # such lines, as it skips comments, so turn them into comments.
    lines = text.splitlines(keepends=True)
    patched = "".join("#\n" if not line.strip() else line for line in lines)
    parser = DockerfileParser(fileobj=io.BytesIO(patched.encode()))
    result, skip_until = [], -1
    for entry in parser.structure:
        if entry["startline"] <= skip_until or entry["instruction"] == "COMMENT":
            continue
        keyword, value, start = entry["instruction"].upper(), entry["value"], entry["startline"]
        if keyword not in KNOWN_INSTRUCTIONS:
            raise DockerfileError(path, start + 1, f"unknown instruction '{entry['instruction']}'")
        end = entry["endline"]
        if keyword in ("RUN", "COPY", "ADD"):
            skip_until = _heredoc_end(lines, end, value, path, start + 1)
        written = [line for line in lines[start:end + 1] if line.strip() and not line.lstrip().startswith("#")]
        bodies = lines[end + 1:skip_until + 1] if skip_until > end else []
        result.append(Instruction(keyword, value, start + 1, "".join(written + bodies)))
    _refuse_dangling_continuation(lines, parser.structure, path)
    return result


def _refuse_dangling_continuation(lines: list[str], structure: list[dict], path: str) -> None:
    """dockerfile-parse silently drops a last instruction whose line continuation never ends."""
    covered = {index for entry in structure for index in range(entry["startline"], entry["endline"] + 1)}
    for index in range(len(lines)):
        if index not in covered and lines[index].strip() and not lines[index].lstrip().startswith("#"):
            keyword = lines[index].split()[0].upper()
            raise DockerfileError(path, index + 1, f"{keyword} ends with a line continuation and the file "
                                                   "ends there (is it cut short?)")


def with_labels(data: bytes, path: str, labels: Mapping[str, str], target: str | None) -> bytes:
    """The Dockerfile with one LABEL instruction at the end of the target stage.

    The classic builder turns every label passed through its API into a step of its own, each
    a container to create and commit; one LABEL line in the Dockerfile is a single step.
    """
    text = _decode(data, path)
    stages = [step for step in instructions(data, path) if step.keyword == "FROM"]
    names = [_stage_name(step.value) for step in stages]
    index = len(stages) - 1 if target is None else names.index(target.lower())
    pairs = " ".join(f"{json.dumps(key)}={json.dumps(value)}" for key, value in labels.items())
    lines = text.splitlines(keepends=True)
    where = stages[index + 1].line - 1 if index + 1 < len(stages) else len(lines)
    if where == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.insert(where, f"LABEL {pairs}\n")
    return "".join(lines).encode()


def _stage_name(value: str) -> str | None:
    words = value.split()
    return words[-1].lower() if len(words) >= 3 and words[-2].lower() == "as" else None


def _decode(data: bytes, path: str) -> str:
    if not data.strip():
        raise DockerfileError(path, None, "is empty")
    if b"\0" in data:
        raise DockerfileError(path, None, "is not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DockerfileError(path, None, "is not a text file (not UTF-8)") from None


def _heredoc_end(lines: list[str], endline: int, value: str, path: str, line: int) -> int:
    """The 0-based index of the last line of the heredoc bodies that follow an instruction."""
    position = endline
    for strip_tabs, _, word in HEREDOC.findall(value):
        for position in range(position + 1, len(lines)):
            candidate = lines[position].rstrip("\r\n")
            if (candidate.lstrip("\t") if strip_tabs else candidate) == word:
                break
        else:
            raise DockerfileError(path, line, f"heredoc <<{word} is never closed")
    return position


@dataclass
class _Stage:
    """What the walk has found of one stage so far."""
    name: str | None
    images: list[ImageUse]                  # images it uses (FROM, --from, --mount from=)
    base_stage: int | None                  # the earlier stage it is built FROM
    uses_stages: set[int]                   # the earlier stages it is built from or copies from
    steps: list[Instruction]                # its instructions, FROM first
    sources: list[tuple[str, str]] = field(default_factory=list)   # (cleaned source, why unresolved or '')
    declared: set[str] = field(default_factory=set)                # the ARG names it declares
    args: dict[str, str | None] = field(default_factory=dict)      # their values
    secrets: set[str] = field(default_factory=set)                 # the secrets its RUN steps mount
    seen_args: set[str] = field(default_factory=set)               # the ARGs BuildKit's cache sees here


class _Analyser:
    """Walks the instructions once, keeping the ARG scopes and the stages seen so far."""

    def __init__(self, path: str, build_args: Mapping[str, str], predefined: Mapping[str, str]):
        self.path = path
        self.build_args = build_args
        # The platform args are in scope for FROM without a declaration, and give a stage's ARG its value.
        self.global_args: dict[str, str | None] = dict(predefined)
        self.declared: set[str] = set()

    def run(self, steps: list[Instruction], target: str | None, directives: tuple[str, ...]) -> Analysis:
        all_names = self._stage_names(steps)
        stages: list[_Stage] = []
        global_steps: list[Instruction] = []
        global_uses: dict[str, set[str]] = {}     # a global ARG -> the global ARGs its default reads
        for step in steps:
            if step.keyword == "FROM":
                name, uses, base_stage = self._from(step, [stage.name for stage in stages], all_names)
                stages.append(_Stage(name, uses, base_stage, {base_stage} - {None}, [step]))
                stages[-1].seen_args |= _references(step.text) & set(self.global_args)
            elif not stages:
                if step.keyword != "ARG":
                    raise DockerfileError(self.path, step.line,
                                          f"{step.keyword} before the first FROM (only ARG may come first)")
                for name in self._declare(step, self.global_args, self.global_args):
                    global_uses[name] = _references(step.text) - {name}
                global_steps.append(step)
            else:
                self._stage_step(stages[-1], step, stages, all_names)
        if not stages:
            raise DockerfileError(self.path, None, "has no FROM instruction")
        target_index = self._target_index([stage.name for stage in stages], target)
        # BuildKit builds (and resolves the images of) only the stages the target uses; the
        # classic fallback would also run the others up to the target, to no effect on the image.
        reached = _reached(target_index, [stage.uses_stages for stage in stages])
        uses = tuple(use for index in reached for use in stages[index].images)
        taken = [source for index in reached for source in stages[index].sources]
        unresolved = next((why for _, why in taken if why), "")
        inherited, index = set(), target_index
        while index is not None:
            inherited |= stages[index].declared
            index = stages[index].base_stage
        seen = _closure(set().union(*(stages[index].seen_args for index in reached)), global_uses)
        # What BuildKit's cache sees of the Dockerfile: the instructions, not comments or blank lines.
        canonical = [directives, [step.text for step in global_steps],
                     [[step.text for step in stages[index].steps] for index in reached]]
        return Analysis(tuple(stage.name for stage in stages), uses, frozenset(self.declared),
                        tuple(sorted({source for source, why in taken if not why})), unresolved, frozenset(inherited),
                        frozenset(secret for index in reached for secret in stages[index].secrets),
                        frozenset(seen), hashlib.sha256(json.dumps(canonical).encode()).hexdigest())

    def _stage_step(self, stage: _Stage, step: Instruction, stages: list[_Stage], all_names: list) -> None:
        """One instruction after a FROM: what it declares, reads from the context, mounts and uses."""
        stage.steps.append(step)
        # A RUN step's environment holds every ARG declared before it; others see those they name.
        stage.seen_args |= stage.declared if step.keyword == "RUN" else _references(step.text) & stage.declared
        if step.keyword == "ARG":
            stage.declared.update(self._declare(step, stage.args, self.global_args))
        elif step.keyword in ("COPY", "ADD", "RUN"):
            used_images, used_stages = self._from_flags(step, [earlier.name for earlier in stages], all_names,
                                                        stage.args)
            stage.images.extend(used_images)
            stage.uses_stages.update(used_stages)
            if step.keyword == "RUN":
                mounts = _mounts(step.value)
                stage.sources.extend(self._bind_sources(step, mounts))
                stage.secrets.update(_secret_id(mount) for mount in mounts if mount.get("type") == "secret")
            else:
                stage.sources.extend(self._context_sources(step))

    def _context_sources(self, step: Instruction) -> list[tuple[str, str]]:
        """The sources of a COPY or ADD that reads the context, cleaned as Docker cleans them."""
        flags = LEADING_FLAGS.match(step.value)
        if "--from=" in flags.group():
            return []   # it copies from a stage or an image, not from the context
        rest = step.value[flags.end():].strip()
        words = rest.split()
        if rest.startswith("["):
            try:
                words = json.loads(rest)
            except ValueError:
                pass   # not JSON: Docker reads it as the shell form
        if len(words) < 2:
            raise DockerfileError(self.path, step.line, f"{step.keyword} needs a source and a destination")
        found = []
        for source in words[:-1]:
            if source.startswith("<<"):
                continue   # a heredoc: the text is in the Dockerfile
            why = ""
            if REMOTE_SOURCE.match(source) and "--checksum=" in flags.group():
                continue   # pinned: the Dockerfile's own text says what it is
            if REMOTE_SOURCE.match(source):
                why = f"line {step.line}: {step.keyword} source {source} is remote"
            elif "$" in source:
                why = f"line {step.line}: {step.keyword} source {source} uses a variable"
            elif "[" in source or "\\" in source:
                why = f"line {step.line}: {step.keyword} source {source} uses [ ] or \\ patterns"
            else:
                source = expand(source, {}, self.path, step.line, strict=False)   # "a b.txt": quotes go
            found.append((posixpath.normpath("/" + source).lstrip("/"), why))
        return found

    def _bind_sources(self, step: Instruction, mounts: list[dict[str, str]]) -> list[tuple[str, str]]:
        """What RUN --mount=type=bind (the default type) takes from the context: its source, '.' by default."""
        found = []
        for mount in mounts:
            if mount.get("type", "bind") != "bind" or "from" in mount:
                continue
            source = mount.get("source", mount.get("src", "."))
            why = f"line {step.line}: RUN --mount source {source} uses a variable" if "$" in source else ""
            found.append((posixpath.normpath("/" + source).lstrip("/"), why))
        return found

    def _stage_names(self, steps: list[Instruction]) -> list[str | None]:
        return [_stage_name(step.value) for step in steps if step.keyword == "FROM"]

    def _declare(self, step: Instruction, scope: dict, inherited: Mapping[str, str | None]) -> list[str]:
        """ARG NAME[=default] ...: the build arg wins, then the default, then the global value; the names."""
        words = _words(step.value, self.path, step.line)
        if not words:
            raise DockerfileError(self.path, step.line, "ARG needs a name")
        for word in words:
            name, has_default, default = word.partition("=")
            if not VARIABLE_NAME.fullmatch(name):
                raise DockerfileError(self.path, step.line, f"ARG: '{name}' is not a valid name")
            self.declared.add(name)
            if name in self.build_args:
                scope[name] = self.build_args[name]
            elif has_default:
                scope[name] = expand(default, scope, self.path, step.line, strict=False)
            else:
                scope[name] = inherited.get(name)
        return [word.partition("=")[0] for word in words]

    def _from(self, step: Instruction, stages: list, all_names: list) -> tuple[str | None, list[ImageUse], int | None]:
        """The stage's name, the image it uses, and the earlier stage it is built on."""
        flags, words = _split_flags(step.value)
        if len(words) == 2 and words[0] == "--platform" or any(flag == "--platform" for flag in flags):
            raise DockerfileError(self.path, step.line, "FROM --platform needs its value after '=': --platform=VALUE")
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise DockerfileError(self.path, step.line, "FROM takes an image and an optional 'AS name'")
        platform = None
        for flag in flags:
            key, _, value = flag[2:].partition("=")
            if key != "platform":
                raise DockerfileError(self.path, step.line, f"FROM: unknown flag --{key}")
            platform = expand(value, self.global_args, self.path, step.line, strict=False) or None
        name = words[2].lower() if len(words) == 3 else None
        if name is not None and not STAGE_NAME.fullmatch(name):
            raise DockerfileError(self.path, step.line,
                                  f"'{words[2]}' is not a valid stage name (a letter, then letters, digits, . _ -)")
        if name is not None and name in stages:
            raise DockerfileError(self.path, step.line, f"stage name '{words[2]}' is used twice")
        image = expand(words[0], self.global_args, self.path, step.line, strict=True)
        if not image:
            raise DockerfileError(self.path, step.line, "FROM names an empty image")
        base_stage = self._stage_ref(image, stages, all_names, step)
        if base_stage is not None or image.lower() == "scratch":
            return name, [], base_stage
        return name, [ImageUse(image, platform, step.line)], None

    def _from_flags(self, step: Instruction, stages: list, all_names: list,
                    stage_args: dict) -> tuple[list[ImageUse], set[int]]:
        """Images and earlier stages named by COPY/ADD --from=X and RUN --mount=...,from=X."""
        flags, _ = _split_flags(step.value)
        sources = []
        for flag in flags:
            key, _, value = flag[2:].partition("=")
            if key == "from":
                sources.append(value)
            elif key == "mount":
                sources += [option[5:] for option in value.split(",") if option.startswith("from=")]
        uses, used_stages = [], set()
        for source in sources:
            scope = {**self.global_args, **stage_args}
            ref = expand(source, scope, self.path, step.line, strict=False)
            if ref.isdigit():
                if int(ref) >= len(stages) - 1:
                    raise DockerfileError(self.path, step.line, f"--from={ref}: stage {ref} is not defined before this one")
                used_stages.add(int(ref))
            elif (index := self._stage_ref(ref, stages[:-1], all_names, step)) is not None:
                used_stages.add(index)
            elif ref.lower() != "scratch":
                uses.append(ImageUse(ref, None, step.line))
        return uses, used_stages

    def _stage_ref(self, ref: str, earlier: list, all_names: list, step: Instruction) -> int | None:
        """The index of the earlier stage that ref names; an error when it names a later one."""
        name = ref.lower()
        if name in earlier:
            return earlier.index(name)
        if name in all_names:
            raise DockerfileError(self.path, step.line, f"stage '{ref}' is used before it is defined (only earlier stages can be used)")
        return None

    def _target_index(self, stages: list, target: str | None) -> int:
        if target is None:
            return len(stages) - 1
        if target.lower() not in stages:
            raise DockerfileError(self.path, None, f"target stage '{target}' is not defined")
        return stages.index(target.lower())


def _references(text: str) -> set[str]:
    """The variable names a piece of Dockerfile text refers to ($NAME, ${NAME...})."""
    return set(REFERENCE.findall(text))


def _closure(names: set[str], uses: Mapping[str, set[str]]) -> set[str]:
    """The names, and the names their values are made of, through any number of steps."""
    found, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(uses.get(name, ()))
    return found


def _reached(target: int, uses_stages: list[set[int]]) -> list[int]:
    """The stages the target stage is built from or copies from, itself included, in order."""
    reached, pending = set(), [target]
    while pending:
        index = pending.pop()
        if index not in reached:
            reached.add(index)
            pending.extend(uses_stages[index])
    return sorted(reached)


def _mounts(value: str) -> list[dict[str, str]]:
    """The options of each --mount flag of a RUN: {'type': 'bind', 'source': 'go.sum', ...}."""
    flags, _ = _split_flags(value)
    mounts = []
    for flag in flags:
        if flag.startswith("--mount="):
            options = (option.partition("=") for option in flag[len("--mount="):].split(","))
            mounts.append({key.strip().lower(): item.strip() for key, _, item in options})
    return mounts


def _secret_id(mount: dict[str, str]) -> str:
    """A secret mount's id: given, else the target's file name, else the variable it sets."""
    return mount.get("id") or posixpath.basename(mount.get("target", mount.get("dst", ""))) or mount.get("env", "")


def _words(value: str, path: str, line: int) -> list[str]:
    """Words split at blanks outside quotes, quotes kept (expand removes them), as BuildKit splits ARG and ENV."""
    words, start, quote, i = [], None, "", 0
    while i < len(value):
        char = value[i]
        if char.isspace() and not quote:
            if start is not None:
                words.append(value[start:i])
            start = None
        else:
            start = i if start is None else start
            if char == "\\" and quote != "'":
                i += 1   # the escaped character is part of the word, whatever it is
            elif char in "'\"" and quote in ("", char):
                quote = "" if quote else char
        i += 1
    if quote:
        raise DockerfileError(path, line, f"no closing {quote} in '{value}'")
    return words + ([value[start:]] if start is not None else [])


def _split_flags(value: str) -> tuple[list[str], list[str]]:
    """Leading --flags, and the remaining words."""
    words = value.split()
    count = next((i for i, word in enumerate(words) if not word.startswith("--")), len(words))
    return words[:count], words[count:]


def expand(word: str, scope: Mapping[str, str | None], path: str, line: int, strict: bool) -> str:
    """A word as BuildKit's shell lexer reads it: variables substituted, quotes and escapes removed.

    Substitution: $V, ${V}, ${V:-w}, ${V-w}, ${V:+w}, ${V+w}, ${V:?msg}; inside '...' nothing is
    substituted, inside "..." a backslash escapes only ", $ and itself, outside quotes it escapes
    any character. A name in scope with the value None is declared without a value. strict makes
    a plain reference to such a name (or to an undeclared one) an error, as FROM needs.
    """
    out, i, quote = [], 0, ""
    while i < len(word):
        char = word[i]
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
            i += 1
        elif char == "\\" and i + 1 < len(word):
            escaped = not quote or word[i + 1] in '"$\\'
            out.append(word[i + 1] if escaped else char)
            i += 2 if escaped else 1
        elif char in "'\"" and (not quote or char == quote):
            quote = "" if quote else char
            i += 1
        elif char == "$" and i + 1 < len(word) and word[i + 1] == "{":
            end = _closing_brace(word, i + 2, path, line)
            out.append(_expand_braced(word[i + 2:end], scope, path, line, strict))
            i = end + 1
        elif char == "$" and (match := VARIABLE_NAME.match(word, i + 1)):
            out.append(_lookup(match.group(), scope, path, line, strict))
            i = match.end()
        else:
            out.append(char)
            i += 1
    if quote:
        raise DockerfileError(path, line, f"no closing {quote} in '{word}'")
    return "".join(out)


def _closing_brace(word: str, start: int, path: str, line: int) -> int:
    depth = 1
    for position in range(start, len(word)):
        if word.startswith("${", position):
            depth += 1
        elif word[position] == "}":
            depth -= 1
            if depth == 0:
                return position
    raise DockerfileError(path, line, f"missing '}}' in '{word}'")


def _expand_braced(body: str, scope: Mapping[str, str | None], path: str, line: int, strict: bool) -> str:
    match = VARIABLE_NAME.match(body)
    if not match:
        raise DockerfileError(path, line, f"bad substitution '${{{body}}}'")
    name, rest = match.group(), body[match.end():]
    if not rest:
        return _lookup(name, scope, path, line, strict)
    value = scope.get(name)
    colon = rest.startswith(":")
    operator, operand = (rest[1:2], rest[2:]) if colon else (rest[:1], rest[1:])
    present = bool(value) if colon else value is not None
    if operator == "-":
        return value if present else expand(operand, scope, path, line, strict)
    if operator == "+":
        return expand(operand, scope, path, line, strict) if present else ""
    if operator == "?":
        if not present:
            raise DockerfileError(path, line, f"{name}: {operand or 'needs a value'}")
        return value
    raise DockerfileError(path, line, f"bad substitution '${{{body}}}'")


def _lookup(name: str, scope: Mapping[str, str | None], path: str, line: int, strict: bool) -> str:
    value = scope.get(name)
    if value is None and strict:
        how = "is declared without a value" if name in scope else "is not declared before FROM"
        raise DockerfileError(path, line, f"FROM uses ${name}, which {how}: give ARG {name} a default or set it in args")
    return value or ""

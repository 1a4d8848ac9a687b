"""Build contexts and the inputs hash: what a build reads, digested so that any change shows."""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator, Mapping

from docker.utils.build import PatternMatcher

from .errors import BuildlibError
from .filecache import DigestCache

CHUNK = 1 << 20
LATER_FIELDS = ("labels", "tags")   # Inputs fields hashed only when set
STATE_FOLDER = ".buildlib"   # buildlib's own, at the repository's root
MAX_LISTED = 3


@dataclass(frozen=True)
class Inputs:
    """Everything a build's result depends on; equal Inputs mean an equal image."""
    files: Mapping[str, str]    # path relative to the context -> its kind, mode and content digest
    dockerfile: str             # digest of its instructions that the build reaches (Analysis.instructions_digest)
    args: Mapping[str, str]     # the build args the Dockerfile declares, with their values
    target: str | None
    platform: str | None
    bases: Mapping[str, str]    # every base image reference -> its image ID in the engine
    scope: str = ""             # why files is the whole context, when COPY and ADD could not narrow it
    labels: Mapping[str, str] = field(default_factory=dict)    # the source's own labels
    tags: tuple[str, ...] = ()                                  # the references it gets besides its image

    @property
    def digest(self) -> str:
        # Shallow: every field is a string, None, a list or a flat mapping of strings, which json takes as it is.
        # A field left at its default is left out, so that fields added later keep the hashes of images without them.
        fields_now = {item.name: getattr(self, item.name) for item in fields(self)
                      if item.name not in LATER_FIELDS or getattr(self, item.name)}
        canonical = json.dumps(fields_now, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def as_record(self) -> dict:
        """A JSON-ready copy, kept in the state file to explain the next rebuild."""
        return asdict(self)


def ignore_file(context: Path, dockerfile: Path | None) -> Path:
    """The ignore file a build follows: BuildKit takes <Dockerfile>.dockerignore next to the
    Dockerfile over the context's .dockerignore (a named context, without a Dockerfile, has only its own)."""
    own = dockerfile and dockerfile.with_name(dockerfile.name + ".dockerignore")
    return own if own and own.is_file() else context / ".dockerignore"


def dockerignore_patterns(context: Path, dockerfile: Path | None) -> list[str]:
    """The patterns of the build's ignore file, read the way docker-py's build reads them; and buildlib's own
    folder, whose logs and state change with every run, when the context holds it (a repository-root context)."""
    path = ignore_file(context, dockerfile)
    lines = (line.strip() for line in _read_text(path).splitlines()) if path.exists() else ()
    own = [STATE_FOLDER] if (context / STATE_FOLDER).is_dir() else []
    return [line for line in lines if line and not line.startswith("#")] + own


def dockerfile_name(context: Path, dockerfile: Path) -> str:
    """The Dockerfile's path in the context; docker-py sends one from outside under a name of its own.

    Both paths are taken as resolved (a Service holds them so): resolving costs an lstat per part of each.
    """
    return dockerfile.relative_to(context).as_posix() if dockerfile.is_relative_to(context) else ".dockerfile"


def context_paths(context: Path, dockerfile: Path | None, cache: DigestCache | None = None) -> dict[str, os.stat_result]:
    """The paths (files and folders) that a build of this context sends to the engine, with their lstat.

    docker-py's matcher decides, as its own walk does, but each file's verdict is asked only when
    the folder's listing changed since the cache remembered which paths the rules keep. Both paths
    are resolved ones, as a Service holds them.
    """
    if not context.is_dir():
        raise BuildlibError(f"{context}: build context is not a folder")
    patterns = dockerignore_patterns(context, dockerfile)
    if not patterns:
        return dict(sorted(_walk(str(context), "", lambda folder: False)))
    kept_anyway = f"!{dockerfile_name(context, dockerfile)}" if dockerfile else ""
    matcher = PatternMatcher([*patterns, kept_anyway] if dockerfile else patterns)
    found = dict(sorted(_walk(str(context), "", lambda folder: _skipped(matcher, folder))))
    # No pattern, path or name is empty or holds a NUL: the empty fields keep the three parts apart.
    listing = "\0".join([*patterns, "", kept_anyway, "", *found])
    kept = (cache or DigestCache(None)).kept_paths(
        hashlib.sha256(listing.encode()).hexdigest(), lambda: [path for path in found if not matcher.matches(path)])
    return {path: found[path] for path in kept}


def _skipped(matcher: PatternMatcher, folder: str) -> bool:
    """docker-py's rule: an excluded folder is not walked into unless an exception names a path in it."""
    return matcher.matches(folder) and not any(
        pattern.exclusion and pattern.cleaned_pattern.startswith(folder) for pattern in matcher.patterns)


def _walk(folder: str, prefix: str, skipped) -> Iterator[tuple[str, os.stat_result]]:
    """Every path under folder relative to the context, with its lstat; symlinks to folders are not followed."""
    try:
        with os.scandir(folder) as entries:
            found = [(prefix + entry.name, entry.path, entry.stat(follow_symlinks=False)) for entry in entries]
    except OSError as error:
        raise BuildlibError(f"{error.filename or folder}: cannot read ({error.strerror})") from None
    for relative, path, info in found:
        yield relative, info
        if stat.S_ISDIR(info.st_mode) and not skipped(relative):
            yield from _walk(path, relative + "/", skipped)


def taken_paths(paths: Mapping[str, os.stat_result], sources: tuple[str, ...] | None) -> tuple[dict, str]:
    """The context paths that COPY and ADD with these sources can take, and why it is all of them when it is.

    A source takes what it matches (Docker's * and ? do not cross '/') and everything under it.
    Docker follows a symlink named on a source's path, so such a link makes it the whole context.
    """
    if sources is None or "" in sources:
        return dict(paths), ""
    patterns = [_source_pattern(source) for source in sources]
    prefixes = [_source_prefixes(source) for source in sources]
    taken = {}
    for relative, info in paths.items():
        if any(pattern.match(relative) for pattern in patterns):
            taken[relative] = info
        if stat.S_ISLNK(info.st_mode) and any(prefix.fullmatch(relative) for group in prefixes for prefix in group):
            return dict(paths), f"whole context: {relative} is a symlink that COPY/ADD follows"
    return taken, ""


def _source_pattern(source: str) -> re.Pattern:
    return re.compile(_translate(source) + r"(?:/.*)?\Z", re.DOTALL)


def _source_prefixes(source: str) -> list[re.Pattern]:
    """The source's leading components, one pattern per depth: where a followed symlink could be."""
    parts = source.split("/")
    return [re.compile(_translate("/".join(parts[:depth])), re.DOTALL) for depth in range(1, len(parts) + 1)]


def _translate(source: str) -> str:
    wildcards = {"*": "[^/]*", "?": "[^/]"}
    return "".join(wildcards.get(char) or re.escape(char) for char in source)


def file_digests(context: Path, dockerfile: Path | None, paths: Mapping[str, os.stat_result] | None = None,
                 cache: DigestCache | None = None) -> dict[str, str]:
    """Path -> 'kind mode digest' for context paths and their lstat (default: all it sends), symlinks by their target.

    A Dockerfile in the context is a file like the others: Inputs.dockerfile covers only its
    instructions, and `COPY . /app` copies its bytes. File contents come from the cache when
    their stat data vouch for them.
    """
    digests = {}
    cache = cache or DigestCache(None)
    folder = str(context)
    for relative, info in (context_paths(context, dockerfile, cache) if paths is None else paths).items():
        path = f"{folder}/{relative}"
        mode = f"{stat.S_IMODE(info.st_mode):o}"
        if stat.S_ISLNK(info.st_mode):
            digests[relative] = f"link {mode} {_read_link(path)}"
        elif stat.S_ISDIR(info.st_mode):
            digests[relative] = f"dir {mode}"
        else:
            digests[relative] = f"file {mode} {cache.digest(relative, info, lambda: file_digest(path))}"
    cache.save(set(digests))
    return digests


def _read_link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as error:
        raise BuildlibError(f"{path}: cannot read ({error.strerror})") from None


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks so memory stays flat for large files."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise BuildlibError(f"{path}: cannot read ({error.strerror})") from None
    return digest.hexdigest()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise BuildlibError(f"{path}: cannot read ({error.strerror})") from None


def changes(previous: Mapping, current: Inputs, listed: int | None = MAX_LISTED) -> list[str]:
    """What differs between the inputs of the last build (a record) and now, for a person.

    Files are named up to `listed` per kind (changed, added, removed); None names every one.
    When a different set of files counts (the whole context or what COPY/ADD and bind mounts take, or a record
    from before buildlib narrowed it), that is the reason, not a list of files "removed".
    """
    reasons = []
    old_files, new_files = previous.get("files", {}), current.files
    if previous.get("scope") != current.scope:
        reasons.append(f"files counted differently: {current.scope or 'only those COPY/ADD and bind mounts take'}")
    else:
        changed = sorted(path for path in new_files if path in old_files and old_files[path] != new_files[path])
        added = sorted(set(new_files) - set(old_files))
        removed = sorted(set(old_files) - set(new_files))
        for paths, verb in ((changed, "changed"), (added, "added"), (removed, "removed")):
            reasons += _listed(paths, verb, listed)
    # Another target reaches other stages, whose instructions and args differ in consequence.
    retargeted = previous.get("target") != current.target
    if previous.get("dockerfile") != current.dockerfile and not retargeted:
        reasons.append("Dockerfile changed")
    old_args = previous.get("args", {})
    for name in sorted(set(old_args) | set(current.args)):
        if old_args.get(name) != current.args.get(name) and not retargeted:
            reasons.append(f"build arg {name} changed")
    if retargeted:
        reasons.append(f"target changed to {current.target or '(last stage)'}")
    for name in LATER_FIELDS:   # as the state file keeps them: a tuple comes back a list
        if json.dumps(previous.get(name) or None) != json.dumps(getattr(current, name) or None):
            reasons.append(f"{name} changed")
    if previous.get("platform") != current.platform:
        reasons.append(f"platform changed to {current.platform or '(default)'}")
    old_bases = previous.get("bases", {})
    for ref in sorted(current.bases):
        if old_bases.get(ref) != current.bases[ref]:
            reasons.append(f"base {ref} changed")
    return reasons


def _listed(paths: list[str], verb: str, most: int | None) -> list[str]:
    if most is None or len(paths) <= most:
        return [f"{path} {verb}" for path in paths]
    return [f"{', '.join(paths[:most])} and {len(paths) - most} more {verb}"]

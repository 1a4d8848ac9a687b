"""The build context and the inputs hash: Docker's .dockerignore rules, stable digests, reasons."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

from docker.utils import tar
from hypothesis import given, settings, strategies as st

from buildlib.context import Inputs, changes, context_paths, dockerignore_patterns, file_digests, taken_paths


def make_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def inputs(root: Path, **overrides) -> Inputs:
    values = dict(files=file_digests(root, root / "Dockerfile"), dockerfile="d", args={}, target=None,
                  platform=None, bases={"alpine:3.20": "sha256:1"})
    return Inputs(**{**values, **overrides})


def test_context_is_what_docker_py_sends(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", ".dockerignore": "docs\n*.md\n!KEEP.md\n# c\n",
                         "docs/a.txt": "", "README.md": "", "KEEP.md": "", "src/x.go": ""})
    with tar(str(tmp_path), exclude=["docs", "*.md", "!KEEP.md"], dockerfile=("Dockerfile", None)) as archive:
        sent = {member.name for member in tarfile.open(fileobj=archive).getmembers()}
    assert set(context_paths(tmp_path, tmp_path / "Dockerfile")) == sent
    assert "README.md" not in sent and "KEEP.md" in sent


def test_a_dockerfiles_own_ignore_file_wins_over_the_contexts(tmp_path):
    make_tree(tmp_path, {"web.Dockerfile": "FROM a", "web.Dockerfile.dockerignore": "*.skip\n", ".dockerignore": "*.txt\n",
                         "a.txt": "", "b.skip": ""})
    assert set(context_paths(tmp_path, tmp_path / "web.Dockerfile")) >= {"a.txt", ".dockerignore"}
    assert "b.skip" not in context_paths(tmp_path, tmp_path / "web.Dockerfile")
    assert "a.txt" not in context_paths(tmp_path, tmp_path / "Dockerfile")


def test_another_target_is_the_reason_not_the_instructions_and_args_it_reaches(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a"})
    before = inputs(tmp_path, target="run", args={"V": "1"}).as_record()
    assert changes(before, inputs(tmp_path, target="debug", dockerfile="e", args={})) == ["target changed to debug"]
    assert changes(before, inputs(tmp_path, target="run", dockerfile="e", args={})) == [
        "Dockerfile changed", "build arg V changed"]


def test_same_sources_give_the_same_hash_in_any_folder(tmp_path):
    files = {"Dockerfile": "FROM a", "src/main.go": "package main", ".dockerignore": "*.log\n"}
    make_tree(tmp_path / "one", files)
    make_tree(tmp_path / "elsewhere/two", files)
    assert inputs(tmp_path / "one").digest == inputs(tmp_path / "elsewhere/two").digest


def test_mode_and_content_enter_the_hash_ignored_files_do_not(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", "run.sh": "echo", ".dockerignore": "*.log\n"})
    before = inputs(tmp_path)
    (tmp_path / "debug.log").write_text("noise")
    assert inputs(tmp_path).digest == before.digest
    os.chmod(tmp_path / "run.sh", 0o755)
    assert changes(before.as_record(), inputs(tmp_path)) == ["run.sh changed"]


def test_reasons_name_what_changed(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", "a": "1", "b": "2"})
    before = inputs(tmp_path).as_record()
    (tmp_path / "a").write_text("changed")
    (tmp_path / "b").unlink()
    (tmp_path / "c").write_text("new")
    now = inputs(tmp_path, args={"V": "2"}, bases={"alpine:3.20": "sha256:2"}, platform="linux/arm64")
    assert changes(before, now) == ["a changed", "c added", "b removed", "build arg V changed",
                                    "platform changed to linux/arm64", "base alpine:3.20 changed"]


def test_a_record_that_counted_other_files_says_so_instead_of_listing_them(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", "src/a": "1", "docs/b": "2"})
    whole = inputs(tmp_path, scope="whole context: line 2: COPY source $DIR uses a variable").as_record()
    narrowed = inputs(tmp_path, files={"src/a": "file 644 x"})
    assert changes(whole, narrowed) == ["files counted differently: only those COPY/ADD and bind mounts take"]
    before_scopes = {key: value for key, value in whole.items() if key != "scope"}   # an earlier buildlib's record
    assert changes(before_scopes, narrowed) == ["files counted differently: only those COPY/ADD and bind mounts take"]
    assert changes(narrowed.as_record(), inputs(tmp_path, scope=whole["scope"])) == [
        "files counted differently: whole context: line 2: COPY source $DIR uses a variable"]


def test_many_changed_files_are_summed_up(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", **{f"f{i}": "" for i in range(5)}})
    before = inputs(tmp_path).as_record()
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    assert changes(before, inputs(tmp_path)) == ["f0, f1, f2 and 2 more changed"]


NAMES = st.sampled_from(["a.txt", "b.md", "src/c.go", "src/d.md", "docs/e.txt", "docs/f/g.md", "h.log"])
PATTERNS = st.sampled_from(["*.md", "docs", "src/*.md", "!src/d.md", "**/*.md", "*.log", "docs/f", "!docs/f/g.md"])


@settings(max_examples=60, deadline=None)
@given(st.sets(NAMES, min_size=1), st.lists(PATTERNS, max_size=4))
def test_dockerignore_matches_docker_py_for_any_rules(tmp_path_factory, names, patterns):
    root = tmp_path_factory.mktemp("ctx")
    make_tree(root, {"Dockerfile": "FROM a", ".dockerignore": "\n".join(patterns) + "\n",
                     **{name: name for name in names}})
    with tar(str(root), exclude=list(patterns), dockerfile=("Dockerfile", None)) as archive:
        sent = {member.name for member in tarfile.open(fileobj=archive).getmembers()}
    assert set(context_paths(root, root / "Dockerfile")) == sent
    shutil.rmtree(root)


def test_taken_paths_follow_dockers_wildcards_and_directories(tmp_path):
    make_tree(tmp_path, {"README.md": "", "src/a.go": "", "src/sub/b.go": "", "bin/x.sh": "", "bin/y.py": "", "go.mod": ""})
    paths = context_paths(tmp_path, tmp_path / "Dockerfile")
    taken, why = taken_paths(paths, ("src", "bin/*.sh", "go.?od"))
    assert (sorted(taken), why) == (["bin/x.sh", "go.mod", "src", "src/a.go", "src/sub", "src/sub/b.go"], "")
    assert taken_paths(paths, ("*",))[0] == paths            # * matches at the top, and takes folders
    assert taken_paths(paths, ("",))[0] == paths
    assert taken_paths(paths, None)[0] == paths
    assert list(taken_paths(paths, ("s*/*.go",))[0]) == ["src/a.go"]


def test_a_symlink_a_source_goes_through_makes_it_the_whole_context(tmp_path):
    make_tree(tmp_path, {"real/a.txt": "a", "other.txt": "o"})
    (tmp_path / "src").symlink_to("real")
    paths = context_paths(tmp_path, tmp_path / "Dockerfile")
    assert taken_paths(paths, ("src/a.txt",)) == (paths, "whole context: src is a symlink that COPY/ADD follows")
    assert list(taken_paths(paths, ("other.txt",))[0]) == ["other.txt"]


def test_without_dockerignore_the_walk_sends_what_docker_py_sends(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a", "a/b/c.txt": "", ".hidden": "", "d.txt": ""})
    (tmp_path / "link").symlink_to("a")
    with tar(str(tmp_path), dockerfile=("Dockerfile", None)) as archive:
        sent = {member.name for member in tarfile.open(fileobj=archive).getmembers()}
    assert set(context_paths(tmp_path, tmp_path / "Dockerfile")) == sent


def test_folders_dockerignore_excludes_are_not_walked_into_unless_a_rule_reaches_inside(tmp_path, monkeypatch):
    make_tree(tmp_path, {"Dockerfile": "FROM a", "src/a.go": "", "node_modules/x/y.js": "", "node_modules/keep.txt": ""})
    listed = []
    real_scandir = os.scandir   # the walk lists folders with it
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(os.path.relpath(path, tmp_path)) or real_scandir(path))
    (tmp_path / ".dockerignore").write_text("node_modules\n")
    assert "node_modules/keep.txt" not in context_paths(tmp_path, tmp_path / "Dockerfile")
    assert not [path for path in listed if path.startswith("node_modules")]
    (tmp_path / ".dockerignore").write_text("node_modules\n!node_modules/keep.txt\n")
    listed.clear()
    assert "node_modules/keep.txt" in context_paths(tmp_path, tmp_path / "Dockerfile")
    assert "node_modules" in listed


def test_buildlib_own_folder_never_counts_in_a_context_that_holds_it(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a\nCOPY . /app\n", "app.py": "x", ".buildlib/logs/app.log": "changes every run"})
    assert set(context_paths(tmp_path, tmp_path / "Dockerfile")) == {"Dockerfile", "app.py"}
    (tmp_path / ".dockerignore").write_text("*.md\n")
    assert dockerignore_patterns(tmp_path, tmp_path / "Dockerfile") == ["*.md", ".buildlib"]
    assert set(context_paths(tmp_path, tmp_path / "Dockerfile")) == {"Dockerfile", "app.py", ".dockerignore"}


def test_labels_and_tags_enter_the_hash_only_when_set(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "FROM a"})
    plain = inputs(tmp_path)
    assert plain.digest == inputs(tmp_path, labels={}, tags=()).digest
    # The hash of an image built before labels and tags were hashed: the fields they had then.
    before = {key: value for key, value in plain.as_record().items() if key not in ("labels", "tags")}
    assert plain.digest == "sha256:" + hashlib.sha256(
        json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    labelled = inputs(tmp_path, labels={"team": "shop"}, tags=("x:1",))
    assert labelled.digest != plain.digest
    assert changes(plain.as_record(), labelled) == ["labels changed", "tags changed"]
    assert changes(json.loads(json.dumps(labelled.as_record())), labelled) == []   # as the state file gives it back

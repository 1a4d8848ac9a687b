"""The pure parts of sharing builds through a registry: the cache tag and the remote verdict."""
from __future__ import annotations

from buildlib.registry import RemoteStatus, cache_ref, judge_remote
from buildlib.settings import TAG_PATTERN

HASH = "sha256:" + "ab" * 32


def test_cache_tag_lives_in_the_image_repository_and_is_a_valid_tag():
    ref = cache_ref("127.0.0.1:5000/team/ai-infra-backend:v1", HASH)
    repository, tag = ref.rsplit(":", 1)
    assert repository == "127.0.0.1:5000/team/ai-infra-backend"
    assert tag == "inputs-" + "ab" * 32 and TAG_PATTERN.fullmatch(tag)


def test_remote_verdicts():
    assert judge_remote(None, None).status is RemoteStatus.ABSENT
    assert judge_remote("sha256:1", "sha256:1").status is RemoteStatus.CURRENT
    assert judge_remote("sha256:1", "sha256:2").status is RemoteStatus.DIFFERENT
    assert judge_remote("sha256:1", None).status is RemoteStatus.DIFFERENT

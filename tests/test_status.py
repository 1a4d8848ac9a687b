"""Judging an image from the engine's record: the pure part of status."""
from __future__ import annotations

from buildlib.context import Inputs
from buildlib.project import Service
from buildlib.status import HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL, ImageStatus, base_identity, built_from, judge

SERVICE = Service("backend", "ai-infra-backend:v1", "/c", "/c/Dockerfile", None, None, {}, {}, ("alpine:3.20",),
                  (), ())
INPUTS = Inputs({"a": "file 644 x"}, "d", {}, None, None, {"alpine:3.20": "sha256:1"})


def attrs(**changes) -> dict:
    labels = {HASH_LABEL: INPUTS.digest, PROJECT_LABEL: "ai-infra", SERVICE_LABEL: "backend"}
    record = {"Size": 10, "RepoTags": ["ai-infra-backend:v1"], "Os": "linux", "Architecture": "amd64",
              "Config": {"Labels": labels}}
    record.update(changes)
    return record


def verdict(record, inputs=INPUTS, missing="", previous=None):
    return judge(record, SERVICE, "ai-infra", inputs, missing, previous)


def test_valid_current_image_is_ok():
    assert verdict(attrs()).status is ImageStatus.OK


def test_invalid_images():
    assert verdict(attrs(Size=0)).reason == "size 0"
    assert verdict(attrs(RepoTags=[])).reason == "not tagged ai-infra-backend:v1"
    assert verdict(attrs(Architecture="")).status is ImageStatus.INVALID


def test_images_built_by_something_else_are_stale():
    assert verdict(attrs(Config={"Labels": None})).reason == "built by something else (no buildlib label)"
    other = {HASH_LABEL: INPUTS.digest, PROJECT_LABEL: "ai-infra", SERVICE_LABEL: "frontend"}
    assert verdict(attrs(Config={"Labels": other})).reason == "built by buildlib for ai-infra/frontend"


def test_changed_inputs_are_explained_from_the_record_of_that_build():
    now = Inputs({"a": "file 644 y"}, "d", {}, None, None, {"alpine:3.20": "sha256:1"})
    record = {"inputs_hash": INPUTS.digest, "inputs": INPUTS.as_record()}
    assert verdict(attrs(), now, previous=record).reason == "a changed"
    assert verdict(attrs(), now, previous={"inputs_hash": "sha256:other"}).reason == "inputs changed"
    assert verdict(attrs(), now).reason == "inputs changed"


def test_missing_base_cannot_be_verified():
    result = verdict(attrs(), None, "alpine:3.20")
    assert (result.status, result.reason) == (ImageStatus.STALE, "base alpine:3.20 is not in the engine")


def test_missing_image():
    assert verdict(None).status is ImageStatus.MISSING


def test_a_base_built_here_stands_for_its_inputs_hash_an_external_one_for_its_id():
    built_here = {"Id": "sha256:machine-specific", "Config": {"Labels": {HASH_LABEL: "sha256:same-everywhere"}}}
    assert base_identity(built_here, internal=True) == "sha256:same-everywhere"
    assert base_identity(built_here, internal=False) == "sha256:machine-specific"
    assert base_identity({"Id": "sha256:1", "Config": {"Labels": None}}, internal=True) == "sha256:1"


def test_built_from_reads_the_hash_only_for_the_service_it_names():
    assert built_from(attrs(), "ai-infra", "backend") == INPUTS.digest
    assert built_from(attrs(), "ai-infra", "frontend") is None
    assert built_from(attrs(Config={}), "ai-infra", "backend") is None

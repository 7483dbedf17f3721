"""The artifact manifest: every payload file listed, and each one's size and digest checked."""

from __future__ import annotations

import json

import pytest

from workloads import artifact
from workloads.model import GPT
from workloads.train import model_config


@pytest.fixture
def written(tmp_path):
    model = GPT(model_config("tiny", block_size=16, n_embd=16, n_layer=1, n_head=2))
    return artifact.write(model, run={}, step=1, directory=tmp_path / "artifact")


def rewrite_manifest(directory, edit) -> None:
    path = directory / artifact.MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_a_written_artifact_verifies(written):
    assert set(artifact.verify(written)["files"]) == set(artifact.PAYLOAD)


def test_a_manifest_listing_no_files_is_rejected(written):
    rewrite_manifest(written, lambda m: m.update(files={}))
    with pytest.raises(
        artifact.ArtifactError, match=r"does not list model\.safetensors, config\.json$"
    ):
        artifact.load(written)


def test_a_wrong_size_is_rejected(written):
    rewrite_manifest(written, lambda m: m["files"][artifact.CONFIG].update(bytes=1))
    with pytest.raises(
        artifact.ArtifactError, match=r"config.json is \d+ bytes, the manifest says 1"
    ):
        artifact.verify(written)

"""Find, fetch and verify the model artifact the server was pointed at."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import torch

from workloads import artifact
from workloads.model import GPT

log = logging.getLogger(__name__)

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://")


def locate(directory: str | Path) -> Path:
    """``directory`` or its one subdirectory holding the artifact.

    One level covers the platforms: Azure ML mounts the registered folder below
    ``AZUREML_MODEL_DIR``, and a SageMaker ``model.tar.gz`` may wrap it in a folder.
    """
    directory = Path(directory)
    if (directory / artifact.MANIFEST).is_file():
        return directory
    if not directory.is_dir():
        raise artifact.ArtifactError(f"model directory {directory} does not exist")
    found = sorted(p.parent for p in directory.glob(f"*/{artifact.MANIFEST}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise artifact.ArtifactError(
            f"no {artifact.MANIFEST} in {directory} or its immediate subdirectories"
        )
    raise artifact.ArtifactError(
        f"{len(found)} artifacts below {directory} ({', '.join(map(str, found))}); point at one"
    )


def fetch(source: str, cache_dir: str | Path) -> Path:
    """A verified local artifact directory for ``source`` (a local path or object-store URL);
    an empty ``cache_dir`` downloads into a fresh temp dir."""
    if source.startswith("file://"):
        source = source.removeprefix("file://")
    if not source.startswith(REMOTE_SCHEMES):
        return locate(source)
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="gpuyard-model-")
    # One subdirectory per URL, so two servers sharing a cache never mix files.
    local = Path(cache_dir) / hashlib.sha256(source.encode()).hexdigest()[:16]
    log.info("downloading model from %s to %s", source, local)
    return artifact.download(source, local)


def load(source: str, cache_dir: str | Path, device: str) -> tuple[GPT, dict]:
    """Fetch, verify every file against the manifest and load the model in eval mode."""
    directory = fetch(source, cache_dir)
    model, config = artifact.load(directory, device=torch.device(device))
    log.info("loaded %s (step %s) from %s", model.config, config.get("step"), source)
    return model, config

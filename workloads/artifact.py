"""The serving artifact: the contract between ``export`` and ``serve``.

An artifact is a directory (local or at any fsspec URL) holding::

    model.safetensors   weights of workloads.model.GPT (tied lm_head stored once)
    config.json         {"format": FORMAT, "model": GPTConfig fields, "run": run config, "step": N}
    manifest.json       {"format": FORMAT, "files": {name: {"sha256": hex, "bytes": n}}}

``manifest.json`` is written last, so a reader that finds it finds a complete artifact,
and every file is checked against it before the weights are trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from workloads.model import GPT, GPTConfig
from workloads.store import fs_root

FORMAT = "gpuyard-model/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
MANIFEST = "manifest.json"
PAYLOAD = (WEIGHTS, CONFIG)


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete, of another format or fails its digests."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write(model: GPT, run: dict, step: int, directory: str | os.PathLike) -> Path:
    """Write weights, config and manifest into a local ``directory``; manifest last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS))
    config = {"format": FORMAT, "model": model.config.to_dict(), "run": run, "step": step}
    (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    files = {
        name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
        for name in PAYLOAD
    }
    manifest = {"format": FORMAT, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return directory


def upload(local: str | os.PathLike, url: str, extra: Iterable[str | os.PathLike] = ()) -> None:
    """Copy a local artifact to ``url``: ``extra`` files by name, then payload, manifest last."""
    fs, root = fs_root(url)
    fs.makedirs(root, exist_ok=True)
    for path in (*extra, *(Path(local) / name for name in (*PAYLOAD, MANIFEST))):
        fs.put_file(str(path), f"{root}/{Path(path).name}")


def download(url: str, local: str | os.PathLike) -> Path:
    """Fetch the artifact at ``url`` into ``local`` and verify it against its manifest."""
    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    fs, root = fs_root(url)
    if not fs.exists(f"{root}/{MANIFEST}"):
        raise ArtifactError(
            f"no {MANIFEST} at {url}: not a gpuyard model, or its export is incomplete"
        )
    for name in (MANIFEST, *PAYLOAD):
        fs.get_file(f"{root}/{name}", str(local / name))
    verify(local)
    return local


def verify(directory: str | os.PathLike) -> dict:
    """Check every file of a local artifact against the manifest; return the manifest."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory} has no {MANIFEST}") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{directory}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    files = manifest.get("files", {})
    unlisted = [name for name in PAYLOAD if name not in files]
    if unlisted:
        raise ArtifactError(f"{directory}: the manifest does not list {', '.join(unlisted)}")
    for name, entry in files.items():
        path = directory / name
        if not path.exists():
            raise ArtifactError(f"{directory}: {name} is listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ArtifactError(
                f"{directory}: {name} is {size} bytes, the manifest says {entry['bytes']}"
            )
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ArtifactError(
                f"{directory}: {name} sha256 {actual} does not match manifest {entry['sha256']}"
            )
    return manifest


def load(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Verify and load a local artifact: the model in eval mode and its config.json."""
    directory = Path(directory)
    verify(directory)
    config = json.loads((directory / CONFIG).read_text())
    model = GPT(GPTConfig.from_dict(config["model"]))
    load_model(model, str(directory / WEIGHTS), device=str(device))
    return model.to(device).eval(), config

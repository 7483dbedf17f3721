"""Turn the latest complete checkpoint into a serving artifact.

    python -m workloads export --ckpt s3://bucket/runs/run1 \\
        --out s3://bucket/models/run1 --sagemaker

The artifact (see ``workloads.artifact``) lands at ``--out``; with ``--sagemaker``
its files are also packed into ``--out``/model.tar.gz at the archive root, which
is how SageMaker unpacks a model into /opt/ml/model.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

from workloads import artifact, checkpoint

SAGEMAKER_ARCHIVE = "model.tar.gz"


def export(ckpt: str, out: str, sagemaker: bool = False) -> dict:
    """Write the latest complete checkpoint under ``ckpt`` as an artifact at ``out``.

    Runs in one process: DCP consolidates however many ranks wrote the checkpoint.
    Returns what was written: step, artifact URL and, with ``sagemaker``, the archive URL.
    """
    found = checkpoint.find_latest(ckpt)
    if found is None:
        raise checkpoint.CheckpointError(f"--ckpt {ckpt}: no complete checkpoint to export")
    model = checkpoint.load_model(found)
    result = {"event": "exported", "step": found.step, "checkpoint": found.url, "artifact": out}
    with tempfile.TemporaryDirectory() as tmp:
        local = artifact.write(model, found.meta["run"], found.step, Path(tmp) / "artifact")
        extra = []
        if sagemaker:
            archive = Path(tmp) / SAGEMAKER_ARCHIVE
            with tarfile.open(archive, "w:gz") as tar:
                for name in (*artifact.PAYLOAD, artifact.MANIFEST):
                    tar.add(local / name, arcname=name)
            extra.append(archive)
            result["sagemaker"] = f"{out.rstrip('/')}/{SAGEMAKER_ARCHIVE}"
        # The archive goes up before the manifest, so finding the manifest means all is there.
        artifact.upload(local, out, extra=extra)
    return result


def add_parser(subparsers) -> None:
    """Register ``export`` on the ``python -m workloads`` command line."""
    p = subparsers.add_parser(
        "export",
        help="write the latest complete checkpoint as a serving artifact",
        description=__doc__,
    )
    p.add_argument("--ckpt", required=True, help="checkpoint URL prefix given to `train`")
    p.add_argument("--out", required=True, help="artifact URL, e.g. s3://bucket/models/run1")
    p.add_argument("--sagemaker", action="store_true", help="also write model.tar.gz for SageMaker")
    p.set_defaults(func=main)


def main(args) -> int:
    print(json.dumps(export(args.ckpt, args.out, sagemaker=args.sagemaker)), flush=True)
    return 0

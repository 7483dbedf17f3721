"""Data, checkpoint, resume and export over file://, S3, GCS and Azure Blob."""

from __future__ import annotations

import tarfile

import fsspec
import torch

from workloads import artifact, checkpoint
from workloads.data import prepare
from workloads.export import export
from workloads.train import TrainConfig, model_config, train


def test_train_resume_export_round_trip(store, tmp_path):
    data, ckpt, models = f"{store}/data", f"{store}/ckpt", f"{store}/models/run1"
    prepare(data, max_bytes=200_000)
    config = model_config("tiny", block_size=32, n_embd=32, n_layer=1)
    cfg = TrainConfig(data=data, ckpt=ckpt, steps=4, batch_size=2, warmup=1, eval_every=2,
                      eval_iters=1, ckpt_every=2, log_every=2)  # fmt: skip
    first = train(cfg, config)
    assert checkpoint.find_latest(ckpt).step == 4

    resumed = train(TrainConfig(**{**cfg.__dict__, "steps": 6, "resume": "must"}), config)
    assert resumed.step == 6
    found = checkpoint.find_latest(ckpt)
    assert found.step == 6 and found.meta["run"]["steps"] == 6
    assert first.step == 4

    written = export(ckpt, models, sagemaker=True)
    assert written["step"] == 6 and written["sagemaker"] == f"{models}/model.tar.gz"
    model, meta = artifact.load(artifact.download(models, tmp_path / "artifact"))
    assert meta["step"] == 6 and meta["run"]["data"] == data
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = resumed.model.eval()(idx)[0]
        assert torch.equal(model(idx)[0], expected)

    fs, root = fsspec.core.url_to_fs(models)
    fs.get_file(f"{root}/model.tar.gz", str(tmp_path / "model.tar.gz"))
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted([*artifact.PAYLOAD, artifact.MANIFEST])

"""Bad input: one clear line on stderr, a non-zero exit on every rank, no hang."""

from __future__ import annotations

import pytest
from test_training import SMALL, run

from workloads.__main__ import main
from workloads.train import TrainConfig, model_config, train


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_nonexistent_data(capsys, tmp_path):
    url = (tmp_path / "nope").as_uri()
    err = one_line_error(capsys, ["train", "--data", url])
    assert f"--data {url}: no manifest.json there" in err


def test_unknown_preset(capsys, stdlib_data):
    err = one_line_error(capsys, ["train", "--data", stdlib_data, "--preset", "huge"])
    assert "unknown model preset 'huge'" in err


def test_resume_without_a_checkpoint(capsys, stdlib_data, tmp_path):
    ckpt = (tmp_path / "ck").as_uri()
    err = one_line_error(capsys, ["train", "--data", stdlib_data, "--ckpt", ckpt, "--resume"])
    assert f"no complete checkpoint under {ckpt}" in err


def test_export_without_a_checkpoint(capsys, tmp_path):
    err = one_line_error(
        capsys, ["export", "--ckpt", (tmp_path / "ck").as_uri(), "--out", str(tmp_path / "m")]
    )
    assert "no complete checkpoint to export" in err


def test_checkpoint_of_another_model_config(capsys, stdlib_data, tmp_path):
    ckpt = (tmp_path / "ck").as_uri()
    cfg = TrainConfig(data=stdlib_data, ckpt=ckpt, steps=2, batch_size=2, warmup=1, eval_every=0)
    train(cfg, model_config("tiny", block_size=32, n_embd=32, n_layer=1))
    argv = ["train", "--data", stdlib_data, "--ckpt", ckpt, "--resume", "--block-size", "32",
            "--n-embd", "32", "--n-layer", "2"]  # fmt: skip
    err = one_line_error(capsys, argv)
    assert "written by a different model config" in err and "n_layer=1 vs 2" in err
    err = one_line_error(capsys, argv[:5] + argv[6:])
    assert "already holds checkpoints" in err


def test_every_rank_exits_and_only_rank_zero_reports(stdlib_data):
    result = run("train", "--data", stdlib_data, "--preset", "huge", *SMALL, nproc=2, timeout=90)
    assert result.returncode != 0
    assert result.stderr.count("error: unknown model preset 'huge'") == 1


@pytest.mark.parametrize("flag", ["--steps=0", "--parallel=zero"])
def test_bad_flag_values(capsys, stdlib_data, flag):
    err = one_line_error(capsys, ["train", "--data", stdlib_data, flag])
    assert flag.split("=")[0] in err

"""The training loop: DDP over gloo, exact resume, preemption, torn checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import torch
from fsspec.implementations.local import LocalFileSystem

from workloads import artifact, checkpoint
from workloads.train import TrainConfig, lr_at, model_config, train

SMALL = ["--block-size", "64", "--n-embd", "64", "--batch-size", "4", "--warmup", "5"]
"""Flags shrinking the tiny preset so each step takes milliseconds on a 2-core CPU."""


def command(*args: str, nproc: int = 0) -> list[str]:
    """``python -m workloads ARGS``, under torchrun with ``nproc`` processes if given."""
    if nproc:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        return [sys.executable, *launcher, "-m", "workloads", *args]
    return [sys.executable, "-m", "workloads", *args]


def run(*args: str, nproc: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command(*args, nproc=nproc), capture_output=True, text=True, timeout=timeout, env=env
    )


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def losses(stdout: str) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(stdout) if "loss" in r}


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants; torchrun starts workers in sessions of their own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def small_config(**overrides):
    return model_config("tiny", block_size=64, n_embd=64, **overrides)


def test_lr_warms_up_then_decays_to_min():
    cfg = TrainConfig(data="", steps=100, warmup=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)


def test_two_process_ddp_learns_and_resumes_bit_exactly_after_sigkill(stdlib_data, tmp_path):
    common = [
        "train", "--data", stdlib_data, *SMALL, "--steps", "30", "--log-every", "5",
        "--eval-every", "15", "--eval-iters", "2", "--ckpt-every", "10",
    ]  # fmt: skip
    whole = run(*common, "--ckpt", (tmp_path / "whole").as_uri(), nproc=2)
    assert whole.returncode == 0, whole.stderr
    logged = records(whole.stdout)
    train_losses = [r["loss"] for r in logged if "loss" in r]
    assert len(train_losses) == 6
    assert train_losses[-1] < train_losses[0] - 0.4
    assert {"step", "loss", "lr", "tokens_per_s", "mfu", "elapsed"} <= set(logged[0])
    assert logged[0]["mfu"] is None
    assert [r["step"] for r in logged if r.get("event") == "eval"] == [15, 30]
    found = checkpoint.find_latest((tmp_path / "whole").as_uri())
    assert found.step == 30 and found.meta["world_size"] == 2
    assert {"__0_0.distcp", "__1_0.distcp", "rank-00001.pt"} <= {
        p.name for p in (tmp_path / "whole" / "step-000030").iterdir()
    }

    ckpt = (tmp_path / "killed").as_uri()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command(*common, "--ckpt", ckpt, nproc=2),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        for line in process.stdout:
            if line.startswith('{"step": 15,'):
                for pid in process_tree(process.pid):
                    os.kill(pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
    assert checkpoint.find_latest(ckpt).step == 10

    resumed = run(*common, "--ckpt", ckpt, "--resume", nproc=2)
    assert resumed.returncode == 0, resumed.stderr
    assert records(resumed.stdout)[0] == {
        "event": "resume",
        "step": 10,
        "from": f"{ckpt}/step-000010",
    }
    expected = {s: v for s, v in losses(whole.stdout).items() if s > 10}
    assert losses(resumed.stdout) == expected


def test_sigterm_checkpoints_at_step_boundary_and_exits_zero(stdlib_data, tmp_path):
    ckpt = (tmp_path / "ck").as_uri()
    process = subprocess.Popen(
        command("train", "--data", stdlib_data, "--ckpt", ckpt, *SMALL, "--steps", "100000",
                "--log-every", "5", "--eval-every", "0", "--ckpt-every", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for line in process.stdout:
        if line.startswith('{"step": 10,'):
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    events = {r.get("event"): r for r in records(out)}
    stopped = events["preempted"]["step"]
    assert stopped >= 10
    assert checkpoint.find_latest(ckpt).step == stopped


def test_torn_checkpoint_is_skipped_with_a_warning(stdlib_data, tmp_path):
    ckpt = (tmp_path / "ck").as_uri()
    cfg = TrainConfig(data=stdlib_data, ckpt=ckpt, steps=10, batch_size=4, warmup=2,
                      eval_every=0, ckpt_every=5, log_every=5)  # fmt: skip
    full = train(cfg, small_config())
    # A crash after some ranks wrote: files missing, no COMPLETE marker.
    fs, root = fsspec.core.url_to_fs(ckpt)
    fs.rm(f"{root}/step-000010/{checkpoint.COMPLETE}")
    fs.rm(f"{root}/step-000010/.metadata")
    with pytest.warns(UserWarning, match="skipping torn checkpoint step-000010"):
        assert checkpoint.find_latest(ckpt).step == 5
    with pytest.warns(UserWarning, match="torn"):
        again = train(TrainConfig(**{**cfg.__dict__, "resume": "must"}), small_config())
    assert again.loss == full.loss
    assert checkpoint.find_latest(ckpt).step == 10


def test_keeps_only_the_last_k_checkpoints(stdlib_data, tmp_path):
    ckpt = tmp_path / "ck"
    cfg = TrainConfig(data=stdlib_data, ckpt=ckpt.as_uri(), steps=8, batch_size=2, warmup=2,
                      eval_every=0, ckpt_every=2, keep=2, log_every=8)  # fmt: skip
    train(cfg, small_config())
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-000006", "step-000008"]


def test_a_failing_prune_warns_and_the_run_goes_on(stdlib_data, tmp_path, monkeypatch):
    def broken_rm(self, path, recursive=False, **kwargs):
        if recursive:
            raise OSError("store unavailable")
        return real_rm(self, path, recursive=recursive, **kwargs)

    real_rm = LocalFileSystem.rm
    monkeypatch.setattr(LocalFileSystem, "rm", broken_rm)
    ckpt = tmp_path / "ck"
    cfg = TrainConfig(data=stdlib_data, ckpt=ckpt.as_uri(), steps=4, batch_size=2, warmup=2,
                      eval_every=0, ckpt_every=2, keep=1, log_every=4)  # fmt: skip
    with pytest.warns(UserWarning, match="could not prune old checkpoints.*store unavailable"):
        assert train(cfg, small_config()).step == 4
    assert checkpoint.find_latest(ckpt.as_uri()).step == 4
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-000002", "step-000004"]


@pytest.mark.parametrize("before", [False, True])
def test_train_leaves_the_callers_determinism_setting_alone(stdlib_data, before):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(before)
    try:
        cfg = TrainConfig(data=stdlib_data, steps=1, batch_size=2, warmup=1, eval_every=0)
        train(cfg, small_config())
        assert torch.are_deterministic_algorithms_enabled() is before
    finally:
        torch.use_deterministic_algorithms(previous)


def test_two_process_fsdp2_learns_resumes_exactly_and_exports(stdlib_data, tmp_path):
    common = [
        "train", "--data", stdlib_data, *SMALL, "--steps", "20", "--log-every", "5",
        "--eval-every", "0", "--ckpt-every", "10", "--parallel", "fsdp",
    ]  # fmt: skip
    whole = run(*common, "--ckpt", (tmp_path / "whole").as_uri(), nproc=2)
    assert whole.returncode == 0, whole.stderr
    whole_losses = losses(whole.stdout)
    assert whole_losses[20] < whole_losses[5] - 0.3

    # A copy of the run as if it had died after its step-10 checkpoint.
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "step-000020")
    ckpt = (tmp_path / "cut").as_uri()
    second = run(*common, "--ckpt", ckpt, "--resume", nproc=2)
    assert second.returncode == 0, second.stderr
    assert losses(second.stdout) == {s: v for s, v in whole_losses.items() if s > 10}

    out = (tmp_path / "model").as_uri()
    exported = run("export", "--ckpt", ckpt, "--out", out)
    assert exported.returncode == 0, exported.stderr
    model, config = artifact.load(tmp_path / "model")
    assert config["step"] == 20 and config["run"]["parallel"] == "fsdp"
    assert model.config == small_config()

"""Training benchmark: loop overhead, GPU throughput, checkpoint speed per store.

    python -m workloads.bench_train            # CPU overhead + checkpoint table
    python -m workloads.bench_train --gpu      # also small preset, bf16 + compile, on CUDA

(a) tokens/s of the real training loop (``workloads.train.train``, logging on,
checkpoints off) against a bare forward/backward/AdamW loop over the same
model, batches and seed, interleaved so both see the same machine noise;
(b) on CUDA, tokens/s and MFU of the ``small`` preset; (c) seconds per GB to
save and restore a checkpoint on file://, S3, GCS and Azure Blob emulators.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

from workloads import checkpoint, local_stores
from workloads.data import BatchSampler, Split, prepare
from workloads.model import GPT, GPTConfig, preset
from workloads.store import fs_root
from workloads.train import TrainConfig, kernel_determinism, mfu, train


def bare_loop(config: GPTConfig, data: str, steps: int, batch_size: int, seed: int) -> float:
    """Tokens/s of forward, backward and AdamW step alone, batches drawn beforehand."""
    sampler = BatchSampler(Split.open(data, "train", config.block_size + 1),
                           batch_size, config.block_size, seed, 0)  # fmt: skip
    batches = [sampler.next() for _ in range(steps)]
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    # The same kernels as the real loop on CPU, so the comparison is one of loops alone.
    with kernel_determinism(torch.device("cpu")):
        started = time.perf_counter()
        for x, y in batches:
            model(x, y)[1].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
    return steps * batch_size * config.block_size / elapsed


def real_loop(config: GPTConfig, data: str, steps: int, batch_size: int, seed: int, **kw) -> float:
    """Tokens/s of the training loop as ``python -m workloads train`` runs it."""
    cfg = TrainConfig(data=data, steps=steps, batch_size=batch_size, seed=seed, eval_every=0,
                      warmup=min(100, steps), **kw)  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        result = train(cfg, config)
    return result.tokens / result.loop_seconds


def cpu_overhead(data: str, steps: int, reps: int, batch_size: int) -> list[str]:
    config = preset("tiny")
    bare, real = [], []
    for rep in range(reps):
        bare.append(bare_loop(config, data, steps, batch_size, seed=rep))
        real.append(real_loop(config, data, steps, batch_size, seed=rep))
    b, r = statistics.median(bare), statistics.median(real)
    return [
        f"| loop | tokens/s (median of {reps}) |",
        "|---|---|",
        f"| bare forward/backward/AdamW | {b:,.0f} |",
        f"| workloads.train loop | {r:,.0f} |",
        f"| overhead | {100 * (b - r) / b:.1f} % |",
    ]


def gpu_throughput(data: str, steps: int, batch_size: int) -> list[str]:
    config = preset("small")
    tokens_per_s = real_loop(config, data, steps, batch_size, seed=0, compile=True, log_every=10)
    utilisation = mfu(config, tokens_per_s, torch.device("cuda"))
    return [
        "| device | preset | tokens/s | MFU |",
        "|---|---|---|---|",
        f"| {torch.cuda.get_device_name()} | small, bf16, compile | {tokens_per_s:,.0f} | "
        + ("n/a" if utilisation is None else f"{100 * utilisation:.1f} %")
        + " |",
    ]


def checkpoint_speed(stores: list[str], workdir: Path) -> list[str]:
    config = GPTConfig(block_size=256, n_layer=4, n_head=8, n_embd=512)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))[1].backward()
    optimizer.step()
    state = {"data": {"position": 0}, "rng": checkpoint.rng_state()}
    meta = {"model": config.to_dict(), "run": {}, "world_size": 1}
    rows = ["| store | checkpoint MB | save s/GB | restore s/GB |", "|---|---|---|---|"]
    for kind in stores:
        server = None if kind == "file" else local_stores.STARTERS[kind]()
        previous = local_stores.apply_env(server.env) if server else {}
        try:
            url = (workdir / "ckpt").as_uri() if server is None else server.url("bench")
            started = time.perf_counter()
            checkpoint.save(url, 1, model, optimizer, state, meta, keep=1)
            saved = time.perf_counter() - started
            found = checkpoint.find_latest(url)
            started = time.perf_counter()
            checkpoint.load(found, model, optimizer)
            restored = time.perf_counter() - started
            fs, root = fs_root(found.url)
            gb = fs.du(root) / 1e9
            rows.append(f"| {kind} | {gb * 1e3:.0f} | {saved / gb:.1f} | {restored / gb:.1f} |")
        finally:
            local_stores.restore_env(previous)
            if server:
                server.stop()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps per repetition")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each loop")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--gpu", action="store_true", help="also measure the small preset on CUDA")
    p.add_argument("--stores", default="file,s3,gcs,az", help="stores for the checkpoint table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = (Path(tmp) / "data").as_uri()
        prepare(data, max_bytes=4_000_000)
        print(f"(a) CPU, tiny preset, batch {args.batch_size}, {args.steps} steps\n")
        print("\n".join(cpu_overhead(data, args.steps, args.reps, args.batch_size)))
        if args.gpu:
            print("\n(b) GPU\n")
            print("\n".join(gpu_throughput(data, args.steps, args.batch_size)))
        print("\n(c) checkpoint save/restore, one process\n")
        stores = [s for s in args.stores.split(",") if s]
        print("\n".join(checkpoint_speed(stores, Path(tmp))))


if __name__ == "__main__":
    main()

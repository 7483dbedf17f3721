"""Train the byte-level GPT on token shards, in one process or under torchrun.

One process (CPU, or one GPU):

    python -m workloads train --data file:///tmp/stdlib --ckpt file:///tmp/run1 --preset tiny

One node with 8 GPUs (DDP; ``--parallel fsdp`` shards with FSDP2 instead):

    torchrun --standalone --nproc_per_node 8 -m workloads train \\
        --data s3://bucket/data/stdlib --ckpt s3://bucket/runs/run1 --preset small

Two nodes (run on each, ``--node_rank`` 0 and 1):

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 -m workloads train --data ... --ckpt ... --preset medium

Logs are JSON lines on stdout from rank 0. SIGTERM (a spot preemption notice)
makes every rank checkpoint at the next step boundary and exit 0; relaunch
with ``--resume`` to continue bit-exactly on CPU.

Under torchrun the agent forwards SIGTERM to the workers and SIGKILLs them
about 30 s later. A preemption checkpoint that takes longer than that (the
step in flight plus the upload to an object store) is torn: resume skips it
and continues from the previous periodic checkpoint, so up to ``--ckpt-every``
steps are lost. Read the ``seconds`` of the ``checkpoint`` log lines, and where
they approach 30 s, set ``--ckpt-every`` so that the steps between checkpoints
are work you can afford to redo after a preemption.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from workloads import checkpoint
from workloads.data import BatchSampler, Split
from workloads.model import GPT, GPTConfig, preset

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
"""Dense bf16 peak flops by GPU name fragment, for MFU; other devices report mfu null."""


class ConfigError(ValueError):
    """A training flag that cannot work; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the model shape; saved in every checkpoint."""

    data: str
    """URL of a dataset written by ``python -m workloads prepare``."""
    ckpt: str | None = None
    """URL under which checkpoints go; None trains without checkpoints."""
    steps: int = 1000
    """Optimizer steps to reach; the cosine schedule decays to ``min_lr`` there."""
    batch_size: int = 16
    """Sequences per micro-batch per rank."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; tokens per step are batch * accum * block * ranks."""
    lr: float = 1e-3
    """Peak learning rate, reached at the end of warmup."""
    min_lr: float = 1e-4
    """Learning rate at the end of the cosine decay."""
    warmup: int = 100
    """Steps of linear warmup from 0."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay on matrices (not on norms or biases)."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    grad_clip: float = 1.0
    """Maximum global gradient norm; 0 turns clipping off."""
    eval_every: int = 250
    """Steps between val-loss evaluations; 0 turns evaluation off."""
    eval_iters: int = 20
    """Micro-batches per rank in one evaluation; the same batches every time."""
    log_every: int = 10
    """Steps between training log lines."""
    ckpt_every: int = 500
    """Steps between checkpoints; 0 saves only at the end and on SIGTERM."""
    keep: int = 3
    """Complete checkpoints to keep; older ones are deleted."""
    seed: int = 1337
    """Seeds weights, batches and dropout; a CPU run is a function of it."""
    resume: str = "never"
    """``never``: start fresh; ``must``: continue from the latest checkpoint or fail;
    ``auto``: continue if there is one (for jobs that restart themselves)."""
    parallel: str = "ddp"
    """``ddp`` replicates the model on every rank; ``fsdp`` shards it with FSDP2."""
    compile: bool | None = None
    """torch.compile the model; None means on GPU only."""


@dataclass
class TrainResult:
    """What a finished (or preempted) run returns to an in-process caller."""

    model: GPT
    """The unwrapped model, weights as trained (sharded under FSDP)."""
    step: int
    """Optimizer steps taken in total, including those before a resume."""
    loss: float | None
    """Last logged training loss."""
    loop_seconds: float
    """Wall time of this process's training steps, logging and evaluation included."""
    tokens: int
    """Tokens trained on by all ranks in this process's lifetime."""
    preempted: bool
    """True when SIGTERM stopped the run early (after checkpointing)."""


def model_config(name: str, **overrides) -> GPTConfig:
    """The preset ``name`` with any non-None field overridden; ConfigError if invalid."""
    try:
        return replace(preset(name), **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        raise ConfigError(str(error)) from None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if step >= cfg.steps:
        return cfg.min_lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def mfu(
    config: GPTConfig, tokens_per_s: float, device: torch.device, world: int = 1
) -> float | None:
    """Model flops utilisation of ``world`` devices like ``device``; None without a known peak."""
    peak = peak_flops(device)
    return config.flops_per_token() * tokens_per_s / (peak * world) if peak else None


@contextlib.contextmanager
def kernel_determinism(device: torch.device):
    """Deterministic kernels on CPU while inside; the caller's setting is restored on exit.

    Bit-exact resume needs reproducible kernels; on GPU they would cost speed.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _validate(cfg: TrainConfig) -> None:
    positive = ("steps", "batch_size", "grad_accum", "keep", "log_every", "eval_iters")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}"
            )
    if cfg.parallel not in ("ddp", "fsdp"):
        raise ConfigError(f"--parallel {cfg.parallel!r}: choose ddp or fsdp")
    if cfg.resume not in ("never", "must", "auto"):
        raise ConfigError(f"--resume {cfg.resume!r}: choose never, must or auto")
    if cfg.resume != "never" and cfg.ckpt is None:
        raise ConfigError("--resume needs --ckpt: there is nowhere to resume from")


def _find_resume_point(cfg: TrainConfig, config: GPTConfig) -> checkpoint.Found | None:
    if cfg.ckpt is None:
        return None
    found = checkpoint.find_latest(cfg.ckpt)
    if cfg.resume == "never":
        if found is not None:
            raise checkpoint.CheckpointError(
                f"--ckpt {cfg.ckpt} already holds checkpoints (latest {found.url}); "
                "pass --resume to continue that run or choose an empty --ckpt"
            )
        return None
    if found is None:
        if cfg.resume == "must":
            raise checkpoint.CheckpointError(f"--resume: no complete checkpoint under {cfg.ckpt}")
        return None
    checkpoint.check_model_config(found, config)
    return found


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda"
    )


def _wrap(model: GPT, cfg: TrainConfig, device: torch.device, world: int) -> torch.nn.Module:
    if world == 1:
        return model
    if cfg.parallel == "ddp":
        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _grad_sync(model: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext() if sync else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


class _Preemption:
    """SIGTERM sets a flag; ranks agree on it at step boundaries so all stop together."""

    def __init__(self, group):
        self.group = group
        self.requested = False
        self.previous = None

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def agreed(self) -> bool:
        if self.group is None:
            return self.requested
        flag = torch.tensor([int(self.requested)])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flag.item())


def _log(record: dict) -> None:
    print(json.dumps(record), flush=True)


def train(cfg: TrainConfig, config: GPTConfig) -> TrainResult:
    """Run training as configured; collective when launched under torchrun.

    Every check that can fail on bad input runs before the process group
    starts, identically on every rank, so all ranks fail together instead
    of leaving the others hanging in a collective.
    """
    with kernel_determinism(torch.device("cuda" if torch.cuda.is_available() else "cpu")):
        return _train(cfg, config)


def _train(cfg: TrainConfig, config: GPTConfig) -> TrainResult:
    _validate(cfg)
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    train_split = Split.open(cfg.data, "train", config.block_size + 1)
    val_split = Split.open(cfg.data, "val", config.block_size + 1) if cfg.eval_every else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if rank else "default")
        resume_from = _find_resume_point(cfg, config)

    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    control = None
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if world > 1:
        # A CPU group for the preemption flag, so checking it never waits on the GPU stream.
        control = dist.new_group(backend="gloo") if device.type == "cuda" else dist.group.WORLD

    torch.manual_seed(cfg.seed)
    model = GPT(config).to(device)
    use_compile = device.type == "cuda" if cfg.compile is None else cfg.compile
    if use_compile:
        model.compile()
    wrapped = _wrap(model, cfg, device, world)
    optimizer = _optimizer(wrapped, cfg, device)
    sampler = BatchSampler(train_split, cfg.batch_size, config.block_size, cfg.seed, rank)
    # Dropout differs per rank, as each rank sees different data.
    torch.manual_seed(cfg.seed + 1 + rank)
    step = 0
    if resume_from is not None:
        state = checkpoint.load(resume_from, wrapped, optimizer)
        step = resume_from.step
        if state is None:
            warnings.warn(
                f"{resume_from.url} was written by {resume_from.meta['world_size']} ranks, "
                f"not {world}: weights and optimizer restored, data order and RNG start anew",
                stacklevel=1,
            )
            sampler.position = step * cfg.grad_accum
        else:
            sampler.load_state_dict(state["data"])
            checkpoint.set_rng_state(state["rng"])
        if rank == 0:
            _log({"event": "resume", "step": step, "from": resume_from.url})

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    tokens_per_step = cfg.batch_size * cfg.grad_accum * config.block_size * world
    meta = {"model": config.to_dict(), "run": asdict(cfg), "world_size": world}
    bar = None
    if rank == 0 and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, file=sys.stderr, unit="step")

    def save(at: int) -> None:
        started = time.perf_counter()
        url = checkpoint.save(
            cfg.ckpt,
            at,
            wrapped,
            optimizer,
            {"data": sampler.state_dict(), "rng": checkpoint.rng_state()},
            meta,
            cfg.keep,
        )
        if rank == 0:
            _log(
                {
                    "event": "checkpoint",
                    "step": at,
                    "url": url,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )

    def evaluate() -> float:
        wrapped.eval()
        total = torch.zeros((), device=device)
        val = BatchSampler(val_split, cfg.batch_size, config.block_size, cfg.seed, rank)
        with torch.no_grad():
            for i in range(cfg.eval_iters):
                x, y = (t.to(device) for t in val.batch(i))
                with autocast:
                    total += wrapped(x, y)[1].float()
        wrapped.train()
        if world > 1:
            dist.all_reduce(total)
        return total.item() / (cfg.eval_iters * world)

    started = time.time()
    loop_started = window_started = time.perf_counter()
    paused = 0.0
    window_steps = 0
    first_step = step
    last_loss = None
    preempted = False
    with _Preemption(control) as preemption:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                x, y = (t.to(device, non_blocking=True) for t in sampler.next())
                with _grad_sync(wrapped, micro == cfg.grad_accum - 1), autocast:
                    loss = wrapped(x, y)[1] / cfg.grad_accum
                loss.backward()
                loss_sum += loss.detach()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(wrapped.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_steps += 1
            if bar is not None:
                bar.update()

            if step % cfg.log_every == 0 or step == cfg.steps:
                if world > 1:
                    dist.all_reduce(loss_sum)
                last_loss = loss_sum.item() / world
                now = time.perf_counter()
                tokens_per_s = window_steps * tokens_per_step / (now - window_started - paused)
                utilisation = mfu(config, tokens_per_s, device, world)
                if rank == 0:
                    _log(
                        {
                            "step": step,
                            "loss": round(last_loss, 6),
                            "lr": lr,
                            "tokens_per_s": round(tokens_per_s, 1),
                            "mfu": None if utilisation is None else round(utilisation, 4),
                            "elapsed": round(time.time() - started, 3),
                        }
                    )
                window_started, paused, window_steps = now, 0.0, 0

            pause_started = time.perf_counter()
            if cfg.eval_every and step % cfg.eval_every == 0:
                val_loss = evaluate()
                if rank == 0:
                    _log({"event": "eval", "step": step, "val_loss": round(val_loss, 6)})
            preempted = preemption.agreed()
            periodic = cfg.ckpt_every and step % cfg.ckpt_every == 0
            if cfg.ckpt and (preempted or periodic or step == cfg.steps):
                save(step)
            paused += time.perf_counter() - pause_started
            if preempted:
                if rank == 0:
                    _log({"event": "preempted", "step": step})
                break
    loop_seconds = time.perf_counter() - loop_started
    if bar is not None:
        bar.close()
    if rank == 0:
        _log({"event": "done", "step": step, "elapsed": round(time.time() - started, 3)})
    return TrainResult(
        model=model,
        step=step,
        loss=last_loss,
        loop_seconds=loop_seconds,
        tokens=(step - first_step) * tokens_per_step,
        preempted=preempted,
    )


def add_parser(subparsers) -> None:
    """Register ``train`` on the ``python -m workloads`` command line."""
    p = subparsers.add_parser(
        "train",
        help="train the GPT on prepared token shards (under torchrun for several processes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = TrainConfig(data="")
    p.add_argument("--data", required=True, help="dataset URL written by `prepare`")
    p.add_argument("--ckpt", help="checkpoint URL prefix; without it nothing is saved")
    p.add_argument("--preset", default="tiny", help="model shape: tiny, small or medium")
    for name in ("block_size", "n_layer", "n_head", "n_embd"):
        p.add_argument(
            f"--{name.replace('_', '-')}", type=int, help=f"override the preset's {name}"
        )
    p.add_argument("--dropout", type=float, help="override the preset's dropout")
    for name, kind in (
        ("steps", int), ("batch_size", int), ("grad_accum", int), ("lr", float),
        ("min_lr", float), ("warmup", int), ("weight_decay", float), ("grad_clip", float),
        ("eval_every", int), ("eval_iters", int), ("log_every", int), ("ckpt_every", int),
        ("keep", int), ("seed", int),
    ):  # fmt: skip
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name))
    p.add_argument(
        "--resume",
        nargs="?",
        const="must",
        default="never",
        help="continue from the latest complete checkpoint (--resume=auto: only if there is one)",
    )
    p.add_argument("--parallel", default="ddp", help="ddp (default) or fsdp (FSDP2)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model (default: on GPU only)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = model_config(
        args.preset,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
    )
    fields = TrainConfig.__dataclass_fields__
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    try:
        train(cfg, config)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0

"""Distributed checkpoints at any fsspec URL, visible only once complete.

Layout under the ``--ckpt`` URL::

    step-000120/
        meta.json          format, step, world size, model config, run config (rank 0)
        .metadata          torch.distributed.checkpoint (DCP) index of model + optimizer
        __0_0.distcp ...   DCP shards, one file per rank
        rank-00000.pt ...  per-rank RNG states and data position
        COMPLETE           written by rank 0 after a barrier: every rank has finished

Model and optimizer go through DCP with its fsspec writer and reader, so a run
may resume on another world size or switch DDP and FSDP2; RNG and data state
are per rank and restored only on the same world size. Nothing is ever
renamed on the store (the GCS emulator has no move API): DCP's own metadata
rename is done as copy + delete, and completeness is a marker written last,
so a crash mid-save leaves a directory without ``COMPLETE`` that readers skip.
The latest checkpoint is the newest step directory with ``COMPLETE``; no
pointer file can disagree with the markers.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._fsspec_filesystem import FileSystem, FsspecReader, FsspecWriter
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from workloads.model import GPT, GPTConfig
from workloads.store import fs_root, is_local

FORMAT = "gpuyard-checkpoint/1"
META = "meta.json"
COMPLETE = "COMPLETE"
STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """No usable checkpoint, or one that does not fit this run; the message says which."""


def step_name(step: int) -> str:
    return f"step-{step:06d}"


@dataclass(frozen=True)
class Found:
    """A complete checkpoint."""

    url: str
    """URL of its step directory."""
    step: int
    """Optimizer steps taken when it was written."""
    meta: dict
    """Its meta.json: format, step, world size, model and run config."""


def _step_dirs(url: str) -> list[tuple[int, str]]:
    """(step, path) of every step directory under ``url``, newest first."""
    fs, root = fs_root(url)
    # Listings are cached per filesystem instance, and other processes write here.
    fs.invalidate_cache(root)
    if not fs.exists(root):
        return []
    found = []
    for path in fs.ls(root, detail=False):
        match = STEP_DIR.match(path.rstrip("/").rsplit("/", 1)[-1])
        if match:
            found.append((int(match.group(1)), path.rstrip("/")))
    return sorted(found, reverse=True)


def find_latest(url: str) -> Found | None:
    """The newest complete checkpoint under ``url``; torn ones are skipped with a warning."""
    fs, _ = fs_root(url)
    for step, path in _step_dirs(url):
        if not fs.exists(f"{path}/{COMPLETE}"):
            warnings.warn(
                f"skipping torn checkpoint {step_name(step)} under {url}: no {COMPLETE} marker",
                stacklevel=2,
            )
            continue
        meta = json.loads(fs.cat_file(f"{path}/{META}"))
        return Found(url=f"{url.rstrip('/')}/{step_name(step)}", step=step, meta=meta)
    return None


def check_model_config(found: Found, config: GPTConfig) -> None:
    """Raise CheckpointError naming every field where ``found`` and ``config`` differ."""
    saved = found.meta["model"]
    wanted = config.to_dict()
    diff = [
        f"{k}={saved.get(k)!r} vs {wanted.get(k)!r}" for k in wanted if saved.get(k) != wanted[k]
    ]
    if diff:
        raise CheckpointError(
            f"checkpoint {found.url} was written by a different model config "
            f"(checkpoint vs this run: {', '.join(diff)})"
        )


class _CopyRenameFileSystem(FileSystem):
    """DCP's fsspec filesystem, renaming by copy + delete: the GCS emulator cannot move."""

    def rename(self, path, new_path) -> None:
        self.fs.copy(str(path), str(new_path))
        self.fs.rm(str(path))


class _Writer(FsspecWriter):
    def __init__(self, path: str):
        fs, _ = fs_root(path)
        # fsync only means something on a local disk; elsewhere DCP falls back to os.sync().
        super().__init__(path, sync_files=is_local(fs))
        self.fs = _CopyRenameFileSystem()
        self.path = self.fs.init_path(path)


def rng_state() -> dict:
    """This process's RNG states in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@contextlib.contextmanager
def _quiet():
    """DCP warns on every call without a process group, where one process is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save(
    url: str,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rank_state: dict,
    meta: dict,
    keep: int,
) -> str:
    """Write a checkpoint of ``step`` under ``url`` from every rank; return its URL.

    Collective: every rank calls it. ``rank_state`` is this rank's own state
    (data position, RNG); ``meta`` is written by rank 0. The checkpoint becomes
    visible (``COMPLETE``) only after every rank has written, then rank 0
    deletes all but the newest ``keep`` complete checkpoints.
    """
    rank = dist.get_rank() if dist.is_initialized() else 0
    fs, root = fs_root(url)
    path = f"{root}/{step_name(step)}"
    target = f"{url.rstrip('/')}/{step_name(step)}"
    if rank == 0:
        # A torn save of this same step may be here from before a crash.
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.makedirs(path, exist_ok=True)
        meta = {"format": FORMAT, "step": step, **meta}
        fs.pipe_file(f"{path}/{META}", json.dumps(meta, indent=2, sort_keys=True).encode())
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with _quiet():
        dcp.save({"model": model_sd, "optim": optim_sd}, storage_writer=_Writer(target))
    buffer = io.BytesIO()
    torch.save(rank_state, buffer)
    fs.pipe_file(f"{path}/rank-{rank:05d}.pt", buffer.getvalue())
    _barrier()
    if rank == 0:
        fs.pipe_file(f"{path}/{COMPLETE}", b"")
        try:
            prune(url, keep)
        except Exception as error:
            # The checkpoint is complete: failing here would kill a healthy run while
            # the other ranks wait below, and the next save prunes these too.
            warnings.warn(f"could not prune old checkpoints under {url}: {error!r}", stacklevel=2)
    _barrier()
    return target


def prune(url: str, keep: int) -> None:
    """Delete every step directory older than the newest ``keep`` complete ones."""
    fs, _ = fs_root(url)
    complete = [(s, p) for s, p in _step_dirs(url) if fs.exists(f"{p}/{COMPLETE}")]
    if len(complete) <= keep:
        return
    oldest_kept = complete[keep - 1][0]
    for step, path in _step_dirs(url):
        if step < oldest_kept:
            fs.rm(path, recursive=True)


def load(found: Found, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict | None:
    """Restore model and optimizer in place from ``found``; return this rank's own state.

    Collective. The rank state is None when the checkpoint came from another
    world size, since per-rank RNG streams and data positions do not carry over.
    """
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    with _quiet():
        dcp.load(state, storage_reader=FsspecReader(found.url))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    if found.meta.get("world_size") != world:
        return None
    fs, root = fs_root(found.url)
    data = fs.cat_file(f"{root}/rank-{rank:05d}.pt")
    return torch.load(io.BytesIO(data), weights_only=True)


def load_model(found: Found) -> GPT:
    """The checkpoint's model alone, full weights on CPU, in a single process."""
    model = GPT(GPTConfig.from_dict(found.meta["model"]))
    state = {"model": get_model_state_dict(model, options=StateDictOptions())}
    with _quiet():
        dcp.load(state, storage_reader=FsspecReader(found.url))
    model.load_state_dict(state["model"])
    return model.eval()

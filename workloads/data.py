"""Token shards: ``prepare`` writes them, the training loop samples batches from them.

A dataset is a directory at any fsspec URL holding raw token arrays and a manifest::

    train-00000.bin ...   tokens of the train split, one byte each
    val-00000.bin ...     tokens of the held-out split
    manifest.json         written last: format, vocab size, dtype, shard names, sizes, sha256

Tokens are bytes (vocab 256), so text needs no tokenizer and any file is a corpus.
Shards on a remote store are downloaded once per machine into a cache named by
their sha256, so a dataset rewritten in place is never served from stale bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import torch

from workloads.store import fs_root, is_local

FORMAT = "gpuyard-tokens/1"
MANIFEST = "manifest.json"
VOCAB_SIZE = 256
DOC_SEPARATOR = b"\n"
"""Appended to every document so files never run into each other mid-line."""


class DataError(ValueError):
    """A corpus or dataset that cannot be used; the message says what is wrong."""


def stdlib_sources() -> list[tuple[str, str]]:
    """(name, local path) of every .py file of this Python's standard library, sorted.

    Installed packages are left out so the corpus is the same on every machine
    running the same Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = [
        p
        for p in root.rglob("*.py")
        if not {"site-packages", "dist-packages"} & set(p.relative_to(root).parts)
    ]
    return sorted((p.relative_to(root).as_posix(), str(p)) for p in paths)


def _read_sources(source: str | None) -> tuple[fsspec.AbstractFileSystem, list[tuple[str, str]]]:
    if source is None:
        return fsspec.filesystem("file"), stdlib_sources()
    fs, root = fs_root(source)
    if not fs.exists(root):
        raise DataError(f"--source {source} does not exist")
    if fs.isfile(root):
        return fs, [(Path(root).name, root)]
    files = sorted(p for p in fs.find(root) if not fs.isdir(p))
    prefix = root + "/"
    return fs, [(p.removeprefix(prefix), p) for p in files]


def prepare(
    out: str,
    source: str | None = None,
    val_fraction: float = 0.05,
    shard_tokens: int = 1 << 26,
    max_bytes: int | None = None,
) -> dict:
    """Tokenise ``source`` (a file or directory URL; default: the stdlib) into shards at ``out``.

    The last ``val_fraction`` of the token stream is held out as the val split.
    Returns the manifest, which is written after every shard.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if shard_tokens <= 0:
        raise DataError(f"--shard-tokens must be positive, got {shard_tokens}")
    fs, sources = _read_sources(source)
    corpus = bytearray()
    documents = 0
    for _, path in sources:
        data = fs.cat_file(path)
        if not data:
            continue
        corpus += data + DOC_SEPARATOR
        documents += 1
        if max_bytes is not None and len(corpus) >= max_bytes:
            del corpus[max_bytes:]
            break
    where = source or f"the standard library at {sysconfig.get_paths()['stdlib']}"
    if not corpus:
        raise DataError(f"corpus is empty: no bytes found in {where}")
    tokens = np.frombuffer(bytes(corpus), dtype=np.uint8)
    n_val = max(1, int(len(tokens) * val_fraction))
    splits = {"train": tokens[:-n_val], "val": tokens[-n_val:]}

    out_fs, root = fs_root(out)
    out_fs.makedirs(root, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "vocab_size": VOCAB_SIZE,
        "dtype": tokens.dtype.name,
        "source": where,
        "documents": documents,
        "splits": {},
    }
    for split, array in splits.items():
        shards = []
        for i, start in enumerate(range(0, len(array), shard_tokens)):
            chunk = array[start : start + shard_tokens]
            name = f"{split}-{i:05d}.bin"
            data = chunk.tobytes()
            out_fs.pipe_file(f"{root}/{name}", data)
            sha256 = hashlib.sha256(data).hexdigest()
            shards.append({"file": name, "tokens": len(chunk), "sha256": sha256})
        manifest["splits"][split] = shards
    out_fs.pipe_file(f"{root}/{MANIFEST}", json.dumps(manifest, indent=2).encode())
    return manifest


def read_manifest(url: str) -> dict:
    """The manifest of the dataset at ``url``, or a DataError saying why there is none."""
    fs, root = fs_root(url)
    path = f"{root}/{MANIFEST}"
    try:
        manifest = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        raise DataError(
            f"--data {url}: no {MANIFEST} there (create one with "
            f"`python -m workloads prepare --out {url}`)"
        ) from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"--data {url}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def _local_copy(fs: fsspec.AbstractFileSystem, remote: str, entry: dict, url: str) -> str:
    """A local path for one shard: the file itself, or a verified download of it.

    Every local rank of a node may download the same shard at once: each writes
    a partial file of its own and publishes it by an atomic rename only once its
    digest matches, so no rank ever maps a file that another is still writing.
    """
    if is_local(fs):
        return remote
    if "sha256" not in entry:
        raise DataError(
            f"--data {url}: the manifest has no sha256 for {entry['file']}, which remote "
            "shards need; re-run `python -m workloads prepare` to write them"
        )
    cache = Path(tempfile.gettempdir()) / "gpuyard-data"
    local = cache / f"{entry['sha256']}.bin"
    if local.exists():
        return str(local)
    cache.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=cache, prefix=f"{local.name}.", suffix=".partial")
    os.close(handle)
    try:
        fs.get_file(remote, partial)
        with open(partial, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != entry["sha256"]:
            raise DataError(
                f"--data {url}: {entry['file']} has sha256 {digest}, the manifest says "
                f"{entry['sha256']}; was the dataset rewritten during the download?"
            )
        os.replace(partial, local)
    finally:
        Path(partial).unlink(missing_ok=True)
    return str(local)


@dataclass
class Split:
    """One split of a dataset, memory-mapped shard by shard."""

    shards: list[np.ndarray]
    """Token arrays, one per shard file."""

    @classmethod
    def open(cls, url: str, split: str, min_tokens: int) -> Split:
        """Open ``split`` of the dataset at ``url``, dropping shards under ``min_tokens``."""
        manifest = read_manifest(url)
        fs, root = fs_root(url)
        dtype = np.dtype(manifest["dtype"])
        entries = manifest["splits"].get(split, [])
        usable = [e for e in entries if e["tokens"] >= min_tokens]
        if not usable:
            total = sum(e["tokens"] for e in entries)
            raise DataError(
                f"--data {url}: the {split} split has {total} tokens, too few for one "
                f"sequence of {min_tokens} (block_size + 1)"
            )
        shards = []
        for entry in usable:
            path = _local_copy(fs, f"{root}/{entry['file']}", entry, url)
            shards.append(np.memmap(path, dtype=dtype, mode="r", shape=(entry["tokens"],)))
        return cls(shards)


class BatchSampler:
    """Random contiguous windows from a split, reproducible from (seed, rank, position).

    Batch ``position`` of a rank depends on nothing but those three numbers, so
    the sampler's whole state is ``position`` and a resumed run draws exactly
    the batches the uninterrupted run would have drawn.
    """

    def __init__(self, split: Split, batch_size: int, block_size: int, seed: int, rank: int):
        self.split = split
        self.batch_size = batch_size
        self.block_size = block_size
        self.seed = seed
        self.rank = rank
        self.position = 0
        lengths = np.array([len(s) - block_size for s in split.shards], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def batch(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets [batch_size, block_size] of batch ``position``."""
        rng = np.random.default_rng((self.seed, self.rank, position))
        shard_ids = rng.choice(len(self.split.shards), size=self.batch_size, p=self.weights)
        rows = []
        for shard_id in shard_ids:
            shard = self.split.shards[shard_id]
            start = int(rng.integers(0, len(shard) - self.block_size))
            rows.append(np.asarray(shard[start : start + self.block_size + 1], dtype=np.int64))
        window = torch.from_numpy(np.stack(rows))
        return window[:, :-1].contiguous(), window[:, 1:].contiguous()

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch; advances ``position``."""
        batch = self.batch(self.position)
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


def add_parser(subparsers) -> None:
    """Register ``prepare`` on the ``python -m workloads`` command line."""
    p = subparsers.add_parser(
        "prepare",
        help="tokenise a corpus into byte-level shards at any fsspec URL",
        description="Tokenise a file or directory (default: this Python's standard library "
        "sources) into uint8 token shards and a manifest.",
    )
    p.add_argument("--source", help="file or directory path/URL; default: the stdlib .py files")
    p.add_argument("--out", required=True, help="dataset URL, e.g. s3://bucket/data/stdlib")
    p.add_argument("--val-fraction", type=float, default=0.05, help="tail of the corpus held out")
    p.add_argument("--shard-tokens", type=int, default=1 << 26, help="tokens per shard file")
    p.add_argument("--max-bytes", type=int, help="stop after this many corpus bytes")
    p.set_defaults(func=main)


def main(args) -> int:
    manifest = prepare(
        args.out,
        source=args.source,
        val_fraction=args.val_fraction,
        shard_tokens=args.shard_tokens,
        max_bytes=args.max_bytes,
    )
    splits = {name: sum(s["tokens"] for s in shards) for name, shards in manifest["splits"].items()}
    print(json.dumps({"event": "prepared", "out": args.out, "documents": manifest["documents"],
                      "tokens": splits}))  # fmt: skip
    return 0

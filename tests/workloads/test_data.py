"""prepare → shards → batches."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pytest
import torch

from workloads.__main__ import main
from workloads.data import BatchSampler, DataError, Split, prepare, read_manifest, stdlib_sources


def test_stdlib_corpus_is_sorted_and_excludes_installed_packages():
    names = [name for name, _ in stdlib_sources()]
    assert names == sorted(names)
    assert "os.py" in names
    assert not any("site-packages" in n or "dist-packages" in n for n in names)


def test_prepare_is_deterministic_and_holds_out_val(tmp_path):
    first, second = (tmp_path / "a").as_uri(), (tmp_path / "b").as_uri()
    manifest = prepare(first, max_bytes=300_000, shard_tokens=100_000, val_fraction=0.1)
    prepare(second, max_bytes=300_000, shard_tokens=100_000, val_fraction=0.1)
    assert manifest["dtype"] == "uint8" and manifest["vocab_size"] == 256
    train = [s["tokens"] for s in manifest["splits"]["train"]]
    val = [s["tokens"] for s in manifest["splits"]["val"]]
    assert train == [100_000, 100_000, 70_000] and val == [30_000]
    for name in ("train-00000.bin", "val-00000.bin", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert read_manifest(first) == manifest


def test_prepare_reads_a_directory_at_a_url(store):
    fs, root = fsspec.core.url_to_fs(store)
    fs.makedirs(f"{root}/src", exist_ok=True)
    fs.pipe_file(f"{root}/src/b.txt", b"second " * 100)
    fs.pipe_file(f"{root}/src/a.txt", b"first " * 100)
    manifest = prepare(f"{store}/data", source=f"{store}/src", val_fraction=0.25)
    assert manifest["documents"] == 2
    tokens = fs.cat_file(f"{root}/data/train-00000.bin")
    assert tokens.startswith(b"first first")
    split = Split.open(f"{store}/data", "train", min_tokens=17)
    x, y = BatchSampler(split, batch_size=2, block_size=16, seed=0, rank=0).next()
    assert x.shape == y.shape == (2, 16)


def test_batches_depend_only_on_seed_rank_and_position(stdlib_data):
    split = Split.open(stdlib_data, "train", min_tokens=65)
    a = BatchSampler(split, batch_size=4, block_size=64, seed=1, rank=0)
    b = BatchSampler(split, batch_size=4, block_size=64, seed=1, rank=0)
    other_rank = BatchSampler(split, batch_size=4, block_size=64, seed=1, rank=1)
    for _ in range(3):
        a.next()
    b.load_state_dict(a.state_dict())
    xa, ya = a.next()
    xb, yb = b.next()
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(xa[:, 1:], ya[:, :-1])
    assert not torch.equal(other_rank.batch(3)[0], xa)


def test_empty_corpus_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "empty.txt").write_bytes(b"")
    code = main(["prepare", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: corpus is empty") and "\n" not in err


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare(str(tmp_path / "out"), source=str(tmp_path / "nope"))


def test_too_small_split_names_the_sizes(tmp_path):
    (tmp_path / "c.txt").write_bytes(b"x" * 50)
    prepare(tmp_path.as_uri() + "/d", source=str(tmp_path / "c.txt"), val_fraction=0.5)
    with pytest.raises(DataError, match="too few for one sequence of 129"):
        Split.open(tmp_path.as_uri() + "/d", "train", min_tokens=129)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert np.dtype(manifest["dtype"]) == np.uint8

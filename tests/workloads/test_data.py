"""prepare → shards → batches."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import fsspec
import numpy as np
import pytest
import torch
from fsspec.implementations.memory import MemoryFileSystem

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
    shard = manifest["splits"]["train"][0]
    digest = hashlib.sha256((tmp_path / "a" / shard["file"]).read_bytes()).hexdigest()
    assert shard["sha256"] == digest


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


class SlowStore(MemoryFileSystem):
    """An in-memory object store whose downloads trickle in, so concurrent ones overlap."""

    protocol = "slowstore"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("slowstore://"))

    def get_file(self, rpath, lpath, **kwargs):
        # cat_file, as the memory store shares one file object among all readers of a path.
        data = self.cat_file(rpath)
        with open(lpath, "wb") as f:
            for start in range(0, len(data), 4096):
                f.write(data[start : start + 4096])
                f.flush()
                time.sleep(0.001)


@pytest.fixture
def slow_store(tmp_path, monkeypatch):
    """A slowstore:// dataset URL, with the shard cache in this test's own directory."""
    fsspec.register_implementation("slowstore", SlowStore, clobber=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield f"slowstore://{name}/data"
    SlowStore().rm(f"/{name}", recursive=True)


def corpus(tmp_path, text: bytes) -> str:
    (tmp_path / "corpus.txt").write_bytes(text)
    return str(tmp_path / "corpus.txt")


def test_concurrent_downloads_of_one_shard_all_map_the_whole_shard(slow_store, tmp_path):
    text = bytes(range(256)) * 1000
    prepare(slow_store, source=corpus(tmp_path, text), val_fraction=0.01)
    expected = text[: read_manifest(slow_store)["splits"]["train"][0]["tokens"]]

    def open_train(_):
        return Split.open(slow_store, "train", min_tokens=2).shards[0].tobytes()

    with ThreadPoolExecutor(8) as pool:
        assert all(shard == expected for shard in pool.map(open_train, range(8)))
    assert [p.name for p in (tmp_path / "gpuyard-data").iterdir() if "partial" in p.name] == []


def test_a_shard_rewritten_with_the_same_size_is_downloaded_again(slow_store, tmp_path):
    prepare(slow_store, source=corpus(tmp_path, b"a" * 1000), val_fraction=0.1)
    assert set(Split.open(slow_store, "train", min_tokens=2).shards[0].tobytes()) == {ord("a")}
    prepare(slow_store, source=corpus(tmp_path, b"b" * 1000), val_fraction=0.1)
    assert set(Split.open(slow_store, "train", min_tokens=2).shards[0].tobytes()) == {ord("b")}

"""Fixtures shared by every test directory: object-store servers on 127.0.0.1.

Servers are session-scoped and started on first use. Each puts the standard
variables (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``,
``AZURE_STORAGE_CONNECTION_STRING``, ...) into ``os.environ`` for the session,
so fsspec clients in this process and in child processes (pass ``os.environ``
on) reach the emulator without knowing it is one.
"""

from __future__ import annotations

import os
import uuid

# gcsfs reads this at import time; the emulator lacks the bucket-layout APIs it would probe.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import pytest

from workloads import local_stores


def _serve(kind: str):
    store = local_stores.STARTERS[kind]()
    previous = local_stores.apply_env(store.env)
    try:
        yield store
    finally:
        local_stores.restore_env(previous)
        store.stop()


@pytest.fixture(scope="session")
def s3_server():
    """moto S3 server with bucket ``gpuyard``; ``.url("prefix")`` → ``s3://gpuyard/prefix``."""
    yield from _serve("s3")


@pytest.fixture(scope="session")
def gcs_server():
    """GCS emulator with bucket ``gpuyard``; ``.url("prefix")`` → ``gs://gpuyard/prefix``."""
    yield from _serve("gcs")


@pytest.fixture(scope="session")
def azurite_server():
    """Azurite blob service with container ``gpuyard``; URLs ``az://gpuyard/prefix``.

    Fails (does not skip) when ``node_modules`` lacks Azurite: run ``npm install``.
    """
    yield from _serve("az")


STORE_FIXTURES = {"s3": "s3_server", "gcs": "gcs_server", "az": "azurite_server"}


@pytest.fixture(params=["file", "s3", "gcs", "az"])
def store(request, tmp_path) -> str:
    """A fresh, empty URL prefix on each kind of store, one test run per kind."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    server = request.getfixturevalue(STORE_FIXTURES[request.param])
    return server.url(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def stdlib_data(tmp_path_factory) -> str:
    """file:// URL of a small dataset prepared from the first 2 MB of the stdlib corpus."""
    from workloads.data import prepare

    url = tmp_path_factory.mktemp("stdlib").as_uri()
    prepare(url, max_bytes=2_000_000, shard_tokens=500_000)
    return url

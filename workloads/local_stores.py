"""Object-store protocol servers on 127.0.0.1, for tests, benchmarks and ``gpuyard local``.

Each ``start_*`` function starts one server on a free loopback port, creates one
bucket (or container) and returns a :class:`LocalStore`. Workloads never learn
that they talk to an emulator: they read the standard variables in
``LocalStore.env`` (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``,
``AZURE_STORAGE_CONNECTION_STRING``), which the caller puts into the environment
of whatever process should use the store.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's published development key; it only ever opens the local emulator."""

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LocalStore:
    """A running object-store server and how to reach it."""

    scheme: str
    """URL scheme that fsspec maps to this store's filesystem: ``s3``, ``gs`` or ``az``."""
    bucket: str
    """Bucket (or Azure container) created at start."""
    env: dict[str, str]
    """Environment variables that point the standard clients at this server."""
    stop: Callable[[], None] = field(repr=False)
    """Stops the server; the data it held is gone."""

    def url(self, prefix: str = "") -> str:
        """``scheme://bucket/prefix``."""
        return f"{self.scheme}://{self.bucket}/{prefix}".rstrip("/")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server meant for 127.0.0.1:{port} exited during start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _spawn(command: list[str], port: int, timeout: float = 30) -> Callable[[], None]:
    """Start a server process that will listen on ``port``; return its stop function."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    try:
        _wait_for_port(port, timeout, alive=lambda: process.poll() is None)
    except BaseException:
        stop()
        raise
    return stop


def start_s3(bucket: str = "gpuyard") -> LocalStore:
    """moto's S3 server in a thread of this process."""
    import boto3
    from moto.server import ThreadedMotoServer

    # The server logs every request through werkzeug; tests and benchmarks read stderr.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    return LocalStore("s3", bucket, env, server.stop)


def start_gcs(bucket: str = "gpuyard") -> LocalStore:
    """gcp-storage-emulator as a child process, data in memory.

    A child rather than a thread: the emulator's single-threaded HTTP server
    prints a traceback whenever a client drops a connection early, and a child's
    stderr can be discarded. ``FSSPEC_GS_TOKEN=anon`` makes gcsfs skip credential
    discovery, and ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps gcsfs off
    bucket-layout APIs the emulator lacks; it must be set before gcsfs is imported.
    """
    port = free_port()
    stop = _spawn(
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--default-bucket",
            bucket,
            "--in-memory",
            "--quiet",
        ],
        port,
    )
    env = {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
        "FSSPEC_GS_TOKEN": "anon",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    return LocalStore("gs", bucket, env, stop)


def azurite_binary() -> Path:
    """``node_modules/.bin/azurite-blob`` of this checkout, installed by ``npm install``."""
    path = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `npm install` in {REPO_ROOT} (package.json lists azurite)"
        )
    return path


def start_azurite(container: str = "gpuyard") -> LocalStore:
    """Azurite's blob service as a child process, data in memory."""
    from azure.storage.blob import BlobServiceClient

    if shutil.which("node") is None:
        raise FileNotFoundError("node is not on PATH; Azurite needs Node.js")
    port = free_port()
    stop = _spawn(
        [
            str(azurite_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        port,
    )
    connection = (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    try:
        BlobServiceClient.from_connection_string(connection).create_container(container)
    except BaseException:
        stop()
        raise
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": connection,
        "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
    }
    return LocalStore("az", container, env, stop)


STARTERS: dict[str, Callable[[], LocalStore]] = {
    "s3": start_s3,
    "gcs": start_gcs,
    "az": start_azurite,
}
"""Store kind → start function, as the tests, the benchmark and ``gpuyard local`` name them."""


def apply_env(env: dict[str, str]) -> dict[str, str | None]:
    """Put ``env`` into ``os.environ``; return the previous values for :func:`restore_env`."""
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    return previous


def restore_env(previous: dict[str, str | None]) -> None:
    """Undo :func:`apply_env`."""
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

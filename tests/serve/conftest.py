"""Fixtures for the serving tests: a tiny random-weights artifact, in-process and real servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import torch

from workloads import artifact
from workloads.model import GPT, preset
from workloads.serve.config import resolve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return artifact.write(
        GPT(preset("tiny")), run={}, step=7, directory=tmp_path_factory.mktemp("m")
    )


@contextlib.asynccontextmanager
async def serving(app, timeout: float = 30.0):
    """Run ``app``'s lifespan, wait until ready, and yield an httpx client speaking ASGI to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            deadline = time.monotonic() + timeout
            while (await client.get("/ping")).status_code != 200:
                assert app.state.server.phase != "failed", app.state.server.error
                assert time.monotonic() < deadline, "server never became ready"
                await asyncio.sleep(0.02)
            yield client


def config_for(model: Path | str, **overrides):
    """A config resolved as the CLI would, with an empty platform environment."""
    flags = {"model": str(model), "max_new_tokens": 8, "drain_seconds": 5, **overrides}
    return resolve(flags, env={})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m workloads serve`` in a subprocess on 127.0.0.1; port given through the env."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "GPUYARD_SERVE_HOST": "127.0.0.1",
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "GPUYARD_SERVE_THREADS": "1",
            "GPUYARD_SERVE_DRAIN_DELAY_SECONDS": "0",
            **(env or {}),
        }
        # A file, not a pipe: nobody reads the pipe while the server runs, and a full one blocks it.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workloads", "serve", *args],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("server never became ready")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

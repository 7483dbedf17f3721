"""The real thing: ``python -m workloads serve`` in a subprocess, over TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import time

import httpx
import pytest

from tests.serve.conftest import ServerProcess

LONG = {"prompt": "long", "max_new_tokens": 100, "temperature": 0}


@pytest.fixture
def server(request):
    """Start a server with the test's args; stop it afterwards whatever happened."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True):
        proc = ServerProcess(list(args), env)
        started.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_concurrent_clients(server, tiny_artifact):
    proc = server("--model", str(tiny_artifact), "--max-batch-size", "8")

    async def main():
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:

            async def one(i: int):
                body = {"instances": [{"prompt": f"client {i}", "max_new_tokens": 16}]}
                return await client.post("/invocations", json=body)

            return await asyncio.gather(*(one(i) for i in range(24)))

    answers = asyncio.run(main())
    assert all(a.status_code == 200 for a in answers)
    assert all(a.json()["predictions"][0]["tokens"] == 16 for a in answers)
    assert (
        _metric(proc.url, 'gpuyard_serve_requests_total{route="/invocations",status="200"}') == 24
    )


def test_overload_answers_429_with_retry_after(server, tiny_artifact):
    proc = server(
        "--model", str(tiny_artifact), "--batching", "none", "--max-queue", "4",
        "--max-instances", "2",
    )  # fmt: skip

    async def main():
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
            body = {"instances": [{**LONG, "max_new_tokens": 50}]}
            return await asyncio.gather(
                *(client.post("/invocations", json=body) for _ in range(30))
            )

    answers = asyncio.run(main())
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= 5
    for a in answers:
        if a.status_code == 429:
            assert int(a.headers["retry-after"]) >= 1
            assert "overloaded" in a.json()["error"]
    assert httpx.get(f"{proc.url}/ping").status_code == 200


def test_sigterm_drains_in_flight_requests_then_exits_0(server, tiny_artifact):
    proc = server(
        "--model", str(tiny_artifact), "--batching", "none", "--max-instances", "16",
        env={"GPUYARD_SERVE_DRAIN_DELAY_SECONDS": "1"},
    )  # fmt: skip

    async def main():
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
            body = {"instances": [LONG] * 8}
            pending = asyncio.ensure_future(client.post("/invocations", json=body))
            while _metric(proc.url, "gpuyard_serve_generated_tokens_total") < 10:
                await asyncio.sleep(0.01)
            proc.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            # Within the deregistration delay: still listening, but red and refusing work.
            await asyncio.sleep(0.3)
            ready = await client.get("/v2/health/ready")
            refused = await client.post("/invocations", json={"instances": [LONG]})
            answer = await pending
            return answer, time.monotonic() - sent, ready, refused

    answer, waited, ready, refused = asyncio.run(main())
    assert ready.status_code == 503
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]
    assert answer.status_code == 200, answer.text
    assert [p["tokens"] for p in answer.json()["predictions"]] == [100] * 8
    assert waited > 0.05, "the request should still have been running at SIGTERM"
    assert proc.proc.wait(timeout=30) == 0, proc.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proc.url}/ping")


def test_client_disconnect_frees_its_slot(server, tiny_artifact):
    proc = server("--model", str(tiny_artifact), "--batching", "none", "--max-instances", "16")
    payload = httpx.Request(
        "POST", f"{proc.url}/invocations", json={"instances": [LONG] * 16}
    ).read()
    with socket.create_connection(("127.0.0.1", proc.port)) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        while _metric(proc.url, "gpuyard_serve_generated_tokens_total") < 10:
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while _metric(proc.url, 'gpuyard_serve_sequences_total{reason="cancelled"}') < 16:
        assert time.monotonic() < deadline, "the abandoned request kept its slot"
        time.sleep(0.05)
    generated = _metric(proc.url, "gpuyard_serve_generated_tokens_total")
    assert generated < 1600, "the abandoned request ran to completion"
    quick = httpx.post(
        f"{proc.url}/invocations", json={"instances": [{"prompt": "a", "max_new_tokens": 2}]}
    )
    assert quick.status_code == 200


def test_platform_env_alone_configures_the_server(server, tiny_artifact, tmp_path):
    # Azure ML mounts the registered model folder below AZUREML_MODEL_DIR.
    model_dir = tmp_path / "azureml-models" / "gpuyard" / "1"
    shutil.copytree(tiny_artifact, model_dir / "model")
    proc = server(
        env={
            "AZUREML_MODEL_DIR": str(model_dir),
            "AIP_HEALTH_ROUTE": "/vhealth",
            "AIP_PREDICT_ROUTE": "/vpredict",
        }
    )
    assert httpx.get(f"{proc.url}/vhealth").status_code == 200
    answer = httpx.post(f"{proc.url}/vpredict", json={"instances": [{"prompt": "hi"}]})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["tokens"] == 64

"""Models fetched from an object store (the S3 emulator) are verified before they are served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fsspec

from tests.serve.conftest import ServerProcess, config_for, serving
from workloads import artifact
from workloads.serve.app import create_app


def test_serves_a_model_downloaded_from_s3(s3_server, tiny_artifact, tmp_path):
    url = s3_server.url("serve/good")
    artifact.upload(tiny_artifact, url)

    async def main():
        app = create_app(config_for(url, cache_dir=str(tmp_path)))
        async with serving(app) as client:
            body = {"instances": [{"prompt": "from s3", "max_new_tokens": 3}]}
            return await client.post("/invocations", json=body)

    answer = asyncio.run(main())
    assert answer.status_code == 200 and answer.json()["predictions"][0]["tokens"] == 3
    assert any(Path(tmp_path).rglob(artifact.MANIFEST))


def test_tampered_model_is_refused_and_the_server_exits(s3_server, tiny_artifact, tmp_path):
    url = s3_server.url("serve/tampered")
    artifact.upload(tiny_artifact, url)
    weights = bytearray((Path(tiny_artifact) / artifact.WEIGHTS).read_bytes())
    weights[-1] ^= 0xFF
    with fsspec.open(f"{url}/{artifact.WEIGHTS}", "wb") as f:
        f.write(bytes(weights))

    proc = ServerProcess(["--model", url, "--cache-dir", str(tmp_path)])
    code = proc.proc.wait(timeout=60)
    output = proc.output()
    proc.stop()
    assert code == 1, output
    assert "model.safetensors sha256" in output and "does not match manifest" in output

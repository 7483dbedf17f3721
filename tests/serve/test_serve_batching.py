"""Batching must not change answers: greedy output is the same alone or in any batch."""

from __future__ import annotations

import asyncio
import random

from tests.serve.conftest import config_for, serving
from workloads.serve.app import create_app


def _instances(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ,.ÄéΩ漢"
    return [
        {
            "prompt": "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))),
            "max_new_tokens": rng.randint(1, 40),
            "temperature": 0,
        }
        for _ in range(count)
    ]


async def _solo(app, instances: list[dict]) -> list[dict]:
    async with serving(app) as client:
        answers = []
        for inst in instances:
            answer = await client.post("/invocations", json={"instances": [inst]})
            answers.append(answer.json()["predictions"][0])
        return answers


async def _staggered(app, instances: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)

    async with serving(app) as client:

        async def one(inst: dict) -> dict:
            await asyncio.sleep(rng.random() * 0.3)
            answer = await client.post("/invocations", json={"instances": [inst]})
            assert answer.status_code == 200, answer.text
            return answer.json()["predictions"][0]

        answers = await asyncio.gather(*(one(inst) for inst in instances))
        metrics = (await client.get("/metrics")).text
    batched = [line for line in metrics.splitlines() if line.startswith("gpuyard_serve_batch_size")]
    assert any('le="1.0"' not in line for line in batched)
    return answers


def test_greedy_output_is_identical_alone_and_batched(tiny_artifact):
    instances = _instances(48, seed=3)
    solo = asyncio.run(_solo(create_app(config_for(tiny_artifact, batching="none")), instances))
    for batching in ("continuous", "static"):
        app = create_app(config_for(tiny_artifact, batching=batching, max_batch_size=8))
        batched = asyncio.run(_staggered(app, instances, seed=4))
        mismatched = [i for i, (a, b) in enumerate(zip(solo, batched, strict=True)) if a != b]
        assert not mismatched, f"{batching}: instances {mismatched} differ from their solo run"
        assert [p["tokens"] for p in batched] == [i["max_new_tokens"] for i in instances]


def test_one_request_with_many_instances_matches_solo(tiny_artifact):
    instances = _instances(16, seed=5)
    solo = asyncio.run(_solo(create_app(config_for(tiny_artifact, batching="none")), instances))

    async def together():
        async with serving(create_app(config_for(tiny_artifact))) as client:
            answer = await client.post("/invocations", json={"instances": instances})
            return answer.json()["predictions"]

    assert asyncio.run(together()) == solo

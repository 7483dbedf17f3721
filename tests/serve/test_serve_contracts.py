"""Every platform contract's routes and payloads, in-process over ASGI."""

from __future__ import annotations

import asyncio

import pytest

from tests.serve.conftest import config_for, serving
from workloads.serve.app import create_app

PROMPT = {"prompt": "Hello, world", "max_new_tokens": 5, "temperature": 0}


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def app_factory(tiny_artifact):
    def make(**overrides):
        return create_app(config_for(tiny_artifact, **overrides))

    return make


def test_instances_routes_share_one_contract(app_factory):
    async def main():
        app = app_factory(predict_route="/vertex/predict")
        async with serving(app) as client:
            body = {"instances": [PROMPT, {"prompt": "abc"}], "parameters": {"max_new_tokens": 3}}
            answers = [
                (await client.post(path, json=body)).json()
                for path in ("/invocations", "/vertex/predict", "/score")
            ]
        assert answers[0] == answers[1] == answers[2]
        first, second = answers[0]["predictions"]
        assert first["tokens"] == 5 and first["finish_reason"] == "length"
        assert second["tokens"] == 3, "parameters are defaults for instances that do not say"
        assert isinstance(first["text"], str)

    run(main())


def test_health_routes(app_factory):
    async def main():
        app = app_factory(health_route="/vertex/health")
        async with serving(app) as client:
            for path in ("/ping", "/vertex/health", "/ready", "/v2/health/ready"):
                assert (await client.get(path)).status_code == 200, path
            assert (await client.get("/")).text == "Healthy"
            assert (await client.get("/v2/health/live")).json() == {"live": True}
            assert (await client.get("/v2/health/ready")).json() == {"ready": True}
            ready = await client.get("/v2/models/gpuyard/ready")
            assert ready.json() == {"name": "gpuyard", "ready": True}

    run(main())


def test_v2_infer_and_metadata(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            meta = (await client.get("/v2/models/gpuyard")).json()
            assert meta["name"] == "gpuyard" and meta["versions"] == ["7"]
            assert meta["inputs"] == [{"name": "prompt", "datatype": "BYTES", "shape": [-1]}]
            assert {o["name"] for o in meta["outputs"]} == {"text", "tokens", "finish_reason"}
            assert (await client.get("/v2")).json()["name"] == "gpuyard"

            body = {
                "id": "req-1",
                "inputs": [
                    {"name": "prompt", "shape": [2], "datatype": "BYTES", "data": ["ab", "cd"]}
                ],
                "parameters": {"max_new_tokens": 4, "temperature": 0},
            }
            answer = await client.post("/v2/models/gpuyard/infer", json=body)
            assert answer.status_code == 200, answer.text
            out = answer.json()
            assert out["model_name"] == "gpuyard" and out["id"] == "req-1"
            tensors = {t["name"]: t for t in out["outputs"]}
            assert tensors["tokens"] == {
                "name": "tokens", "shape": [2], "datatype": "INT64", "data": [4, 4],
            }  # fmt: skip
            assert tensors["finish_reason"]["data"] == ["length", "length"]
            assert tensors["text"]["datatype"] == "BYTES"

            # The same prompt through the instances contract gives the same text.
            same = await client.post(
                "/invocations",
                json={"instances": [{"prompt": "ab", "max_new_tokens": 4, "temperature": 0}]},
            )
            assert same.json()["predictions"][0]["text"] == tensors["text"]["data"][0]

            body["outputs"] = [{"name": "text"}]
            only = (await client.post("/v2/models/gpuyard/infer", json=body)).json()
            assert [t["name"] for t in only["outputs"]] == ["text"]

            missing = await client.post("/v2/models/other/infer", json=body)
            assert missing.status_code == 404 and "other" in missing.json()["error"]

    run(main())


def test_sampling_is_reproducible_per_seed(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            inst = {"prompt": "seeded", "max_new_tokens": 12, "temperature": 1.0, "top_k": 40}
            texts = []
            for seed in (1, 1, 2):
                body = {"instances": [{**inst, "seed": seed}]}
                texts.append((await client.post("/invocations", json=body)).json())
        a, b, c = (t["predictions"][0]["text"] for t in texts)
        assert a == b and a != c

    run(main())


def test_stop_sequence(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            first = await client.post(
                "/invocations", json={"instances": [{"prompt": "x", "max_new_tokens": 6}]}
            )
            text = first.json()["predictions"][0]["text"]
            stop = text[2:4]
            body = {"instances": [{"prompt": "x", "max_new_tokens": 6, "stop": [stop]}]}
            second = (await client.post("/invocations", json=body)).json()["predictions"][0]
        assert second["finish_reason"] == "stop"
        assert text.startswith(second["text"]) and not second["text"].endswith(stop)

    run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "must be JSON"),
        (b"", "body"),
        (b'{"instances": []}', "instances"),
        (b'{"instances": [{"prompt": ""}]}', "instances[0].prompt"),
        (b'{"instances": [{"prompt": "a", "max_new_tokens": "5"}]}', "instances[0].max_new_tokens"),
        (b'{"instances": [{"prompt": "a", "max_new_tokens": 0}]}', "instances[0].max_new_tokens"),
        (b'{"instances": [{"prompt": "a", "temperature": -1}]}', "instances[0].temperature"),
        (b'{"instances": [{"prompt": "a", "top_k": 0}]}', "instances[0].top_k"),
        (b'{"instances": [{"prompt": "a", "max_tokens": 3}]}', "instances[0].max_tokens"),
        (b'{"instances": [{"prompt": "a"}], "parameters": {"seed": -1}}', "parameters.seed"),
        (b'{"instances": [{"prompt": "a", "max_new_tokens": 500}]}', "instances[0].max_new_tokens"),
        (b'{"instances": [{"prompt": "\\ud800"}]}', "instances[0].prompt"),
        (b'{"instances": [' + b'{"prompt": "a"},' * 16 + b'{"prompt": "a"}]}', "instances"),
        (b'["prompt"]', "body"),
    ],
)
def test_bad_requests_answer_400_naming_the_field(app_factory, body, field):
    async def main():
        async with serving(app_factory()) as client:
            answer = await client.post(
                "/invocations", content=body, headers={"content-type": "application/json"}
            )
        assert answer.status_code == 400, answer.text
        assert field in answer.json()["error"]

    run(main())


def test_oversized_body_is_refused_unread(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            return await client.post("/invocations", content=b" " * (2 << 20))

    answer = run(main())
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_too_long_prompt_names_the_limit(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            body = {"instances": [{"prompt": "x" * 121, "max_new_tokens": 8}]}
            answer = await client.post("/invocations", json=body)
            fits = await client.post(
                "/invocations", json={"instances": [{"prompt": "x" * 120, "max_new_tokens": 8}]}
            )
        assert answer.status_code == 400
        assert "instances[0].prompt" in answer.json()["error"]
        assert "at most 120" in answer.json()["error"]
        assert fits.status_code == 200

    run(main())


def test_v2_bad_tensors(app_factory):
    cases = [
        ({"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}, "inputs"),
        ({"name": "prompt", "shape": [1], "datatype": "FP32", "data": [1.0]}, "datatype"),
        ({"name": "prompt", "shape": [3], "datatype": "BYTES", "data": ["a"]}, "shape"),
        ({"name": "prompt", "shape": [1], "datatype": "BYTES", "data": [5]}, "data[0]"),
    ]

    async def main():
        async with serving(app_factory()) as client:
            for tensor, field in cases:
                answer = await client.post("/v2/models/gpuyard/infer", json={"inputs": [tensor]})
                assert answer.status_code == 400, tensor
                assert field in answer.json()["error"], answer.json()

    run(main())


def test_metrics_exposition(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            await client.post("/invocations", json={"instances": [PROMPT]})
            await client.post("/invocations", content=b"nope")
            return (await client.get("/metrics")).text

    text = run(main())
    assert 'gpuyard_serve_requests_total{route="/invocations",status="200"} 1.0' in text
    assert 'gpuyard_serve_requests_total{route="/invocations",status="400"} 1.0' in text
    assert "gpuyard_serve_generated_tokens_total 5.0" in text
    assert "gpuyard_serve_prompt_nll_count 1.0" in text
    assert "gpuyard_serve_time_to_first_token_seconds_count 1.0" in text
    assert "gpuyard_serve_batch_size_count" in text
    assert "gpuyard_serve_ready 1.0" in text


def test_openapi_documents_every_contract(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            return (await client.get("/openapi.json")).json()

    schema = run(main())
    for path in ("/invocations", "/score", "/predict", "/ping", "/v2/models/{name}/infer"):
        assert path in schema["paths"], path
    responses = schema["paths"]["/invocations"]["post"]["responses"]
    assert "400" in responses and "429" in responses and "422" not in responses


def test_not_ready_and_draining_answer_503(app_factory):
    async def main():
        app = app_factory()
        state = app.state.server
        async with serving(app) as client:
            state.begin_drain()
            ping = await client.get("/ping")
            predict = await client.post("/invocations", json={"instances": [PROMPT]})
            live = await client.get("/v2/health/live")
        assert ping.status_code == 503 and ping.headers["retry-after"]
        assert predict.status_code == 503 and "shutting down" in predict.json()["error"]
        assert live.status_code == 200

    run(main())


def test_missing_model_fails_clearly(tmp_path):
    async def main():
        app = create_app(config_for(tmp_path / "nowhere"))
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if app.state.server.phase == "failed":
                    break
                await asyncio.sleep(0.02)
            import httpx

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ping = await client.get("/ping")
                live = await client.get("/")
        assert ping.status_code == 503 and "does not exist" in ping.json()["error"]
        assert live.status_code == 200

    run(main())


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_json_body_whatever_the_content_type(app_factory, content_type):
    headers = {"content-type": content_type} if content_type else {}

    async def main():
        async with serving(app_factory()) as client:
            body = b'{"instances": [{"prompt": "a", "max_new_tokens": 2}]}'
            good = await client.post("/invocations", content=body, headers=headers)
            bad = await client.post("/invocations", content=b"hello there", headers=headers)
        assert good.status_code == 200, good.text
        assert bad.status_code == 400
        assert 'must be JSON such as {"instances"' in bad.json()["error"]

    run(main())


def test_chunked_oversized_body_answers_413(app_factory):
    async def chunks():
        for _ in range(3):
            yield b" " * (512 << 10)

    async def main():
        async with serving(app_factory()) as client:
            return await client.post("/invocations", content=chunks())

    answer = run(main())
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


V2_PROMPT = {"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["ab"]}


def test_v2_parameters_are_an_open_map(app_factory):
    async def main():
        async with serving(app_factory()) as client:
            body = {
                "inputs": [{**V2_PROMPT, "parameters": {"binary_data_size": 2}}],
                "outputs": [{"name": "tokens", "parameters": {"binary_data": False}}],
                "parameters": {"binary_data_output": False, "max_new_tokens": 3},
            }
            return await client.post("/v2/models/gpuyard/infer", json=body)

    answer = run(main())
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [3]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"inputs": [{**V2_PROMPT, "parameters": {"max_new_tokens": 500}}]},
            "inputs[0].parameters.max_new_tokens",
        ),
        (
            {"inputs": [V2_PROMPT], "parameters": {"max_new_tokens": 500}},
            "parameters.max_new_tokens",
        ),
        (
            {"inputs": [V2_PROMPT], "outputs": [{"name": "text"}, {"name": "text"}]},
            "outputs[1].name",
        ),
    ],
)
def test_v2_errors_name_the_field(app_factory, body, field):
    async def main():
        async with serving(app_factory()) as client:
            return await client.post("/v2/models/gpuyard/infer", json=body)

    answer = run(main())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(field + ":")


def test_failed_engine_turns_every_health_check_red(app_factory):
    async def main():
        app = app_factory()
        async with serving(app) as client:

            def broken(*_):
                raise RuntimeError("sticky device error")

            app.state.server.engine.model.step = broken
            failed = [
                await client.post("/invocations", json={"instances": [PROMPT]}) for _ in range(3)
            ]
            app.state.server.engine._thread.join(timeout=10)
            checks = [
                await client.get(p) for p in ("/ping", "/v2/health/ready", "/", "/v2/health/live")
            ]
            after = await client.post("/invocations", json={"instances": [PROMPT]})
        assert [a.status_code for a in failed] == [500] * 3
        assert "sticky device error" in failed[0].json()["error"]
        assert [c.status_code for c in checks] == [503] * 4
        assert after.status_code == 503 and "engine failed" in after.json()["error"]

    run(main())

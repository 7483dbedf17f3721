"""Property: whatever the body, the server answers 200, 400 or 429 with a JSON error, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import ServerProcess

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
valid_values = {
    "prompt": st.text(min_size=1, max_size=40),
    "max_new_tokens": st.integers(1, 8),
    "temperature": st.floats(0, 5),
    "top_k": st.integers(1, 256),
    "seed": st.integers(0, 2**63 - 1),
    "stop": st.lists(st.text(min_size=1, max_size=4), max_size=4),
}
# Valid values most of the time, so requests get past the schema to the checks behind it
# (context length, UTF-8, sampling edge cases) and into the engine; anything else otherwise.
sampling_values = {
    "prompt": valid_values["prompt"] | st.text(max_size=140) | json_values,
    "max_new_tokens": valid_values["max_new_tokens"] | st.integers(-2, 130) | json_values,
    "temperature": valid_values["temperature"] | st.floats() | st.integers(-1, 6) | json_values,
    "top_k": valid_values["top_k"] | st.integers(-1, 300) | json_values,
    "seed": valid_values["seed"] | st.integers(-(2**64), 2**64) | json_values,
    "stop": valid_values["stop"] | st.lists(st.text(max_size=40), max_size=5) | json_values,
}


def _without_prompt(values: dict) -> dict:
    return {k: v for k, v in values.items() if k != "prompt"}


def _instance(values: dict, extra: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"prompt": values["prompt"]},
        optional={**_without_prompt(values), **extra},
    )


valid_body = st.fixed_dictionaries(
    {"instances": st.lists(_instance(valid_values, {}), min_size=1, max_size=4)},
    optional={"parameters": st.fixed_dictionaries({}, optional=_without_prompt(valid_values))},
)
instances_body = valid_body | st.fixed_dictionaries(
    {"instances": st.lists(_instance(sampling_values, {"junk": json_values}), max_size=5)},
    optional={
        "parameters": st.fixed_dictionaries({}, optional=_without_prompt(sampling_values))
        | json_values
    },
)
valid_v2 = st.builds(
    lambda prompts, parameters: {
        "inputs": [
            {"name": "prompt", "shape": [len(prompts)], "datatype": "BYTES", "data": prompts}
        ],
        "parameters": parameters,
    },
    st.lists(valid_values["prompt"], min_size=1, max_size=4),
    st.fixed_dictionaries({}, optional=_without_prompt(valid_values)),
)
v2_body = valid_v2 | st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.just("prompt") | json_values,
                    "shape": st.lists(st.integers(-1, 5), max_size=2) | json_values,
                    "datatype": st.just("BYTES") | json_values,
                    "data": st.lists(st.text(max_size=30) | json_values, max_size=5),
                },
                optional={
                    "parameters": st.fixed_dictionaries(
                        {}, optional=_without_prompt(sampling_values)
                    )
                },
            ),
            max_size=2,
        )
    },
    optional={
        "parameters": st.fixed_dictionaries({}, optional=_without_prompt(sampling_values))
        | json_values,
        "id": st.text(max_size=5) | json_values,
        "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)}), max_size=3),
    },
)


def _encode(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


raw_bodies = (
    instances_body.map(_encode)
    | st.binary(max_size=64)
    | json_values.map(_encode)
    | instances_body.map(_encode).map(lambda b: b[: len(b) // 2])
)


@pytest.fixture(scope="module")
def client(tiny_artifact):
    proc = ServerProcess(
        ["--model", str(tiny_artifact), "--max-instances", "4", "--max-new-tokens", "4"]
    )
    proc.wait_ready()
    with httpx.Client(base_url=proc.url, timeout=30) as c:
        yield c
    proc.stop()


def _check(answer: httpx.Response) -> None:
    assert answer.status_code in (200, 400, 429), (answer.status_code, answer.text)
    payload = answer.json()
    if answer.status_code != 200:
        assert payload["error"], payload


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=raw_bodies, path=st.sampled_from(["/invocations", "/score", "/predict"]))
def test_instances_routes_never_fail(client, body, path):
    _check(client.post(path, content=body, headers={"content-type": "application/json"}))


@FUZZ
@given(body=v2_body.map(_encode) | raw_bodies)
def test_v2_infer_never_fails(client, body):
    answer = client.post(
        "/v2/models/gpuyard/infer", content=body, headers={"content-type": "application/json"}
    )
    _check(answer)

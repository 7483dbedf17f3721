"""The engine on its own: admission, failure handling and the KV cache, without HTTP."""

from __future__ import annotations

import pytest
import torch

from workloads.model import GPT, preset
from workloads.serve.engine import MAX_STEP_FAILURES, Engine, EngineFailed
from workloads.serve.metrics import Metrics
from workloads.serve.schemas import GenerationRequest


def _request(prompt: bytes = b"hello", max_new_tokens: int = 4, **sampling) -> GenerationRequest:
    settings = {"temperature": 0.0, "top_k": None, "seed": None, **sampling}
    return GenerationRequest(prompt, max_new_tokens, stop=(), **settings)


@pytest.fixture
def engine():
    torch.manual_seed(0)
    started = Engine(GPT(preset("tiny")).eval(), Metrics(4), max_batch_size=4)
    yield started
    started.close()


def test_admitted_sequences_stay_visible_to_drain(engine):
    seen = []

    class Spy:
        def observe(self, _):
            seen.append(engine.busy)

    # Observed right after admission: the sequence must already count as running there.
    engine.metrics.queue_seconds = Spy()
    engine.start()
    (seq,) = engine.submit([_request()])
    seq.future.result(timeout=10)
    assert seen == [1]


def test_a_failing_prefill_fails_only_its_own_sequence(engine):
    step = engine.model.step

    def fragile(idx, *args):
        if idx.shape[1] == len(b"poison!"):
            raise RuntimeError("bad prompt")
        return step(idx, *args)

    engine.model.step = fragile
    engine.start()
    good, bad = engine.submit([_request(b"fine", 20), _request(b"poison!")])
    with pytest.raises(RuntimeError, match="bad prompt"):
        bad.future.result(timeout=10)
    assert good.future.result(timeout=10).tokens == 20
    assert engine.failure is None


def test_steps_failing_in_a_row_fail_the_engine_and_everything_waiting(engine):
    def broken(*_):
        raise RuntimeError("sticky device error")

    engine.model.step = broken
    engine.start()
    for _ in range(MAX_STEP_FAILURES):
        (seq,) = engine.submit([_request()])
        with pytest.raises(RuntimeError):
            seq.future.result(timeout=10)
    engine._thread.join(timeout=10)
    assert "failed in a row" in engine.failure
    assert engine.metrics.occupancy._value.get() == 0
    with pytest.raises(EngineFailed):
        engine.submit([_request()])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_engine_thread_fails_queued_work(engine):
    def die():
        raise SystemExit

    engine._step = die
    engine.start()
    (seq,) = engine.submit([_request()])
    with pytest.raises(EngineFailed, match="died"):
        seq.future.result(timeout=10)
    assert engine.failure is not None


def test_kv_cache_takes_the_model_dtype():
    torch.manual_seed(0)
    engine = Engine(GPT(preset("tiny")).to(torch.bfloat16).eval(), Metrics(2), max_batch_size=2)
    assert engine.cache.k[0].dtype == torch.bfloat16
    engine.start()
    try:
        (seq,) = engine.submit([_request(max_new_tokens=3)])
        assert seq.future.result(timeout=10).tokens == 3
    finally:
        engine.close()


def test_greedy_requests_get_no_generator(engine):
    engine.start()
    greedy, sampled = engine.submit([_request(seed=1), _request(seed=1, temperature=1.0)])
    greedy.future.result(timeout=10)
    sampled.future.result(timeout=10)
    assert greedy.generator is None and sampled.generator is not None

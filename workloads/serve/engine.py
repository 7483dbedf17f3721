"""The generation engine: one thread runs torch, the event loop talks to it through futures.

Each sequence owns a slot of a preallocated KV cache. At every step boundary the loop
admits waiting sequences into free slots (prefilling each newcomer on its own, so its
prompt is computed exactly as it would be alone), then runs one decode step for every
active sequence together and retires those that finished or whose client left.
The batching policy only decides when admission happens:

- ``continuous``: whenever a slot is free, so newcomers join the running batch;
- ``static``: only when the batch is empty, after waiting briefly for it to fill;
- ``none``: one slot, one sequence at a time (the batch-size-1 baseline).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from workloads.model import GPT, KVCache
from workloads.serve.metrics import Metrics
from workloads.serve.schemas import Generation, GenerationRequest

log = logging.getLogger(__name__)

GREEDY_BELOW = 1e-3
"""Temperatures under this decode greedily: dividing logits by them overflows float32."""


class QueueFull(RuntimeError):
    """The admission queue cannot take the request now; retry later (HTTP 429)."""


class EngineClosed(RuntimeError):
    """The engine is draining or stopped and refuses new work (HTTP 503)."""


class Cancelled(RuntimeError):
    """The sequence was withdrawn before it finished (its client went away, or shutdown)."""


class EngineFailed(RuntimeError):
    """The engine gave up (its thread died, or steps kept failing); only a restart helps."""


MAX_STEP_FAILURES = 3
"""Consecutive failed steps after which the engine declares itself broken: one failure may
be a bad request, a run of them (a sticky CUDA error, say) will not clear up by itself."""


@dataclass(eq=False)
class Sequence:
    """One request in flight; the caller keeps it to await ``future`` or to cancel."""

    request: GenerationRequest
    """What to generate."""
    future: Future = field(default_factory=Future)
    """Resolved with the :class:`Generation`, or with the error that ended the sequence."""
    submitted: float = field(default_factory=time.perf_counter)
    """``perf_counter`` time of submission, for the queue and time-to-first-token metrics."""
    slot: int = -1
    """Index of the KV-cache slot the sequence holds while running; -1 while queued."""
    cached: int = 0
    """Positions whose keys and values are in the cache (prompt plus emitted bytes but one)."""
    pending: int = -1
    """The latest emitted byte: the next decode step's input, not yet in the cache."""
    output: bytearray = field(default_factory=bytearray)
    """Bytes generated so far."""
    cancelled: bool = False
    """Set by :meth:`Engine.cancel`; the loop retires the sequence at the next step boundary."""
    generator: torch.Generator | None = None
    """This sequence's own random generator when it samples; None when it decodes greedily."""


def _resolve(future: Future, result: Generation | None = None, error: BaseException | None = None):
    # The asyncio side may have cancelled the future already (client gone); that is fine.
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class Engine:
    """Continuous, static or no batching of byte-level generation over a slot KV cache."""

    def __init__(
        self,
        model: GPT,
        metrics: Metrics,
        *,
        batching: str = "continuous",
        max_batch_size: int = 32,
        max_queue: int = 64,
        static_wait: float = 0.02,
    ):
        self.model = model
        self.metrics = metrics
        self.batching = batching
        self.max_queue = max_queue
        self.static_wait = static_wait
        self.device = next(model.parameters()).device
        self.slots = 1 if batching == "none" else max_batch_size
        block = model.config.block_size
        dtype = next(model.parameters()).dtype
        self.cache = KVCache(model.config, self.slots, device=self.device, dtype=dtype)
        self._causal = torch.ones(block, block, dtype=torch.bool, device=self.device).tril()
        self._free = list(range(self.slots))
        self._queue: collections.deque[Sequence] = collections.deque()
        self._active: list[Sequence] = []
        self._cv = threading.Condition()
        self._accepting = True
        self._stopping = False
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="gpuyard-engine", daemon=True)

    def warmup(self) -> None:
        """One prefill and one decode step, so the first request pays no first-call costs."""
        T = 4
        idx = torch.zeros(1, T, dtype=torch.long, device=self.device)
        positions = torch.arange(T, device=self.device).view(1, T)
        slots = torch.zeros(1, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            self.model.step(idx, positions, slots, self._causal[:T].view(1, 1, T, -1), self.cache)
            self.model.step(
                idx[:, :1], positions[:, :1], slots, self._causal[:1].view(1, 1, 1, -1), self.cache
            )

    def start(self) -> None:
        self._thread.start()

    def submit(self, requests: list[GenerationRequest]) -> list[Sequence]:
        """Queue all of ``requests`` or none of them; raise QueueFull or EngineClosed."""
        with self._cv:
            if self._failure is not None:
                raise EngineFailed(self._failure)
            if not self._accepting:
                raise EngineClosed("the server is shutting down")
            if len(self._queue) + len(requests) > self.max_queue:
                raise QueueFull(f"{len(self._queue)} sequences already waiting")
            sequences = [Sequence(r) for r in requests]
            self._queue.extend(sequences)
            self.metrics.queue_depth.set(len(self._queue))
            self._cv.notify_all()
        return sequences

    def cancel(self, sequences: list[Sequence]) -> None:
        """Withdraw sequences: queued ones leave now, running ones at the next step boundary."""
        with self._cv:
            for seq in sequences:
                seq.cancelled = True
                if seq in self._queue:
                    self._queue.remove(seq)
                    self._finish(seq, "cancelled")
            self.metrics.queue_depth.set(len(self._queue))
            self._cv.notify_all()

    def drain(self, timeout: float) -> bool:
        """Refuse new work and wait up to ``timeout`` s for queued and running work to finish."""
        with self._cv:
            self._accepting = False
            return self._cv.wait_for(lambda: not self._queue and not self._active, timeout)

    def close(self) -> None:
        """Stop the loop; whatever is still queued or running fails with Cancelled."""
        with self._cv:
            self._accepting = False
            self._stopping = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        for seq in [*self._queue, *self._active]:
            self._finish(seq, "cancelled")
        self._queue.clear()
        self._active.clear()

    @property
    def busy(self) -> int:
        """Sequences queued or running."""
        return len(self._queue) + len(self._active)

    @property
    def failure(self) -> str | None:
        """Why the engine can no longer generate, or None while it can."""
        return self._failure

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                self._loop()
        finally:
            # Whatever ended the loop other than close() leaves nobody to serve the queue:
            # fail everything now rather than let clients wait forever.
            with self._cv:
                if not self._stopping:
                    self._fail(self._failure or "the generation thread died unexpectedly")

    def _loop(self) -> None:
        failures = 0
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stopping or self._queue or self._active)
                if self._stopping:
                    return
            try:
                healthy = self._step()
            except Exception as error:
                log.exception("generation step failed")
                self._abort(list(self._active), error)
                healthy = False
            failures = 0 if healthy else failures + 1
            if failures >= MAX_STEP_FAILURES:
                self._failure = f"{failures} generation steps failed in a row (see the log)"
                return

    def _step(self) -> bool:
        """Admit, prefill and decode once; False if some sequence failed along the way."""
        healthy = True
        for seq in self._admit():
            try:
                self._prefill(seq)
            except Exception as error:
                # One prompt failing must not take the sequences already running down with it.
                log.exception("prefill failed")
                self._abort([seq], error)
                healthy = False
        self._retire()
        if self._active:
            self._decode(self._active)
            self._retire()
        return healthy

    def _abort(self, sequences: list[Sequence], error: BaseException) -> None:
        for seq in sequences:
            self._finish(seq, "error", error)
            self._free.append(seq.slot)
        self._active = [s for s in self._active if s not in sequences]
        self.metrics.occupancy.set(len(self._active) / self.slots)
        self._notify()

    def _fail(self, message: str) -> None:
        self._failure = message
        self._accepting = False
        log.error("engine failed: %s", message)
        for seq in [*self._queue, *self._active]:
            self._finish(seq, "error", EngineFailed(message))
        self._queue.clear()
        self._active.clear()
        self.metrics.queue_depth.set(0)
        self.metrics.occupancy.set(0)
        self._cv.notify_all()

    def _admit(self) -> list[Sequence]:
        if self.batching == "static" and not self._active:
            self._wait_for_batch()
        with self._cv:
            room = len(self._free) if self.batching == "continuous" or not self._active else 0
            newcomers = []
            while self._queue and room:
                seq = self._queue.popleft()
                seq.slot = self._free.pop()
                newcomers.append(seq)
                room -= 1
            # In the same critical section as the pops: drain() must never see a sequence
            # in neither the queue nor the active list.
            self._active.extend(newcomers)
            self.metrics.queue_depth.set(len(self._queue))
        now = time.perf_counter()
        for seq in newcomers:
            self.metrics.queue_seconds.observe(now - seq.submitted)
        return newcomers

    def _wait_for_batch(self) -> None:
        with self._cv:
            if not self._queue:
                return
            deadline = self._queue[0].submitted + self.static_wait
            self._cv.wait_for(
                lambda: len(self._queue) >= len(self._free) or self._stopping,
                max(0.0, deadline - time.perf_counter()),
            )

    def _prefill(self, seq: Sequence) -> None:
        prompt = torch.tensor(list(seq.request.prompt), dtype=torch.long, device=self.device)
        T = prompt.numel()
        positions = torch.arange(T, device=self.device).view(1, T)
        slots = torch.tensor([seq.slot], device=self.device)
        mask = self._causal[:T].view(1, 1, T, -1)
        logits = self.model.step(prompt.view(1, T), positions, slots, mask, self.cache)[0]
        if T > 1:
            # The prompt's likelihood comes free with prefill: logits at t predict byte t+1.
            nll = F.cross_entropy(logits[:-1].float(), prompt[1:])
            self.metrics.prompt_nll.observe(float(nll))
        self.metrics.prompt_tokens.inc(T)
        seq.cached = T
        if seq.request.temperature >= GREEDY_BELOW:
            seq.generator = torch.Generator(device=self.device)
            if seq.request.seed is None:
                seq.generator.seed()
            else:
                seq.generator.manual_seed(seq.request.seed)
        self._emit(seq, self._sample(logits[-1:], [seq])[0])
        self.metrics.ttft.observe(time.perf_counter() - seq.submitted)

    def _decode(self, sequences: list[Sequence]) -> None:
        B = len(sequences)
        idx = torch.tensor([[s.pending] for s in sequences], device=self.device)
        positions = torch.tensor([[s.cached] for s in sequences], device=self.device)
        slots = torch.tensor([s.slot for s in sequences], device=self.device)
        mask = self._causal[positions.view(B)].view(B, 1, 1, -1)
        logits = self.model.step(idx, positions, slots, mask, self.cache)[:, -1]
        self.metrics.batch_size.observe(B)
        for seq, token in zip(sequences, self._sample(logits, sequences), strict=True):
            seq.cached += 1
            self._emit(seq, token)

    def _sample(self, logits: torch.Tensor, sequences: list[Sequence]) -> list[int]:
        greedy = logits.argmax(dim=-1).tolist()
        tokens = []
        for row, seq in enumerate(sequences):
            temperature, top_k = seq.request.temperature, seq.request.top_k
            if temperature < GREEDY_BELOW:
                tokens.append(greedy[row])
                continue
            scaled = (logits[row].float() - logits[row].max()) / temperature
            if top_k is not None and top_k < scaled.numel():
                kth = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            probs = torch.softmax(scaled, dim=-1)
            tokens.append(int(torch.multinomial(probs, 1, generator=seq.generator)))
        return tokens

    def _emit(self, seq: Sequence, token: int) -> None:
        seq.output.append(token)
        seq.pending = token
        self.metrics.generated_tokens.inc()

    def _done(self, seq: Sequence) -> str | None:
        if seq.cancelled:
            return "cancelled"
        if any(seq.output.endswith(stop) for stop in seq.request.stop):
            return "stop"
        if len(seq.output) >= seq.request.max_new_tokens:
            return "length"
        return None

    def _retire(self) -> None:
        still = []
        for seq in self._active:
            reason = self._done(seq)
            if reason is None:
                still.append(seq)
                continue
            self._free.append(seq.slot)
            self._finish(seq, reason)
        if len(still) != len(self._active):
            self._active = still
            self._notify()
        self.metrics.occupancy.set(len(self._active) / self.slots)

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _finish(self, seq: Sequence, reason: str, error: BaseException | None = None) -> None:
        self.metrics.sequences.labels(reason).inc()
        if reason in ("cancelled", "error"):
            _resolve(seq.future, error=error or Cancelled("request withdrawn"))
            return
        text = bytes(seq.output)
        if reason == "stop":
            stop = next(s for s in seq.request.stop if text.endswith(s))
            text = text[: -len(stop)]
        generation = Generation(
            text=text.decode("utf-8", errors="replace"),
            tokens=len(seq.output),
            finish_reason=reason,
        )
        _resolve(seq.future, generation)

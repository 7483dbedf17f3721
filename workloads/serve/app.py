"""The ASGI app: every platform's routes over one engine.

Contracts served at once (each maps its wire shape onto ``GenerationRequest``):

- SageMaker: ``GET /ping``, ``POST /invocations``
- Vertex AI: ``GET $AIP_HEALTH_ROUTE``, ``POST $AIP_PREDICT_ROUTE``
- Azure ML: liveness ``GET /``, readiness ``GET /ready``, scoring ``POST /score``
- KServe v2 / Open Inference Protocol: ``/v2``, ``/v2/health/{live,ready}``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer``
- ``GET /metrics`` (Prometheus) and ``GET /openapi.json``

Liveness is green as soon as the process serves, and red only once the engine has
failed for good; readiness only once the model is loaded and warmed up, and no longer
once draining has begun or the engine has failed. SageMaker's ``/ping`` is its only
health check, so a failed engine turns it red too and the platform replaces the container.

Every POST route takes a JSON body whatever its Content-Type says: SageMaker passes on
the client's type, which is often ``text/plain``, ``application/octet-stream`` or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workloads.serve import loading
from workloads.serve.config import ServeConfig
from workloads.serve.engine import Cancelled, Engine, EngineClosed, EngineFailed, QueueFull
from workloads.serve.metrics import Metrics, RequestMetrics
from workloads.serve.schemas import (
    BadRequest,
    ErrorResponse,
    Generation,
    GenerationRequest,
    Limits,
    PredictRequest,
    PredictResponse,
    V2InferRequest,
    V2InferResponse,
    from_predict,
    from_v2,
    to_v2_outputs,
)

log = logging.getLogger(__name__)

RETRY_AFTER_FULL = "1"
RETRY_AFTER_UNAVAILABLE = "5"
MAX_BODY_BYTES = 1 << 20
"""Far above the largest valid request (16 prompts of a few hundred escaped bytes)."""
CLIENT_CLOSED = 499
"""Status recorded when the client went away first (nginx's convention; never seen by it)."""


class HTTPError(Exception):
    """An answer other than 2xx, rendered as ``{"error": message}``."""

    def __init__(self, status: int, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = {"Retry-After": retry_after} if retry_after else {}


class ServerState:
    """Lifecycle of one server: ``loading`` → ``ready`` → ``draining``, or ``failed``."""

    def __init__(self, config: ServeConfig, metrics: Metrics):
        self.config = config
        """The settings the server was started with."""
        self.metrics = metrics
        """Prometheus metrics shared by the routes and the engine."""
        self.phase = "loading"
        """``loading``, ``ready``, ``draining`` or ``failed``."""
        self.error: str | None = None
        """Why the server failed; None unless ``phase`` is ``failed``."""
        self.engine: Engine | None = None
        """The generation engine, once the model is loaded."""
        self.limits: Limits | None = None
        """What requests may ask of the loaded model, once it is loaded."""
        self.version: str | None = None
        """The model's training step, reported as its version on the KServe v2 routes."""
        self.drain_deadline: float | None = None
        """``time.monotonic()`` by which in-flight work must finish, once draining."""

    def _check_engine(self) -> None:
        if self.engine is not None and self.engine.failure and self.phase != "failed":
            self.phase = "failed"
            self.error = f"the generation engine failed: {self.engine.failure}"
            self.metrics.ready.set(0)

    @property
    def ready(self) -> bool:
        """Whether readiness probes pass and predictions are accepted."""
        self._check_engine()
        return self.phase == "ready"

    @property
    def live(self) -> bool:
        """False once a loaded engine has failed: nothing short of a restart helps then."""
        self._check_engine()
        return not (self.phase == "failed" and self.engine is not None)

    def load(self, on_fatal: Callable[[str], None]) -> None:
        """Fetch, verify, load and warm the model; runs in a thread so liveness answers now."""
        try:
            threads = self.config.threads
            if not threads and self.config.device == "cpu":
                threads = max(1, (os.cpu_count() or 2) - 1)
            if threads:
                torch.set_num_threads(threads)
            model, meta = loading.load(self.config.model, self.config.cache_dir, self.config.device)
            engine = Engine(
                model,
                self.metrics,
                batching=self.config.batching,
                max_batch_size=self.config.max_batch_size,
                max_queue=self.config.max_queue,
            )
            engine.warmup()
            engine.start()
        except Exception as error:
            self.phase = "failed"
            self.error = f"model failed to load from {self.config.model}: {error}"
            log.error(self.error)
            on_fatal(self.error)
            return
        self.engine = engine
        self.limits = Limits(
            block_size=model.config.block_size,
            max_instances=self.config.max_instances,
            default_max_new_tokens=min(self.config.max_new_tokens, model.config.block_size - 1),
        )
        self.version = str(meta.get("step", "0"))
        if self.phase == "loading":
            self.phase = "ready"
            self.metrics.ready.set(1)
            log.info("ready: %s batching, %d slots", self.config.batching, engine.slots)

    def begin_drain(self) -> None:
        """Stop admitting: readiness and new predictions answer 503 from now on."""
        if self.phase in ("loading", "ready"):
            self.phase = "draining"
            self.drain_deadline = time.monotonic() + self.config.drain_seconds
            self.metrics.ready.set(0)
            log.info("draining for up to %.0f s", self.config.drain_seconds)

    def finish(self) -> None:
        """Let in-flight work finish within the grace period, then stop the engine."""
        self.begin_drain()
        if self.engine is None:
            return
        remaining = max(0.0, (self.drain_deadline or time.monotonic()) - time.monotonic())
        if not self.engine.drain(remaining):
            log.warning("grace period over with %d sequences unfinished", self.engine.busy)
        self.engine.close()

    def require_engine(self) -> Engine:
        """The engine if predictions are accepted now, else an HTTPError 503 saying why."""
        if self.ready and self.engine is not None:
            return self.engine
        raise HTTPError(503, self.unavailable_reason(), RETRY_AFTER_UNAVAILABLE)

    def unavailable_reason(self) -> str:
        """Why readiness fails, in words."""
        self._check_engine()
        return {
            "loading": "the model is still loading",
            "draining": "the server is shutting down",
            "failed": self.error or "the model failed to load",
        }.get(self.phase, "not ready")


async def _client_gone(request: Request) -> None:
    # Once the body is read, the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _generate(
    state: ServerState, request: Request, requests: list[GenerationRequest]
) -> list[Generation]:
    engine = state.require_engine()
    try:
        sequences = engine.submit(requests)
    except QueueFull as error:
        raise HTTPError(
            429, f"server overloaded ({error}); retry later", RETRY_AFTER_FULL
        ) from None
    except EngineClosed as error:
        raise HTTPError(503, str(error), RETRY_AFTER_UNAVAILABLE) from None
    except EngineFailed as error:
        raise HTTPError(503, f"the generation engine failed: {error}") from None
    results = asyncio.gather(*(asyncio.wrap_future(s.future) for s in sequences))
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait({results, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        engine.cancel(sequences)
        raise
    finally:
        gone.cancel()
    if results not in done:
        engine.cancel(sequences)
        results.cancel()
        raise HTTPError(CLIENT_CLOSED, "client closed the connection")
    try:
        return results.result()
    except Cancelled:
        raise HTTPError(
            503, "the server shut down before finishing", RETRY_AFTER_UNAVAILABLE
        ) from None
    except EngineFailed as error:
        raise HTTPError(503, f"the generation engine failed: {error}") from None
    except Exception as error:
        raise HTTPError(500, f"generation failed: {error!r}") from None


JSON_EXAMPLES = {
    "instances": '{"instances": [{"prompt": "..."}]}',
    "v2": '{"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["..."]}]}',
}


def _validation_message(error: RequestValidationError, path: str) -> str:
    example = JSON_EXAMPLES["v2" if path.startswith("/v2/") else "instances"]
    parts = []
    for e in error.errors()[:3]:
        where = "body"
        for p in e["loc"][1:]:
            where = f"{where}[{p}]" if isinstance(p, int) else f"{where}.{p}"
        where = where.removeprefix("body.")
        if e["type"] == "json_invalid":
            detail = e.get("ctx", {}).get("error", "")
            detail = f" ({detail})" if detail else ""
            parts.append(f"body: must be JSON such as {example}, but is not{detail}")
        elif e["type"] == "missing" and where == "body":
            parts.append(f"body: a JSON object such as {example} is required")
        else:
            parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


class JSONBody:
    """ASGI middleware: read each body up front, 413 once it passes ``limit`` bytes (declared
    or chunked, so no client makes the server buffer an unbounded body), and hand a POST body
    on as JSON whatever its Content-Type says."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, f"body: larger than {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await too_large(scope, receive, send)
                return
        if scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"] = [*headers, (b"content-type", b"application/json")]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request; the message names the field"},
    429: {"model": ErrorResponse, "description": "Queue full; retry after Retry-After seconds"},
    503: {"model": ErrorResponse, "description": "Not ready or shutting down; see Retry-After"},
}
NOT_READY: dict[int | str, dict[str, Any]] = {503: ERRORS[503]}


def create_app(config: ServeConfig, on_fatal: Callable[[str], None] | None = None) -> FastAPI:
    """The server for ``config``; ``on_fatal`` is told when the model cannot be loaded."""
    metrics = Metrics(config.max_batch_size)
    state = ServerState(config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = threading.Thread(
            target=state.load,
            args=(on_fatal or (lambda _: None),),
            name="gpuyard-load",
            daemon=True,
        )
        loader.start()
        yield
        await asyncio.to_thread(state.finish)

    app = FastAPI(
        title="gpuyard inference server",
        version="1",
        description="Byte-level GPT text generation behind SageMaker, Vertex AI, Azure ML "
        "and KServe v2 contracts.",
        lifespan=lifespan,
    )
    app.state.server = state
    app.add_middleware(JSONBody, limit=MAX_BODY_BYTES)
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(HTTPError)
    async def http_error(_: Request, exc: HTTPError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc, request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI raises a bare 400 for a body it cannot decode at all (not UTF-8).
        message = f"body: {exc.detail}" if exc.status_code == 400 else str(exc.detail)
        return _error(exc.status_code, message, exc.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__}")

    def ready_or_503() -> None:
        if not state.ready:
            raise HTTPError(503, state.unavailable_reason(), RETRY_AFTER_UNAVAILABLE)

    def live_or_503() -> None:
        if not state.live:
            raise HTTPError(503, state.unavailable_reason())

    def limits() -> Limits:
        state.require_engine()
        assert state.limits is not None
        return state.limits

    def check_model(name: str) -> None:
        if name != config.model_name:
            raise HTTPError(
                404, f"model {name!r} not found; this server serves {config.model_name!r}"
            )

    async def predict(request: Request, body: PredictRequest) -> PredictResponse:
        generations = await _generate(state, request, from_predict(body, limits()))
        return PredictResponse(predictions=[asdict(g) for g in generations])

    async def ready(_: Request) -> dict[str, str]:
        ready_or_503()
        return {"status": "ready"}

    predict_routes = {
        "/invocations": "SageMaker invocations",
        "/score": "Azure ML scoring",
        config.predict_route: "Vertex AI prediction",
    }
    for path, summary in predict_routes.items():
        app.add_api_route(
            path, predict, methods=["POST"], response_model=PredictResponse, responses=ERRORS,
            summary=summary, operation_id=f"predict{path.replace('/', '_')}",
        )  # fmt: skip
    ready_routes = {"/ping": "SageMaker health", "/ready": "Azure ML readiness"}
    ready_routes.setdefault(config.health_route, "Vertex AI health")
    for path, summary in ready_routes.items():
        app.add_api_route(
            path, ready, methods=["GET"], responses=NOT_READY, summary=summary,
            operation_id=f"ready{path.replace('/', '_')}",
        )  # fmt: skip

    @app.get(
        "/", summary="Azure ML liveness", response_class=PlainTextResponse, responses=NOT_READY
    )
    async def live() -> str:
        live_or_503()
        return "Healthy"

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v2", summary="KServe v2 server metadata")
    async def v2_server() -> dict[str, Any]:
        return {"name": "gpuyard", "version": app.version, "extensions": []}

    @app.get("/v2/health/live", summary="KServe v2 liveness", responses=NOT_READY)
    async def v2_live() -> dict[str, bool]:
        live_or_503()
        return {"live": True}

    @app.get("/v2/health/ready", summary="KServe v2 readiness", responses=NOT_READY)
    async def v2_ready() -> dict[str, bool]:
        ready_or_503()
        return {"ready": True}

    @app.get("/v2/models/{name}", summary="KServe v2 model metadata", responses=NOT_READY)
    async def v2_model(name: str) -> dict[str, Any]:
        check_model(name)
        ready_or_503()
        return {
            "name": config.model_name,
            "versions": [state.version],
            "platform": f"pytorch_{torch.__version__.split('+')[0]}",
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "text", "datatype": "BYTES", "shape": [-1]},
                {"name": "tokens", "datatype": "INT64", "shape": [-1]},
                {"name": "finish_reason", "datatype": "BYTES", "shape": [-1]},
            ],
        }

    @app.get("/v2/models/{name}/ready", summary="KServe v2 model readiness", responses=NOT_READY)
    async def v2_model_ready(name: str) -> dict[str, Any]:
        check_model(name)
        ready_or_503()
        return {"name": name, "ready": True}

    @app.post(
        "/v2/models/{name}/infer", summary="KServe v2 inference", responses=ERRORS,
        response_model=V2InferResponse, response_model_exclude_none=True,
    )  # fmt: skip
    async def v2_infer(name: str, request: Request, body: V2InferRequest) -> V2InferResponse:
        check_model(name)
        generations = await _generate(state, request, from_v2(body, limits()))
        return V2InferResponse(
            model_name=name,
            model_version=state.version,
            id=body.id,
            outputs=to_v2_outputs(generations, body.outputs),
        )

    def openapi() -> dict[str, Any]:
        # Validation failures answer 400 (see `invalid`), so FastAPI's default 422 is not real.
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for item in schema["paths"].values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app

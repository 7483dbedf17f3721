"""``python -m workloads serve``: flags, and a uvicorn server that drains on SIGTERM.

With no flags it configures itself from the platform's environment, as SageMaker
(``docker run IMAGE serve``), Vertex AI and Azure ML start it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import fields

import uvicorn

from workloads.serve.app import create_app
from workloads.serve.config import BATCHING_MODES, ConfigError, ServeConfig, resolve

log = logging.getLogger(__name__)

GIL_SWITCH_SECONDS = 0.0002

HELP = {
    "model": "artifact directory or s3:// gs:// az:// URL (default: platform env, /opt/ml/model)",
    "host": "interface to bind (default 0.0.0.0)",
    "port": "port (default: AIP_HTTP_PORT, SAGEMAKER_BIND_TO_PORT, 5001 on Azure ML, else 8080)",
    "model_name": "model name on the KServe v2 routes (default gpuyard)",
    "batching": "continuous (default), static, or none (batch size 1)",
    "max_batch_size": "sequences decoded together (default 32)",
    "max_queue": "waiting sequences before 429 (default 64)",
    "max_instances": "prompts per request (default 16)",
    "max_new_tokens": "default bytes generated per prompt (default 64)",
    "drain_seconds": "grace period for in-flight requests after SIGTERM (default 30)",
    "health_route": "Vertex AI health route (default AIP_HEALTH_ROUTE or /health)",
    "predict_route": "Vertex AI predict route (default AIP_PREDICT_ROUTE or /predict)",
    "cache_dir": "where a remote model is downloaded (default: a temp dir)",
    "device": "torch device (default cuda if available, else cpu)",
    "threads": "torch intra-op threads (default: all cores but one on CPU)",
    "log_level": "uvicorn log level (default info)",
}


def add_parser(subparsers) -> None:
    """Register ``serve``; every flag also reads ``GPUYARD_SERVE_<FLAG>`` from the environment."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (SageMaker, Vertex AI, Azure ML, KServe v2)",
        description=__doc__,
    )
    for f in fields(ServeConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str if f.name == "model" else type(f.default)
        choices = BATCHING_MODES if f.name == "batching" else None
        parser.add_argument(flag, type=kind, choices=choices, default=None, help=HELP[f.name])
    parser.set_defaults(func=run)


class _Server(uvicorn.Server):
    """uvicorn, with readiness turned off the moment a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT: 0 after a clean drain, exit 1 if the model fails to load."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = resolve({f.name: getattr(args, f.name, None) for f in fields(ServeConfig)})
    except ConfigError as error:
        raise SystemExit(f"serve: {error}") from None
    server: _Server | None = None

    def fatal(message: str) -> None:
        if server is not None:
            server.should_exit = True

    app = create_app(config, on_fatal=fatal)
    state = app.state.server
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        timeout_graceful_shutdown=config.drain_seconds,
        access_log=False,
    )
    server = _Server(uv_config, on_exit=state.begin_drain)
    # Every torch op releases the GIL; with the default 5 ms switch interval a busy event
    # loop then holds the engine thread back up to 5 ms per op, which halved throughput
    # and quadrupled p99 at 64 concurrent clients (docs/benchmarks.md, Serving).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # uvicorn re-raises the signal it caught once it has shut down; the default actions
    # would then turn a clean drain into status 143 (or a KeyboardInterrupt), so ignore that replay.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    if state.phase == "failed":
        raise SystemExit(f"serve: {state.error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point when ``workloads.__main__`` is not there to dispatch."""
    parser = argparse.ArgumentParser(prog="python -m workloads")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

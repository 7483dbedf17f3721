"""``python -m workloads serve``: flags, and a uvicorn server that drains on SIGTERM.

With no flags it configures itself from the platform's environment, as SageMaker
(``docker run IMAGE serve``), Vertex AI and Azure ML start it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import MISSING, fields

import uvicorn

from workloads.serve.app import create_app
from workloads.serve.config import BATCHING_MODES, ConfigError, ServeConfig, field_docs, resolve

log = logging.getLogger(__name__)

GIL_SWITCH_SECONDS = 0.0002


def add_parser(subparsers) -> None:
    """Register ``serve``; every flag also reads ``GPUYARD_SERVE_<FLAG>`` from the environment."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (SageMaker, Vertex AI, Azure ML, KServe v2)",
        description=__doc__,
    )
    docs = field_docs()
    for f in fields(ServeConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str if f.name == "model" else type(f.default)
        choices = BATCHING_MODES if f.name == "batching" else None
        text = docs[f.name]
        if f.default is not MISSING and f.default != "":
            text = f"{text} (default: {f.default})"
        help_text = f"{text} [env GPUYARD_SERVE_{f.name.upper()}]".replace("%", "%%")
        parser.add_argument(flag, type=kind, choices=choices, default=None, help=help_text)
    parser.set_defaults(func=run)


class _Server(uvicorn.Server):
    """uvicorn, with readiness turned off the moment a shutdown signal arrives and the
    listening socket kept open ``delay`` seconds more, so load balancers see the red
    readiness and deregister the server before connections start being refused."""

    def __init__(self, config: uvicorn.Config, on_exit, delay: float):
        super().__init__(config)
        self._on_exit = on_exit
        self._delay = delay
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig, frame) -> None:
        self._on_exit()
        if self._timer is not None or not self._delay:
            # A second signal means the operator wants out now.
            super().handle_exit(sig, frame)
            return
        self._timer = threading.Timer(self._delay, super().handle_exit, (sig, frame))
        self._timer.daemon = True
        self._timer.start()


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
        # The grace period runs from the signal, so the deregistration delay is part of it.
        timeout_graceful_shutdown=max(0.0, config.drain_seconds - config.drain_delay_seconds),
        access_log=False,
    )
    server = _Server(uv_config, on_exit=state.begin_drain, delay=config.drain_delay_seconds)
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

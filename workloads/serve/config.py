"""Server settings, resolved once at start from flags, ``GPUYARD_SERVE_*`` and the platform's env.

Precedence for every setting: command-line flag, then ``GPUYARD_SERVE_<NAME>``, then
whatever the hosting platform sets (SageMaker, Vertex AI, Azure ML), then the default.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

BATCHING_MODES = ("continuous", "static", "none")
SAGEMAKER_MODEL_DIR = "/opt/ml/model"


class ConfigError(ValueError):
    """A setting is missing or out of range; the message names it and says what is accepted."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs; built by :func:`resolve`, never read from env elsewhere."""

    model: str
    """Artifact location: a local directory holding ``manifest.json`` itself or in one of its
    subdirectories, or an object-store URL (``s3://``, ``gs://``, ``az://``, ``abfs://``)
    downloaded at start."""
    host: str = "0.0.0.0"
    """Interface to bind; platforms reach the container on all interfaces."""
    port: int = 8080
    """TCP port; SageMaker and Vertex AI default to 8080, the Azure ML inference server to 5001."""
    model_name: str = "gpuyard"
    """Name under which the KServe v2 routes (``/v2/models/{name}``) serve the model."""
    batching: str = "continuous"
    """``continuous`` (join the running batch at step boundaries), ``static`` (collect a batch and
    run it to completion) or ``none`` (one request at a time)."""
    max_batch_size: int = 32
    """Sequences decoded together; also the number of KV-cache slots allocated at start."""
    max_queue: int = 64
    """Sequences waiting for a slot before new requests get 429; bounds memory under overload."""
    max_instances: int = 16
    """Instances (prompts) accepted in one request."""
    max_new_tokens: int = 64
    """Default number of bytes generated per instance when a request does not say."""
    drain_seconds: float = 30.0
    """Grace period after SIGTERM for in-flight requests to finish before the process exits."""
    drain_delay_seconds: float = 5.0
    """After SIGTERM, how long the server keeps accepting connections with readiness red, so
    load balancers see it and stop routing before the listening socket closes; part of
    ``drain_seconds``."""
    health_route: str = "/health"
    """Vertex AI health route (``AIP_HEALTH_ROUTE`` overrides)."""
    predict_route: str = "/predict"
    """Vertex AI prediction route (``AIP_PREDICT_ROUTE`` overrides)."""
    cache_dir: str = ""
    """Where a model fetched from an object store is written; empty means a fresh temp dir
    (made only when there is something to fetch)."""
    device: str = "cpu"
    """Torch device for the model and KV cache (``cuda`` when a GPU is present)."""
    threads: int = 0
    """Torch intra-op threads for the engine; 0 means all cores but one on CPU (the HTTP event
    loop needs the other: spinning OpenMP workers starve it) and torch's default on GPU."""
    log_level: str = "info"
    """uvicorn log level."""

    def __post_init__(self) -> None:
        if self.batching not in BATCHING_MODES:
            raise ConfigError(f"batching={self.batching!r}; choose one of {list(BATCHING_MODES)}")
        for name in ("port", "max_batch_size", "max_queue", "max_instances", "max_new_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.port > 65535:
            raise ConfigError(f"port must be at most 65535, got {self.port}")
        if self.max_instances > self.max_queue:
            raise ConfigError(
                f"max_instances={self.max_instances} exceeds max_queue={self.max_queue}: "
                "such a request could never be admitted"
            )
        for name in ("drain_seconds", "drain_delay_seconds", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("health_route", "predict_route"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{name} must start with '/', got {getattr(self, name)!r}")


def field_docs() -> dict[str, str]:
    """Each :class:`ServeConfig` field's docstring, on one line, by field name."""
    tree = ast.parse(inspect.getsource(ServeConfig))
    body = tree.body[0].body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _env_name(field: str) -> str:
    return f"GPUYARD_SERVE_{field.upper()}"


def _default_model(env: Mapping[str, str]) -> str:
    if env.get("AIP_STORAGE_URI"):
        return env["AIP_STORAGE_URI"]
    if env.get("AZUREML_MODEL_DIR"):
        return env["AZUREML_MODEL_DIR"]
    if Path(SAGEMAKER_MODEL_DIR).is_dir():
        return SAGEMAKER_MODEL_DIR
    raise ConfigError(
        "no model: pass --model, or set GPUYARD_SERVE_MODEL, AIP_STORAGE_URI or "
        f"AZUREML_MODEL_DIR, or mount one at {SAGEMAKER_MODEL_DIR}"
    )


def _default_port(env: Mapping[str, str]) -> str:
    for name in ("AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT"):
        if env.get(name):
            return env[name]
    # The Azure ML inference server listens on 5001; an Azure deployment's inference_config
    # that was written for it keeps working.
    return "5001" if env.get("AZUREML_MODEL_DIR") else "8080"


def _platform_default(name: str, env: Mapping[str, str]) -> Any:
    if name == "model":
        return _default_model(env)
    if name == "port":
        return _default_port(env)
    if name == "health_route" and env.get("AIP_HEALTH_ROUTE"):
        return env["AIP_HEALTH_ROUTE"]
    if name == "predict_route" and env.get("AIP_PREDICT_ROUTE"):
        return env["AIP_PREDICT_ROUTE"]
    if name == "device":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return None


def resolve(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> ServeConfig:
    """Build the config; ``flags`` holds command-line values (None = not given)."""
    flags = flags or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(ServeConfig):
        value = flags.get(f.name)
        if value is None:
            value = env.get(_env_name(f.name)) or None
        if value is None:
            value = _platform_default(f.name, env)
        if value is None:
            continue
        kind = type(f.default) if f.name != "model" else str
        try:
            values[f.name] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{f.name}={value!r} (flag --{f.name.replace('_', '-')} or {_env_name(f.name)}) "
                f"is not a valid {kind.__name__}"
            ) from None
    return ServeConfig(**values)

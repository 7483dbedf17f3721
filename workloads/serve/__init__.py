"""Inference server: one ASGI app honouring SageMaker, Vertex AI, Azure ML and KServe v2.

``create_app(config)`` builds it; ``cli.add_parser`` registers ``python -m workloads serve``.
"""

from workloads.serve.app import create_app
from workloads.serve.config import ServeConfig, resolve

__all__ = ["ServeConfig", "create_app", "resolve"]

"""The platform: one component per stack that picks the cloud kit and wires the pieces."""

from __future__ import annotations

import importlib

import pulumi

from components.kit import Kit, KitOutputs
from components.spec import PlatformSpec

TOKEN = "gpuyard:index:Platform"

KITS: dict[str, str] = {
    "aws": "components.aws.kit",
    "gcp": "components.gcp.kit",
    "azure": "components.azure.kit",
}
"""Each cloud's kit module; the only place the cloud name selects code. Imported on use,
so planning one cloud never pays for importing the other clouds' SDKs."""


def kit(cloud: str) -> Kit:
    """The ``build`` function of ``cloud``'s kit."""
    return importlib.import_module(KITS[cloud]).build


class Platform(pulumi.ComponentResource):
    """Everything one stack declares, on the cloud its spec names."""

    def __init__(self, name: str, spec: PlatformSpec, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, {}, opts)
        self.spec = spec
        self.kit: KitOutputs = kit(spec.cloud)(name, spec, self)
        self.bucket_url = self.kit.bucket_url
        self.network_id = self.kit.network_id
        self.register_outputs({"bucket_url": self.bucket_url, "network_id": self.network_id})

"""The platform: one component per stack that picks the cloud kit and wires the pieces."""

from __future__ import annotations

import pulumi

from components.aws.kit import build as build_aws
from components.azure.kit import build as build_azure
from components.gcp.kit import build as build_gcp
from components.kit import Kit, KitOutputs
from components.spec import PlatformSpec

TOKEN = "gpuyard:index:Platform"

KITS: dict[str, Kit] = {"aws": build_aws, "gcp": build_gcp, "azure": build_azure}
"""Each cloud's builder; the only place the cloud name selects code."""


class Platform(pulumi.ComponentResource):
    """Everything one stack declares, on the cloud its spec names."""

    def __init__(self, name: str, spec: PlatformSpec, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, {}, opts)
        self.spec = spec
        self.kit: KitOutputs = KITS[spec.cloud](name, spec, self)
        self.bucket_url = self.kit.bucket_url
        self.network_id = self.kit.network_id
        self.register_outputs({"bucket_url": self.bucket_url, "network_id": self.network_id})

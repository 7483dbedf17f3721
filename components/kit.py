"""What every cloud kit hands back to the platform, in the same shape on each cloud."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pulumi

from components.spec import PlatformSpec


@dataclass(frozen=True)
class KitOutputs:
    """The few values the rest of the platform and the stack outputs need from a cloud."""

    network: pulumi.ComponentResource
    """The cloud's network component (private subnets, NAT, flow logs)."""
    store: pulumi.ComponentResource
    """The cloud's object-store component."""
    bucket_url: pulumi.Output[str]
    """URL the workloads read and write through fsspec: ``s3://``, ``gs://`` or ``az://``."""
    network_id: pulumi.Output[str]
    """The cloud's id of the network (VPC id, network self link, VNet id)."""


class Kit(Protocol):
    """Builds one cloud's resources for a validated spec, parented under the platform."""

    def __call__(self, name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs: ...

"""What every cloud kit hands back to the platform, in the same shape on each cloud."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pulumi

from components.spec import PlatformSpec

ENVIRONMENT_TAG = {
    "aws": "gpuyard:environment",
    "azure": "gpuyard:environment",
    # GCP label keys take only lowercase letters, digits, "_" and "-".
    "gcp": "gpuyard-environment",
}
"""Key of the tag (GCP: label) naming the stack's environment, in each cloud's key rules."""


@dataclass(frozen=True)
class KitOutputs:
    """The few values the rest of the platform and the stack outputs need from a cloud."""

    network: pulumi.ComponentResource
    """The cloud's network component (private subnets, NAT, flow logs)."""
    store: pulumi.ComponentResource
    """The cloud's object-store component."""
    bucket_url: pulumi.Output[str]
    """URL the workloads read and write through fsspec, naming everything needed to find
    the bucket: ``s3://<bucket>``, ``gs://<bucket>`` or
    ``az://<container>@<account>.blob.core.windows.net``."""
    network_id: pulumi.Output[str]
    """The cloud's id of the network (VPC id, network self link, VNet id)."""


class Kit(Protocol):
    """Builds one cloud's resources for a validated spec, parented under the platform."""

    def __call__(self, name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs: ...


def platform_tags(spec: PlatformSpec) -> dict[str, str]:
    """The spec's tags plus the environment, so every resource says which stack kind owns it
    (cost reports and clean-up scripts filter on it)."""
    return {**spec.tags, ENVIRONMENT_TAG[spec.cloud]: spec.environment}


def stateful(parent: pulumi.Resource, protect: bool) -> pulumi.ResourceOptions:
    """Options for a child that holds data (buckets, keys, audit logs).

    Protected stacks also retain the resource on delete: a ``destroy`` or a replacement
    that gets past ``protect`` still leaves the data in the cloud.
    """
    return pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect)

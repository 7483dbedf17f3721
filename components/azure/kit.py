"""The Azure kit: one explicit provider and resource group, then the network and object store."""

from __future__ import annotations

import hashlib
import re

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native import resources

from components.azure.network import AzureNetwork, AzureNetworkArgs
from components.azure.storage import AzureObjectStore, AzureObjectStoreArgs
from components.kit import KitOutputs
from components.spec import PlatformSpec

ACCOUNT_PREFIX = "gpy"
"""Start of every gpuyard storage account name, so they sort together in a subscription."""

MAX_ACCOUNT_NAME = 24
"""Longest storage account name Azure accepts."""

HASH_LENGTH = 6
"""Hex digits of the hash that makes account names unique per stack."""


def account_name(name: str, environment: str, region: str, role: str) -> str:
    """A storage account name for ``role`` (two letters): ``gpy<role><name><env><hash>``.

    Azure takes 3-24 lowercase letters and digits, unique across all of Azure. The
    readable part is cut to fit; the hash covers the whole of name, environment, region
    and role, so stacks that share a prefix, or the same stack in two regions, differ.
    """
    readable = re.sub(r"[^a-z0-9]", "", f"{name}{environment}".lower())
    digest = hashlib.sha256(f"{name}/{environment}/{region}/{role}".encode()).hexdigest()
    room = MAX_ACCOUNT_NAME - len(ACCOUNT_PREFIX) - len(role) - HASH_LENGTH
    return f"{ACCOUNT_PREFIX}{role}{readable[:room]}{digest[:HASH_LENGTH]}"


def build(name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs:
    """Declare the Azure resource group, network and object store for ``spec`` under ``parent``."""
    provider = azure_native.Provider(
        f"{name}-azure", location=spec.region, opts=pulumi.ResourceOptions(parent=parent)
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    tags = dict(spec.tags)
    group = resources.ResourceGroup(
        f"{name}-rg",
        location=spec.region,
        tags=tags,
        # Deleting a resource group deletes everything in it, checkpoints included.
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                protect=spec.protect_stateful, retain_on_delete=spec.protect_stateful
            ),
        ),
    )
    layout = spec.network.subnets()
    network = AzureNetwork(
        name,
        AzureNetworkArgs(
            resource_group_name=group.name,
            location=spec.region,
            cidr=str(spec.network.cidr),
            subnet_blocks=[private for _, private, _ in layout]
            + [public for _, _, public in layout],
            zones=list(spec.network.zones),
            flow_log_retention_days=spec.network.flow_log_retention_days,
            flow_log_account_name=account_name(name, spec.environment, spec.region, "fl"),
            protect=spec.protect_stateful,
            tags=tags,
        ),
        opts=opts,
    )
    store = AzureObjectStore(
        name,
        AzureObjectStoreArgs(
            resource_group_name=group.name,
            location=spec.region,
            account_name=account_name(name, spec.environment, spec.region, "st"),
            production=spec.production,
            versioning=spec.storage.versioning,
            checkpoint_version_retention_days=spec.storage.checkpoint_version_retention_days,
            access_log_retention_days=spec.storage.access_log_retention_days,
            protect=spec.protect_stateful,
            allowed_subnet_ids=[network.subnet_ids["nodes"]],
            tags=tags,
        ),
        opts=opts,
    )
    return KitOutputs(
        network=network, store=store, bucket_url=store.bucket_url, network_id=network.vnet_id
    )

"""The Azure kit: one explicit provider and resource group, then the network and object store."""

from __future__ import annotations

import hashlib
import re

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native import authorization, resources

from components.azure.network import AzureNetwork, AzureNetworkArgs
from components.azure.storage import AzureObjectStore, AzureObjectStoreArgs
from components.kit import KitOutputs, platform_tags, stateful
from components.spec import PlatformSpec

ACCOUNT_PREFIX = "gpy"
"""Start of every gpuyard storage account name, so they sort together in a subscription."""

MAX_ACCOUNT_NAME = 24
"""Longest storage account name Azure accepts."""

HASH_LENGTH = 6
"""Hex digits of the hash that makes account names unique per stack."""

NETWORK_WATCHER_RESOURCE_GROUP = "NetworkWatcherRG"
"""Resource group where Azure auto-creates each region's Network Watcher."""


def account_name(name: str, environment: str, region: str, role: str, subscription_id: str) -> str:
    """A storage account name for ``role`` (two letters): ``gpy<role><name><env><hash>``.

    Azure takes 3-24 lowercase letters and digits, unique across all of Azure. The
    readable part is cut to fit; the hash covers the subscription as well as name,
    environment, region and role, so everyone deploying the repo's default stacks gets
    their own names, and stacks that share a prefix, or one stack in two regions, differ.
    """
    readable = re.sub(r"[^a-z0-9]", "", f"{name}{environment}".lower())
    digest = hashlib.sha256(
        f"{subscription_id}/{name}/{environment}/{region}/{role}".encode()
    ).hexdigest()
    room = MAX_ACCOUNT_NAME - len(ACCOUNT_PREFIX) - len(role) - HASH_LENGTH
    return f"{ACCOUNT_PREFIX}{role}{readable[:room]}{digest[:HASH_LENGTH]}"


def build(name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs:
    """Declare the Azure resource group, network and object store for ``spec`` under ``parent``."""
    provider = azure_native.Provider(
        f"{name}-azure", location=spec.region, opts=pulumi.ResourceOptions(parent=parent)
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    # The subscription the provider deploys to, not an ambient az CLI default.
    subscription_id = authorization.get_client_config_output(
        opts=pulumi.InvokeOutputOptions(parent=parent, provider=provider)
    ).subscription_id
    tags = platform_tags(spec)
    group = resources.ResourceGroup(
        f"{name}-rg",
        location=spec.region,
        tags=tags,
        # Deleting a resource group deletes everything in it, checkpoints included.
        opts=pulumi.ResourceOptions.merge(opts, stateful(parent, spec.protect_stateful)),
    )

    def account(role: str) -> pulumi.Output[str]:
        return subscription_id.apply(
            lambda sub: account_name(name, spec.environment, spec.region, role, sub)
        )

    # Azure subnets span every zone, so both take fixed regional blocks: a change in the
    # zone count never resizes (replaces) a subnet under the cluster.
    nodes_cidr, endpoints_cidr, *_ = spec.regional_subnets()
    network = AzureNetwork(
        f"{name}-network",
        AzureNetworkArgs(
            resource_group_name=group.name,
            location=spec.region,
            cidr=str(spec.network.cidr),
            nodes_cidr=nodes_cidr,
            endpoints_cidr=endpoints_cidr,
            zones=list(spec.network.zones),
            subscription_id=subscription_id,
            flow_log_retention_days=spec.network.flow_log_retention_days,
            flow_log_account_name=account("fl"),
            # Azure's defaults: it creates NetworkWatcher_<region> in NetworkWatcherRG when
            # the subscription's first VNet in a region appears. Where that auto-creation is
            # disabled, create the watcher outside gpuyard (one per region and subscription;
            # declaring it here would fail wherever it exists) and name it here.
            network_watcher_resource_group=NETWORK_WATCHER_RESOURCE_GROUP,
            network_watcher_name=f"NetworkWatcher_{spec.region}",
            protect=spec.protect_stateful,
            tags=tags,
        ),
        opts=opts,
    )
    store = AzureObjectStore(
        f"{name}-store",
        AzureObjectStoreArgs(
            resource_group_name=group.name,
            location=spec.region,
            account_name=account("st"),
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

"""The AWS kit: one explicit provider, then the network and the object store on it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.aws.network import AwsNetwork, AwsNetworkArgs
from components.aws.storage import AwsObjectStore, AwsObjectStoreArgs
from components.kit import KitOutputs, platform_tags
from components.spec import PlatformSpec


def build(name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs:
    """Build the AWS resources of ``spec`` under ``parent`` and hand back what the rest needs."""
    provider = aws.Provider(
        f"{name}-aws",
        # The region comes from the stack spec, never from AWS_REGION or ~/.aws/config,
        # so the same stack file always deploys to the same place.
        region=spec.region,
        # Default tags reach every taggable resource, including ones a component forgets.
        default_tags=aws.ProviderDefaultTagsArgs(tags=platform_tags(spec)),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    invoke = pulumi.InvokeOutputOptions(provider=provider, parent=parent)
    account_id = aws.get_caller_identity_output(opts=invoke).account_id
    partition = aws.get_partition_output(opts=invoke).partition
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)

    network = AwsNetwork(
        f"{name}-network",
        AwsNetworkArgs(
            region=spec.region,
            cidr=str(spec.network.cidr),
            subnets=tuple(spec.subnets()),
            # A NAT gateway per zone keeps private subnets online when a zone fails; dev
            # shares one to save its hourly charge per extra zone.
            nat_per_zone=spec.production,
            flow_log_retention_days=spec.network.flow_log_retention_days,
            protect=spec.protect_stateful,
            account_id=account_id,
            partition=partition,
            tags={"gpuyard:component": "network"},
        ),
        opts,
    )
    store = AwsObjectStore(
        f"{name}-store",
        AwsObjectStoreArgs(
            versioning=spec.storage.versioning,
            checkpoint_version_retention_days=spec.storage.checkpoint_version_retention_days,
            access_log_retention_days=spec.storage.access_log_retention_days,
            force_destroy=spec.storage.force_destroy,
            protect=spec.protect_stateful,
            account_id=account_id,
            tags={"gpuyard:component": "storage"},
        ),
        opts,
    )
    return KitOutputs(
        network=network, store=store, bucket_url=store.bucket_url, network_id=network.vpc_id
    )

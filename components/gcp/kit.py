"""The GCP kit: one explicit provider, then the network and the object store."""

from __future__ import annotations

import hashlib
import re

import pulumi
import pulumi_gcp as gcp

from components.gcp.network import GcpNetwork, GcpNetworkArgs
from components.gcp.storage import GcpObjectStore, GcpObjectStoreArgs
from components.kit import KitOutputs
from components.spec import PlatformSpec

MAX_BUCKET_NAME = 63
"""Longest GCS bucket name without dots."""


def bucket_name(project: str, name: str) -> str:
    """The stack's globally unique bucket name: ``<project>-<name>-data``, GCS-safe.

    A name over 63 characters keeps its start and ends in a short hash of the whole,
    so two long names that share a prefix still differ.
    """
    full = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{name}-data".lower()).strip("-")
    if len(full) <= MAX_BUCKET_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_BUCKET_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def build(name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs:
    """Declare the GCP network and object store for ``spec`` under ``parent``."""
    project = spec.project
    if project is None:
        raise ValueError("a GCP spec always carries a project; the spec validates it")
    provider = gcp.Provider(
        f"{name}-gcp",
        project=project,
        region=spec.region,
        default_labels=spec.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = GcpNetwork(
        name,
        GcpNetworkArgs(
            project=project,
            region=spec.region,
            cidr=str(spec.network.cidr),
            pods_cidr=str(spec.network.pods_cidr),
            services_cidr=str(spec.network.services_cidr),
            # Production audits want every flow; other stacks halve the log volume and cost.
            flow_sampling=1.0 if spec.production else 0.5,
            flow_log_retention_days=spec.network.flow_log_retention_days,
            protect=spec.protect_stateful,
        ),
        opts=opts,
    )
    store = GcpObjectStore(
        name,
        GcpObjectStoreArgs(
            project=project,
            region=spec.region,
            bucket_name=bucket_name(project, name),
            versioning=spec.storage.versioning,
            noncurrent_version_retention_days=spec.storage.checkpoint_version_retention_days,
            access_log_retention_days=spec.storage.access_log_retention_days,
            force_destroy=spec.storage.force_destroy,
            protect=spec.protect_stateful,
            labels=dict(spec.tags),
        ),
        opts=opts,
    )
    return KitOutputs(
        network=network, store=store, bucket_url=store.bucket_url, network_id=network.network_id
    )

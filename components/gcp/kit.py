"""The GCP kit: one explicit provider, then the network, the object store and the project's
storage audit setting."""

from __future__ import annotations

import hashlib
import re

import pulumi
import pulumi_gcp as gcp

from components.gcp.network import GcpNetwork, GcpNetworkArgs
from components.gcp.storage import GcpObjectStore, GcpObjectStoreArgs
from components.kit import KitOutputs, platform_tags
from components.spec import PlatformSpec

MAX_BUCKET_NAME = 63
"""Longest GCS bucket name without dots."""

HASH_LENGTH = 6
"""Hex digits of the hash that tells stacks of the same name and environment apart."""

AUDITED_LOG_TYPES = ("ADMIN_READ", "DATA_READ", "DATA_WRITE")
"""Cloud Audit Logs types turned on for Cloud Storage (admin writes are always logged)."""


def stack_hash(stack: str) -> str:
    """Short hash of the fully qualified stack (``<pulumi project>/<stack>``)."""
    return hashlib.sha256(stack.encode()).hexdigest()[:HASH_LENGTH]


def bucket_name(project: str, name: str, environment: str, stack: str) -> str:
    """The stack's globally unique bucket name: ``<project>-<name>-<env>-data-<hash>``.

    The hash covers the stack as well as every readable part, so two stacks of one
    environment in one project differ, and a name cut to 63 characters stays unique.
    """
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{name}-{environment}-data".lower())
    digest = hashlib.sha256(f"{project}/{name}/{environment}/{stack}".encode()).hexdigest()
    room = MAX_BUCKET_NAME - HASH_LENGTH - 1
    return f"{readable.strip('-')[:room].rstrip('-')}-{digest[:HASH_LENGTH]}"


def log_bucket_id(name: str, environment: str, stack: str, role: str) -> str:
    """Id of a Cloud Logging bucket: ``<name>-<env>-<stack hash>-<role>``.

    Log bucket ids are unique per project and location, and a deleted one stays reserved
    for 7 days, so they carry the environment and the stack; Pulumi cannot auto-name them
    (``bucket_id`` is required).
    """
    return f"{name}-{environment}-{stack_hash(stack)}-{role}"


def build(name: str, spec: PlatformSpec, parent: pulumi.Resource) -> KitOutputs:
    """Declare the GCP network and object store for ``spec`` under ``parent``."""
    project = spec.project
    if project is None:
        raise ValueError("a GCP spec always carries a project; the spec validates it")
    # The stack's identity, not its config: tells apart stacks that share a GCP project.
    stack = f"{pulumi.get_project()}/{pulumi.get_stack()}"
    labels = platform_tags(spec)
    provider = gcp.Provider(
        f"{name}-gcp",
        project=project,
        region=spec.region,
        default_labels=labels,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = GcpNetwork(
        f"{name}-network",
        GcpNetworkArgs(
            project=project,
            region=spec.region,
            cidr=str(spec.network.cidr),
            pods_cidr=str(spec.network.pods_cidr),
            services_cidr=str(spec.network.services_cidr),
            # Production audits want every flow; other stacks halve the log volume and cost.
            flow_sampling=1.0 if spec.production else 0.5,
            flow_log_retention_days=spec.network.flow_log_retention_days,
            flow_log_bucket_id=log_bucket_id(name, spec.environment, stack, "flow-logs"),
            protect=spec.protect_stateful,
        ),
        opts=opts,
    )
    data_bucket = bucket_name(project, name, spec.environment, stack)
    store = GcpObjectStore(
        f"{name}-store",
        GcpObjectStoreArgs(
            project=project,
            region=spec.region,
            bucket_name=data_bucket,
            versioning=spec.storage.versioning,
            noncurrent_version_retention_days=spec.storage.checkpoint_version_retention_days,
            access_log_retention_days=spec.storage.access_log_retention_days,
            access_log_bucket_id=log_bucket_id(name, spec.environment, stack, "access-logs"),
            force_destroy=spec.storage.force_destroy,
            protect=spec.protect_stateful,
            labels=labels,
        ),
        opts=opts,
    )

    # Project-level, not part of the object store: Cloud Storage records data access only
    # when the project's audit config asks for it, and that one setting covers every
    # bucket of the project (the store's sink keeps only its own bucket's entries).
    # IAMAuditConfig is authoritative for the service: it replaces the project's audit
    # config for storage.googleapis.com, exemptions included, so a project that already
    # manages it elsewhere must drop this resource. Retained on delete in every stack:
    # destroying one (dev) stack must never silently switch off the project's storage
    # audit logging that other stacks and teams rely on.
    gcp.projects.IAMAuditConfig(
        f"{name}-storage-audit",
        project=project,
        service="storage.googleapis.com",
        audit_log_configs=[
            gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=log_type)
            for log_type in AUDITED_LOG_TYPES
        ],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )
    return KitOutputs(
        network=network, store=store, bucket_url=store.bucket_url, network_id=network.network_id
    )

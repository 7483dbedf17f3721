"""A Cloud Logging bucket of its own, fed by a sink: how gpuyard keeps a log stream."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp


def routed_logs(
    name: str,
    project: str,
    region: str,
    bucket_id: str,
    retention_days: int,
    description: str,
    log_filter: pulumi.Input[str],
    parent: pulumi.Resource,
    kept: pulumi.ResourceOptions,
) -> tuple[gcp.logging.ProjectBucketConfig, gcp.logging.ProjectSink]:
    """A log bucket in ``region`` with its own retention, and a sink routing ``log_filter``
    into it. Changing the project's _Default bucket instead would change the retention of
    every log in the project. Cloud Logging keeps the bucket private to the project and
    encrypted by Google; ``kept`` carries the stateful options (protect, retain)."""
    bucket = gcp.logging.ProjectBucketConfig(
        name,
        project=project,
        location=region,
        bucket_id=bucket_id,
        retention_days=retention_days,
        description=description,
        opts=kept,
    )
    sink = gcp.logging.ProjectSink(
        name,
        project=project,
        destination=f"logging.googleapis.com/projects/{project}/locations/{region}/buckets/{bucket_id}",
        filter=log_filter,
        # Its own writer identity rather than the project-wide shared one.
        unique_writer_identity=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[bucket]),
    )
    return bucket, sink

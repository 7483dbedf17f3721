"""GcpObjectStore: a private, CMEK-encrypted, versioned GCS bucket with data-access audit logs."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components.gcp.logs import routed_logs
from components.kit import stateful

TOKEN = "gpuyard:index:GcpObjectStore"

KEY_ROTATION_PERIOD = f"{90 * 24 * 3600}s"
"""Cloud KMS rotates the bucket key to a new primary version every 90 days."""

ABORT_MULTIPART_AFTER_DAYS = 7
"""Days after which an unfinished XML API multipart upload is aborted."""

SOFT_DELETE_SECONDS = 7 * 24 * 3600
"""How long a deleted object stays recoverable (GCS's default, stated so a change is seen)."""


@dataclass(frozen=True)
class GcpObjectStoreArgs:
    """What a GcpObjectStore needs: where the bucket lives and how it keeps data."""

    project: str
    """GCP project id that owns the bucket, its key and its audit logs."""
    region: str
    """Region of the bucket, its key ring and its access-log bucket, e.g. ``us-central1``."""
    bucket_name: str
    """Globally unique bucket name (3-63 lowercase letters, digits, dashes)."""
    versioning: bool
    """Keep noncurrent versions of overwritten and deleted objects."""
    noncurrent_version_retention_days: int
    """Days after which a noncurrent object version is deleted."""
    access_log_retention_days: int
    """Days the bucket's data-access audit logs are kept."""
    access_log_bucket_id: str
    """Id of the Cloud Logging bucket that keeps them, unique in the project and region;
    ids of deleted buckets stay taken for 7 days."""
    force_destroy: bool
    """Let ``pulumi destroy`` delete the bucket while it still holds objects."""
    protect: bool
    """Protect the bucket, its key and its log bucket from deletion and keep them on destroy."""
    labels: dict[str, str] = field(default_factory=dict)
    """Labels put on the bucket and its key."""


class GcpObjectStore(pulumi.ComponentResource):
    """The bucket that holds datasets, checkpoints and models, with its key and audit trail.

    TLS only: GCS serves its JSON and XML APIs over HTTPS alone, so there is no plain-HTTP
    endpoint to turn off.
    """

    def __init__(
        self, name: str, args: GcpObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(TOKEN, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)

        # Key ring and key are auto-named: Cloud KMS never deletes either, and their names
        # can never be taken again in the project and location, so a fixed name would stop
        # a destroyed stack from being brought up again.
        self.key_ring = gcp.kms.KeyRing(
            f"{name}-keys", project=args.project, location=args.region, opts=kept
        )
        # Retained with the bucket in protected stacks: destroying the key's versions would
        # make every object in a retained bucket unreadable.
        self.crypto_key = gcp.kms.CryptoKey(
            f"{name}-bucket-key",
            key_ring=self.key_ring.id,
            purpose="ENCRYPT_DECRYPT",
            # Rotation bounds how much data one key version protects.
            rotation_period=KEY_ROTATION_PERIOD,
            labels=args.labels,
            opts=kept,
        )

        service_agent = gcp.storage.get_project_service_account_output(
            project=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        # Least privilege: the project's Cloud Storage service agent may use this one key,
        # and only to encrypt and decrypt; nobody gets key administration from here.
        self.key_binding = gcp.kms.CryptoKeyIAMMember(
            f"{name}-gcs-key-access",
            crypto_key_id=self.crypto_key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=pulumi.Output.concat("serviceAccount:", service_agent.email_address),
            opts=child,
        )

        self.bucket = gcp.storage.Bucket(
            f"{name}-data",
            name=args.bucket_name,
            project=args.project,
            # Same region as the cluster: no cross-region egress when training reads shards.
            location=args.region,
            labels=args.labels,
            # IAM only, no per-object ACLs that could quietly make one object public.
            uniform_bucket_level_access=True,
            # Refuses allUsers / allAuthenticatedUsers grants whatever IAM is later applied.
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=args.versioning),
            encryption=gcp.storage.BucketEncryptionArgs(
                # Encryption at rest under the platform's own key, which can be revoked.
                default_kms_key_name=self.crypto_key.id,
                # New objects cannot fall back to Google-managed or caller-supplied keys.
                google_managed_encryption_enforcement_config=(
                    gcp.storage.BucketEncryptionGoogleManagedEncryptionEnforcementConfigArgs(
                        restriction_mode="FullyRestricted"
                    )
                ),
                customer_supplied_encryption_enforcement_config=(
                    gcp.storage.BucketEncryptionCustomerSuppliedEncryptionEnforcementConfigArgs(
                        restriction_mode="FullyRestricted"
                    )
                ),
            ),
            lifecycle_rules=[
                # Superseded checkpoints are deleted after the spec's window, so versioning
                # can undo a bad write without keeping every checkpoint forever.
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        days_since_noncurrent_time=args.noncurrent_version_retention_days,
                        with_state="ARCHIVED",
                    ),
                ),
                # Uploads cut off by a preempted node would otherwise be billed indefinitely.
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(
                        type="AbortIncompleteMultipartUpload"
                    ),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=ABORT_MULTIPART_AFTER_DAYS
                    ),
                ),
            ],
            # A week to recover objects deleted by mistake, including noncurrent versions
            # removed by the rule above.
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(
                retention_duration_seconds=SOFT_DELETE_SECONDS
            ),
            # Only a spec that asks for it (never production, the spec refuses) lets
            # destroy delete a bucket that still holds checkpoints and models.
            force_destroy=args.force_destroy,
            # The service agent must hold the key before the bucket names it as default.
            opts=pulumi.ResourceOptions.merge(
                kept, pulumi.ResourceOptions(depends_on=[self.key_binding])
            ),
        )

        # Data-access entries exist only while the project's audit config for Cloud Storage
        # asks for them; the kit declares that project-level setting, not this component.
        self.access_log_bucket, self.access_log_sink = routed_logs(
            f"{name}-access-logs",
            project=args.project,
            region=args.region,
            bucket_id=args.access_log_bucket_id,
            retention_days=args.access_log_retention_days,
            description=f"Data-access audit logs of gs://{args.bucket_name}",
            log_filter=(
                'log_id("cloudaudit.googleapis.com/data_access") AND resource.type="gcs_bucket"'
                f' AND resource.labels.bucket_name="{args.bucket_name}"'
            ),
            parent=self,
            kept=kept,
        )

        self.bucket_name: pulumi.Output[str] = self.bucket.name
        self.bucket_url: pulumi.Output[str] = pulumi.Output.concat("gs://", self.bucket.name)
        self.kms_key_id: pulumi.Output[str] = self.crypto_key.id
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_url": self.bucket_url,
                "kms_key_id": self.kms_key_id,
            }
        )

"""AwsObjectStore: an encrypted, private, TLS-only S3 bucket with access logs in a second bucket."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.aws.iam import ALLOW, DENY, document
from components.kit import stateful

TOKEN = "gpuyard:index:AwsObjectStore"

ABORT_INCOMPLETE_UPLOADS_DAYS = 7
"""Days after which parts of an unfinished multipart upload (a crashed checkpoint write) go."""

MIN_TLS_VERSION = 1.2
"""Oldest TLS version the bucket accepts; older versions have known weaknesses."""


@dataclass(frozen=True)
class AwsObjectStoreArgs:
    """What an AwsObjectStore needs: the spec's storage settings and the owning account."""

    versioning: bool
    """Keep previous versions of overwritten objects so a bad checkpoint write can be undone."""
    checkpoint_version_retention_days: int
    """Days after which a superseded (noncurrent) version of an object is deleted."""
    access_log_retention_days: int
    """Days the S3 server access logs are kept."""
    force_destroy: bool
    """Let ``pulumi destroy`` delete the buckets while they still hold objects."""
    protect: bool
    """Protect the buckets and the key from deletion and keep them when the stack goes."""
    account_id: pulumi.Input[str]
    """AWS account id that owns the buckets; only its source bucket may deliver logs."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every taggable child, on top of the provider's default tags."""


def _bucket_and_objects(bucket: aws.s3.Bucket) -> list[pulumi.Output[str]]:
    return [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")]


def _tls_only(bucket: aws.s3.Bucket) -> list[dict]:
    """Statements every gpuyard bucket carries: HTTPS only, and no TLS older than 1.2."""
    resources = _bucket_and_objects(bucket)
    return [
        {
            # Plain HTTP would expose object data and request signatures on the wire.
            "Sid": "DenyInsecureTransport",
            "Effect": DENY,
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": DENY,
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": MIN_TLS_VERSION}},
        },
    ]


class AwsObjectStore(pulumi.ComponentResource):
    """The bucket that holds datasets, checkpoints and models, with its access-log bucket."""

    def __init__(
        self, name: str, args: AwsObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(TOKEN, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)

        def tags(child_name: str) -> dict[str, str]:
            return {**args.tags, "Name": child_name}

        self.kms_key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the objects of {name}",
            # Yearly rotation limits how much data one key version protects.
            enable_key_rotation=True,
            # Deleting the key makes every object unreadable: give the longest window to
            # notice and cancel a wrong deletion.
            deletion_window_in_days=30,
            tags=tags(f"{name}-key"),
            opts=kept,
        )

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=args.force_destroy,
            tags=tags(f"{name}-bucket"),
            opts=kept,
        )
        bucket_block = self._lock_down(name, self.bucket, "bucket")
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    # A customer key adds a second permission check (kms:Decrypt) and a
                    # CloudTrail record of every use, which S3-managed keys lack.
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=self.kms_key.arn
                    ),
                    # Bucket keys cut KMS requests (and their cost) by orders of magnitude
                    # for checkpoint shards written in bursts.
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-bucket-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                # "Suspended", not "Disabled": S3 cannot turn versioning off once it was on.
                status="Enabled" if args.versioning else "Suspended"
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    # The whole bucket, not only checkpoints/: datasets and exported models
                    # are overwritten too, and the training job writes checkpoints wherever
                    # its URL points, so no one prefix holds every superseded version.
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.checkpoint_version_retention_days
                    ),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    # Parts of uploads that never completed are billed but invisible.
                    id="abort-incomplete-multipart-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS
                    ),
                ),
            ],
            # Rules on noncurrent versions need the versioning state settled first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self._policy(
            name,
            self.bucket,
            "bucket",
            _tls_only(self.bucket),
            bucket_block,
        )

        self.log_bucket = aws.s3.Bucket(
            f"{name}-logs",
            force_destroy=args.force_destroy,
            tags=tags(f"{name}-logs"),
            opts=kept,
        )
        log_block = self._lock_down(name, self.log_bucket, "logs")
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-logs-encryption",
            bucket=self.log_bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    # S3 server access logging delivers only to targets whose default
                    # encryption is SSE-S3; with SSE-KMS as default, logs are not delivered.
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                )
            ],
            opts=child,
        )
        log_versioning = aws.s3.BucketVersioning(
            f"{name}-logs-versioning",
            bucket=self.log_bucket.id,
            # Audit logs that were deleted or overwritten can still be recovered.
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle",
            bucket=self.log_bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    # A deleted log stays recoverable for as long as a live one is kept.
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.access_log_retention_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.access_log_retention_days
                    ),
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_versioning]),
        )
        log_policy = self._policy(
            name,
            self.log_bucket,
            "logs",
            [
                {
                    # With ACLs off, this grant is the only way logs arrive; the conditions
                    # stop other accounts' buckets from delivering into this one.
                    "Sid": "AllowServerAccessLogDelivery",
                    "Effect": ALLOW,
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": pulumi.Output.concat(self.log_bucket.arn, "/*"),
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": self.bucket.arn},
                        "StringEquals": {"aws:SourceAccount": args.account_id},
                    },
                },
                *_tls_only(self.log_bucket),
            ],
            log_block,
        )

        aws.s3.BucketLogging(
            f"{name}-bucket-logging",
            bucket=self.bucket.id,
            # Who read or wrote which object, for audits; CloudTrail data events would cost
            # far more on checkpoint-heavy buckets.
            target_bucket=self.log_bucket.id,
            target_prefix="s3-access/",
            # Date-partitioned keys let Athena prune a query to the days it asks about.
            target_object_key_format=aws.s3.BucketLoggingTargetObjectKeyFormatArgs(
                partitioned_prefix=aws.s3.BucketLoggingTargetObjectKeyFormatPartitionedPrefixArgs(
                    partition_date_source="EventTime"
                )
            ),
            # Delivery starts at once, so the grant must be in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_policy]),
        )

        self.bucket_name: pulumi.Output[str] = self.bucket.id
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self.bucket_url: pulumi.Output[str] = pulumi.Output.concat("s3://", self.bucket.id)
        self.log_bucket_name: pulumi.Output[str] = self.log_bucket.id
        self.kms_key_arn: pulumi.Output[str] = self.kms_key.arn
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "bucket_url": self.bucket_url,
                "log_bucket_name": self.log_bucket_name,
                "kms_key_arn": self.kms_key_arn,
            }
        )

    def _lock_down(
        self, name: str, bucket: aws.s3.Bucket, suffix: str
    ) -> aws.s3.BucketPublicAccessBlock:
        aws.s3.BucketOwnershipControls(
            f"{name}-{suffix}-ownership",
            bucket=bucket.id,
            # ACLs off: access is decided by policies alone, and the bucket owner owns
            # every object, whoever wrote it.
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.s3.BucketPublicAccessBlock(
            f"{name}-{suffix}-public-access-block",
            bucket=bucket.id,
            # No public ACL or policy may be added, and any that exists is ignored.
            block_public_acls=True,
            ignore_public_acls=True,
            block_public_policy=True,
            restrict_public_buckets=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _policy(
        self,
        name: str,
        bucket: aws.s3.Bucket,
        suffix: str,
        statements: list[dict],
        public_access_block: aws.s3.BucketPublicAccessBlock,
    ) -> aws.s3.BucketPolicy:
        return aws.s3.BucketPolicy(
            f"{name}-{suffix}-policy",
            bucket=bucket.id,
            policy=document(*statements),
            # S3 rejects a policy change while the public access block is still being set.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )

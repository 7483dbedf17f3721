"""AzureObjectStore: a private, encrypted storage account and container with audit logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import monitor, operationalinsights, storage

from components.kit import stateful

TOKEN = "gpuyard:index:AzureObjectStore"

CONTAINER_NAME = "gpuyard"
"""The blob container that holds datasets, checkpoints and models."""

AUDIT_CATEGORIES = ("StorageRead", "StorageWrite", "StorageDelete")
"""Blob-service log categories that record who read, wrote or deleted what."""


def private_account_settings() -> dict[str, Any]:
    """Storage-account settings every gpuyard account shares: private, encrypted, TLS only."""
    return {
        # TLS only, and no protocol older than 1.2.
        "enable_https_traffic_only": True,
        "minimum_tls_version": storage.MinimumTlsVersion.TLS1_2,
        # No anonymous reads, whatever a container's own setting says.
        "allow_blob_public_access": False,
        # Entra ID only: account keys, and SAS tokens signed with them, are long-lived
        # secrets that bypass RBAC and leave no identity in the audit log.
        "allow_shared_key_access": False,
        "default_to_o_auth_authentication": True,
        # Data never leaves the tenant through object replication or cross-tenant copies.
        "allow_cross_tenant_replication": False,
        "allowed_copy_scope": storage.AllowedCopyScope.AAD,
        # Encryption at rest twice: the service layer plus an infrastructure layer with a
        # separate key, so one compromised key or algorithm does not expose the data.
        "encryption": storage.EncryptionArgs(
            key_source=storage.KeySource.MICROSOFT_STORAGE,
            require_infrastructure_encryption=True,
            services=storage.EncryptionServicesArgs(
                blob=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT),
                file=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT),
            ),
        ),
        # No SFTP or local users: both authenticate outside Entra ID.
        "is_sftp_enabled": False,
        "is_local_user_enabled": False,
    }


@dataclass(frozen=True)
class AzureObjectStoreArgs:
    """What an AzureObjectStore needs: where it lives, its name and its retention rules."""

    resource_group_name: pulumi.Input[str]
    """Resource group that holds the storage account and the audit workspace."""
    location: str
    """Azure region, e.g. ``eastus``."""
    account_name: pulumi.Input[str]
    """Globally unique storage account name: 3-24 lowercase letters and digits."""
    production: bool
    """Production stacks keep three copies across zones (ZRS); others one zone (LRS)."""
    versioning: bool
    """Keep previous versions of overwritten blobs, so a bad checkpoint write can be undone."""
    checkpoint_version_retention_days: int
    """Days after which a previous version is deleted; also the soft-delete window for
    blobs and containers (1 to 365, the soft-delete range Azure accepts)."""
    access_log_retention_days: int
    """Days the data-access audit logs are kept (Log Analytics accepts 30 to 730)."""
    protect: bool
    """Protect the account and the audit workspace from deletion and keep them on destroy."""
    allowed_subnet_ids: Sequence[pulumi.Input[str]] = ()
    """Subnets (with the ``Microsoft.Storage`` service endpoint) the account firewall admits."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags put on every resource that takes them."""


class AzureObjectStore(pulumi.ComponentResource):
    """The platform's object store on Azure: one blob container in a private storage account.

    Workloads authenticate with AKS workload identity (Entra ID), never with account keys;
    fsspec reaches the container as ``az://<container>@<account>.blob.core.windows.net``,
    a URL adlfs takes the account name from, so no storage options or environment are
    needed. Hierarchical namespace stays off: blob versioning and version lifecycle rules,
    which checkpoint recovery relies on, are limited on hierarchical-namespace accounts,
    and flat blob namespaces serve ``az://`` just as well.
    """

    def __init__(
        self, name: str, args: AzureObjectStoreArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(TOKEN, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)
        tags = dict(args.tags)

        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            # Production checkpoints survive a zone outage; dev data is cheap to recreate.
            sku=storage.SkuArgs(
                name=storage.SkuName.STANDARD_ZRS
                if args.production
                else storage.SkuName.STANDARD_LRS
            ),
            access_tier=storage.AccessTier.HOT,
            is_hns_enabled=False,
            **private_account_settings(),
            # Reachable only from the cluster's subnet (service endpoint) and from trusted
            # Azure services acting under their own RBAC-granted identity; "Enabled" with a
            # deny-by-default firewall, because "Disabled" needs private endpoints the
            # platform does not declare yet and would shut the nodes out.
            public_network_access=storage.PublicNetworkAccess.ENABLED,
            network_rule_set=storage.NetworkRuleSetArgs(
                default_action=storage.DefaultAction.DENY,
                bypass=storage.Bypass.AZURE_SERVICES,
                virtual_network_rules=[
                    storage.VirtualNetworkRuleArgs(
                        virtual_network_resource_id=subnet_id, action=storage.Action.ALLOW
                    )
                    for subnet_id in args.allowed_subnet_ids
                ],
            ),
            tags=tags,
            opts=kept,
        )

        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            blob_services_name="default",
            is_versioning_enabled=args.versioning,
            # Soft delete: a deleted blob or container can be restored within the window,
            # even where versioning is off.
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True,
                days=args.checkpoint_version_retention_days,
                allow_permanent_delete=False,
            ),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=args.checkpoint_version_retention_days
            ),
            opts=child,
        )

        self.container = storage.BlobContainer(
            f"{name}-container",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            container_name=CONTAINER_NAME,
            # Private container: every read is an authenticated, audited request.
            public_access=storage.PublicAccess.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
        )

        self.lifecycle: storage.ManagementPolicy | None = None
        if args.versioning:
            self.lifecycle = storage.ManagementPolicy(
                f"{name}-lifecycle",
                resource_group_name=args.resource_group_name,
                account_name=self.account.name,
                # Azure allows one policy per account, and it must be named "default".
                management_policy_name="default",
                policy=storage.ManagementPolicySchemaArgs(
                    rules=[
                        storage.ManagementPolicyRuleArgs(
                            name="delete-previous-versions",
                            type=storage.RuleType.LIFECYCLE,
                            enabled=True,
                            definition=storage.ManagementPolicyDefinitionArgs(
                                actions=storage.ManagementPolicyActionArgs(
                                    version=storage.ManagementPolicyVersionArgs(
                                        delete=storage.DateAfterCreationArgs(
                                            days_after_creation_greater_than=(
                                                args.checkpoint_version_retention_days
                                            )
                                        )
                                    )
                                ),
                                # The whole container, not only checkpoints: a previous
                                # version of any overwritten object (dataset shard,
                                # exported model) would otherwise be billed forever.
                                filters=storage.ManagementPolicyFilterArgs(
                                    blob_types=["blockBlob"],
                                    prefix_match=[f"{CONTAINER_NAME}/"],
                                ),
                            ),
                        )
                    ]
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
            )

        self.workspace = operationalinsights.Workspace(
            f"{name}-audit",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(
                name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018
            ),
            retention_in_days=args.access_log_retention_days,
            # Diagnostic settings deliver over Azure's private channel, which this switch
            # does not gate; it only shuts out agents and senders on public networks.
            public_network_access_for_ingestion=operationalinsights.PublicNetworkAccessType.DISABLED,
            # Queries stay possible from the portal without a private link scope; each
            # one still needs an Entra ID identity with read access to the workspace.
            public_network_access_for_query=operationalinsights.PublicNetworkAccessType.ENABLED,
            # Entra ID only: no shared workspace keys that could write forged audit rows.
            features=operationalinsights.WorkspaceFeaturesArgs(disable_local_auth=True),
            tags=tags,
            opts=kept,
        )

        self.audit = monitor.DiagnosticSetting(
            f"{name}-audit-blob",
            # Data-plane logs belong to the blob service, not the account.
            resource_uri=self.account.id.apply(
                lambda account_id: f"{account_id}/blobServices/default"
            ),
            workspace_id=self.workspace.id,
            logs=[
                monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True)
                for category in AUDIT_CATEGORIES
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
        )

        # Both names are ours, fixed before anything exists; reading them off the resources'
        # ids keeps the dependency, so whatever uses them waits until the container is there.
        self.account_name: pulumi.Output[str] = pulumi.Output.all(
            self.account.id, args.account_name
        ).apply(lambda values: values[1])
        self.account_id: pulumi.Output[str] = self.account.id
        self.container_name: pulumi.Output[str] = self.container.id.apply(lambda _: CONTAINER_NAME)
        # adlfs reads the account from the host of an az:// URL (``*.blob.core.windows.net``
        # or ``*.dfs.core.windows.net``); a bare az://<container> would leave every Azure
        # stack exporting the same URL and the workloads guessing the account.
        self.bucket_url: pulumi.Output[str] = pulumi.Output.format(
            "az://{0}@{1}.blob.core.windows.net", self.container_name, self.account_name
        )
        self.workspace_id: pulumi.Output[str] = self.workspace.id
        self.register_outputs(
            {
                "account_name": self.account_name,
                "account_id": self.account_id,
                "container_name": self.container_name,
                "bucket_url": self.bucket_url,
                "workspace_id": self.workspace_id,
            }
        )

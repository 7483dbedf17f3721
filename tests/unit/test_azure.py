"""The Azure kit under recording mocks: exact children, parents and secure defaults."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass

import pulumi
import pytest

from components import plan as planning
from components import spec as specs
from components.azure import kit as azure_kit
from components.azure.network import AzureNetwork, AzureNetworkArgs
from components.kit import KitOutputs
from components.plan import Plan, Resource

NAME = "gpuyard"
NET = f"{NAME}-network"
ST = f"{NAME}-store"
COMPONENTS = {"gpuyard:index:AzureNetwork": NET, "gpuyard:index:AzureObjectStore": ST}

DEV = {
    "cloud": "azure",
    "region": "eastus",
    "environment": "dev",
    "tags": {"team": "ml"},
    # The longest flow-log and soft-delete periods and the shortest audit-log period the
    # spec accepts: each must reach Azure unchanged.
    "network": {"zones": 1, "flow_log_retention_days": 365},
    "storage": {
        "versioning": False,
        "checkpoint_version_retention_days": 365,
        "access_log_retention_days": 30,
    },
}
PROD = {
    "cloud": "azure",
    "region": "westeurope",
    "environment": "prod",
    "network": {"zones": 3, "flow_log_retention_days": 90},
    "storage": {"checkpoint_version_retention_days": 14, "access_log_retention_days": 180},
}

NETWORK_CHILDREN = Counter(
    {
        ("azure-native:network:VirtualNetwork", f"{NET}-vnet"): 1,
        ("azure-native:network:PublicIPAddress", f"{NET}-nat-ip"): 1,
        ("azure-native:network:NatGateway", f"{NET}-nat"): 1,
        ("azure-native:network:NetworkSecurityGroup", f"{NET}-nodes-nsg"): 1,
        ("azure-native:network:NetworkSecurityGroup", f"{NET}-endpoints-nsg"): 1,
        ("azure-native:network:Subnet", f"{NET}-nodes"): 1,
        ("azure-native:network:Subnet", f"{NET}-endpoints"): 1,
        ("azure-native:storage:StorageAccount", f"{NET}-flowlogs"): 1,
        ("azure-native:managedidentity:UserAssignedIdentity", f"{NET}-flowlog-identity"): 1,
        ("azure-native:authorization:RoleAssignment", f"{NET}-flowlog-writer"): 1,
        ("azure-native:network:FlowLog", f"{NET}-flowlog"): 1,
    }
)
STORE_CHILDREN = Counter(
    {
        ("azure-native:storage:StorageAccount", f"{ST}-account"): 1,
        ("azure-native:storage:BlobServiceProperties", f"{ST}-blob-service"): 1,
        ("azure-native:storage:BlobContainer", f"{ST}-container"): 1,
        ("azure-native:operationalinsights:Workspace", f"{ST}-audit"): 1,
        ("azure-native:monitor:DiagnosticSetting", f"{ST}-audit-blob"): 1,
    }
)
LIFECYCLE = ("azure-native:storage:ManagementPolicy", f"{ST}-lifecycle")


@dataclass
class Run:
    """One recorded build: the spec, the plan and what ``build`` handed back."""

    spec: specs.PlatformSpec
    plan: Plan
    kit: KitOutputs

    def one(self, type_: str, name: str) -> Resource:
        found = [r for r in self.plan.by_type(type_) if r.name == name]
        assert len(found) == 1, (type_, name, found)
        return found[0]

    def urn(self, type_: str, name: str) -> str:
        return self.one(type_, name).urn

    def children(self, token: str) -> Counter[tuple[str, str]]:
        parent = self.urn(token, COMPONENTS[token])
        return Counter((r.type, r.name) for r in self.plan.resources if r.parent == parent)


def _record(raw: dict) -> Run:
    spec = specs.parse(raw)
    holder: dict[str, KitOutputs] = {}

    def program() -> None:
        root = pulumi.ComponentResource("test:index:Root", "root")
        holder["kit"] = kit = azure_kit.build(NAME, spec, root)
        pulumi.export("bucket_url", kit.bucket_url)
        pulumi.export("network_id", kit.network_id)
        pulumi.export("account_name", kit.store.account_name)
        pulumi.export("subnet_ids", kit.network.subnet_ids)

    recorded = planning.record(program)
    return Run(spec, recorded, holder["kit"])


@pytest.fixture(scope="module")
def dev() -> Run:
    return _record(DEV)


@pytest.fixture(scope="module")
def prod() -> Run:
    return _record(PROD)


@pytest.fixture(params=["dev", "prod"])
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def test_network_children_are_exact(run: Run) -> None:
    assert run.children("gpuyard:index:AzureNetwork") == NETWORK_CHILDREN


def test_store_children_follow_versioning(dev: Run, prod: Run) -> None:
    assert dev.children("gpuyard:index:AzureObjectStore") == STORE_CHILDREN
    assert prod.children("gpuyard:index:AzureObjectStore") == STORE_CHILDREN + Counter([LIFECYCLE])


def test_everything_hangs_under_the_root_with_the_kit_provider(run: Run) -> None:
    root = run.urn("test:index:Root", "root")
    provider = run.one("pulumi:providers:azure-native", f"{NAME}-azure")
    assert provider.parent == root
    assert provider.inputs["location"] == run.spec.region
    for token, name in COMPONENTS.items():
        assert run.one(token, name).parent == root
    group = run.one("azure-native:resources:ResourceGroup", f"{NAME}-rg")
    assert group.parent == root
    assert group.inputs["location"] == run.spec.region
    components = {run.urn(token, name) for token, name in COMPONENTS.items()}
    expected = sum(
        (run.children(t) for t in ("gpuyard:index:AzureNetwork", "gpuyard:index:AzureObjectStore")),
        Counter(),
    )
    azure = [r for r in run.plan.resources if r.type.startswith("azure-native:")]
    assert len(azure) == sum(expected.values()) + 1  # + the resource group
    for resource in azure:
        assert resource.provider is not None
        assert resource.provider.startswith(provider.urn + "::"), resource.name
        if resource is not group:
            assert resource.parent in components, resource.name


def test_protection_follows_the_environment(dev: Run, prod: Run) -> None:
    stateful = [
        ("azure-native:resources:ResourceGroup", f"{NAME}-rg"),
        ("azure-native:storage:StorageAccount", f"{ST}-account"),
        ("azure-native:storage:StorageAccount", f"{NET}-flowlogs"),
        ("azure-native:operationalinsights:Workspace", f"{ST}-audit"),
    ]
    for key in stateful:
        assert prod.one(*key).protect is True, key
        assert dev.one(*key).protect is False, key
    protected = {(r.type, r.name) for r in prod.plan.resources if r.protect}
    assert protected == set(stateful)
    assert not any(r.protect for r in dev.plan.resources)


# The first two of the four regional /20s (blocks 12-15) of the default 10.0.0.0/16.
REGIONAL_BLOCKS = {"nodes": "10.0.192.0/20", "endpoints": "10.0.208.0/20"}


def test_subnets_are_private_behind_nat_and_nsg(run: Run) -> None:
    blocks = REGIONAL_BLOCKS
    nat = run.one("azure-native:network:NatGateway", f"{NET}-nat")
    for role, block in blocks.items():
        subnet = run.one("azure-native:network:Subnet", f"{NET}-{role}")
        assert subnet.inputs["defaultOutboundAccess"] is False
        assert subnet.inputs["addressPrefix"] == block
        assert subnet.inputs["natGateway"] == {"id": f"{nat.name}-id"}
        assert subnet.inputs["networkSecurityGroup"] == {"id": f"{NET}-{role}-nsg-id"}
        assert subnet.inputs["privateEndpointNetworkPolicies"] == "Enabled"
        assert nat.urn in subnet.dependencies
    nodes = run.one("azure-native:network:Subnet", f"{NET}-nodes")
    endpoints = run.one("azure-native:network:Subnet", f"{NET}-endpoints")
    assert nodes.inputs["serviceEndpoints"] == [{"service": "Microsoft.Storage"}]
    assert nodes.urn in endpoints.dependencies  # one subnet change at a time per VNet
    vnet = run.one("azure-native:network:VirtualNetwork", f"{NET}-vnet")
    assert vnet.inputs["addressSpace"] == {"addressPrefixes": [str(run.spec.network.cidr)]}
    assert "subnets" not in vnet.inputs


def _subnet_prefixes(run: Run) -> dict[str, str]:
    return {
        role: run.one("azure-native:network:Subnet", f"{NET}-{role}").inputs["addressPrefix"]
        for role in ("nodes", "endpoints")
    }


def test_subnets_take_regional_blocks_whatever_the_zones(dev: Run, prod: Run) -> None:
    assert dev.spec.regional_subnets()[:2] == tuple(REGIONAL_BLOCKS.values())
    # Changing the zone count or order must never resize (replace) a subnet under the
    # cluster; the zonal blocks are not used on Azure.
    zonal = {block for _, p, q in prod.spec.subnets() for block in (p, q)}
    assert not zonal & set(REGIONAL_BLOCKS.values())
    layouts = [_subnet_prefixes(run) for run in (dev, prod)]
    for zones in (2, ["3", "1"]):
        layouts.append(_subnet_prefixes(_record({**DEV, "network": {"zones": zones}})))
    assert all(layout == REGIONAL_BLOCKS for layout in layouts)


def test_nsgs_never_allow_inbound_from_the_internet(run: Run) -> None:
    open_sources = {"*", "internet", "any", "0.0.0.0/0", "0.0.0.0"}
    for role in ("nodes", "endpoints"):
        rules = run.one("azure-native:network:NetworkSecurityGroup", f"{NET}-{role}-nsg").inputs[
            "securityRules"
        ]
        by_name = {rule["name"]: rule for rule in rules}
        assert set(by_name) == {"AllowVnetInBound", "DenyInternetInBound"}
        for rule in rules:
            if rule["direction"] == "Inbound" and rule["access"] == "Allow":
                sources = [rule.get("sourceAddressPrefix"), *rule.get("sourceAddressPrefixes", [])]
                assert not {str(s).lower() for s in sources if s} & open_sources, rule
        allow = by_name["AllowVnetInBound"]
        assert (allow["sourceAddressPrefix"], allow["destinationAddressPrefix"]) == (
            "VirtualNetwork",
            "VirtualNetwork",
        )
        deny = by_name["DenyInternetInBound"]
        assert (deny["direction"], deny["access"], deny["priority"]) == ("Inbound", "Deny", 4096)
        assert (deny["sourceAddressPrefix"], deny["destinationAddressPrefix"]) == ("Internet", "*")
        assert deny["priority"] > allow["priority"]


def test_nat_gateway_is_standard_with_a_static_address(run: Run) -> None:
    zone = run.spec.network.zones[0]
    nat = run.one("azure-native:network:NatGateway", f"{NET}-nat")
    assert nat.inputs["sku"] == {"name": "Standard"}
    assert nat.inputs["idleTimeoutInMinutes"] == 10
    assert nat.inputs["zones"] == [zone]
    assert nat.inputs["publicIpAddresses"] == [{"id": f"{NET}-nat-ip-id"}]
    ip = run.one("azure-native:network:PublicIPAddress", f"{NET}-nat-ip")
    assert ip.inputs["sku"] == {"name": "Standard", "tier": "Regional"}
    assert ip.inputs["publicIPAllocationMethod"] == "Static"
    assert ip.inputs["zones"] == [zone]


def test_vnet_flow_log_goes_to_the_regional_watcher(dev: Run, prod: Run) -> None:
    for run in (dev, prod):
        flow = run.one("azure-native:network:FlowLog", f"{NET}-flowlog")
        assert flow.inputs["enabled"] is True
        assert flow.inputs["retentionPolicy"] == {
            "enabled": True,
            "days": run.spec.network.flow_log_retention_days,
        }
        assert flow.inputs["targetResourceId"] == f"{NET}-vnet-id"
        assert flow.inputs["storageId"] == f"{NET}-flowlogs-id"
        assert flow.inputs["resourceGroupName"] == "NetworkWatcherRG"
        assert flow.inputs["networkWatcherName"] == f"NetworkWatcher_{run.spec.region}"
        assert flow.inputs["location"] == run.spec.region
    assert not dev.plan.by_type("azure-native:network:NetworkWatcher")


def _assert_private_account(account: Resource) -> None:
    inputs = account.inputs
    assert inputs["kind"] == "StorageV2"
    assert inputs["enableHttpsTrafficOnly"] is True
    assert inputs["minimumTlsVersion"] == "TLS1_2"
    assert inputs["allowBlobPublicAccess"] is False
    assert inputs["allowCrossTenantReplication"] is False
    assert inputs["isLocalUserEnabled"] is False
    assert inputs["isSftpEnabled"] is False
    encryption = inputs["encryption"]
    assert encryption["requireInfrastructureEncryption"] is True
    assert encryption["keySource"] == "Microsoft.Storage"
    assert encryption["services"]["blob"]["enabled"] is True
    assert encryption["services"]["file"]["enabled"] is True
    assert inputs["networkRuleSet"]["defaultAction"] == "Deny"
    assert inputs["publicNetworkAccess"] == "Enabled"


def test_flow_log_account_is_private(run: Run) -> None:
    account = run.one("azure-native:storage:StorageAccount", f"{NET}-flowlogs")
    _assert_private_account(account)
    assert account.inputs["sku"] == {"name": "Standard_LRS"}
    assert account.inputs["location"] == run.spec.region
    assert account.inputs["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "AzureServices"}
    assert account.inputs["allowSharedKeyAccess"] is False
    assert account.inputs["defaultToOAuthAuthentication"] is True


def test_flow_log_writes_as_its_own_identity_with_one_account_role(run: Run) -> None:
    identity = run.one(
        "azure-native:managedidentity:UserAssignedIdentity", f"{NET}-flowlog-identity"
    )
    assert identity.inputs["location"] == run.spec.region
    assert identity.inputs["resourceGroupName"] == f"{NAME}-rg"
    flow = run.one("azure-native:network:FlowLog", f"{NET}-flowlog")
    assert flow.inputs["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": [f"{NET}-flowlog-identity-id"],
    }
    writer = run.one("azure-native:authorization:RoleAssignment", f"{NET}-flowlog-writer")
    assert writer.inputs["scope"] == f"{NET}-flowlogs-id"
    assert writer.inputs["roleDefinitionId"] == (
        f"/subscriptions/{planning.SUBSCRIPTION_ID}/providers/Microsoft.Authorization"
        "/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    )
    assert writer.inputs["principalType"] == "ServicePrincipal"
    assert uuid.UUID(writer.inputs["principalId"])
    assert identity.urn in writer.dependencies
    assert writer.urn in flow.dependencies


def test_object_store_account_is_private_and_keyless(dev: Run, prod: Run) -> None:
    for run, sku in ((dev, "Standard_LRS"), (prod, "Standard_ZRS")):
        account = run.one("azure-native:storage:StorageAccount", f"{ST}-account")
        _assert_private_account(account)
        assert account.inputs["sku"] == {"name": sku}
        assert account.inputs["allowSharedKeyAccess"] is False
        assert account.inputs["defaultToOAuthAuthentication"] is True
        assert account.inputs["isHnsEnabled"] is False
        assert account.inputs["networkRuleSet"]["virtualNetworkRules"] == [
            {"virtualNetworkResourceId": f"{NET}-nodes-id", "action": "Allow"}
        ]


def test_container_is_private_and_versioning_follows_spec(dev: Run, prod: Run) -> None:
    for run in (dev, prod):
        container = run.one("azure-native:storage:BlobContainer", f"{ST}-container")
        assert container.inputs["publicAccess"] == "None"
        assert container.inputs["containerName"] == "gpuyard"
        service = run.one("azure-native:storage:BlobServiceProperties", f"{ST}-blob-service")
        assert service.inputs["isVersioningEnabled"] is run.spec.storage.versioning
        days = run.spec.storage.checkpoint_version_retention_days
        assert service.inputs["deleteRetentionPolicy"] == {
            "enabled": True,
            "days": days,
            "allowPermanentDelete": False,
        }
        assert service.inputs["containerDeleteRetentionPolicy"] == {"enabled": True, "days": days}
    assert dev.spec.storage.versioning is False
    assert prod.spec.storage.versioning is True


def test_lifecycle_deletes_previous_versions_after_spec_days(prod: Run) -> None:
    policy = prod.one(*LIFECYCLE)
    assert policy.inputs["managementPolicyName"] == "default"
    [rule] = policy.inputs["policy"]["rules"]
    assert rule["enabled"] is True
    assert rule["type"] == "Lifecycle"
    assert rule["definition"]["actions"] == {
        "version": {"delete": {"daysAfterCreationGreaterThan": 14}}
    }
    assert rule["definition"]["filters"] == {
        "blobTypes": ["blockBlob"],
        "prefixMatch": ["gpuyard/"],
    }


def test_blob_data_access_is_audited(dev: Run, prod: Run) -> None:
    for run in (dev, prod):
        workspace = run.one("azure-native:operationalinsights:Workspace", f"{ST}-audit")
        assert workspace.inputs["sku"] == {"name": "PerGB2018"}
        assert workspace.inputs["retentionInDays"] == run.spec.storage.access_log_retention_days
        assert workspace.inputs["publicNetworkAccessForIngestion"] == "Disabled"
        assert workspace.inputs["features"] == {"disableLocalAuth": True}
        setting = run.one("azure-native:monitor:DiagnosticSetting", f"{ST}-audit-blob")
        assert setting.inputs["resourceUri"] == f"{ST}-account-id/blobServices/default"
        assert setting.inputs["workspaceId"] == f"{ST}-audit-id"
        assert setting.inputs["logs"] == [
            {"category": c, "enabled": True}
            for c in ("StorageRead", "StorageWrite", "StorageDelete")
        ]


def test_tags_reach_taggable_resources(dev: Run) -> None:
    for type_, name in [
        ("azure-native:resources:ResourceGroup", f"{NAME}-rg"),
        ("azure-native:network:VirtualNetwork", f"{NET}-vnet"),
        ("azure-native:storage:StorageAccount", f"{ST}-account"),
        ("azure-native:operationalinsights:Workspace", f"{ST}-audit"),
    ]:
        assert dev.one(type_, name).inputs["tags"] == {"team": "ml", "gpuyard:environment": "dev"}


def test_outputs(run: Run) -> None:
    store_account = run.one("azure-native:storage:StorageAccount", f"{ST}-account")
    assert run.plan.outputs == {
        # adlfs takes the account from the host, so the URL alone finds the container.
        "bucket_url": f"az://gpuyard@{store_account.inputs['accountName']}.blob.core.windows.net",
        "network_id": f"{NET}-vnet-id",
        "account_name": store_account.inputs["accountName"],
        "subnet_ids": {"nodes": f"{NET}-nodes-id", "endpoints": f"{NET}-endpoints-id"},
    }


@pytest.mark.parametrize(
    ("name", "environment"),
    [("gpuyard", "dev"), ("My_Platform-With-A-Very-Long-Name", "staging-eu-west"), ("x", "qa")],
)
def test_account_names_fit_azure_rules(name: str, environment: str) -> None:
    subscriptions = (planning.SUBSCRIPTION_ID, "11111111-2222-3333-4444-555555555555")
    names = {
        azure_kit.account_name(name, environment, region, role, subscription)
        for region in ("eastus", "westeurope")
        for role in ("st", "fl")
        for subscription in subscriptions
    }
    assert len(names) == 8
    for account in names:
        assert re.fullmatch(r"[a-z0-9]{3,24}", account), account
        assert account.startswith("gpy")
    args = (name, environment, "eastus", "st", subscriptions[0])
    assert azure_kit.account_name(*args) == azure_kit.account_name(*args)


def test_account_names_differ_per_subscription(dev: Run) -> None:
    # Everyone deploying the repo's stack files shares name, environment and region; only
    # the subscription tells their globally unique account names apart.
    names = {
        azure_kit.account_name(NAME, "dev", "eastus", "st", subscription)
        for subscription in (planning.SUBSCRIPTION_ID, "11111111-2222-3333-4444-555555555555")
    }
    assert len(names) == 2
    for role, resource in (("st", f"{ST}-account"), ("fl", f"{NET}-flowlogs")):
        declared = dev.one("azure-native:storage:StorageAccount", resource).inputs["accountName"]
        assert declared == azure_kit.account_name(
            NAME, "dev", "eastus", role, planning.SUBSCRIPTION_ID
        )


def test_flow_log_uses_the_network_watcher_it_is_given() -> None:
    def program() -> None:
        AzureNetwork(
            "net",
            AzureNetworkArgs(
                resource_group_name="rg",
                location="eastus",
                cidr="10.0.0.0/16",
                nodes_cidr="10.0.192.0/20",
                endpoints_cidr="10.0.208.0/20",
                zones=["1"],
                subscription_id=planning.SUBSCRIPTION_ID,
                flow_log_retention_days=30,
                flow_log_account_name="gpyflexample",
                network_watcher_resource_group="network-ops",
                network_watcher_name="watcher-eastus",
                protect=False,
            ),
        )

    recorded = planning.record(program)
    (flow,) = recorded.by_type("azure-native:network:FlowLog")
    assert flow.inputs["resourceGroupName"] == "network-ops"
    assert flow.inputs["networkWatcherName"] == "watcher-eastus"
    assert not recorded.by_type("azure-native:network:NetworkWatcher")

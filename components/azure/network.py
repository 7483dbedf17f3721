"""AzureNetwork: a VNet with private subnets behind NSGs, NAT gateway egress and VNet flow logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, managedidentity, network, storage

from components.azure.storage import private_account_settings
from components.kit import stateful

TOKEN = "gpuyard:index:AzureNetwork"

NAT_IDLE_TIMEOUT_MINUTES = 10
"""Idle timeout of NAT flows; above the 4-minute default so long dataset downloads and
idle TCP connections to registries survive pauses, well under the 120-minute maximum."""

STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
"""Built-in role that reads and writes blobs: what a flow log's identity needs, no more."""

DENY_INTERNET_PRIORITY = 4096
"""Lowest-precedence custom NSG priority: the explicit deny sits under every allow rule
a later change adds, and above Azure's default rules (65000 and up)."""


@dataclass(frozen=True)
class AzureNetworkArgs:
    """What an AzureNetwork needs: where it lives, its address plan and its flow logs."""

    resource_group_name: pulumi.Input[str]
    """Resource group that holds the VNet, NAT gateway, NSGs, flow-log storage account and
    the identity that writes flow logs."""
    location: str
    """Azure region, e.g. ``eastus``; the Network Watcher must be this region's."""
    cidr: str
    """Address space of the VNet (the spec's ``network.cidr``)."""
    nodes_cidr: str
    """Range of the ``nodes`` subnet: a regional block of the spec's layout
    (``PlatformSpec.regional_subnets()``), so the zone count never changes it."""
    endpoints_cidr: str
    """Range of the ``endpoints`` subnet: another regional block of the spec's layout."""
    zones: Sequence[str]
    """Availability zones the platform uses; the NAT gateway and its address live in the
    first."""
    flow_log_retention_days: int
    """Days VNet flow logs are kept: one of ``spec.FLOW_LOG_RETENTION_DAYS``, all within the
    365 days a flow log's retention policy accepts."""
    subscription_id: pulumi.Input[str]
    """Subscription the kit's provider deploys to; built-in role ids are addressed under it."""
    flow_log_account_name: pulumi.Input[str]
    """Globally unique name (3-24 lowercase letters and digits) of the flow-log account."""
    network_watcher_resource_group: str
    """Resource group of the region's Network Watcher, which owns the flow log. The watcher
    must exist already: this component does not create it."""
    network_watcher_name: str
    """Name of the region's Network Watcher (one per region and subscription)."""
    protect: bool
    """Protect the flow-log storage account from deletion and keep it when the stack goes."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags put on every resource that takes them."""


class AzureNetwork(pulumi.ComponentResource):
    """A private Azure network: no public addresses on workloads, egress through NAT only.

    Azure subnets span every zone of the region, so they take the spec's regional blocks
    by role instead of its per-zone ones: ``nodes`` (AKS node pools; CNI overlay keeps pod
    addresses out of the VNet) and ``endpoints`` (private endpoints for storage, registry
    and the model endpoint).
    """

    def __init__(
        self, name: str, args: AzureNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(TOKEN, name, {}, opts)
        if not args.zones:
            raise ValueError("AzureNetwork needs at least one availability zone")
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)
        tags = dict(args.tags)
        nat_zone = args.zones[0]

        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.cidr]),
            # Subnets are separate resources (below) so each carries its own NSG and NAT
            # association; declaring them inline too would make the two fight over them.
            tags=tags,
            opts=child,
        )

        # A Standard NAT gateway lives in one zone at most; pinning it (and its address)
        # to a known zone of the platform makes that dependency explicit instead of
        # letting Azure pick one silently.
        self.nat_ip = network.PublicIPAddress(
            f"{name}-nat-ip",
            resource_group_name=args.resource_group_name,
            location=args.location,
            # NAT gateways take Standard addresses only; Standard is also closed to inbound
            # traffic unless an NSG allows it.
            sku=network.PublicIPAddressSkuArgs(
                name=network.PublicIPAddressSkuName.STANDARD,
                tier=network.PublicIPAddressSkuTier.REGIONAL,
            ),
            # Static: the egress address stays the same, so partners can allow-list it.
            public_ip_allocation_method=network.IPAllocationMethod.STATIC,
            public_ip_address_version=network.IPVersion.I_PV4,
            zones=[nat_zone],
            tags=tags,
            opts=child,
        )
        self.nat_gateway = network.NatGateway(
            f"{name}-nat",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=network.NatGatewaySkuArgs(name=network.NatGatewaySkuName.STANDARD),
            idle_timeout_in_minutes=NAT_IDLE_TIMEOUT_MINUTES,
            public_ip_addresses=[network.SubResourceArgs(id=self.nat_ip.id)],
            zones=[nat_zone],
            tags=tags,
            opts=child,
        )

        self.security_groups: dict[str, network.NetworkSecurityGroup] = {}
        self.subnets: dict[str, network.Subnet] = {}
        roles = {"nodes": args.nodes_cidr, "endpoints": args.endpoints_cidr}
        previous: list[pulumi.Resource] = []
        for role, block in roles.items():
            nsg = network.NetworkSecurityGroup(
                f"{name}-{role}-nsg",
                resource_group_name=args.resource_group_name,
                location=args.location,
                security_rules=_inbound_rules(),
                tags=tags,
                opts=child,
            )
            subnet = network.Subnet(
                f"{name}-{role}",
                resource_group_name=args.resource_group_name,
                virtual_network_name=self.vnet.name,
                address_prefix=block,
                # Private subnet: without this, VMs without a public address still get
                # Azure's implicit outbound address, an egress path no NSG log or NAT sees.
                default_outbound_access=False,
                nat_gateway=network.SubResourceArgs(id=self.nat_gateway.id),
                network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
                # Storage traffic from the nodes stays on the Azure backbone and lets the
                # storage account firewall admit this subnet by name.
                service_endpoints=(
                    [network.ServiceEndpointPropertiesFormatArgs(service="Microsoft.Storage")]
                    if role == "nodes"
                    else None
                ),
                # NSG rules apply to private endpoints only when this is on; Azure's
                # default leaves them unfiltered.
                private_endpoint_network_policies=(
                    network.VirtualNetworkPrivateEndpointNetworkPolicies.ENABLED
                ),
                # Azure serialises changes to one VNet's subnets; creating them one after
                # the other avoids "AnotherOperationInProgress" failures.
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
            )
            previous = [subnet]
            self.security_groups[role] = nsg
            self.subnets[role] = subnet

        self.flow_log_account = storage.StorageAccount(
            f"{name}-flowlogs",
            account_name=args.flow_log_account_name,
            resource_group_name=args.resource_group_name,
            # Flow logs must land in a Standard account in the VNet's own region.
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            **private_account_settings(),
            # Network Watcher writes as a trusted Azure service; nothing else needs the
            # public endpoint of an audit-log account. "Enabled" is what lets the trusted-
            # service bypass through; "Disabled" would shut Network Watcher out too.
            public_network_access=storage.PublicNetworkAccess.ENABLED,
            network_rule_set=storage.NetworkRuleSetArgs(
                default_action=storage.DefaultAction.DENY,
                bypass=storage.Bypass.AZURE_SERVICES,
            ),
            tags=tags,
            opts=kept,
        )
        # Network Watcher writes as this identity, through RBAC, so the account can refuse
        # shared keys like every other gpuyard account.
        self.flow_log_identity = managedidentity.UserAssignedIdentity(
            f"{name}-flowlog-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=tags,
            opts=child,
        )
        # Scoped to the flow-log account alone: the identity can write nowhere else.
        self.flow_log_writer = authorization.RoleAssignment(
            f"{name}-flowlog-writer",
            scope=self.flow_log_account.id,
            role_definition_id=pulumi.Output.concat(
                "/subscriptions/",
                args.subscription_id,
                "/providers/Microsoft.Authorization/roleDefinitions/",
                STORAGE_BLOB_DATA_CONTRIBUTOR,
            ),
            principal_id=self.flow_log_identity.principal_id,
            # Skips the directory lookup that fails while a new identity is still
            # replicating through Entra ID.
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            opts=child,
        )
        # NSG flow logs take no new deployments since 30 June 2025 (retired 30 September
        # 2027); VNet flow logs cover every subnet and NIC of the VNet in one resource.
        self.flow_log = network.FlowLog(
            f"{name}-flowlog",
            resource_group_name=args.network_watcher_resource_group,
            network_watcher_name=args.network_watcher_name,
            location=args.location,
            target_resource_id=self.vnet.id,
            storage_id=self.flow_log_account.id,
            enabled=True,
            retention_policy=network.RetentionPolicyParametersArgs(
                enabled=True,
                days=args.flow_log_retention_days,
            ),
            identity=network.ManagedServiceIdentityArgs(
                type=network.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[self.flow_log_identity.id],
            ),
            tags=tags,
            # Writes fail until the identity holds its role on the account.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.flow_log_writer]),
        )

        self.vnet_id: pulumi.Output[str] = self.vnet.id
        self.vnet_name: pulumi.Output[str] = self.vnet.name
        self.subnet_ids: dict[str, pulumi.Output[str]] = {
            role: subnet.id for role, subnet in self.subnets.items()
        }
        self.nat_gateway_id: pulumi.Output[str] = self.nat_gateway.id
        self.register_outputs(
            {
                "vnet_id": self.vnet_id,
                "vnet_name": self.vnet_name,
                "subnet_ids": self.subnet_ids,
                "nat_gateway_id": self.nat_gateway_id,
            }
        )


def _inbound_rules() -> list[network.SecurityRuleArgs]:
    """Inbound rules of every subnet: the VNet talks to itself, the Internet never in."""
    return [
        network.SecurityRuleArgs(
            name="AllowVnetInBound",
            description="Nodes, pods and private endpoints reach each other.",
            priority=100,
            direction=network.SecurityRuleDirection.INBOUND,
            access=network.SecurityRuleAccess.ALLOW,
            protocol=network.SecurityRuleProtocol.ASTERISK,
            source_address_prefix="VirtualNetwork",
            source_port_range="*",
            destination_address_prefix="VirtualNetwork",
            destination_port_range="*",
        ),
        # Azure's defaults already drop Internet traffic at 65500, but only after
        # AllowAzureLoadBalancerInBound; an explicit deny keeps that true even if a
        # load balancer or a later rule would open a path.
        network.SecurityRuleArgs(
            name="DenyInternetInBound",
            description="Nothing on these subnets is reachable from the Internet.",
            priority=DENY_INTERNET_PRIORITY,
            direction=network.SecurityRuleDirection.INBOUND,
            access=network.SecurityRuleAccess.DENY,
            protocol=network.SecurityRuleProtocol.ASTERISK,
            source_address_prefix="Internet",
            source_port_range="*",
            destination_address_prefix="*",
            destination_port_range="*",
        ),
    ]

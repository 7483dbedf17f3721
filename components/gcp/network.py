"""GcpNetwork: a custom-mode VPC with one private regional subnetwork, Cloud NAT and flow logs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.gcp.logs import routed_logs
from components.kit import stateful

TOKEN = "gpuyard:index:GcpNetwork"

PODS_RANGE = "pods"
"""Name of the subnetwork's secondary range that GKE takes pod addresses from."""
SERVICES_RANGE = "services"
"""Name of the subnetwork's secondary range that GKE takes service addresses from."""

HEALTH_CHECK_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
"""Source ranges of Google Cloud load balancer health checks."""


@dataclass(frozen=True)
class GcpNetworkArgs:
    """What a GcpNetwork needs: where it lives and its address plan."""

    project: str
    """GCP project id that owns the network."""
    region: str
    """Region of the subnetwork, Cloud Router and Cloud NAT, e.g. ``us-central1``."""
    cidr: str
    """Primary range of the node subnetwork (the spec's ``network.cidr``)."""
    pods_cidr: str
    """Secondary range for GKE pod addresses."""
    services_cidr: str
    """Secondary range for GKE service addresses."""
    flow_sampling: float
    """Share of flows VPC flow logs record, from 0.0 to 1.0."""
    flow_log_retention_days: int
    """Days the subnetwork's flow logs are kept in their own log bucket."""
    flow_log_bucket_id: str
    """Id of that Cloud Logging bucket, unique in the project and region (1-100 letters,
    digits, ``_``, ``-``, ``.``); ids of deleted buckets stay taken for 7 days."""
    protect: bool
    """Protect the flow-log bucket from deletion and keep it when the stack goes away."""


class GcpNetwork(pulumi.ComponentResource):
    """A private GCP network: nodes without public addresses reach out through Cloud NAT.

    The network resources take no labels on GCP, so none are passed here.
    """

    def __init__(self, name: str, args: GcpNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)

        self.network = gcp.compute.Network(
            f"{name}-vpc",
            project=args.project,
            # Custom mode: an auto-mode network would open a public-facing subnet in every
            # region, far beyond the one region this platform uses.
            auto_create_subnetworks=False,
            # Cloud Routers advertise only their own region's subnets; the platform is
            # single-region, so there is nothing to learn from elsewhere.
            routing_mode="REGIONAL",
            # Cloud NAT and Private Google Access both leave through the default route.
            delete_default_routes_on_create=False,
            opts=child,
        )

        self.subnetwork = gcp.compute.Subnetwork(
            f"{name}-nodes",
            project=args.project,
            region=args.region,
            network=self.network.id,
            # GCP subnetworks are regional and span every zone, so one subnetwork takes the
            # whole network range instead of the per-zone blocks other clouds need: a change
            # in zone count then never renumbers (replaces) the subnetwork under the cluster,
            # and the spec already keeps the pod and service ranges clear of the whole range.
            ip_cidr_range=args.cidr,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE, ip_cidr_range=args.pods_cidr
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=args.services_cidr
                ),
            ],
            # Nodes have no public addresses, yet must reach GCS, Artifact Registry and the
            # other Google APIs without crossing the internet.
            private_ip_google_access=True,
            # Flow logs for audits and incident response; they land in Cloud Logging (private
            # to the project, encrypted by Google) and the sink below keeps them for the
            # spec's retention instead of the _Default bucket's 30 days.
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=args.flow_sampling,
                metadata="INCLUDE_ALL_METADATA",
            ),
            opts=child,
        )

        self.router = gcp.compute.Router(
            f"{name}-router",
            project=args.project,
            region=args.region,
            network=self.network.id,
            opts=child,
        )

        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            project=args.project,
            region=args.region,
            router=self.router.name,
            # Google-owned addresses that nobody else can hold or reuse; no address to manage.
            nat_ip_allocate_option="AUTO_ONLY",
            # Only the node subnetwork (all its ranges, pods included) gets egress; any
            # subnetwork added later must opt in rather than inherit internet access.
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=self.subnetwork.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            # Errors (port exhaustion, dropped packets) are what needs attention; logging
            # every translation would cost more than it tells.
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            # Endpoint-independent mapping lets any outside host reuse a mapping that a
            # node opened; off keeps each mapping to the destination the node chose.
            enable_endpoint_independent_mapping=False,
            opts=child,
        )

        internal = [args.cidr, args.pods_cidr, args.services_cidr]
        self.allow_internal = gcp.compute.Firewall(
            f"{name}-allow-internal",
            project=args.project,
            network=self.network.id,
            direction="INGRESS",
            # Nodes, pods and services talk to each other (NCCL, kubelet, DNS); nothing
            # from outside these ranges is admitted by this rule.
            source_ranges=internal,
            allows=[
                gcp.compute.FirewallAllowArgs(protocol="tcp"),
                gcp.compute.FirewallAllowArgs(protocol="udp"),
                gcp.compute.FirewallAllowArgs(protocol="icmp"),
            ],
            priority=1000,
            opts=child,
        )
        self.allow_health_checks = gcp.compute.Firewall(
            f"{name}-allow-health-checks",
            project=args.project,
            network=self.network.id,
            direction="INGRESS",
            # Load balancers in front of the inference service probe backends from these
            # Google ranges only; their data traffic is proxied, not from the internet.
            source_ranges=list(HEALTH_CHECK_RANGES),
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp")],
            priority=1000,
            opts=child,
        )
        self.deny_all_ingress = gcp.compute.Firewall(
            f"{name}-deny-all-ingress",
            project=args.project,
            network=self.network.id,
            direction="INGRESS",
            # Spells out GCP's implied deny so that it is logged: blocked probes show up
            # in Cloud Logging, and a broad allow added by hand elsewhere is easy to spot.
            source_ranges=["0.0.0.0/0"],
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            priority=65535,
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            opts=child,
        )

        # Kept in the network's region, like the traffic it describes.
        self.flow_log_bucket, self.flow_log_sink = routed_logs(
            f"{name}-flow-logs",
            project=args.project,
            region=args.region,
            bucket_id=args.flow_log_bucket_id,
            retention_days=args.flow_log_retention_days,
            description="VPC flow logs of the platform's node subnetwork",
            log_filter=pulumi.Output.concat(
                'log_id("compute.googleapis.com/vpc_flows") AND resource.type="gce_subnetwork"'
                ' AND resource.labels.subnetwork_name="',
                self.subnetwork.name,
                '"',
            ),
            parent=self,
            kept=kept,
        )

        self.network_id: pulumi.Output[str] = self.network.id
        self.network_self_link: pulumi.Output[str] = self.network.self_link
        self.subnetwork_id: pulumi.Output[str] = self.subnetwork.id
        self.subnetwork_self_link: pulumi.Output[str] = self.subnetwork.self_link
        self.pods_range_name: str = PODS_RANGE
        self.services_range_name: str = SERVICES_RANGE
        self.router_name: pulumi.Output[str] = self.router.name
        self.nat_name: pulumi.Output[str] = self.nat.name
        self.register_outputs(
            {
                "network_id": self.network_id,
                "network_self_link": self.network_self_link,
                "subnetwork_id": self.subnetwork_id,
                "subnetwork_self_link": self.subnetwork_self_link,
                "pods_range_name": self.pods_range_name,
                "services_range_name": self.services_range_name,
                "router_name": self.router_name,
                "nat_name": self.nat_name,
            }
        )

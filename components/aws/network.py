"""AwsNetwork: a VPC with private and public subnets per zone, NAT, an S3 endpoint and flow logs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.aws.iam import ALLOW, document
from components.kit import stateful

TOKEN = "gpuyard:index:AwsNetwork"

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class AwsNetworkArgs:
    """What an AwsNetwork needs: where it lives, its address plan and how NAT is laid out."""

    region: str
    """AWS region of the VPC, e.g. ``us-east-1``; names the S3 endpoint and logs service."""
    cidr: str
    """Address range of the VPC (the spec's ``network.cidr``)."""
    subnets: tuple[tuple[str, str, str], ...]
    """``(zone, private_cidr, public_cidr)`` per zone, from ``PlatformSpec.subnets()``."""
    nat_per_zone: bool
    """One NAT gateway per zone (survives a zone failure) instead of one shared NAT gateway."""
    flow_log_retention_days: int
    """Days VPC flow logs are kept: one of the periods CloudWatch Logs accepts
    (``spec.FLOW_LOG_RETENTION_DAYS``)."""
    protect: bool
    """Protect the flow-log group and its key from deletion and keep them when the stack goes."""
    account_id: pulumi.Input[str]
    """AWS account id the VPC lives in; scopes the key and role policies to it."""
    partition: pulumi.Input[str]
    """AWS partition (``aws``, ``aws-cn``, ``aws-us-gov``) for the ARNs in policies."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every taggable child, on top of the provider's default tags."""


class AwsNetwork(pulumi.ComponentResource):
    """A private AWS network: workloads sit in private subnets and reach out through NAT."""

    def __init__(self, name: str, args: AwsNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = stateful(self, args.protect)
        zones = [zone for zone, _, _ in args.subnets]

        def tags(child_name: str, **extra: str) -> dict[str, str]:
            return {**args.tags, "Name": child_name, **extra}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            # EKS nodes and interface endpoints resolve private names through the VPC
            # resolver; both settings are required for private DNS to work.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=tags(f"{name}-vpc"),
            opts=child,
        )

        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc.id,
            # The default group allows all traffic between its members and all egress;
            # anything launched without an explicit group must get no access instead.
            ingress=[],
            egress=[],
            tags=tags(f"{name}-default-sg"),
            opts=child,
        )

        self.private_subnets: dict[str, aws.ec2.Subnet] = {}
        self.public_subnets: dict[str, aws.ec2.Subnet] = {}
        for zone, private_cidr, public_cidr in args.subnets:
            self.private_subnets[zone] = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=private_cidr,
                map_public_ip_on_launch=False,
                # Lets the AWS load balancer controller place internal load balancers here.
                tags=tags(f"{name}-private-{zone}", **{"kubernetes.io/role/internal-elb": "1"}),
                opts=child,
            )
            self.public_subnets[zone] = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=public_cidr,
                # Public subnets hold only NAT gateways and load balancers, which get their
                # addresses explicitly; an instance launched here must not become reachable.
                map_public_ip_on_launch=False,
                tags=tags(f"{name}-public-{zone}", **{"kubernetes.io/role/elb": "1"}),
                opts=child,
            )

        self.internet_gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags(f"{name}-igw"), opts=child
        )

        # NAT gateways are keyed by zone, so turning on nat_per_zone adds gateways and
        # keeps the first one; dev shares the first zone's gateway to save its hourly fee.
        nat_zones = zones if args.nat_per_zone else zones[:1]
        self.nat_gateways: dict[str, aws.ec2.NatGateway] = {}
        # EIPs and NAT gateways need the internet gateway attached first: in a VPC without
        # one they cannot reach the internet.
        after_igw = pulumi.ResourceOptions(parent=self, depends_on=[self.internet_gateway])
        for zone in nat_zones:
            eip = aws.ec2.Eip(
                f"{name}-nat-eip-{zone}",
                domain="vpc",
                tags=tags(f"{name}-nat-eip-{zone}"),
                opts=after_igw,
            )
            self.nat_gateways[zone] = aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                allocation_id=eip.id,
                subnet_id=self.public_subnets[zone].id,
                connectivity_type="public",
                tags=tags(f"{name}-nat-{zone}"),
                opts=after_igw,
            )

        # One public route table is enough: every public subnet has the same way out.
        self.public_route_table = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id, tags=tags(f"{name}-public-rt"), opts=child
        )
        aws.ec2.Route(
            f"{name}-public-default-route",
            route_table_id=self.public_route_table.id,
            destination_cidr_block=ANYWHERE,
            gateway_id=self.internet_gateway.id,
            opts=child,
        )
        for zone, subnet in self.public_subnets.items():
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}-rta",
                subnet_id=subnet.id,
                route_table_id=self.public_route_table.id,
                opts=child,
            )

        # A private route table per zone, even with one shared NAT gateway, so that turning
        # on nat_per_zone only retargets routes instead of re-associating subnets.
        self.private_route_tables: dict[str, aws.ec2.RouteTable] = {}
        for zone, subnet in self.private_subnets.items():
            table = aws.ec2.RouteTable(
                f"{name}-private-{zone}-rt",
                vpc_id=self.vpc.id,
                tags=tags(f"{name}-private-{zone}-rt"),
                opts=child,
            )
            nat = self.nat_gateways.get(zone, self.nat_gateways[nat_zones[0]])
            aws.ec2.Route(
                f"{name}-private-{zone}-default-route",
                route_table_id=table.id,
                destination_cidr_block=ANYWHERE,
                nat_gateway_id=nat.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}-rta",
                subnet_id=subnet.id,
                route_table_id=table.id,
                opts=child,
            )
            self.private_route_tables[zone] = table

        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            # A gateway endpoint is free and keeps dataset and checkpoint traffic off the
            # NAT gateways (billed per GB) and off the internet. Its default policy stays
            # open: image layers and packages also come from AWS-owned buckets.
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in self.private_route_tables.values()],
            tags=tags(f"{name}-s3-endpoint"),
            opts=child,
        )

        self.flow_log_key = aws.kms.Key(
            f"{name}-flow-log-key",
            description=f"Encrypts the VPC flow logs of {name}",
            # Yearly rotation limits how much data one key version protects.
            enable_key_rotation=True,
            # The longest waiting period leaves time to notice and cancel a wrong deletion.
            deletion_window_in_days=30,
            policy=document(
                {
                    # The account keeps control of the key through IAM; without this
                    # statement nobody could ever change or delete it again.
                    "Sid": "AccountAdministers",
                    "Effect": ALLOW,
                    "Principal": {
                        "AWS": pulumi.Output.format(
                            "arn:{0}:iam::{1}:root", args.partition, args.account_id
                        )
                    },
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    # CloudWatch Logs in this region may use the key, and only for log
                    # groups of this account.
                    "Sid": "CloudWatchLogsEncrypts",
                    "Effect": ALLOW,
                    "Principal": {"Service": f"logs.{args.region}.amazonaws.com"},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": pulumi.Output.format(
                                "arn:{0}:logs:{1}:{2}:log-group:*",
                                args.partition,
                                args.region,
                                args.account_id,
                            )
                        }
                    },
                },
            ),
            tags=tags(f"{name}-flow-log-key"),
            opts=kept,
        )

        self.flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-log-group",
            retention_in_days=args.flow_log_retention_days,
            # Flow logs reveal the network's internal addresses and peers: encrypt them
            # with a key whose policy this stack controls.
            kms_key_id=self.flow_log_key.arn,
            tags=tags(f"{name}-flow-log-group"),
            opts=kept,
        )

        self.flow_log_role = aws.iam.Role(
            f"{name}-flow-log-role",
            description=f"Lets VPC flow logs of {name} write to their log group",
            assume_role_policy=document(
                {
                    "Effect": ALLOW,
                    "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    # Confused-deputy guard: only flow logs of this account may assume it.
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": args.account_id},
                        "ArnLike": {
                            "aws:SourceArn": pulumi.Output.format(
                                "arn:{0}:ec2:{1}:{2}:vpc-flow-log/*",
                                args.partition,
                                args.region,
                                args.account_id,
                            )
                        },
                    },
                }
            ),
            tags=tags(f"{name}-flow-log-role"),
            opts=child,
        )

        self.flow_log_role_policy = aws.iam.RolePolicy(
            f"{name}-flow-log-role-policy",
            role=self.flow_log_role.id,
            # Least privilege: write streams and events to this one log group, nothing else
            # (the log group exists already, so no logs:CreateLogGroup).
            policy=document(
                {
                    "Effect": ALLOW,
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [
                        self.flow_log_group.arn,
                        pulumi.Output.concat(self.flow_log_group.arn, ":*"),
                    ],
                }
            ),
            opts=child,
        )

        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            # Rejected flows show attacks and misconfigured rules, accepted ones show data
            # leaving the network: an audit needs both.
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=self.flow_log_role.arn,
            tags=tags(f"{name}-flow-log"),
            # Without the role's permissions in place the first deliveries would fail.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.flow_log_role_policy]),
        )

        self.vpc_id: pulumi.Output[str] = self.vpc.id
        self.private_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.all(
            *[s.id for s in self.private_subnets.values()]
        )
        self.public_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.all(
            *[s.id for s in self.public_subnets.values()]
        )
        self.nat_gateway_ids: pulumi.Output[list[str]] = pulumi.Output.all(
            *[n.id for n in self.nat_gateways.values()]
        )
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
                "nat_gateway_ids": self.nat_gateway_ids,
            }
        )

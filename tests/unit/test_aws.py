"""AWS kit: exact children, parents and secure defaults of AwsNetwork and AwsObjectStore."""

import json
from collections import Counter
from functools import cache

import pulumi
import pytest

from components import spec as specmod
from components.aws.kit import build
from components.plan import ACCOUNT_ID, Plan, Resource, record

NETWORK = "gpuyard:index:AwsNetwork"
STORE = "gpuyard:index:AwsObjectStore"
PROVIDER = "pulumi:providers:aws"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)

SPECS = {
    "dev": {
        "cloud": "aws",
        "region": "us-east-1",
        "environment": "dev",
        "tags": {"team": "ml"},
        "network": {"zones": 2, "flow_log_retention_days": 60},
        "storage": {
            "versioning": False,
            "force_destroy": True,
            "checkpoint_version_retention_days": 7,
            "access_log_retention_days": 30,
        },
    },
    "prod": {
        "cloud": "aws",
        "region": "us-west-2",
        "environment": "prod",
        "tags": {"team": "ml", "cost-center": "prod-ml"},
        "network": {"zones": 3, "cidr": "10.20.0.0/16", "flow_log_retention_days": 365},
        "storage": {"checkpoint_version_retention_days": 30, "access_log_retention_days": 365},
    },
}
ENVS = list(SPECS)


def _spec(env: str) -> specmod.PlatformSpec:
    return specmod.parse(SPECS[env])


@cache
def _plan(env: str) -> Plan:
    def program() -> None:
        root = pulumi.ComponentResource("test:index:Root", "root")
        kit = build("gpuyard", _spec(env), root)
        pulumi.export("bucket_url", kit.bucket_url)
        pulumi.export("network_id", kit.network_id)
        for attr in ("private_subnet_ids", "public_subnet_ids", "nat_gateway_ids"):
            pulumi.export(attr, getattr(kit.network, attr))
        for attr in ("bucket_name", "bucket_arn", "log_bucket_name", "kms_key_arn"):
            pulumi.export(attr, getattr(kit.store, attr))

    return record(program)


def _one(plan: Plan, type_: str, name: str) -> Resource:
    matches = [r for r in plan.resources if r.type == type_ and r.name == name]
    assert len(matches) == 1, f"expected one {type_} {name}, got {len(matches)}"
    return matches[0]


def _component(plan: Plan, type_: str) -> Resource:
    (component,) = plan.by_type(type_)
    return component


def _children(plan: Plan, type_: str) -> Counter:
    parent = _component(plan, type_).urn
    return Counter((r.type, r.name) for r in plan.resources if r.parent == parent)


def _policy(resource: Resource, key: str = "policy") -> list[dict]:
    return json.loads(resource.inputs[key])["Statement"]


def _expected_network(env: str) -> Counter:
    zones = list(_spec(env).network.zones)
    n = "gpuyard-network"
    nat_zones = zones if env == "prod" else zones[:1]
    children = [
        ("aws:ec2/vpc:Vpc", f"{n}-vpc"),
        ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", f"{n}-default-sg"),
        ("aws:ec2/internetGateway:InternetGateway", f"{n}-igw"),
        ("aws:ec2/routeTable:RouteTable", f"{n}-public-rt"),
        (ROUTE, f"{n}-public-default-route"),
        ("aws:ec2/vpcEndpoint:VpcEndpoint", f"{n}-s3-endpoint"),
        (KEY, f"{n}-flow-log-key"),
        (LOG_GROUP, f"{n}-flow-log-group"),
        ("aws:iam/role:Role", f"{n}-flow-log-role"),
        ("aws:iam/rolePolicy:RolePolicy", f"{n}-flow-log-role-policy"),
        ("aws:ec2/flowLog:FlowLog", f"{n}-flow-log"),
    ]
    for zone in zones:
        children += [
            (SUBNET, f"{n}-private-{zone}"),
            (SUBNET, f"{n}-public-{zone}"),
            ("aws:ec2/routeTableAssociation:RouteTableAssociation", f"{n}-public-{zone}-rta"),
            ("aws:ec2/routeTable:RouteTable", f"{n}-private-{zone}-rt"),
            (ROUTE, f"{n}-private-{zone}-default-route"),
            ("aws:ec2/routeTableAssociation:RouteTableAssociation", f"{n}-private-{zone}-rta"),
        ]
    for zone in nat_zones:
        children += [("aws:ec2/eip:Eip", f"{n}-nat-eip-{zone}"), (NAT, f"{n}-nat-{zone}")]
    return Counter(children)


def _expected_store() -> Counter:
    s = "gpuyard-store"
    children = [(KEY, f"{s}-key"), ("aws:s3/bucketLogging:BucketLogging", f"{s}-bucket-logging")]
    for part in ("bucket", "logs"):
        bucket = f"{s}-bucket" if part == "bucket" else f"{s}-logs"
        children += [
            (BUCKET, bucket),
            ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", f"{s}-{part}-ownership"),
            (PUBLIC_ACCESS_BLOCK, f"{s}-{part}-public-access-block"),
            (ENCRYPTION, f"{s}-{part}-encryption"),
            ("aws:s3/bucketVersioning:BucketVersioning", f"{s}-{part}-versioning"),
            (LIFECYCLE, f"{s}-{part}-lifecycle"),
            (BUCKET_POLICY, f"{s}-{part}-policy"),
        ]
    return Counter(children)


@pytest.mark.parametrize("env", ENVS)
def test_network_has_exactly_the_expected_children(env):
    assert _children(_plan(env), NETWORK) == _expected_network(env)


@pytest.mark.parametrize("env", ENVS)
def test_store_has_exactly_the_expected_children(env):
    assert _children(_plan(env), STORE) == _expected_store()


@pytest.mark.parametrize("env", ENVS)
def test_every_resource_hangs_under_root_and_uses_the_explicit_provider(env):
    plan = _plan(env)
    root = _component(plan, "test:index:Root").urn
    network, store = _component(plan, NETWORK), _component(plan, STORE)
    provider = _component(plan, PROVIDER)
    assert {network.parent, store.parent, provider.parent} == {root}
    components = {network.urn, store.urn}
    others = [r for r in plan.resources if r.urn not in components | {root, provider.urn}]
    assert {r.parent for r in others} == components
    assert all(r.provider == f"{provider.urn}::gpuyard-aws-id" for r in others)
    assert len(plan.resources) == 4 + sum(_expected_network(env).values()) + sum(
        _expected_store().values()
    )


@pytest.mark.parametrize("env", ENVS)
def test_provider_takes_region_and_tags_from_the_spec(env):
    provider = _component(_plan(env), PROVIDER)
    spec = _spec(env)
    assert provider.inputs["region"] == spec.region
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags == {**spec.tags, "gpuyard:environment": env}


@pytest.mark.parametrize("env", ENVS)
def test_outputs(env):
    outputs = _plan(env).outputs
    zones = list(_spec(env).network.zones)
    assert outputs["bucket_url"] == "s3://gpuyard-store-bucket-id"
    assert outputs["bucket_name"] == "gpuyard-store-bucket-id"
    assert outputs["bucket_arn"] == "arn:aws:mock:::gpuyard-store-bucket"
    assert outputs["log_bucket_name"] == "gpuyard-store-logs-id"
    assert outputs["kms_key_arn"] == "arn:aws:mock:::gpuyard-store-key"
    assert outputs["network_id"] == "gpuyard-network-vpc-id"
    assert outputs["private_subnet_ids"] == [f"gpuyard-network-private-{z}-id" for z in zones]
    assert outputs["public_subnet_ids"] == [f"gpuyard-network-public-{z}-id" for z in zones]
    nat_zones = zones if env == "prod" else zones[:1]
    assert outputs["nat_gateway_ids"] == [f"gpuyard-network-nat-{z}-id" for z in nat_zones]


@pytest.mark.parametrize("env", ENVS)
def test_vpc_resolves_private_dns(env):
    vpc = _one(_plan(env), "aws:ec2/vpc:Vpc", "gpuyard-network-vpc")
    assert vpc.inputs["cidrBlock"] == str(_spec(env).network.cidr)
    assert vpc.inputs["enableDnsHostnames"] is True
    assert vpc.inputs["enableDnsSupport"] is True


# Private blocks are 0-5 and public blocks 6-11 of the network's sixteen /20s, by the
# zone's place among the region's zones.
EXPECTED_SUBNETS = {
    "dev": {
        "us-east-1a": ("10.0.0.0/20", "10.0.96.0/20"),
        "us-east-1b": ("10.0.16.0/20", "10.0.112.0/20"),
    },
    "prod": {
        "us-west-2a": ("10.20.0.0/20", "10.20.96.0/20"),
        "us-west-2b": ("10.20.16.0/20", "10.20.112.0/20"),
        "us-west-2c": ("10.20.32.0/20", "10.20.128.0/20"),
    },
}


def _subnet_cidrs(plan: Plan) -> dict[str, tuple[str, str]]:
    """``zone -> (private_cidr, public_cidr)`` as the plan declares them."""
    by_zone: dict[str, dict[str, str]] = {}
    for subnet in plan.by_type(SUBNET):
        kind = "private" if "-private-" in subnet.name else "public"
        by_zone.setdefault(subnet.inputs["availabilityZone"], {})[kind] = subnet.inputs["cidrBlock"]
    return {zone: (c["private"], c["public"]) for zone, c in by_zone.items()}


@pytest.mark.parametrize("env", ENVS)
def test_subnets_follow_the_shared_layout_and_never_map_public_ips(env):
    plan = _plan(env)
    assert _subnet_cidrs(plan) == EXPECTED_SUBNETS[env]
    assert {z: (p, q) for z, p, q in _spec(env).subnets()} == EXPECTED_SUBNETS[env]
    for subnet in plan.by_type(SUBNET):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def _plan_zones(zones) -> Plan:
    raw = {**SPECS["dev"], "network": {"zones": zones}}
    return record(
        lambda: build("gpuyard", specmod.parse(raw), pulumi.ComponentResource("t:i:R", "r"))
    )


def test_reordering_or_adding_zones_never_renumbers_a_subnet():
    forward = _subnet_cidrs(_plan_zones(["us-east-1a", "us-east-1c"]))
    assert forward == _subnet_cidrs(_plan_zones(["us-east-1c", "us-east-1a"]))
    assert forward["us-east-1c"] == ("10.0.32.0/20", "10.0.128.0/20")
    two, three = _subnet_cidrs(_plan_zones(2)), _subnet_cidrs(_plan_zones(3))
    assert set(three) == {*two, "us-east-1c"}
    assert {zone: three[zone] for zone in two} == two


@pytest.mark.parametrize(("env", "count"), [("dev", 1), ("prod", 3)])
def test_nat_gateways_per_zone_in_prod_and_shared_in_dev(env, count):
    plan = _plan(env)
    zones = list(_spec(env).network.zones)
    nats = plan.by_type(NAT)
    assert len(nats) == count
    for nat in nats:
        zone = nat.name.removeprefix("gpuyard-network-nat-")
        assert nat.inputs["subnetId"] == f"gpuyard-network-public-{zone}-id"
        assert nat.inputs["allocationId"] == f"gpuyard-network-nat-eip-{zone}-id"
    for zone in zones:
        route = _one(plan, ROUTE, f"gpuyard-network-private-{zone}-default-route")
        nat_zone = zone if env == "prod" else zones[0]
        assert route.inputs["routeTableId"] == f"gpuyard-network-private-{zone}-rt-id"
        assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0"
        assert route.inputs["natGatewayId"] == f"gpuyard-network-nat-{nat_zone}-id"
        assert "gatewayId" not in route.inputs
    public = _one(plan, ROUTE, "gpuyard-network-public-default-route")
    assert public.inputs["gatewayId"] == "gpuyard-network-igw-id"
    assert public.inputs["routeTableId"] == "gpuyard-network-public-rt-id"


@pytest.mark.parametrize("env", ENVS)
def test_subnets_associate_with_their_route_tables(env):
    plan = _plan(env)
    for zone in _spec(env).network.zones:
        private = _one(
            plan,
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            f"gpuyard-network-private-{zone}-rta",
        )
        assert private.inputs["subnetId"] == f"gpuyard-network-private-{zone}-id"
        assert private.inputs["routeTableId"] == f"gpuyard-network-private-{zone}-rt-id"
        public = _one(
            plan,
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            f"gpuyard-network-public-{zone}-rta",
        )
        assert public.inputs["subnetId"] == f"gpuyard-network-public-{zone}-id"
        assert public.inputs["routeTableId"] == "gpuyard-network-public-rt-id"


@pytest.mark.parametrize("env", ENVS)
def test_default_security_group_is_stripped(env):
    sg = _one(
        _plan(env),
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "gpuyard-network-default-sg",
    )
    assert sg.inputs["ingress"] == []
    assert sg.inputs["egress"] == []
    assert sg.inputs["vpcId"] == "gpuyard-network-vpc-id"


@pytest.mark.parametrize("env", ENVS)
def test_s3_gateway_endpoint_serves_only_private_route_tables(env):
    spec = _spec(env)
    endpoint = _one(_plan(env), "aws:ec2/vpcEndpoint:VpcEndpoint", "gpuyard-network-s3-endpoint")
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{spec.region}.s3"
    assert endpoint.inputs["routeTableIds"] == [
        f"gpuyard-network-private-{z}-rt-id" for z in spec.network.zones
    ]


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_capture_all_traffic_into_an_encrypted_log_group(env):
    plan = _plan(env)
    region = _spec(env).region
    flow_log = _one(plan, "aws:ec2/flowLog:FlowLog", "gpuyard-network-flow-log")
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["vpcId"] == "gpuyard-network-vpc-id"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow_log.inputs["logDestination"] == "arn:aws:mock:::gpuyard-network-flow-log-group"
    assert flow_log.inputs["iamRoleArn"] == "arn:aws:mock:::gpuyard-network-flow-log-role"

    group = _one(plan, LOG_GROUP, "gpuyard-network-flow-log-group")
    assert group.inputs["retentionInDays"] == _spec(env).network.flow_log_retention_days
    assert group.inputs["kmsKeyId"] == "arn:aws:mock:::gpuyard-network-flow-log-key"

    key = _one(plan, KEY, "gpuyard-network-flow-log-key")
    assert key.inputs["enableKeyRotation"] is True
    logs = [
        s for s in _policy(key) if s["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    ]
    assert len(logs) == 1
    assert logs[0]["Effect"] == "Allow"
    assert logs[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:*"
    )


@pytest.mark.parametrize("env", ENVS)
def test_flow_log_role_is_least_privilege(env):
    plan = _plan(env)
    role = _one(plan, "aws:iam/role:Role", "gpuyard-network-flow-log-role")
    (trust,) = _policy(role, "assumeRolePolicy")
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT_ID}
    assert "managedPolicyArns" not in role.inputs
    policy = _one(plan, "aws:iam/rolePolicy:RolePolicy", "gpuyard-network-flow-log-role-policy")
    assert policy.inputs["role"] == "gpuyard-network-flow-log-role-id"
    (statement,) = _policy(policy)
    group = "arn:aws:mock:::gpuyard-network-flow-log-group"
    assert statement["Resource"] == [group, f"{group}:*"]
    assert sorted(statement["Action"]) == [
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    ]


@pytest.mark.parametrize("env", ENVS)
def test_both_buckets_block_all_public_access_and_acls(env):
    plan = _plan(env)
    for part, bucket in (("bucket", "gpuyard-store-bucket"), ("logs", "gpuyard-store-logs")):
        block = _one(plan, PUBLIC_ACCESS_BLOCK, f"gpuyard-store-{part}-public-access-block")
        assert block.inputs["bucket"] == f"{bucket}-id"
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block.inputs[flag] is True, flag
        ownership = _one(
            plan,
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            f"gpuyard-store-{part}-ownership",
        )
        assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


@pytest.mark.parametrize("env", ENVS)
def test_data_bucket_encrypts_with_its_own_rotating_key(env):
    plan = _plan(env)
    (rule,) = _one(plan, ENCRYPTION, "gpuyard-store-bucket-encryption").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": "arn:aws:mock:::gpuyard-store-key",
    }
    assert rule["bucketKeyEnabled"] is True
    assert _one(plan, KEY, "gpuyard-store-key").inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("env", ENVS)
def test_log_bucket_encrypts_with_s3_managed_keys(env):
    (rule,) = _one(_plan(env), ENCRYPTION, "gpuyard-store-logs-encryption").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}


@pytest.mark.parametrize("env", ENVS)
def test_data_bucket_policy_denies_plain_http_and_old_tls(env):
    statements = _policy(_one(_plan(env), BUCKET_POLICY, "gpuyard-store-bucket-policy"))
    arn = "arn:aws:mock:::gpuyard-store-bucket"
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"DenyInsecureTransport", "DenyOutdatedTls"}
    for statement in statements:
        assert statement["Effect"] == "Deny"
        assert statement["Principal"] == "*"
        assert statement["Action"] == "s3:*"
        assert statement["Resource"] == [arn, f"{arn}/*"]
    assert by_sid["DenyInsecureTransport"]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert by_sid["DenyOutdatedTls"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": 1.2}}


@pytest.mark.parametrize("env", ENVS)
def test_log_bucket_admits_only_this_buckets_log_delivery(env):
    statements = _policy(_one(_plan(env), BUCKET_POLICY, "gpuyard-store-logs-policy"))
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {
        "AllowServerAccessLogDelivery",
        "DenyInsecureTransport",
        "DenyOutdatedTls",
    }
    allow = by_sid["AllowServerAccessLogDelivery"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == "arn:aws:mock:::gpuyard-store-logs/*"
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:mock:::gpuyard-store-bucket"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
    }
    # The same TLS statements as the data bucket: audit logs are no less sensitive.
    data = _policy(_one(_plan(env), BUCKET_POLICY, "gpuyard-store-bucket-policy"))
    arn = "arn:aws:mock:::gpuyard-store-logs"
    for statement in data:
        deny = by_sid[statement["Sid"]]
        assert deny == {**statement, "Resource": [arn, f"{arn}/*"]}


@pytest.mark.parametrize("env", ENVS)
def test_access_logs_go_to_the_log_bucket(env):
    logging = _one(_plan(env), "aws:s3/bucketLogging:BucketLogging", "gpuyard-store-bucket-logging")
    assert logging.inputs["bucket"] == "gpuyard-store-bucket-id"
    assert logging.inputs["targetBucket"] == "gpuyard-store-logs-id"


@pytest.mark.parametrize("env", ENVS)
def test_lifecycle_days_come_from_the_spec(env):
    plan = _plan(env)
    storage = _spec(env).storage
    rules = {
        r["id"]: r for r in _one(plan, LIFECYCLE, "gpuyard-store-bucket-lifecycle").inputs["rules"]
    }
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {
        "noncurrentDays": storage.checkpoint_version_retention_days
    }
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 7
    }
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules.values())
    (log_rule,) = _one(plan, LIFECYCLE, "gpuyard-store-logs-lifecycle").inputs["rules"]
    assert log_rule["expiration"] == {"days": storage.access_log_retention_days}
    assert log_rule["noncurrentVersionExpiration"] == {
        "noncurrentDays": storage.access_log_retention_days
    }


@pytest.mark.parametrize(("env", "status"), [("dev", "Suspended"), ("prod", "Enabled")])
def test_versioning_follows_the_spec_and_log_bucket_is_always_versioned(env, status):
    plan = _plan(env)
    versioning = "aws:s3/bucketVersioning:BucketVersioning"
    data = _one(plan, versioning, "gpuyard-store-bucket-versioning")
    assert data.inputs["versioningConfiguration"] == {"status": status}
    logs = _one(plan, versioning, "gpuyard-store-logs-versioning")
    assert logs.inputs["versioningConfiguration"] == {"status": "Enabled"}


@pytest.mark.parametrize(("env", "stateful"), [("dev", False), ("prod", True)])
def test_stateful_resources_are_protected_in_prod_only(env, stateful):
    plan = _plan(env)
    protected = {(r.type, r.name) for r in plan.resources if r.protect}
    assert protected == (
        {
            (BUCKET, "gpuyard-store-bucket"),
            (BUCKET, "gpuyard-store-logs"),
            (KEY, "gpuyard-store-key"),
            (KEY, "gpuyard-network-flow-log-key"),
            (LOG_GROUP, "gpuyard-network-flow-log-group"),
        }
        if stateful
        else set()
    )
    for bucket in plan.by_type(BUCKET):
        assert bucket.inputs["forceDestroy"] is (not stateful)

"""GCP kit: exact children, parents and secure defaults of GcpNetwork and GcpObjectStore."""

import json
import re
from collections import Counter

import pulumi
import pytest

from components import spec as specmod
from components.gcp.kit import MAX_BUCKET_NAME, bucket_name, build, log_bucket_id
from components.plan import Plan, Resource, record

NETWORK = "gpuyard:index:GcpNetwork"
STORE = "gpuyard:index:GcpObjectStore"
FIREWALL = "gcp:compute/firewall:Firewall"
BUCKET = "gcp:storage/bucket:Bucket"
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"
SINK = "gcp:logging/projectSink:ProjectSink"
AUDIT_CONFIG = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
STACK = "gpuyard/test"
"""The stack ``record`` plans by default, as ``<pulumi project>/<stack>``."""
HASH = "b0cfe3"
"""Short hash of STACK in log bucket ids."""
BUCKET_HASH = {"dev": "8b01ac", "prod": "964bb7"}
"""Short hash ending each environment's bucket name in the STACK stack."""

SPECS = {
    "dev": {
        "cloud": "gcp",
        "region": "us-central1",
        "environment": "dev",
        "project": "ml-dev-project",
        "tags": {"team": "ml"},
        "network": {"zones": 2, "flow_log_retention_days": 14},
        "storage": {
            "force_destroy": True,
            "checkpoint_version_retention_days": 12,
            "access_log_retention_days": 45,
        },
    },
    "prod": {
        "cloud": "gcp",
        "region": "europe-west4",
        "environment": "prod",
        "project": "ml-prod-project",
        "network": {"zones": 3, "cidr": "10.10.0.0/16"},
    },
}

NETWORK_CHILDREN = {
    ("gcp:compute/network:Network", "gpuyard-network-vpc"),
    ("gcp:compute/subnetwork:Subnetwork", "gpuyard-network-nodes"),
    ("gcp:compute/router:Router", "gpuyard-network-router"),
    ("gcp:compute/routerNat:RouterNat", "gpuyard-network-nat"),
    (FIREWALL, "gpuyard-network-allow-internal"),
    (FIREWALL, "gpuyard-network-allow-health-checks"),
    (FIREWALL, "gpuyard-network-deny-all-ingress"),
    (LOG_BUCKET, "gpuyard-network-flow-logs"),
    (SINK, "gpuyard-network-flow-logs"),
}
STORE_CHILDREN = {
    ("gcp:kms/keyRing:KeyRing", "gpuyard-store-keys"),
    ("gcp:kms/cryptoKey:CryptoKey", "gpuyard-store-bucket-key"),
    ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gpuyard-store-gcs-key-access"),
    (BUCKET, "gpuyard-store-data"),
    (LOG_BUCKET, "gpuyard-store-access-logs"),
    (SINK, "gpuyard-store-access-logs"),
}
STATEFUL = {
    ("gcp:kms/keyRing:KeyRing", "gpuyard-store-keys"),
    ("gcp:kms/cryptoKey:CryptoKey", "gpuyard-store-bucket-key"),
    (BUCKET, "gpuyard-store-data"),
    (LOG_BUCKET, "gpuyard-store-access-logs"),
    (LOG_BUCKET, "gpuyard-network-flow-logs"),
}


RETAINED: dict[tuple[str, str], bool] = {}
"""``retain_on_delete`` of every resource declared, by (type, name), from the last plan."""


def _note_retention(args: pulumi.ResourceTransformationArgs) -> None:
    RETAINED[(args.type_, args.name)] = bool(args.opts.retain_on_delete)


def _program(spec: specmod.PlatformSpec):
    def program():
        # The plan does not record retain_on_delete; a transformation inherited by every
        # child sees each resource's options as declared.
        root = pulumi.ComponentResource(
            "test:index:Root",
            "root",
            opts=pulumi.ResourceOptions(transformations=[_note_retention]),
        )
        kit = build("gpuyard", spec, root)
        pulumi.export("bucket_url", kit.bucket_url)
        pulumi.export("network_id", kit.network_id)
        for attr in ("subnetwork_id", "pods_range_name", "services_range_name", "nat_name"):
            pulumi.export(attr, getattr(kit.network, attr))
        pulumi.export("kms_key_id", kit.store.kms_key_id)

    return program


def _record(raw: dict) -> Plan:
    return record(_program(specmod.parse(raw)))


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {env: _record(raw) for env, raw in SPECS.items()}


def one(plan: Plan, type_: str, name: str) -> Resource:
    (found,) = [r for r in plan.resources if r.type == type_ and r.name == name]
    return found


def children(plan: Plan, component: Resource) -> Counter:
    return Counter((r.type, r.name) for r in plan.resources if r.parent == component.urn)


@pytest.mark.parametrize("env", SPECS)
def test_exact_children_and_parents(plans, env):
    plan = plans[env]
    (root,) = plan.by_type("test:index:Root")
    (network,) = plan.by_type(NETWORK)
    (store,) = plan.by_type(STORE)
    (provider,) = plan.by_type("pulumi:providers:gcp")
    assert network.parent == store.parent == provider.parent == root.urn
    assert children(plan, network) == Counter(NETWORK_CHILDREN)
    assert children(plan, store) == Counter(STORE_CHILDREN)
    assert children(plan, root) == Counter(
        {
            (NETWORK, "gpuyard-network"),
            (STORE, "gpuyard-store"),
            ("pulumi:providers:gcp", "gpuyard-gcp"),
            (AUDIT_CONFIG, "gpuyard-storage-audit"),
        }
    )
    assert len(plan.resources) == 1 + 4 + len(NETWORK_CHILDREN) + len(STORE_CHILDREN)
    provider_ref = f"{provider.urn}::{provider.urn.rsplit('::', 1)[1]}-id"
    for r in plan.resources:
        if r.custom and r.type != provider.type:
            assert r.provider == provider_ref, f"{r.name} does not use the kit's provider"


@pytest.mark.parametrize("env", SPECS)
def test_provider_is_explicit(plans, env):
    (provider,) = plans[env].by_type("pulumi:providers:gcp")
    raw = SPECS[env]
    assert provider.inputs["project"] == raw["project"]
    assert provider.inputs["region"] == raw["region"]
    # Provider inputs reach the engine JSON-encoded.
    assert json.loads(provider.inputs["defaultLabels"]) == {
        **raw.get("tags", {}),
        "gpuyard-environment": raw["environment"],
    }


@pytest.mark.parametrize("env", SPECS)
def test_network_is_custom_mode_and_regional(plans, env):
    vpc = one(plans[env], "gcp:compute/network:Network", "gpuyard-network-vpc")
    assert vpc.inputs["autoCreateSubnetworks"] is False
    assert vpc.inputs["routingMode"] == "REGIONAL"
    assert vpc.inputs["deleteDefaultRoutesOnCreate"] is False


@pytest.mark.parametrize("env", SPECS)
def test_subnetwork_ranges_access_and_flow_logs(plans, env):
    spec = specmod.parse(SPECS[env])
    subnet = one(plans[env], "gcp:compute/subnetwork:Subnetwork", "gpuyard-network-nodes")
    assert subnet.inputs["ipCidrRange"] == str(spec.network.cidr)
    assert subnet.inputs["region"] == spec.region
    assert subnet.inputs["secondaryIpRanges"] == [
        {"rangeName": "pods", "ipCidrRange": str(spec.network.pods_cidr)},
        {"rangeName": "services", "ipCidrRange": str(spec.network.services_cidr)},
    ]
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert subnet.inputs["logConfig"] == {
        "aggregationInterval": "INTERVAL_5_SEC",
        "flowSampling": 1.0 if spec.production else 0.5,
        "metadata": "INCLUDE_ALL_METADATA",
    }


@pytest.mark.parametrize("env", SPECS)
def test_flow_logs_kept_for_the_spec_retention(plans, env):
    spec = specmod.parse(SPECS[env])
    bucket = one(plans[env], LOG_BUCKET, "gpuyard-network-flow-logs")
    sink = one(plans[env], SINK, "gpuyard-network-flow-logs")
    assert bucket.inputs["retentionDays"] == spec.network.flow_log_retention_days
    assert bucket.inputs["location"] == spec.region
    assert sink.inputs["destination"] == (
        f"logging.googleapis.com/projects/{spec.project}/locations/{spec.region}"
        f"/buckets/gpuyard-{env}-{HASH}-flow-logs"
    )
    assert 'log_id("compute.googleapis.com/vpc_flows")' in sink.inputs["filter"]
    assert 'subnetwork_name="gpuyard-network-nodes"' in sink.inputs["filter"]
    assert bucket.urn in sink.dependencies


@pytest.mark.parametrize("env", SPECS)
def test_cloud_nat_covers_the_subnetwork_and_logs_errors(plans, env):
    plan = plans[env]
    nat = one(plan, "gcp:compute/routerNat:RouterNat", "gpuyard-network-nat")
    subnet = one(plan, "gcp:compute/subnetwork:Subnetwork", "gpuyard-network-nodes")
    assert nat.inputs["natIpAllocateOption"] == "AUTO_ONLY"
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat.inputs["subnetworks"] == [
        {"name": f"{subnet.name}-id", "sourceIpRangesToNats": ["ALL_IP_RANGES"]}
    ]
    assert nat.inputs["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}
    assert nat.inputs["enableEndpointIndependentMapping"] is False
    assert nat.inputs["router"] == "gpuyard-network-router"


@pytest.mark.parametrize("env", SPECS)
def test_firewall_is_narrow(plans, env):
    spec = specmod.parse(SPECS[env])
    plan = plans[env]
    rules = {r.name: r.inputs for r in plan.by_type(FIREWALL)}
    for name, rule in rules.items():
        assert rule["direction"] == "INGRESS", name
        if "0.0.0.0/0" in rule.get("sourceRanges", []):
            assert not rule.get("allows"), f"{name} allows traffic from anywhere"
    internal = rules["gpuyard-network-allow-internal"]
    assert internal["sourceRanges"] == [
        str(spec.network.cidr),
        str(spec.network.pods_cidr),
        str(spec.network.services_cidr),
    ]
    assert {a["protocol"] for a in internal["allows"]} == {"tcp", "udp", "icmp"}
    health = rules["gpuyard-network-allow-health-checks"]
    assert health["sourceRanges"] == ["130.211.0.0/22", "35.191.0.0/16"]
    assert health["allows"] == [{"protocol": "tcp"}]
    deny = rules["gpuyard-network-deny-all-ingress"]
    assert deny["sourceRanges"] == ["0.0.0.0/0"]
    assert deny["denies"] == [{"protocol": "all"}]
    assert deny["priority"] == 65535
    assert deny["logConfig"] == {"metadata": "INCLUDE_ALL_METADATA"}


@pytest.mark.parametrize("env", SPECS)
def test_bucket_is_private_versioned_and_cmek_encrypted(plans, env):
    spec = specmod.parse(SPECS[env])
    plan = plans[env]
    bucket = one(plan, BUCKET, "gpuyard-store-data")
    key = one(plan, "gcp:kms/cryptoKey:CryptoKey", "gpuyard-store-bucket-key")
    binding = one(
        plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gpuyard-store-gcs-key-access"
    )
    assert bucket.inputs["name"] == f"{spec.project}-gpuyard-{env}-data-{BUCKET_HASH[env]}"
    assert bucket.inputs["location"] == spec.region
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"] == {"enabled": True}
    encryption = bucket.inputs["encryption"]
    assert encryption["defaultKmsKeyName"] == f"{key.name}-id"
    assert encryption["googleManagedEncryptionEnforcementConfig"] == {
        "restrictionMode": "FullyRestricted"
    }
    assert encryption["customerSuppliedEncryptionEnforcementConfig"] == {
        "restrictionMode": "FullyRestricted"
    }
    assert bucket.inputs["softDeletePolicy"] == {"retentionDurationSeconds": 7 * 24 * 3600}
    assert bucket.inputs["forceDestroy"] is spec.storage.force_destroy
    assert binding.urn in bucket.dependencies, "the key is granted before the bucket uses it"
    assert bucket.inputs["labels"] == {**spec.tags, "gpuyard-environment": env}


def test_force_destroy_only_where_the_spec_asks(plans):
    assert one(plans["prod"], BUCKET, "gpuyard-store-data").inputs["forceDestroy"] is False
    assert one(plans["dev"], BUCKET, "gpuyard-store-data").inputs["forceDestroy"] is True


@pytest.mark.parametrize("env", SPECS)
def test_lifecycle_follows_the_spec(plans, env):
    spec = specmod.parse(SPECS[env])
    rules = one(plans[env], BUCKET, "gpuyard-store-data").inputs["lifecycleRules"]
    assert rules == [
        {
            "action": {"type": "Delete"},
            "condition": {
                "daysSinceNoncurrentTime": spec.storage.checkpoint_version_retention_days,
                "withState": "ARCHIVED",
            },
        },
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}},
    ]


def test_versioning_off_when_the_spec_says_so():
    raw = {**SPECS["dev"], "storage": {"versioning": False}}
    bucket = one(_record(raw), BUCKET, "gpuyard-store-data")
    assert bucket.inputs["versioning"] == {"enabled": False}


@pytest.mark.parametrize("env", SPECS)
def test_key_rotates_and_only_the_storage_agent_may_use_it(plans, env):
    spec = specmod.parse(SPECS[env])
    plan = plans[env]
    ring = one(plan, "gcp:kms/keyRing:KeyRing", "gpuyard-store-keys")
    key = one(plan, "gcp:kms/cryptoKey:CryptoKey", "gpuyard-store-bucket-key")
    binding = one(
        plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gpuyard-store-gcs-key-access"
    )
    assert ring.inputs["location"] == spec.region
    assert key.inputs["keyRing"] == f"{ring.name}-id"
    assert key.inputs["rotationPeriod"] == "7776000s"
    assert key.inputs["purpose"] == "ENCRYPT_DECRYPT"
    assert binding.inputs["cryptoKeyId"] == f"{key.name}-id"
    assert binding.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert binding.inputs["member"] == (
        "serviceAccount:service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
    )


@pytest.mark.parametrize("env", SPECS)
def test_data_access_is_audited_and_kept(plans, env):
    spec = specmod.parse(SPECS[env])
    plan = plans[env]
    audit = one(plan, AUDIT_CONFIG, "gpuyard-storage-audit")
    assert audit.inputs["service"] == "storage.googleapis.com"
    assert audit.inputs["project"] == spec.project
    assert sorted(c["logType"] for c in audit.inputs["auditLogConfigs"]) == [
        "ADMIN_READ",
        "DATA_READ",
        "DATA_WRITE",
    ]
    logs = one(plan, LOG_BUCKET, "gpuyard-store-access-logs")
    sink = one(plan, SINK, "gpuyard-store-access-logs")
    assert logs.inputs["retentionDays"] == spec.storage.access_log_retention_days
    assert logs.inputs["location"] == spec.region
    assert sink.inputs["destination"] == (
        f"logging.googleapis.com/projects/{spec.project}/locations/{spec.region}"
        f"/buckets/gpuyard-{env}-{HASH}-access-logs"
    )
    assert 'log_id("cloudaudit.googleapis.com/data_access")' in sink.inputs["filter"]
    bucket = one(plan, BUCKET, "gpuyard-store-data").inputs["name"]
    assert f'bucket_name="{bucket}"' in sink.inputs["filter"]
    assert logs.urn in sink.dependencies


@pytest.mark.parametrize("env", SPECS)
def test_stateful_resources_protected_in_production_only(plans, env):
    expected = env == "prod"
    for r in plans[env].resources:
        assert r.protect is (expected and (r.type, r.name) in STATEFUL), r.name


def test_protect_override_in_dev():
    raw = {**SPECS["dev"], "storage": {"protect": True}}
    plan = _record(raw)
    assert {(r.type, r.name) for r in plan.resources if r.protect} == STATEFUL


@pytest.mark.parametrize("env", SPECS)
def test_outputs(plans, env):
    spec = specmod.parse(SPECS[env])
    outputs = plans[env].outputs
    assert outputs == {
        "bucket_url": f"gs://{spec.project}-gpuyard-{env}-data-{BUCKET_HASH[env]}",
        "network_id": "gpuyard-network-vpc-id",
        "subnetwork_id": "gpuyard-network-nodes-id",
        "pods_range_name": "pods",
        "services_range_name": "services",
        "nat_name": "gpuyard-network-nat",
        "kms_key_id": "gpuyard-store-bucket-key-id",
    }


def test_bucket_name_is_gcs_safe():
    name = bucket_name("my-project", "GpuYard_Main", "dev", "p/dev")
    assert re.fullmatch(r"my-project-gpuyard-main-dev-data-[0-9a-f]{6}", name)
    long_a = bucket_name("a-very-long-project-id-123", "x" * 40 + "-one", "staging-eu", "p/s")
    long_b = bucket_name("a-very-long-project-id-123", "x" * 40 + "-two", "staging-eu", "p/s")
    for name in (long_a, long_b):
        assert len(name) <= MAX_BUCKET_NAME
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name)
    assert long_a != long_b


def test_names_differ_per_environment_and_stack():
    # Two stacks in one project must never share a bucket or a log bucket id.
    buckets = {
        bucket_name("ml-project", "gpuyard", env, stack)
        for env in ("dev", "staging")
        for stack in ("gpuyard/dev-gcp", "gpuyard/dev-gcp-2")
    }
    assert len(buckets) == 4
    ids = {
        log_bucket_id("gpuyard", env, stack, role)
        for env in ("dev", "staging")
        for stack in ("gpuyard/dev-gcp", "gpuyard/dev-gcp-2")
        for role in ("flow-logs", "access-logs")
    }
    assert len(ids) == 8
    for id_ in ids:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", id_)
    raw = {**SPECS["dev"], "environment": "staging"}
    staging, dev = _record(raw), _record(SPECS["dev"])
    for type_, name in [
        (BUCKET, "gpuyard-store-data"),
        (LOG_BUCKET, "gpuyard-store-access-logs"),
        (LOG_BUCKET, "gpuyard-network-flow-logs"),
    ]:
        key = "name" if type_ == BUCKET else "bucketId"
        assert one(staging, type_, name).inputs[key] != one(dev, type_, name).inputs[key]
    other_stack = record(_program(specmod.parse(SPECS["dev"])), stack="dev-gcp-2")
    assert (
        one(other_stack, BUCKET, "gpuyard-store-data").inputs["name"]
        != one(dev, BUCKET, "gpuyard-store-data").inputs["name"]
    )


@pytest.mark.parametrize("env", SPECS)
def test_storage_audit_config_is_project_level_and_always_retained(env):
    plan = _record(SPECS[env])
    (root,) = plan.by_type("test:index:Root")
    audit = one(plan, AUDIT_CONFIG, "gpuyard-storage-audit")
    assert audit.parent == root.urn, "a project-wide setting is not part of the object store"
    assert RETAINED[(AUDIT_CONFIG, "gpuyard-storage-audit")] is True
    assert audit.protect is False

"""The stack spec: valid stacks load, invalid ones fail with one exact, actionable message."""

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import catalog, spec
from components.spec import SpecError

BASE = {"cloud": "aws", "region": "us-east-1", "environment": "dev"}
GCP = {"cloud": "gcp", "region": "us-central1", "environment": "dev", "project": "ml-team-123"}
AZURE = {"cloud": "azure", "region": "eastus", "environment": "dev"}


def with_(base: dict, **changes) -> dict:
    return {**base, **changes}


VALID = [
    (BASE, {"zones": ("us-east-1a", "us-east-1b"), "protect": False, "cidr": "10.0.0.0/16"}),
    (with_(BASE, environment="prod"), {"protect": True}),
    (with_(BASE, environment="prod", storage={"protect": False}), {"protect": False}),
    (with_(BASE, storage={"protect": True}), {"protect": True}),
    (
        with_(BASE, network={"zones": 6, "cidr": "10.0.0.0/20"}),
        {"zones": tuple(f"us-east-1{z}" for z in "abcdef")},
    ),
    (
        with_(BASE, network={"zones": ["us-east-1f", "us-east-1c"]}),
        {"zones": ("us-east-1f", "us-east-1c")},
    ),
    (with_(BASE, network={"cidr": "172.16.0.0/20", "zones": 2}), {"cidr": "172.16.0.0/20"}),
    (with_(BASE, network={"cidr": "100.64.0.0/16"}), {"cidr": "100.64.0.0/16"}),
    (with_(BASE, tags={"team": "ml", "cost-center": "A/B 1"}), {}),
    (GCP, {"zones": ("us-central1-a", "us-central1-b")}),
    (with_(GCP, tags={"team": "ml-platform"}), {}),
    (AZURE, {"zones": ("1", "2")}),
    (with_(AZURE, network={"zones": 3}, storage={"versioning": False}), {"zones": ("1", "2", "3")}),
]


@pytest.mark.parametrize(("raw", "expect"), VALID)
def test_valid_specs_load(raw, expect):
    loaded = spec.parse(raw)
    if "zones" in expect:
        assert loaded.network.zones == expect["zones"]
    if "protect" in expect:
        assert loaded.protect_stateful is expect["protect"]
    if "cidr" in expect:
        assert str(loaded.network.cidr) == expect["cidr"]
    with pytest.raises(Exception, match="frozen"):
        loaded.region = "us-west-2"


INVALID = [
    (
        {k: v for k, v in BASE.items() if k != "cloud"},
        "gpuyard:cloud: missing; required: which cloud the stack deploys to",
    ),
    (with_(BASE, cloud="ibm"), "gpuyard:cloud: got \"ibm\"; expected 'aws', 'gcp' or 'azure'"),
    (
        with_(BASE, region="us-east-9"),
        'gpuyard:region: got "us-east-9"; expected one of the aws regions: '
        + ", ".join(catalog.regions("aws")),
    ),
    (
        with_(GCP, region="us-east-1"),
        'gpuyard:region: got "us-east-1"; expected one of the gcp regions: '
        + ", ".join(catalog.regions("gcp")),
    ),
    (with_(BASE, region=12), "gpuyard:region: got 12; expected a valid string"),
    (
        with_(BASE, environment="Prod!"),
        'gpuyard:environment: got "Prod!"; expected a lowercase name such as dev, staging or prod (2-16 of a-z, 0-9, -)',
    ),
    (
        with_(BASE, regoin="us-east-1"),
        "gpuyard:regoin: unknown key; expected one of the keys cloud, region, environment, project, tags, network, storage",
    ),
    (
        with_(BASE, network={"cidr": "10.0.0.0/16", "zone": 2}),
        "gpuyard:network.zone: unknown key; expected one of the keys cidr, zones, pods_cidr, services_cidr, flow_log_retention_days",
    ),
    (
        with_(BASE, network={"cidr": "10.0.0.0/21", "zones": 1}),
        'gpuyard:network.cidr: got "10.0.0.0/21"; expected a /20 or larger: it is cut into 16 subnets of at least /24',
    ),
    (
        with_(BASE, network={"cidr": "8.8.0.0/16"}),
        'gpuyard:network.cidr: got "8.8.0.0/16"; expected a range inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10',
    ),
    (
        with_(BASE, network={"cidr": "169.254.0.0/16"}),
        'gpuyard:network.cidr: got "169.254.0.0/16"; expected a range inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10',
    ),
    (
        with_(BASE, network={"zones": "2"}),
        'gpuyard:network.zones: got "2"; expected a valid array',
    ),
    (
        with_(BASE, tags={"int": 5}),
        "gpuyard:tags.int: got 5; expected a valid string",
    ),
    (
        with_(BASE, tags={"AWS:owner": "me"}),
        "gpuyard:tags.AWS:owner: got \"me\"; expected aws tag keys and values of up to 128 letters, digits, spaces and _.:/=+-@, not starting with 'aws:'",
    ),
    (
        with_(BASE, tags={f"k{i}": "v" for i in range(41)}),
        'gpuyard:tags: got "41 tags"; expected at most 40 tags',
    ),
    (
        {**BASE, "region": None},
        "gpuyard:region: missing; required: the cloud's region, e.g. us-east-1, us-central1, eastus",
    ),
    (
        with_(BASE, network={"cidr": "10.0.0.0/33"}),
        'gpuyard:network.cidr: got "10.0.0.0/33"; expected a valid IPv4 network',
    ),
    (
        with_(BASE, network={"zones": 9}),
        "gpuyard:network.zones: got 9; expected between 1 and 6 zones",
    ),
    (
        with_(BASE, network={"zones": []}),
        "gpuyard:network.zones: got []; expected a non-empty list of zone names without repeats",
    ),
    (
        with_(BASE, region="us-west-1", network={"zones": 3}),
        "gpuyard:network.zones: got 3; expected at most 2: us-west-1 has zones "
        + ", ".join(catalog.zones("aws", "us-west-1")),
    ),
    (
        with_(BASE, network={"zones": ["us-east-1z"]}),
        'gpuyard:network.zones: got ["us-east-1z"]; expected zones of us-east-1: '
        + ", ".join(catalog.zones("aws", "us-east-1")),
    ),
    (
        with_(BASE, network={"pods_cidr": "10.0.0.0/14"}),
        'gpuyard:network.pods_cidr: got "10.0.0.0/14"; expected a range disjoint from cidr 10.0.0.0/16',
    ),
    (
        with_(BASE, network={"flow_log_retention_days": 45}),
        "gpuyard:network.flow_log_retention_days: got 45; expected one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365 (periods every cloud's flow logs accept)",
    ),
    (
        with_(BASE, storage={"access_log_retention_days": 7}),
        "gpuyard:storage.access_log_retention_days: got 7; expected greater than or equal to 30",
    ),
    (
        with_(BASE, storage={"versioning": "yes"}),
        'gpuyard:storage.versioning: got "yes"; expected a valid boolean',
    ),
    (
        with_(BASE, storage={"checkpoint_version_retention_days": -3}),
        "gpuyard:storage.checkpoint_version_retention_days: got -3; expected greater than or equal to 1",
    ),
    (
        with_(BASE, storage={"lifecycle": 3}),
        "gpuyard:storage.lifecycle: unknown key; expected one of the keys versioning, checkpoint_version_retention_days, access_log_retention_days, force_destroy, protect",
    ),
    (
        with_(BASE, environment="prod", storage={"force_destroy": True}),
        "gpuyard:storage.force_destroy: got true; expected false in a production stack: it would let destroy delete checkpoints and models",
    ),
    (
        with_(GCP, project=None) | {"project": None},
        "gpuyard:project: missing; expected the GCP project id, required when cloud is gcp",
    ),
    (
        with_(BASE, project="my-project-1"),
        'gpuyard:project: got "my-project-1"; expected no value: project applies to gcp only, not aws',
    ),
    (
        with_(GCP, tags={"Team": "ml"}),
        'gpuyard:tags.Team: got "ml"; expected gcp tag keys and values of lowercase letters, digits, _ and -, starting with a letter, at most 63 characters',
    ),
    (
        with_(BASE, tags={"aws:owner": "me"}),
        "gpuyard:tags.aws:owner: got \"me\"; expected aws tag keys and values of up to 128 letters, digits, spaces and _.:/=+-@, not starting with 'aws:'",
    ),
    (
        with_(AZURE, region="northcentralus"),
        'gpuyard:region: got "northcentralus"; expected a azure region with availability zones; northcentralus has none',
    ),
    (with_(BASE, network="10.0.0.0/16"), 'gpuyard:network: got "10.0.0.0/16"; expected an object'),
]


@pytest.mark.parametrize(("raw", "message"), INVALID)
def test_invalid_specs_name_the_key(raw, message):
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(SpecError) as caught:
        spec.parse(raw)
    assert str(caught.value) == message


def test_enough_invalid_cases():
    assert len(INVALID) >= 20


def test_config_values_as_pulumi_hands_them_over():
    values = {
        "gpuyard:cloud": "azure",
        "gpuyard:region": "westeurope",
        "gpuyard:environment": "prod",
        "gpuyard:network": json.dumps({"zones": 3, "cidr": "10.60.0.0/16"}),
        "gpuyard:project": "",
        "aws:region": "us-east-1",
    }
    loaded = spec.from_config_values(values)
    assert loaded.network.zones == ("1", "2", "3")
    assert loaded.project is None
    assert loaded.protect_stateful


def test_subnet_layout_is_stable_and_disjoint():
    loaded = spec.parse(with_(BASE, network={"cidr": "10.0.0.0/16", "zones": 3}))
    layout = loaded.subnets()
    assert [z for z, _, _ in layout] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert layout[0] == ("us-east-1a", "10.0.0.0/20", "10.0.96.0/20")
    blocks = [b for _, private, public in layout for b in (private, public)]
    blocks += loaded.regional_subnets()
    assert len(set(blocks)) == 10
    networks = [ipaddress.IPv4Network(b) for b in blocks]
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])


def test_a_zones_subnets_do_not_depend_on_the_other_zones():
    def layout(zones):
        return dict((z, (private, public)) for z, private, public in spec.parse(
            with_(BASE, network={"zones": zones})).subnets())  # fmt: skip

    two = layout(["us-east-1a", "us-east-1c"])
    assert layout(["us-east-1c", "us-east-1a"]) == two
    three = layout(["us-east-1a", "us-east-1c", "us-east-1b"])
    assert {z: three[z] for z in two} == two


def test_text_that_is_not_unicode_is_a_spec_error_without_the_whole_config():
    with pytest.raises(SpecError, match=r"^gpuyard: the stack config cannot be read: Invalid JSON"):
        spec.parse(with_(BASE, region="\ud800"))


def test_config_values_beyond_the_json_parser_are_spec_errors():
    deep = "[" * 100_000 + "]" * 100_000
    for text in ("9" * 5000, deep):
        with pytest.raises(
            SpecError, match=r"^gpuyard:network: got .{120}\.\.\. \(\d+ characters\); "
        ):
            spec.from_config_values(
                {**{f"gpuyard:{k}": v for k, v in BASE.items()}, "gpuyard:network": text}
            )


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = ["cloud", "region", "environment", "project", "tags", "network", "storage"]
NESTED = {
    "network": ["cidr", "zones", "pods_cidr", "services_cidr", "flow_log_retention_days"],
    "storage": [
        "versioning",
        "checkpoint_version_retention_days",
        "access_log_retention_days",
        "force_destroy",
        "protect",
    ],
}


@st.composite
def mutated_specs(draw):
    raw = json.loads(json.dumps(draw(st.sampled_from([BASE, GCP, AZURE]))))
    key = draw(st.sampled_from([*KEYS, "network.*", "storage.*", "extra"]))
    if key.endswith(".*"):
        section = key[:-2]
        raw[section] = {draw(st.sampled_from(NESTED[section])): draw(JSONISH)}
    elif key == "extra":
        raw[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in KEYS))] = draw(JSONISH)
    else:
        raw[key] = draw(JSONISH)
    return raw


@settings(max_examples=300, deadline=None)
@given(mutated_specs())
def test_any_bad_value_gives_spec_error_and_nothing_else(raw):
    try:
        spec.parse(raw)
    except SpecError as exc:
        message = str(exc)
        assert message.startswith("gpuyard:")
        assert "\n" not in message

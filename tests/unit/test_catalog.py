"""Consistency checks on the accelerator catalog: each one fails on a real data mistake."""

import dataclasses
import itertools
import re
from collections import Counter

import pytest

from components import catalog
from components.catalog import (
    ACCELERATORS,
    CLOUDS,
    NAT_GATEWAY_PRICE_PER_HOUR,
    PRICE_REGION,
    PRICES_AS_OF,
    REGIONS,
    SHAPES,
)

# A deleted or mis-keyed shape changes one of these sets, so the test names it.
EXPECTED_ACCELERATORS = {
    "aws": ("a100-40gb", "a100-80gb", "a10g", "h100", "h200", "l4", "l40s", "t4"),
    "gcp": ("a100-40gb", "a100-80gb", "h100", "l4", "t4"),
    "azure": ("a10", "a100-40gb", "a100-80gb", "h100", "h100-nvl", "t4"),
}

# GPU count fixed by the family, independent of which sizes the catalog lists.
KNOWN_GPU_COUNTS = {
    ("aws", "p5.48xlarge"): 8,
    ("aws", "p5en.48xlarge"): 8,
    ("aws", "p4d.24xlarge"): 8,
    ("aws", "p4de.24xlarge"): 8,
    ("aws", "g6e.xlarge"): 1,
    ("aws", "g6e.12xlarge"): 4,
    ("aws", "g6e.48xlarge"): 8,
    ("aws", "g6.xlarge"): 1,
    ("aws", "g6.12xlarge"): 4,
    ("aws", "g6.48xlarge"): 8,
    ("aws", "g5.xlarge"): 1,
    ("aws", "g5.12xlarge"): 4,
    ("aws", "g5.48xlarge"): 8,
    ("aws", "g4dn.xlarge"): 1,
    ("aws", "g4dn.12xlarge"): 4,
    ("aws", "g4dn.metal"): 8,
    ("gcp", "a3-highgpu-8g"): 8,
    ("gcp", "a3-megagpu-8g"): 8,
    ("gcp", "g2-standard-4"): 1,
    ("gcp", "g2-standard-24"): 2,
    ("gcp", "g2-standard-48"): 4,
    ("gcp", "g2-standard-96"): 8,
    ("azure", "Standard_ND96isr_H100_v5"): 8,
    ("azure", "Standard_ND96amsr_A100_v4"): 8,
    ("azure", "Standard_ND96asr_v4"): 8,
    ("azure", "Standard_NC40ads_H100_v5"): 1,
    ("azure", "Standard_NC80adis_H100_v5"): 2,
    ("azure", "Standard_NC24ads_A100_v4"): 1,
    ("azure", "Standard_NC96ads_A100_v4"): 4,
    ("azure", "Standard_NC4as_T4_v3"): 1,
    ("azure", "Standard_NC64as_T4_v3"): 4,
}

# (vCPUs, host GiB) checked against the providers' published sizes (see catalog.py).
KNOWN_HOST_SIZES = {
    ("aws", "p5.48xlarge"): (192, 2048),
    ("aws", "p4d.24xlarge"): (96, 1152),
    ("aws", "g6e.12xlarge"): (48, 384),
    ("aws", "g5.xlarge"): (4, 16),
    ("aws", "g4dn.metal"): (96, 384),
    ("gcp", "a3-highgpu-8g"): (208, 1872),
    ("gcp", "a2-ultragpu-1g"): (12, 170),
    ("gcp", "a2-highgpu-8g"): (96, 680),
    ("azure", "Standard_ND96isr_H100_v5"): (96, 1900),
    ("azure", "Standard_ND96asr_v4"): (96, 900),
    ("azure", "Standard_NC40ads_H100_v5"): (40, 320),
    ("azure", "Standard_NV36ads_A10_v5"): (36, 440),
    ("azure", "Standard_NC4as_T4_v3"): (4, 28),
}

# USD per GPU-hour: wide enough for big-CPU single-GPU sizes, narrow enough to catch a
# misplaced decimal point or a whole-instance price typed into a per-GPU slot.
PER_GPU_BAND = {
    "h200": (3.0, 15.0),
    "h100": (3.0, 15.0),
    "h100-nvl": (3.0, 12.0),
    "a100-80gb": (2.0, 6.0),
    "a100-40gb": (1.5, 5.0),
    "l40s": (1.0, 8.0),
    "l4": (0.4, 4.0),
    "a10g": (0.5, 5.0),
    "a10": (1.0, 5.0),
    "t4": (0.2, 5.0),
}

ZONE_PATTERN = {
    "aws": re.compile(r"^(?P<region>[a-z]{2}-[a-z]+-\d)[a-z]$"),
    "gcp": re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-[a-z]$"),
    "azure": re.compile(r"^[1-3]$"),
}
REGION_PATTERN = {
    "aws": re.compile(r"^[a-z]{2}-[a-z]+-\d$"),
    "gcp": re.compile(r"^[a-z]+-[a-z]+\d+$"),
    "azure": re.compile(r"^[a-z]+\d?$"),
}


def _ids(shapes):
    return [f"{s.cloud}:{s.name}" for s in shapes]


def test_price_date_is_iso_and_price_regions_cover_every_cloud():
    assert re.fullmatch(r"2026-\d{2}-\d{2}", PRICES_AS_OF)
    assert set(PRICE_REGION) == set(CLOUDS) == set(REGIONS) == set(NAT_GATEWAY_PRICE_PER_HOUR)
    assert PRICE_REGION == {"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus"}
    for cloud, region in PRICE_REGION.items():
        assert region in REGIONS[cloud]


@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_shape_is_internally_consistent(shape):
    assert shape.cloud in CLOUDS
    assert shape.accelerator in ACCELERATORS
    assert shape.gpu_count > 0
    assert shape.vcpus > 0
    assert shape.memory_gib > 0
    assert shape.total_gpu_memory_gib == (
        shape.gpu_count * ACCELERATORS[shape.accelerator].gpu_memory_gib
    )
    assert shape.total_gpu_memory_gib > 0
    assert shape.price_per_hour > 0
    assert isinstance(shape.regions, frozenset) and shape.regions
    assert shape.regions <= set(REGIONS[shape.cloud]), shape.regions - set(REGIONS[shape.cloud])
    low, high = PER_GPU_BAND[shape.accelerator]
    assert low <= shape.price_per_gpu_hour <= high, shape.price_per_gpu_hour


@pytest.mark.parametrize("key", sorted(KNOWN_GPU_COUNTS), ids=lambda k: f"{k[0]}:{k[1]}")
def test_known_family_gpu_counts(key):
    assert catalog.shape(*key).gpu_count == KNOWN_GPU_COUNTS[key]


@pytest.mark.parametrize("key", sorted(KNOWN_HOST_SIZES), ids=lambda k: f"{k[0]}:{k[1]}")
def test_known_host_sizes(key):
    s = catalog.shape(*key)
    assert (s.vcpus, s.memory_gib) == KNOWN_HOST_SIZES[key]


def test_shapes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHAPES[0].price_per_hour = 0.0  # type: ignore[misc]


def test_names_are_unique_per_cloud():
    for cloud in CLOUDS:
        counts = Counter(s.name for s in SHAPES if s.cloud == cloud)
        assert [n for n, c in counts.items() if c > 1] == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_accelerators_sold_per_cloud_match_the_expected_table(cloud):
    assert catalog.accelerators(cloud) == EXPECTED_ACCELERATORS[cloud]


def test_every_accelerator_is_sold_somewhere_and_every_key_matches_its_name():
    sold = {s.accelerator for s in SHAPES}
    assert sold == set(ACCELERATORS)
    for key, acc in ACCELERATORS.items():
        assert key == acc.name
        assert acc.gpu_memory_gib > 0
        assert acc.bf16_dense_tflops >= 0
        assert acc.description


def test_datasheet_figures_for_the_mfu_denominator():
    assert ACCELERATORS["h100"].bf16_dense_tflops == 989.0
    assert ACCELERATORS["a100-80gb"].bf16_dense_tflops == 312.0
    assert ACCELERATORS["a100-40gb"].bf16_dense_tflops == 312.0
    assert ACCELERATORS["t4"].bf16_dense_tflops == 0.0
    assert ACCELERATORS["h100"].gpu_memory_gib == 80
    assert ACCELERATORS["h200"].gpu_memory_gib == 141


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_sells_some_sizes_in_its_price_region(cloud):
    in_price_region = [s for s in catalog.shapes(cloud) if PRICE_REGION[cloud] in s.regions]
    assert {s.accelerator for s in in_price_region} == set(EXPECTED_ACCELERATORS[cloud])


@pytest.mark.parametrize("cloud", CLOUDS)
def test_per_gpu_price_ordering(cloud):
    cheapest = {
        acc: min(s.price_per_gpu_hour for s in catalog.shapes(cloud, acc))
        for acc in catalog.accelerators(cloud)
    }
    tiers = [
        [a for a in ("h200", "h100") if a in cheapest],
        [a for a in ("a100-80gb", "a100-40gb") if a in cheapest],
        [a for a in ("l4",) if a in cheapest],
        [a for a in ("t4",) if a in cheapest],
    ]
    tiers = [t for t in tiers if t]
    for upper, lower in itertools.pairwise(tiers):
        assert min(cheapest[a] for a in upper) > max(cheapest[a] for a in lower), (upper, lower)
    assert cheapest["a100-80gb"] > cheapest["a100-40gb"]


def test_shapes_filter_by_accelerator():
    h100 = catalog.shapes("aws", "h100")
    assert [s.name for s in h100] == ["p5.48xlarge"]
    assert all(s.cloud == "gcp" and s.accelerator == "l4" for s in catalog.shapes("gcp", "l4"))
    assert catalog.shapes("azure", "l4") == ()


def test_shape_lookup_and_error_lists_valid_names():
    assert catalog.shape("aws", "p5.48xlarge").accelerator == "h100"
    with pytest.raises(KeyError) as err:
        catalog.shape("gcp", "p5.48xlarge")
    message = str(err.value)
    assert "p5.48xlarge" in message
    for s in catalog.shapes("gcp"):
        assert s.name in message
    assert "Standard_ND96isr_H100_v5" not in message


def test_unknown_cloud_or_accelerator_is_a_key_error_naming_the_valid_ones():
    with pytest.raises(KeyError, match="aws, gcp, azure"):
        catalog.shapes("oci")
    with pytest.raises(KeyError, match="a100-80gb"):
        catalog.shapes("aws", "b200")


@pytest.mark.parametrize("cloud", CLOUDS)
def test_regions_and_zones_are_well_formed(cloud):
    names = catalog.regions(cloud)
    assert list(names) == sorted(names)
    assert len(names) >= 12
    for region in names:
        assert REGION_PATTERN[cloud].match(region), region
        zs = catalog.zones(cloud, region)
        assert len(zs) == len(set(zs)), region
        for zone in zs:
            match = ZONE_PATTERN[cloud].match(zone)
            assert match, zone
            if cloud != "azure":
                assert match.group("region") == region, zone
        if cloud == "azure":
            assert zs in ((), ("1", "2", "3")), region
        else:
            assert len(zs) >= 2, region


def test_zone_facts_that_subnet_planning_depends_on():
    assert len(catalog.zones("aws", "us-east-1")) == 6
    assert len(catalog.zones("aws", "us-west-1")) == 2
    assert catalog.zones("gcp", "us-central1") == (
        "us-central1-a",
        "us-central1-b",
        "us-central1-c",
        "us-central1-f",
    )
    assert catalog.zones("azure", "eastus") == ("1", "2", "3")
    assert any(not catalog.zones("azure", r) for r in catalog.regions("azure"))
    with pytest.raises(KeyError, match="us-east-1"):
        catalog.zones("aws", "us-east-9")


def test_nat_gateway_prices_are_hourly_not_per_gb():
    for cloud in CLOUDS:
        assert 0.01 <= NAT_GATEWAY_PRICE_PER_HOUR[cloud] <= 0.1


def test_gcp_attached_accelerator_convention():
    for s in catalog.shapes("gcp", "t4"):
        parts = catalog.attached_accelerator(s.name)
        assert parts is not None, s.name
        machine, count, kind = parts
        assert machine.startswith("n1-standard-")
        assert count == s.gpu_count
        assert kind == "nvidia-tesla-t4"
    assert catalog.attached_accelerator("a3-highgpu-8g") is None
    for s in SHAPES:
        if s.cloud != "gcp":
            assert "+" not in s.name

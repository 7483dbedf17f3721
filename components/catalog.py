"""Accelerator catalog: the GPU models, and the sizes each cloud sells them in.

The stack spec, the GPU pools, the endpoints and the cost roll-up of ``gpuyard plan``
all validate against this module. It is plain data: no Pulumi import, no network.

Prices are on-demand Linux list prices in USD per hour, in ``PRICE_REGION[cloud]``:

- aws, us-east-1: every figure (G and P families, post-June-2025 P4/P5 reduction
  included) was checked on 2026-11-23 against the instances.vantage.sh extract in
  github.com/tsaol/aws-gpu, data/{p5,p5en,p4d,p4de,g6e,g6,g5,g4dn}_instances.js
  ("Last updated: 2026-08-26"); p5en.48xlarge also matches the $63.296/h us-east-1
  quote of 2026-08-06 in dstack PR #4110. GPU count, vCPUs and memory come from the
  same files (g4dn.12xlarge also cross-checked in the SkyPilot catalog snapshot
  skypilot-org/skypilot-catalog, catalogs/v8/aws/vms.csv).
- gcp, us-central1: the machine-type price is host (vCPU + memory) plus the attached
  GPUs at Compute Engine's GPU list price. The A2/A3 host figures and the A2/A3 shape
  sizes were checked against the SkyPilot snapshot catalogs/v8/gcp/vms.csv (undated
  snapshot, read 2026-11-23). The per-GPU rates, the a3-highgpu-8g total, the G2 totals
  and the N1 host rate were NOT re-checked against a dated source this session: they
  are the compiler's figures, kept as estimates (see the per-entry comments).
- azure, eastus: Azure retail (pay-as-you-go, Linux) list prices. Sizes (vCPUs, GiB,
  GPUs) were checked against Microsoft's docs (MicrosoftDocs/azure-docs size includes)
  and the AKS VM-size table in microsoft/aspire (AksNodeVmSizes.cs); the prices were
  NOT re-checked against a dated source this session and are estimates.

``PRICES_AS_OF`` is the date this table was compiled and checked (2026-11-23); the
source dates above are older than that. An entry whose price could not be confirmed
from a dated source carries a comment that says so; treat those as estimates for
planning, never for billing.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOUDS: tuple[str, ...] = ("aws", "gcp", "azure")
"""The clouds gpuyard targets, in the order the CLI lists them."""

PRICES_AS_OF = "2026-11-23"
"""Date the price table was compiled; see the module docstring for each cloud's source."""

PRICE_REGION: dict[str, str] = {"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus"}
"""Region whose list price ``Shape.price_per_hour`` quotes, per cloud."""


@dataclass(frozen=True)
class Accelerator:
    """One GPU model, independent of the cloud that rents it out."""

    name: str
    """Catalog key, lower-case and cloud-neutral: ``"h100"``, ``"a100-80gb"``, ``"t4"``."""

    gpu_memory_gib: int
    """Memory of one GPU as NVIDIA's datasheet states it (GB, rounded to whole units)."""

    bf16_dense_tflops: float
    """Dense (no structured sparsity) bf16 tensor peak of one GPU, from the vendor
    datasheet; 0.0 where the GPU has no bf16 tensor-core support (MFU is then undefined)."""

    description: str
    """One line a human reads in ``gpuyard plan`` output."""


@dataclass(frozen=True)
class Shape:
    """One purchasable instance type / machine type / VM size with its GPUs.

    ``name`` is the cloud's own size name, except for GPUs that GCP sells as attachable
    accelerators (T4 on N1): there the shape is the pair, written
    ``"<machine-type>+<count>x<accelerator-type>"``, e.g.
    ``"n1-standard-8+1xnvidia-tesla-t4"``. ``attached_accelerator()`` splits it back into
    the machine type and the ``guestAccelerators`` entry that a node pool needs, and the
    price is the sum of both list prices.
    """

    cloud: str
    """One of ``CLOUDS``."""

    name: str
    """The cloud's size name (``"p5.48xlarge"``, ``"a3-highgpu-8g"``,
    ``"Standard_ND96isr_H100_v5"``), or the GCP attachable-GPU pair described above."""

    accelerator: str
    """Key into ``ACCELERATORS``."""

    gpu_count: int
    """GPUs in one instance of this size."""

    vcpus: int
    """vCPUs of one instance."""

    memory_gib: float
    """Host memory of one instance, GiB."""

    price_per_hour: float
    """On-demand Linux list price, USD per hour, in ``PRICE_REGION[cloud]``."""

    spot: bool
    """Whether spot / Spot VM / Azure Spot capacity is sold for this size."""

    regions: frozenset[str]
    """Regions that offer this size: a verified, representative subset, not exhaustive."""

    @property
    def total_gpu_memory_gib(self) -> int:
        """GPU memory of the whole instance, GiB."""
        return self.gpu_count * ACCELERATORS[self.accelerator].gpu_memory_gib

    @property
    def price_per_gpu_hour(self) -> float:
        """``price_per_hour`` divided by ``gpu_count``."""
        return self.price_per_hour / self.gpu_count


# Memory and dense bf16 figures are NVIDIA datasheet values (with-sparsity figure / 2:
# H100 SXM 1979, H200 1979, H100 NVL 1671, A100 624, L40S 733 (362.05 dense is quoted),
# L4 242, A10 250). They were not re-read from the NVIDIA PDFs this session: the searches
# only surfaced third-party spec pages, which disagree with each other.
ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("h200", 141, 989.0, "NVIDIA H200 SXM 141 GB HBM3e"),
        Accelerator("h100", 80, 989.0, "NVIDIA H100 SXM5 80 GB HBM3"),
        # Azure's NC H100 v5 carries the PCIe NVL part, not SXM: less memory bandwidth and
        # a lower clock, so it must not share the h100 key or MFU would be overstated.
        Accelerator("h100-nvl", 94, 835.0, "NVIDIA H100 NVL 94 GB HBM3 (PCIe)"),
        Accelerator("a100-80gb", 80, 312.0, "NVIDIA A100 80 GB HBM2e"),
        Accelerator("a100-40gb", 40, 312.0, "NVIDIA A100 40 GB HBM2"),
        Accelerator("l40s", 48, 362.05, "NVIDIA L40S 48 GB GDDR6"),
        Accelerator("l4", 24, 121.0, "NVIDIA L4 24 GB GDDR6"),
        # NVIDIA publishes no A10G datasheet; this is the A10's dense bf16 figure reused
        # (no AWS or NVIDIA source for the A10G's own figure was found this session).
        # Treat MFU on a10g as approximate.
        Accelerator("a10g", 24, 125.0, "NVIDIA A10G 24 GB GDDR6 (AWS-only A10 variant)"),
        Accelerator("a10", 24, 125.0, "NVIDIA A10 24 GB GDDR6"),
        # Turing has fp16 tensor cores (65 TFLOPS) but no bf16: 0.0 keeps MFU honest.
        Accelerator("t4", 16, 0.0, "NVIDIA T4 16 GB GDDR6 (no bf16 tensor cores)"),
    )
}
"""Every GPU model the catalog knows, keyed by ``Accelerator.name``."""


# Zone letters on AWS are mapped per account; the tuples give the names most accounts see.
# Checked 2026-11-23 against AZ IDs / zone names in the SkyPilot catalog snapshots
# (catalogs/v8/aws/vms.csv, catalogs/v8/gcp/vms.csv): us-east-1 use1-az1..az6,
# us-west-1 usw1-az1 and az3 only, us-central1 a/b/c/f, europe-west4 a/b/c,
# us-east1 b/c/d, europe-west1 b/c/d, us-east4 a/b/c. The other regions' zone lists, and
# which Azure regions have availability zones, were not re-checked this session.
REGIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "aws": {
        "us-east-1": tuple(f"us-east-1{z}" for z in "abcdef"),
        "us-east-2": ("us-east-2a", "us-east-2b", "us-east-2c"),
        # us-west-1 has three AZs but exposes only two to any one account (usw1-az1, az3).
        "us-west-1": ("us-west-1a", "us-west-1c"),
        "us-west-2": ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"),
        # ca-central-1 has no "c": the third AZ arrived later as "d".
        "ca-central-1": ("ca-central-1a", "ca-central-1b", "ca-central-1d"),
        "sa-east-1": ("sa-east-1a", "sa-east-1b", "sa-east-1c"),
        "eu-west-1": ("eu-west-1a", "eu-west-1b", "eu-west-1c"),
        "eu-west-2": ("eu-west-2a", "eu-west-2b", "eu-west-2c"),
        "eu-west-3": ("eu-west-3a", "eu-west-3b", "eu-west-3c"),
        "eu-central-1": ("eu-central-1a", "eu-central-1b", "eu-central-1c"),
        "eu-north-1": ("eu-north-1a", "eu-north-1b", "eu-north-1c"),
        # ap-northeast-1b is closed to accounts created after 2013; they see a, c, d.
        "ap-northeast-1": ("ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"),
        "ap-northeast-2": tuple(f"ap-northeast-2{z}" for z in "abcd"),
        "ap-south-1": ("ap-south-1a", "ap-south-1b", "ap-south-1c"),
        "ap-southeast-1": ("ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"),
        "ap-southeast-2": ("ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"),
    },
    "gcp": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "us-east1": ("us-east1-b", "us-east1-c", "us-east1-d"),
        "us-east4": ("us-east4-a", "us-east4-b", "us-east4-c"),
        "us-east5": ("us-east5-a", "us-east5-b", "us-east5-c"),
        "us-south1": ("us-south1-a", "us-south1-b", "us-south1-c"),
        "us-west1": ("us-west1-a", "us-west1-b", "us-west1-c"),
        "us-west2": ("us-west2-a", "us-west2-b", "us-west2-c"),
        "us-west3": ("us-west3-a", "us-west3-b", "us-west3-c"),
        "us-west4": ("us-west4-a", "us-west4-b", "us-west4-c"),
        "northamerica-northeast1": tuple(f"northamerica-northeast1-{z}" for z in "abc"),
        "southamerica-east1": tuple(f"southamerica-east1-{z}" for z in "abc"),
        "europe-west1": ("europe-west1-b", "europe-west1-c", "europe-west1-d"),
        "europe-west2": ("europe-west2-a", "europe-west2-b", "europe-west2-c"),
        "europe-west3": ("europe-west3-a", "europe-west3-b", "europe-west3-c"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
        "europe-north1": ("europe-north1-a", "europe-north1-b", "europe-north1-c"),
        "asia-east1": ("asia-east1-a", "asia-east1-b", "asia-east1-c"),
        "asia-northeast1": ("asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"),
        "asia-south1": ("asia-south1-a", "asia-south1-b", "asia-south1-c"),
        "asia-southeast1": ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
        "australia-southeast1": tuple(f"australia-southeast1-{z}" for z in "abc"),
    },
    # Azure zones are logical numbers per subscription; regions without AZ support get ().
    "azure": {
        "eastus": ("1", "2", "3"),
        "eastus2": ("1", "2", "3"),
        "centralus": ("1", "2", "3"),
        "southcentralus": ("1", "2", "3"),
        "westus2": ("1", "2", "3"),
        "westus3": ("1", "2", "3"),
        "northcentralus": (),
        "westcentralus": (),
        "canadacentral": ("1", "2", "3"),
        "northeurope": ("1", "2", "3"),
        "westeurope": ("1", "2", "3"),
        "uksouth": ("1", "2", "3"),
        "ukwest": (),
        "francecentral": ("1", "2", "3"),
        "germanywestcentral": ("1", "2", "3"),
        "swedencentral": ("1", "2", "3"),
        "japaneast": ("1", "2", "3"),
        "koreacentral": ("1", "2", "3"),
        "southeastasia": ("1", "2", "3"),
        "australiaeast": ("1", "2", "3"),
        "centralindia": ("1", "2", "3"),
    },
}
"""cloud -> region -> availability zones, for the main regions of each cloud."""


NAT_GATEWAY_PRICE_PER_HOUR: dict[str, float] = {
    # AWS NAT gateway, us-east-1: not re-checked against a dated source this session.
    "aws": 0.045,
    # Cloud NAT bills $0.0014 per VM-hour, capped at $0.044 per gateway-hour from 32 VMs
    # up; a GPU cluster's node count varies, so the cap is the conservative figure.
    # Confirmed on cloud.google.com/nat/pricing (read 2026-11-23), which also bills
    # $0.005/h per NAT IP address, not included here.
    "gcp": 0.044,
    # Azure NAT gateway: not re-checked against a dated source this session.
    "azure": 0.045,
}
"""Hourly charge of one NAT gateway in ``PRICE_REGION``. Each cloud also bills data
processed through the gateway per GB (AWS, GCP and Azure: $0.045/GB); that is usage, not
hourly, so the plan's cost roll-up leaves it out and says so."""


_AWS_G4DN = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
    }
)
_AWS_G5 = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "ca-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-central-1",
        "ap-northeast-1",
        "ap-northeast-2",
    }
)
_AWS_G6 = frozenset({"us-east-1", "us-east-2", "us-west-2", "eu-central-1", "eu-west-2"})
_AWS_G6E = frozenset({"us-east-1", "us-east-2", "us-west-2"})
_AWS_P4D = frozenset({"us-east-1", "us-east-2", "us-west-2", "eu-central-1", "eu-west-1"})
_AWS_P4DE = frozenset({"us-east-1", "us-west-2"})
_AWS_P5 = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "eu-north-1",
        "eu-west-2",
        "ap-northeast-1",
        "ap-south-1",
        "ap-southeast-2",
    }
)
_AWS_P5EN = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
    }
)


def _aws(
    name: str, acc: str, gpus: int, vcpus: int, mem: float, price: float, regions: frozenset[str]
) -> Shape:
    return Shape("aws", name, acc, gpus, vcpus, mem, price, True, regions)


_AWS_SHAPES: tuple[Shape, ...] = (
    # All AWS rows: price, GPUs, vCPUs, GiB and regions checked against the vantage
    # extract dated 2026-08-26 (see the module docstring).
    # Pre-June-2025 list was $98.32; AWS cut P5 on-demand by ~44% to $55.04.
    _aws("p5.48xlarge", "h100", 8, 192, 2048, 55.04, _AWS_P5),
    # $84.80 before the cut; $63.296 in the 2026-08-26 extract and the 2026-08-06 quote.
    _aws("p5en.48xlarge", "h200", 8, 192, 2048, 63.296, _AWS_P5EN),
    # Post-cut figures (pre-cut: p4d $32.7726, p4de $40.96575), 2026-08-26 extract.
    _aws("p4d.24xlarge", "a100-40gb", 8, 96, 1152, 21.957642, _AWS_P4D),
    _aws("p4de.24xlarge", "a100-80gb", 8, 96, 1152, 27.44705, _AWS_P4DE),
    _aws("g6e.xlarge", "l40s", 1, 4, 32, 1.861, _AWS_G6E),
    _aws("g6e.2xlarge", "l40s", 1, 8, 64, 2.24208, _AWS_G6E),
    _aws("g6e.4xlarge", "l40s", 1, 16, 128, 3.00424, _AWS_G6E),
    _aws("g6e.8xlarge", "l40s", 1, 32, 256, 4.52856, _AWS_G6E),
    _aws("g6e.16xlarge", "l40s", 1, 64, 512, 7.57719, _AWS_G6E),
    _aws("g6e.12xlarge", "l40s", 4, 48, 384, 10.49264, _AWS_G6E),
    _aws("g6e.24xlarge", "l40s", 4, 96, 768, 15.06559, _AWS_G6E),
    _aws("g6e.48xlarge", "l40s", 8, 192, 1536, 30.13118, _AWS_G6E),
    _aws("g6.xlarge", "l4", 1, 4, 16, 0.8048, _AWS_G6),
    _aws("g6.2xlarge", "l4", 1, 8, 32, 0.9776, _AWS_G6),
    _aws("g6.4xlarge", "l4", 1, 16, 64, 1.3232, _AWS_G6),
    _aws("g6.8xlarge", "l4", 1, 32, 128, 2.0144, _AWS_G6),
    _aws("g6.16xlarge", "l4", 1, 64, 256, 3.3968, _AWS_G6),
    _aws("g6.12xlarge", "l4", 4, 48, 192, 4.6016, _AWS_G6),
    _aws("g6.24xlarge", "l4", 4, 96, 384, 6.6752, _AWS_G6),
    _aws("g6.48xlarge", "l4", 8, 192, 768, 13.3504, _AWS_G6),
    _aws("g5.xlarge", "a10g", 1, 4, 16, 1.006, _AWS_G5),
    _aws("g5.2xlarge", "a10g", 1, 8, 32, 1.212, _AWS_G5),
    _aws("g5.4xlarge", "a10g", 1, 16, 64, 1.624, _AWS_G5),
    _aws("g5.8xlarge", "a10g", 1, 32, 128, 2.448, _AWS_G5),
    _aws("g5.16xlarge", "a10g", 1, 64, 256, 4.096, _AWS_G5),
    _aws("g5.12xlarge", "a10g", 4, 48, 192, 5.672, _AWS_G5),
    _aws("g5.24xlarge", "a10g", 4, 96, 384, 8.144, _AWS_G5),
    _aws("g5.48xlarge", "a10g", 8, 192, 768, 16.288, _AWS_G5),
    _aws("g4dn.xlarge", "t4", 1, 4, 16, 0.526, _AWS_G4DN),
    _aws("g4dn.2xlarge", "t4", 1, 8, 32, 0.752, _AWS_G4DN),
    _aws("g4dn.4xlarge", "t4", 1, 16, 64, 1.204, _AWS_G4DN),
    _aws("g4dn.8xlarge", "t4", 1, 32, 128, 2.176, _AWS_G4DN),
    _aws("g4dn.16xlarge", "t4", 1, 64, 256, 4.352, _AWS_G4DN),
    _aws("g4dn.12xlarge", "t4", 4, 48, 192, 3.912, _AWS_G4DN),
    _aws("g4dn.metal", "t4", 8, 96, 384, 7.824, _AWS_G4DN),
)


# GCP: machine price = host (snapshot) + GPUs; these are the us-central1 GPU list prices.
# The host halves (a2-highgpu 0.73948/1.47895/2.95791/5.91582, a2-ultragpu 1.09962/
# 2.19924/4.39849/8.79698, a3-highgpu 1.18251/2.36502/4.73003/9.46006) match the SkyPilot
# snapshot catalogs/v8/gcp/vms.csv. The GPU rates below were not found in a dated source
# this session (the snapshot's per-GPU rows were not reached): estimates.
_GCP_A100_40 = 2.933908
_GCP_A100_80 = 3.969178  # a2-ultragpu-1g list $5.06879789 minus its $1.09962 host
_GCP_T4 = 0.35
_GCP_A2_HIGH = frozenset(
    {
        "us-central1",
        "us-east1",
        "us-west1",
        "europe-west4",
        "asia-northeast1",
        "asia-southeast1",
    }
)
_GCP_A2_ULTRA = frozenset(
    {
        "us-central1",
        "us-east4",
        "us-east5",
        "europe-west4",
        "asia-southeast1",
    }
)
_GCP_A3_HIGH = frozenset({"us-central1", "us-east4", "us-west1", "europe-west4", "asia-southeast1"})
_GCP_A3_MEGA = frozenset({"us-central1", "us-east4"})
_GCP_G2 = frozenset(
    {
        "us-central1",
        "us-east1",
        "us-east4",
        "us-west1",
        "europe-west4",
        "asia-southeast1",
    }
)
_GCP_T4_REGIONS = frozenset(
    {
        "us-central1",
        "us-east1",
        "us-west1",
        "europe-west4",
        "asia-northeast1",
        "asia-southeast1",
    }
)
# a3-highgpu-8g lists at $88.253718 (total not re-checked this session: estimate; its
# $9.46006 host half is confirmed); the smaller A3 sizes split the same GPU rate
# ((88.253718 - 9.46006 host) / 8 = 9.849207 per H100) over their snapshot host price.
_GCP_H100 = (88.253718 - 9.46006) / 8


def _gcp(
    name: str, acc: str, gpus: int, vcpus: int, mem: float, price: float, regions: frozenset[str]
) -> Shape:
    return Shape("gcp", name, acc, gpus, vcpus, mem, round(price, 6), True, regions)


_GCP_SHAPES: tuple[Shape, ...] = (
    _gcp("a3-highgpu-1g", "h100", 1, 26, 234, 1.18251 + _GCP_H100, _GCP_A3_HIGH),
    _gcp("a3-highgpu-2g", "h100", 2, 52, 468, 2.36502 + 2 * _GCP_H100, _GCP_A3_HIGH),
    _gcp("a3-highgpu-4g", "h100", 4, 104, 936, 4.73003 + 4 * _GCP_H100, _GCP_A3_HIGH),
    _gcp("a3-highgpu-8g", "h100", 8, 208, 1872, 88.253718, _GCP_A3_HIGH),
    # The A3 Mega list price was not found in a dated source this session; this is the
    # a3-highgpu-8g price as an estimate. (The SkyPilot v8 snapshot lists the same host
    # price, $9.46006 in us-central1, for a3-megagpu-8g and a3-highgpu-8g; the Mega GPU
    # rate is the unverified part.)
    _gcp("a3-megagpu-8g", "h100", 8, 208, 1872, 88.253718, _GCP_A3_MEGA),
    _gcp("a2-ultragpu-1g", "a100-80gb", 1, 12, 170, 1.09962 + _GCP_A100_80, _GCP_A2_ULTRA),
    _gcp("a2-ultragpu-2g", "a100-80gb", 2, 24, 340, 2.19924 + 2 * _GCP_A100_80, _GCP_A2_ULTRA),
    _gcp("a2-ultragpu-4g", "a100-80gb", 4, 48, 680, 4.39849 + 4 * _GCP_A100_80, _GCP_A2_ULTRA),
    _gcp("a2-ultragpu-8g", "a100-80gb", 8, 96, 1360, 8.79698 + 8 * _GCP_A100_80, _GCP_A2_ULTRA),
    _gcp("a2-highgpu-1g", "a100-40gb", 1, 12, 85, 0.73948 + _GCP_A100_40, _GCP_A2_HIGH),
    _gcp("a2-highgpu-2g", "a100-40gb", 2, 24, 170, 1.47895 + 2 * _GCP_A100_40, _GCP_A2_HIGH),
    _gcp("a2-highgpu-4g", "a100-40gb", 4, 48, 340, 2.95791 + 4 * _GCP_A100_40, _GCP_A2_HIGH),
    _gcp("a2-highgpu-8g", "a100-40gb", 8, 96, 680, 5.91582 + 8 * _GCP_A100_40, _GCP_A2_HIGH),
    # G2 prices are whole-machine list prices (the L4 is bundled, not billed apart).
    # Sizes are GCP's documented G2 shapes; prices not re-checked this session: estimates.
    _gcp("g2-standard-4", "l4", 1, 4, 16, 0.70683228, _GCP_G2),
    _gcp("g2-standard-8", "l4", 1, 8, 32, 0.85362431, _GCP_G2),
    _gcp("g2-standard-12", "l4", 1, 12, 48, 1.00041635, _GCP_G2),
    _gcp("g2-standard-16", "l4", 1, 16, 64, 1.14720838, _GCP_G2),
    _gcp("g2-standard-32", "l4", 1, 32, 128, 1.73437653, _GCP_G2),
    _gcp("g2-standard-24", "l4", 2, 24, 96, 2.0008327, _GCP_G2),
    _gcp("g2-standard-48", "l4", 4, 48, 192, 4.00166539, _GCP_G2),
    _gcp("g2-standard-96", "l4", 8, 96, 384, 8.00333078, _GCP_G2),
    # n1-standard-N lists at $0.0474995 per vCPU-equivalent ($0.189999 for 4 vCPUs);
    # N1 host and T4 rates not re-checked this session: estimates.
    _gcp("n1-standard-4+1xnvidia-tesla-t4", "t4", 1, 4, 15, 0.189999 + _GCP_T4, _GCP_T4_REGIONS),
    _gcp("n1-standard-8+1xnvidia-tesla-t4", "t4", 1, 8, 30, 0.379998 + _GCP_T4, _GCP_T4_REGIONS),
    _gcp(
        "n1-standard-16+2xnvidia-tesla-t4", "t4", 2, 16, 60, 0.759996 + 2 * _GCP_T4, _GCP_T4_REGIONS
    ),
    _gcp(
        "n1-standard-32+4xnvidia-tesla-t4",
        "t4",
        4,
        32,
        120,
        1.519992 + 4 * _GCP_T4,
        _GCP_T4_REGIONS,
    ),
)


_AZ_ND_H100 = frozenset({"eastus", "southcentralus", "westus3", "swedencentral"})
_AZ_NC_H100 = frozenset({"eastus", "eastus2", "southcentralus"})
_AZ_ND_A100_80 = frozenset({"eastus", "westus2", "westeurope"})
_AZ_ND_A100_40 = frozenset({"eastus", "westus2", "southcentralus"})
_AZ_NC_A100 = frozenset({"eastus", "southcentralus", "westus2", "westeurope"})
_AZ_NV_A10 = frozenset({"eastus", "southcentralus", "westus2", "westeurope"})
_AZ_NC_T4 = frozenset(
    {
        "eastus",
        "westus2",
        "southcentralus",
        "westeurope",
        "northeurope",
        "japaneast",
        "southeastasia",
    }
)


def _azure(
    name: str, acc: str, gpus: int, vcpus: int, mem: float, price: float, regions: frozenset[str]
) -> Shape:
    # spot=True for every size here was not checked size by size this session; ND-series
    # Spot capacity is scarce in practice even where the size accepts Spot priority.
    return Shape("azure", name, acc, gpus, vcpus, mem, price, True, regions)


# Azure has no L4 or L40S VM size and no A10G (that part is AWS-only); its A10 sizes use
# the full A10, hence the separate "a10" key.
# vCPUs / GiB / GPU count of every size below match Microsoft's size docs and the AKS
# size table in microsoft/aspire (AksNodeVmSizes.cs). ND96amsr_A100_v4: the docs say
# 1900 GiB, the Aspire table (from the SKU API) says 1800 GB; 1900 is kept.
# PRICES: none of the eastus prices below was re-checked against a dated source this
# session; they are the compiler's pay-as-you-go figures, i.e. estimates.
_AZURE_SHAPES: tuple[Shape, ...] = (
    _azure("Standard_ND96isr_H100_v5", "h100", 8, 96, 1900, 98.32, _AZ_ND_H100),
    _azure("Standard_NC40ads_H100_v5", "h100-nvl", 1, 40, 320, 6.98, _AZ_NC_H100),
    _azure("Standard_NC80adis_H100_v5", "h100-nvl", 2, 80, 640, 13.96, _AZ_NC_H100),
    _azure("Standard_ND96amsr_A100_v4", "a100-80gb", 8, 96, 1900, 32.77, _AZ_ND_A100_80),
    _azure("Standard_ND96asr_v4", "a100-40gb", 8, 96, 900, 27.197, _AZ_ND_A100_40),
    _azure("Standard_NC24ads_A100_v4", "a100-80gb", 1, 24, 220, 3.673, _AZ_NC_A100),
    _azure("Standard_NC48ads_A100_v4", "a100-80gb", 2, 48, 440, 7.346, _AZ_NC_A100),
    _azure("Standard_NC96ads_A100_v4", "a100-80gb", 4, 96, 880, 14.692, _AZ_NC_A100),
    _azure("Standard_NV36ads_A10_v5", "a10", 1, 36, 440, 3.20, _AZ_NV_A10),
    _azure("Standard_NV72ads_A10_v5", "a10", 2, 72, 880, 6.52, _AZ_NV_A10),
    _azure("Standard_NC4as_T4_v3", "t4", 1, 4, 28, 0.526, _AZ_NC_T4),
    _azure("Standard_NC8as_T4_v3", "t4", 1, 8, 56, 0.752, _AZ_NC_T4),
    _azure("Standard_NC16as_T4_v3", "t4", 1, 16, 110, 1.204, _AZ_NC_T4),
    _azure("Standard_NC64as_T4_v3", "t4", 4, 64, 440, 4.352, _AZ_NC_T4),
)

SHAPES: tuple[Shape, ...] = _AWS_SHAPES + _GCP_SHAPES + _AZURE_SHAPES
"""Every size the catalog knows, all clouds."""


def _check_cloud(cloud: str) -> None:
    if cloud not in CLOUDS:
        raise KeyError(f"unknown cloud {cloud!r}; valid clouds: {', '.join(CLOUDS)}")


def shapes(cloud: str, accelerator: str | None = None) -> tuple[Shape, ...]:
    """Sizes sold on ``cloud``, optionally only those carrying ``accelerator``."""
    _check_cloud(cloud)
    if accelerator is not None and accelerator not in ACCELERATORS:
        raise KeyError(
            f"unknown accelerator {accelerator!r}; valid: {', '.join(sorted(ACCELERATORS))}"
        )
    return tuple(
        s
        for s in SHAPES
        if s.cloud == cloud and (accelerator is None or s.accelerator == accelerator)
    )


def shape(cloud: str, name: str) -> Shape:
    """The size called ``name`` on ``cloud``; ``KeyError`` listing valid names otherwise."""
    candidates = shapes(cloud)
    for s in candidates:
        if s.name == name:
            return s
    valid = ", ".join(sorted(s.name for s in candidates))
    raise KeyError(f"unknown {cloud} size {name!r}; valid sizes: {valid}")


def accelerators(cloud: str) -> tuple[str, ...]:
    """Names of the accelerators sold on ``cloud``, sorted."""
    return tuple(sorted({s.accelerator for s in shapes(cloud)}))


def regions(cloud: str) -> tuple[str, ...]:
    """Region names of ``cloud`` known to the catalog, sorted."""
    _check_cloud(cloud)
    return tuple(sorted(REGIONS[cloud]))


def zones(cloud: str, region: str) -> tuple[str, ...]:
    """Availability zones of ``region`` on ``cloud``; empty where the region has none."""
    _check_cloud(cloud)
    try:
        return REGIONS[cloud][region]
    except KeyError:
        raise KeyError(
            f"unknown {cloud} region {region!r}; valid regions: {', '.join(regions(cloud))}"
        ) from None


def attached_accelerator(name: str) -> tuple[str, int, str] | None:
    """Split a GCP attachable-GPU shape name into (machine type, GPU count, GPU type).

    ``"n1-standard-8+1xnvidia-tesla-t4"`` gives ``("n1-standard-8", 1, "nvidia-tesla-t4")``;
    a size with built-in GPUs (no ``+``) gives ``None``.
    """
    if "+" not in name:
        return None
    machine, _, gpus = name.partition("+")
    count, _, kind = gpus.partition("x")
    return machine, int(count), kind

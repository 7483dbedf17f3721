"""The typed stack spec: the only place stack configuration is read and checked.

A stack file (``stacks/Pulumi.<env>-<cloud>.yaml``) holds ``gpuyard:<key>`` entries;
``load`` turns them into a frozen :class:`PlatformSpec` or raises one :class:`SpecError`
that names the full key path, the bad value and what would be accepted. Nothing is
declared before the spec is valid.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components import catalog
from components.errors import UserError

NAMESPACE = "gpuyard"
PRODUCTION = "prod"
FLOW_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365)
"""Retention periods CloudWatch Logs accepts that Azure flow logs (at most 365) allow too."""
MIN_SUBNET_PREFIX = 24
"""Smallest subnet gpuyard lays out: a /24 leaves room for GPU nodes and their pods."""
PRIVATE_RANGES = tuple(
    ipaddress.IPv4Network(r)
    for r in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
"""RFC 1918 ranges, plus RFC 6598 shared space that clusters commonly give pods."""
MAX_TAGS = 40
"""Tags a stack may set: every cloud allows 50 per resource, and gpuyard adds its own."""
MAX_ZONES = 6
"""Most zones a region offers (us-east-1 has six); each gets a fixed private and public block."""
SUBNET_BLOCKS = 16
"""Equal blocks the network range is cut into: 6 private, 6 public, 4 regional."""


class SpecError(pulumi.RunError, UserError, ValueError):
    """A stack file is invalid; the message names the key, the value and what is accepted.

    A ``RunError``, so ``pulumi up`` prints the message alone, without a traceback.
    """


class _Spec(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )


class NetworkSpec(_Spec):
    """The private network every other resource lives in."""

    cidr: ipaddress.IPv4Network = Field(default=ipaddress.IPv4Network("10.0.0.0/16"), strict=False)
    """Address range of the network (RFC 1918); split into one private and one public
    subnet per zone."""
    zones: tuple[str, ...] | int = 2
    """Zones to spread subnets over: a count (the region's first N zones) or zone names."""
    pods_cidr: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.64.0.0/14"), strict=False
    )
    """Range for Kubernetes pod addresses where the cluster uses secondary ranges (GKE)."""
    services_cidr: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.68.0.0/20"), strict=False
    )
    """Range for Kubernetes service addresses; must not overlap the network or pods."""
    flow_log_retention_days: int = 30
    """How long network flow logs are kept, for audits: one of FLOW_LOG_RETENTION_DAYS."""

    @field_validator("cidr", "pods_cidr", "services_cidr")
    @classmethod
    def _private(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not any(value.subnet_of(block) for block in PRIVATE_RANGES):
            raise ValueError(f"expected a range inside {', '.join(map(str, PRIVATE_RANGES))}")
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in FLOW_LOG_RETENTION_DAYS:
            accepted = ", ".join(map(str, FLOW_LOG_RETENTION_DAYS))
            raise ValueError(f"expected one of {accepted} (periods every cloud's flow logs accept)")
        return value

    @field_validator("zones")
    @classmethod
    def _zones_shape(cls, value: tuple[str, ...] | int) -> tuple[str, ...] | int:
        if isinstance(value, int) and not 1 <= value <= 6:
            raise ValueError("expected between 1 and 6 zones")
        if isinstance(value, tuple) and (not value or len(set(value)) != len(value)):
            raise ValueError("expected a non-empty list of zone names without repeats")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> NetworkSpec:
        ranges = {
            "cidr": self.cidr,
            "pods_cidr": self.pods_cidr,
            "services_cidr": self.services_cidr,
        }
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if ranges[a].overlaps(ranges[b]):
                    raise _KeyError(
                        f"network.{b}", str(ranges[b]), f"a range disjoint from {a} {ranges[a]}"
                    )
        return self


class StorageSpec(_Spec):
    """The bucket (container) that holds datasets, checkpoints and models."""

    versioning: bool = True
    """Keep previous versions of overwritten objects, so a bad checkpoint write can be undone."""
    checkpoint_version_retention_days: int = Field(default=30, ge=1, le=365)
    """Days after which a superseded (noncurrent) version of an object is deleted (Azure's
    soft-delete limit of 365 bounds it)."""
    access_log_retention_days: int = Field(default=90, ge=30, le=730)
    """Days the data-access audit logs are kept (Azure Log Analytics accepts 30 to 730)."""
    force_destroy: bool = False
    """Let ``pulumi destroy`` delete a bucket that still holds objects; never in production."""
    protect: bool | None = None
    """Protect the bucket from deletion by Pulumi; defaults to on in production stacks."""


PLAIN_KEY = re.compile(r"^[\w:/@+=-]+$")
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{1,15}$")
GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
TAG_KEY = {
    "aws": re.compile(r"^(?!aws:)[\w .:/=+\-@]{1,128}$", re.IGNORECASE),
    "gcp": re.compile(r"^[a-z][a-z0-9_-]{0,62}$"),
    "azure": re.compile(r"^[^<>%&\\?/]{1,128}$"),
}
TAG_VALUE = {
    "aws": re.compile(r"^[\w .:/=+\-@]{0,256}$"),
    "gcp": re.compile(r"^[a-z0-9_-]{0,63}$"),
    "azure": re.compile(r"^.{0,256}$"),
}
TAG_RULE = {
    "aws": "up to 128 letters, digits, spaces and _.:/=+-@, not starting with 'aws:'",
    "gcp": "lowercase letters, digits, _ and -, starting with a letter, at most 63 characters",
    "azure": "keys of 1-128 and values of up to 256 characters, without <>%&\\?/ in keys",
}


class PlatformSpec(_Spec):
    """Everything one stack declares: the cloud, where, and each part's settings."""

    cloud: Literal["aws", "gcp", "azure"]
    """Which cloud the stack deploys to."""
    region: str
    """The cloud's region, e.g. ``us-east-1``, ``us-central1``, ``eastus``."""
    environment: str
    """Environment name (``dev``, ``staging``, ``prod``); ``prod`` gets production defaults."""
    project: str | None = None
    """GCP project id that owns the resources; required on GCP, rejected elsewhere."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags (GCP: labels) put on every resource that takes them."""
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    """The private network."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """The object store."""

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not ENVIRONMENT.match(value):
            raise ValueError(
                "expected a lowercase name such as dev, staging or prod (2-16 of a-z, 0-9, -)"
            )
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not GCP_PROJECT.match(value):
            raise ValueError(
                "expected a GCP project id: 6-30 of a-z, 0-9, -, starting with a letter"
            )
        return value

    @property
    def production(self) -> bool:
        """Whether this is a production stack, which gets production defaults."""
        return self.environment == PRODUCTION

    @property
    def protect_stateful(self) -> bool:
        """Whether stateful resources are protected from deletion."""
        if self.storage.protect is None:
            return self.production
        return self.storage.protect

    @model_validator(mode="after")
    def _cross_checks(self) -> PlatformSpec:
        regions = catalog.regions(self.cloud)
        if self.region not in regions:
            raise _KeyError(
                "region", self.region, f"one of the {self.cloud} regions: {', '.join(regions)}"
            )
        if self.cloud == "gcp" and self.project is None:
            raise _KeyError("project", None, "the GCP project id, required when cloud is gcp")
        if self.cloud != "gcp" and self.project is not None:
            raise _KeyError(
                "project", self.project, f"no value: project applies to gcp only, not {self.cloud}"
            )
        if len(self.tags) > MAX_TAGS:
            raise _KeyError("tags", f"{len(self.tags)} tags", f"at most {MAX_TAGS} tags")
        for key, value in self.tags.items():
            if not (TAG_KEY[self.cloud].match(key) and TAG_VALUE[self.cloud].match(value)):
                raise _KeyError(
                    key_path("tags", key),
                    value,
                    f"{self.cloud} tag keys and values of {TAG_RULE[self.cloud]}",
                )
        object.__setattr__(self, "network", self._resolve_zones())
        self._check_cidr_room()
        if self.production and self.storage.force_destroy:
            raise _KeyError(
                "storage.force_destroy",
                True,
                "false in a production stack: it would let destroy delete checkpoints and models",
            )
        return self

    def _resolve_zones(self) -> NetworkSpec:
        available = catalog.zones(self.cloud, self.region)
        zones = self.network.zones
        if not available:
            raise _KeyError(
                "region",
                self.region,
                f"a {self.cloud} region with availability zones; {self.region} has none",
            )
        if isinstance(zones, int):
            if zones > len(available):
                raise _KeyError(
                    "network.zones",
                    zones,
                    f"at most {len(available)}: {self.region} has zones {', '.join(available)}",
                )
            return self.network.model_copy(update={"zones": available[:zones]})
        unknown = [z for z in zones if z not in available]
        if unknown:
            raise _KeyError(
                "network.zones", unknown, f"zones of {self.region}: {', '.join(available)}"
            )
        return self.network

    def _check_cidr_room(self) -> None:
        largest = MIN_SUBNET_PREFIX - math.ceil(math.log2(SUBNET_BLOCKS))
        if self.network.cidr.prefixlen > largest:
            raise _KeyError(
                "network.cidr",
                str(self.network.cidr),
                f"a /{largest} or larger: it is cut into {SUBNET_BLOCKS} subnets of at least "
                f"/{MIN_SUBNET_PREFIX}",
            )

    def _blocks(self) -> list[ipaddress.IPv4Network]:
        prefix = self.network.cidr.prefixlen + math.ceil(math.log2(SUBNET_BLOCKS))
        return list(self.network.cidr.subnets(new_prefix=prefix))

    def subnets(self) -> list[tuple[str, str, str]]:
        """``(zone, private_cidr, public_cidr)`` per configured zone: the zonal layout.

        The network range is cut into SUBNET_BLOCKS equal blocks. A zone's blocks follow
        from its place among the region's zones (private ``i``, public ``MAX_ZONES + i``),
        never from its place in the stack file, so reordering, adding or removing zones
        never renumbers another zone's subnets.
        """
        region_zones = catalog.zones(self.cloud, self.region)
        blocks = self._blocks()
        return [
            (zone, str(blocks[i]), str(blocks[MAX_ZONES + i]))
            for zone in self.network.zones
            for i in [region_zones.index(zone)]
        ]

    def regional_subnets(self) -> tuple[str, ...]:
        """The blocks reserved for subnets that span every zone (Azure's are regional)."""
        return tuple(str(b) for b in self._blocks()[2 * MAX_ZONES :])


class _KeyError(ValueError):
    """A cross-field failure raised inside validation, carrying its key path."""

    def __init__(self, path: str, value: Any, accepted: str):
        super().__init__(_message(path, value, accepted))
        self.path, self.value, self.accepted = path, value, accepted


def key_path(*parts: str) -> str:
    """Dotted key path; a part that is not a plain word is quoted, so the message stays
    one line and says exactly which key it means."""
    return ".".join(p if PLAIN_KEY.match(p) else json.dumps(p) for p in parts)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


def _message(path: str, value: Any, accepted: str) -> str:
    shown = "missing" if value is None else f"got {_shown(value)}"
    return f"{NAMESPACE}:{path}: {shown}; expected {accepted}"


MAX_SHOWN = 120
"""Longest bad value quoted in an error message, so one line stays one readable line."""
UNION_TAGS = {"tuple[str, ...]", "int", "str"}
"""Names pydantic adds to an error's location for the member of a union it tried."""
UNIONS = {"zones", "project"}
"""The keys whose type is a union, after which those names appear."""


def _error_from(exc: ValidationError) -> SpecError:
    err = exc.errors(include_url=False)[0]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, _KeyError):
        return SpecError(str(cause))
    loc = [str(p) for p in err["loc"]]
    if err["type"] == "extra_forbidden":
        key, keys = key_path(*loc), ", ".join(_model_at(loc[:-1]).model_fields)
        return SpecError(f"{NAMESPACE}:{key}: unknown key; expected one of the keys {keys}")
    loc = [p for i, p in enumerate(loc) if not (p in UNION_TAGS and i and loc[i - 1] in UNIONS)]
    reason = err["msg"].removeprefix("Value error, ")
    if not loc:
        return SpecError(f"{NAMESPACE}: the stack config cannot be read: {reason}")
    path = key_path(*loc)
    if err["type"] == "missing":
        field = _model_at(loc[:-1]).model_fields[loc[-1]]
        return SpecError(f"{NAMESPACE}:{path}: missing; required: {_summary(field.description)}")
    if not reason.startswith("expected"):
        reason = "expected " + re.sub(r"^Input (should be|is not) ", "", reason)
    return SpecError(f"{NAMESPACE}:{path}: got {_shown(err.get('input'))}; {reason}")


def _model_at(loc: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = PlatformSpec
    for part in loc:
        model = model.model_fields[part].annotation
    return model


def _summary(description: str | None) -> str:
    return (description or "").split("\n")[0].rstrip(".").replace("``", "").lower()


def parse(raw: Mapping[str, Any]) -> PlatformSpec:
    """Validate a mapping of key → value (keys without the ``gpuyard:`` prefix)."""
    try:
        text = json.dumps(dict(raw), default=str)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"{NAMESPACE}: the stack config cannot be read as data: {exc}") from None
    try:
        return PlatformSpec.model_validate_json(text)
    except ValidationError as exc:
        raise _error_from(exc) from None


def from_config_values(values: Mapping[str, str]) -> PlatformSpec:
    """Validate ``gpuyard:<key>`` entries as Pulumi hands them over (objects as JSON text)."""
    raw: dict[str, Any] = {}
    for full_key, text in values.items():
        namespace, _, key = full_key.partition(":")
        # Pulumi hands an unset key with an empty default over as "".
        if namespace != NAMESPACE or text == "":
            continue
        raw[key] = _decode(text)
    return parse(raw)


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    # Not JSON (a plain string), or JSON beyond what the parser takes (huge integers,
    # deep nesting): validation then reports it against the key it was given for.
    except (ValueError, RecursionError):
        return text


def load(config: pulumi.Config) -> PlatformSpec:
    """The current stack's spec from the program's ``pulumi.Config("gpuyard")``.

    Keys are enumerated from the runtime as well, so a misspelled key is reported
    instead of silently ignored (``pulumi.Config`` can only look keys up).
    """
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = f"{config.name}:"
    keys = {k for k in (*get_config_env(), *CONFIG.get()) if k.startswith(prefix)}
    return from_config_values({k: config.get(k.removeprefix(prefix)) for k in keys})

"""Offline plan: run the real Pulumi program under recording mocks and roll up its cost.

No cloud account and no Pulumi CLI: the program's resource registrations go to a mock
monitor that records each one (type, name, parent, dependencies, inputs) and answers
with plausible ids and outputs. The same recorder backs the component unit tests.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import catalog

SECRET = "[secret]"
ACCOUNT_ID = "123456789012"
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class Resource:
    """One resource the program declared, as the engine would have received it."""

    urn: str
    """The resource's URN, unique in the stack."""
    type: str
    """Type token, e.g. ``aws:s3/bucket:Bucket`` or ``gpuyard:index:AwsNetwork``."""
    name: str
    """Logical name given in the program."""
    parent: str | None
    """URN of the parent (a component, or the stack)."""
    dependencies: list[str]
    """URNs this resource waits for (``depends_on`` and inputs from other resources)."""
    inputs: dict[str, Any]
    """Inputs as the engine receives them: camelCase keys, sorted, secrets masked."""
    custom: bool
    """True for a cloud resource, False for a component."""
    protect: bool
    """Whether Pulumi refuses to delete it."""
    retain_on_delete: bool
    """Whether deleting it from the program leaves it in the cloud."""
    provider: str | None
    """Reference of the explicit provider it uses, if any."""


@dataclass
class CostLine:
    """Hourly list price of one priced resource at the smallest and largest scale it allows."""

    urn: str
    """URN of the priced resource."""
    type: str
    """Its type token."""
    name: str
    """Its logical name."""
    description: str
    """What is charged, and what the hourly figure leaves out."""
    min_per_hour: float
    """USD per hour at the smallest scale the inputs allow."""
    max_per_hour: float
    """USD per hour at the largest scale the inputs allow."""


@dataclass
class Plan:
    """Everything one run of the program declared, with its outputs and cost."""

    stack: str
    """The stack planned, e.g. ``dev-aws``."""
    resources: list[Resource] = field(default_factory=list)
    """Every resource and component, sorted by URN."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs, secrets masked."""
    cost: list[CostLine] = field(default_factory=list)
    """Hourly cost of the priced resources."""

    def by_type(self, type_: str) -> list[Resource]:
        """The resources of one type token."""
        return [r for r in self.resources if r.type == type_]

    def counts(self) -> Counter[str]:
        """How many resources of each type."""
        return Counter(r.type for r in self.resources)

    def to_json(self) -> dict[str, Any]:
        """The whole plan as plain data: resources, outputs and the cost roll-up."""
        return {
            "stack": self.stack,
            "resources": [asdict(r) for r in self.resources],
            "outputs": self.outputs,
            "cost": {
                "currency": "USD",
                "prices_as_of": catalog.PRICES_AS_OF,
                "lines": [asdict(c) for c in self.cost],
                **self.cost_per_hour(),
            },
        }

    def cost_per_hour(self) -> dict[str, float]:
        """Total USD per hour at the smallest and the largest scale."""
        return {
            "min_per_hour": round(sum(c.min_per_hour for c in self.cost), 4),
            "max_per_hour": round(sum(c.max_per_hour for c in self.cost), 4),
        }


def _plain(value: Any) -> Any:
    """Inputs as stable plain data: secrets masked, keys sorted, whole numbers as ints
    (the engine's wire format carries every number as a float)."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _entra_id(kind: str, resource_id: str) -> str:
    """A stable GUID standing in for the Entra ``kind`` id of ``resource_id``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}:{resource_id}"))


class _Mocks(pulumi.runtime.Mocks):
    """Answers the engine the way a fresh deployment would: ids from names, inputs echoed."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id = f"{args.name}-id"
        state = dict(args.inputs)
        state.setdefault("arn", f"arn:aws:mock:::{args.name}")
        state.setdefault("name", args.name)
        state.setdefault("selfLink", f"https://mock.googleapis.com/{args.name}")
        # An identity's Entra ids are minted by Azure, and whatever grants it a role reads
        # them back; deriving them from the resource id makes every reference agree.
        if args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            state.setdefault("principalId", _entra_id("principal", resource_id))
            state.setdefault("clientId", _entra_id("client", resource_id))
        # azure-native takes user-assigned identities as a list of ids but answers with a
        # map of id -> {principalId, clientId}; echoing the list makes the SDK fail.
        identity = state.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
            state["identity"] = {
                **identity,
                "userAssignedIdentities": {
                    uid: {
                        "principalId": _entra_id("principal", uid),
                        "clientId": _entra_id("client", uid),
                    }
                    for uid in identity["userAssignedIdentities"]
                },
            }
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        answers: dict[str, dict] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/plan",
                "userId": "plan",
            },
            "aws:index/getPartition:getPartition": {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
            },
            "azure-native:authorization:getClientConfig": {
                "clientId": "plan",
                "objectId": "00000000-0000-0000-0000-000000000001",
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": "00000000-0000-0000-0000-000000000002",
            },
            "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
                "emailAddress": "service-123456789012@gs-project-accounts.iam.gserviceaccount.com",
            },
        }
        return answers.get(args.token, {}), []


class _RecordingMonitor(MockMonitor):
    def __init__(self, plan: Plan):
        super().__init__(_Mocks())
        self.plan = plan

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.plan.resources.append(
                Resource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent or None,
                    dependencies=sorted(set(request.dependencies)),
                    inputs=_plain(rpc.deserialize_properties(request.object, keep_internal=False)),
                    custom=request.custom,
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    provider=request.provider or None,
                )
            )
        return response


def record(
    program: Callable[[], Any],
    config: Mapping[str, str] | None = None,
    project: str = "gpuyard",
    stack: str = "test",
) -> Plan:
    """Run ``program`` under recording mocks with ``config`` (``gpuyard:key`` → JSON text)."""
    plan = Plan(stack=stack)
    # The SDK drives its RPCs on the thread's current event loop; a loop of our own
    # means an earlier asyncio.run() (which leaves none set) cannot break a plan.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # A fresh context gives every run its own root stack and config, so one process
        # can plan many stacks (the SDK keeps both in context variables).
        contextvars.Context().run(_run, plan, program, dict(config or {}), project, stack)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    # Registrations complete in whatever order the event loop runs them; sorting
    # makes two plans of the same program diff cleanly.
    plan.resources.sort(key=lambda r: r.urn)
    plan.cost = cost_lines(plan)
    return plan


def _run(plan: Plan, program: Callable[[], Any], config: dict, project: str, stack: str) -> None:
    pulumi.runtime.set_all_config(config)
    pulumi.runtime.set_mocks(
        _Mocks(), project, stack, preview=False, monitor=_RecordingMonitor(plan)
    )
    _sync_await(run_pulumi_func(program))
    outputs = pulumi.runtime.get_root_resource().outputs
    plan.outputs = _resolve(outputs)


def _resolve(outputs: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        if _sync_await(output.is_secret()):
            resolved[key] = SECRET
        else:
            resolved[key] = _sync_await(output.future(with_unknowns=False))
    return resolved


# What each priced resource type costs per hour, by the cloud's own token. GPU node
# pools join here with their min/max node counts from their scaling inputs.
def _nat(cloud: str, what: str) -> Callable[[Resource], CostLine]:
    def price(resource: Resource) -> CostLine:
        hourly = catalog.NAT_GATEWAY_PRICE_PER_HOUR[cloud]
        return CostLine(resource.urn, resource.type, resource.name, what, hourly, hourly)

    return price


PRICERS: dict[str, Callable[[Resource], CostLine]] = {
    "aws:ec2/natGateway:NatGateway": _nat(
        "aws", "NAT gateway (hourly charge; data processed is extra)"
    ),
    "gcp:compute/routerNat:RouterNat": _nat(
        "gcp", "Cloud NAT gateway (hourly charge; data processed is extra)"
    ),
    "azure-native:network:NatGateway": _nat(
        "azure", "NAT gateway (hourly charge; data processed is extra)"
    ),
}


def cost_lines(plan: Plan) -> list[CostLine]:
    """A cost line for every resource of a priced type."""
    return [PRICERS[r.type](r) for r in plan.resources if r.type in PRICERS]

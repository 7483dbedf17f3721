"""The ``gpuyard`` command: ``plan`` reviews stacks offline; ``local`` runs the main job here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from components import catalog
from components.errors import UserError
from components.local import LocalOptions
from components.project import Project

if TYPE_CHECKING:
    from components.plan import Plan


def render(plan: Plan) -> str:
    """The plan as a person reads it: resource tree, counts per type, cost per hour."""
    children: dict[str | None, list] = {}
    for resource in plan.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in plan.resources}
    lines = [f"Stack {plan.stack}: {len(plan.resources)} resources", ""]

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            lines.append(f"{'  ' * depth}{r.type}  {r.name}{'  [protected]' if r.protect else ''}")
            walk(r.urn, depth + 1)

    for root in [p for p in children if p is None or p not in known]:
        walk(root, 0)
    lines += ["", "Resources by type:"]
    lines += [f"  {count:4d}  {type_}" for type_, count in sorted(plan.counts().items())]
    lines += ["", f"Estimated cost, USD per hour (list prices as of {catalog.PRICES_AS_OF}):"]
    for c in plan.cost:
        lines.append(f"  {c.min_per_hour:9.3f} - {c.max_per_hour:9.3f}  {c.name}: {c.description}")
    total = plan.cost_per_hour()
    lines.append(
        f"  {total['min_per_hour']:9.3f} - {total['max_per_hour']:9.3f}  total (min - max scale)"
    )
    lines += ["", "Outputs:"]
    lines += [f"  {k}: {v}" for k, v in plan.outputs.items()]
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    """``gpuyard plan``: print one stack's plan, or every stack's."""
    project = Project.find()
    plans = project.plan_all() if args.all else [project.plan(args.stack)]
    if args.json:
        body = [p.to_json() for p in plans]
        print(json.dumps(body if args.all else body[0], indent=2, default=str))
    else:
        print("\n\n".join(render(p) for p in plans))
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    """``gpuyard local``: run the main job on this machine."""
    from components import local

    options = local.LocalOptions(
        workdir=Path(args.workdir), store=args.store, steps=args.steps,
        batch_size=args.batch_size, ckpt_every=args.ckpt_every, workers=args.workers,
        max_new_tokens=args.max_new_tokens, keep_serving=args.keep_serving, fresh=args.fresh,
    )  # fmt: skip
    try:
        local.run(options)
    except local.StageError as exc:
        print(f"gpuyard local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpuyard local: interrupted; stopped what it had started", file=sys.stderr)
        return 130
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: ``plan`` and ``local``."""
    root = argparse.ArgumentParser(prog="gpuyard", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="plan a stack offline: resources, outputs, cost")
    target = plan.add_mutually_exclusive_group(required=True)
    target.add_argument("stack", nargs="?", help="stack name, e.g. dev-aws")
    target.add_argument("--all", action="store_true", help="plan every stack in stacks/")
    plan.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    plan.set_defaults(func=cmd_plan)

    defaults = LocalOptions()
    local = commands.add_parser(
        "local", help="prepare, train, export and serve the bundled model on this machine"
    )
    local.add_argument("--workdir", default=str(defaults.workdir), help="store, logs, loss curve")
    local.add_argument(
        "--store",
        choices=("file", "s3"),
        default=defaults.store,
        help="file: a directory under --workdir; s3: an S3 server on 127.0.0.1",
    )
    local.add_argument("--steps", type=int, default=defaults.steps, help="training steps")
    local.add_argument("--batch-size", type=int, default=defaults.batch_size)
    local.add_argument("--ckpt-every", type=int, default=defaults.ckpt_every)
    local.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="training processes (default: one per GPU, else 2)",
    )
    local.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    local.add_argument("--keep-serving", action="store_true", help="serve until Ctrl-C")
    local.add_argument("--fresh", action="store_true", help="start over: delete --workdir first")
    local.set_defaults(func=cmd_local)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input prints one line and exits 2 (plan) or 1 (local)."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"gpuyard {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

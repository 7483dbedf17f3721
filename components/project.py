"""A Pulumi project on disk: its program, its stack files and their config.

Kept free of the Pulumi SDK so that ``gpuyard plan --all`` can fan out to worker
processes without importing any SDK itself.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.errors import UserError

if TYPE_CHECKING:
    from components.plan import Plan


class ProjectError(UserError):
    """The project directory or stack file cannot be found or read."""


@dataclass(frozen=True)
class Project:
    """A Pulumi project on disk: its program and its stack files."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project in ``start`` (default: the working directory) or its nearest parent."""
        here = (start or Path.cwd()).resolve()
        for directory in (here, *here.parents):
            if (directory / "Pulumi.yaml").is_file():
                return cls(directory)
        raise ProjectError(f"no Pulumi.yaml in {here} or any parent directory")

    @cached_property
    def settings(self) -> dict[str, Any]:
        """Pulumi.yaml, parsed once per Project."""
        return yaml.safe_load((self.root / "Pulumi.yaml").read_text())

    @property
    def stack_dir(self) -> Path:
        """Where the stack files live (``stackConfigDir``)."""
        return self.root / self.settings.get("stackConfigDir", ".")

    def stacks(self) -> list[str]:
        """Names of the stacks that have a stack file, sorted."""
        return sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in self.stack_dir.glob("Pulumi.*.yaml")
        )

    def config(self, stack: str) -> dict[str, str]:
        """The stack's config as the engine hands it over: project defaults, then the stack file."""
        path = self.stack_dir / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            raise ProjectError(f"no stack file {path}; stacks here: {', '.join(self.stacks())}")
        name = self.settings["name"]
        values: dict[str, Any] = {
            f"{name}:{key}": decl["default"]
            for key, decl in (self.settings.get("config") or {}).items()
            if isinstance(decl, dict) and "default" in decl
        }
        values.update((yaml.safe_load(path.read_text()) or {}).get("config") or {})
        return {key: v if isinstance(v, str) else json.dumps(v) for key, v in values.items()}

    def plan_all(self) -> list[Plan]:
        """Plan every stack, one process per cloud, in stack order.

        Importing a cloud's SDK is most of a plan's cost and each process pays it once
        for all that cloud's stacks; the processes run side by side on the cores there are.
        """
        stacks = self.stacks()
        if not stacks:
            raise ProjectError(f"no stack files (Pulumi.<stack>.yaml) in {self.stack_dir}")
        groups: dict[str, list[str]] = {}
        for stack in stacks:
            groups.setdefault(self.config(stack).get("gpuyard:cloud", ""), []).append(stack)
        # A fork server imports the SDK core and the program's modules once, then forks
        # each worker from that single-threaded process: as cheap as fork, without
        # forking this process's threads.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["components.plan", "components.platform"])
        with ProcessPoolExecutor(max_workers=len(groups), mp_context=context) as pool:
            done = pool.map(_plan_stacks, [(self.root, stacks) for stacks in groups.values()])
            plans = {plan.stack: plan for group in done for plan in group}
        return [plans[stack] for stack in stacks]

    def plan(self, stack: str) -> Plan:
        """Run the project's program offline for ``stack`` (see components.plan)."""
        import runpy

        from components.plan import record

        program = str(self.root / "__main__.py")
        return record(
            lambda: runpy.run_path(program, run_name="__main__"),
            config=self.config(stack),
            project=self.settings["name"],
            stack=stack,
        )


def _plan_stacks(job: tuple[Path, list[str]]) -> list[Plan]:
    root, stacks = job
    project = Project(root)
    plans = []
    for stack in stacks:
        try:
            plans.append(project.plan(stack))
        except UserError as exc:
            # Among many stacks, the message must say which one is wrong.
            raise ProjectError(f"stack {stack}: {exc}") from None
    return plans

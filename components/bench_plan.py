"""Benchmark: wall time of ``gpuyard plan`` against the floor of importing its providers.

    python -m components.bench_plan [--stack dev-aws] [--repeat 5]

Every measurement is a fresh interpreter, as a user's command is. The floor imports
exactly the provider modules the planned stack loads (read from a plan run), so the
ratio isolates what gpuyard adds. Runs are interleaved, so machine noise hits all three
alike; the table reports medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PROBE = """
import json, sys
from components.cli import main
main(["plan", sys.argv[1], "--json"])
# pulumi providers register every submodule lazily; only the ones loaded count.
mods = sorted(
    name for name, module in sys.modules.items()
    if name.startswith("pulumi_") and type(module).__name__ != "_LazyModule"
)
print(json.dumps(mods), file=sys.stderr)
"""


def provider_modules(stack: str) -> list[str]:
    """The pulumi provider modules planning ``stack`` imports, from one probe run."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, stack], capture_output=True, text=True, check=True
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--stack", default="dev-aws")
    cli.add_argument("--repeat", type=int, default=5)
    args = cli.parse_args()

    modules = provider_modules(args.stack)
    commands = {
        # dir() forces each lazily registered module to actually load.
        "import floor": [
            sys.executable,
            "-c",
            f"import importlib, pulumi; [dir(importlib.import_module(m)) for m in {modules!r}]",
        ],
        f"plan {args.stack}": [sys.executable, "-m", "components.cli", "plan", args.stack],
        "plan --all": [sys.executable, "-m", "components.cli", "plan", "--all"],
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            samples[name].append(timed(argv))
    median = {name: statistics.median(times) for name, times in samples.items()}
    floor, single = median["import floor"], median[f"plan {args.stack}"]

    print(f"floor: import pulumi and the {len(modules)} provider modules the plan loads")
    print(f"{'what':<20} {'median s':>9} {'min s':>7} {'ratio':>18}")
    fastest = min(samples["import floor"])
    print(f"{'import floor':<20} {floor:9.2f} {fastest:7.2f} {'1.00x floor':>18}")
    print(
        f"{'plan ' + args.stack:<20} {single:9.2f} {min(samples[f'plan {args.stack}']):7.2f} "
        f"{single / floor:>12.2f}x floor"
    )
    every = median["plan --all"]
    print(
        f"{'plan --all':<20} {every:9.2f} {min(samples['plan --all']):7.2f} "
        f"{every / single:>11.2f}x single"
    )
    print(f"targets: single <= 1.5x floor, --all <= 2x single; repeats={args.repeat}")


if __name__ == "__main__":
    main()

"""Serving benchmark: batch size 1 vs static vs continuous batching, on loopback.

    python -m workloads.bench_serve                       # random-weights tiny model
    python -m workloads.bench_serve --model DIR_OR_URL --concurrency 1,8,32,64

It starts one ``python -m workloads serve`` per batching mode on 127.0.0.1, drives
each with a closed-loop asyncio httpx load generator at every concurrency (modes
taking turns per level), then floods each with 10x ``--max-queue`` simultaneous
requests and compares its peak RSS with its idle RSS. Requests are non-streaming,
so time to first token is the server's own ``gpuyard_serve_time_to_first_token_seconds``
histogram (queue wait included), read as a p50 over the requests of that level.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TTFT = "gpuyard_serve_time_to_first_token_seconds_bucket"


@dataclass
class Level:
    """Results of one (mode, concurrency) run."""

    mode: str
    """Batching mode of the server: none, static or continuous."""
    concurrency: int
    """Clients sending requests back to back."""
    requests: int
    """Requests answered 200."""
    seconds: float
    """Wall time of the level."""
    tokens: int
    """Bytes generated across the answered requests."""
    latencies: list[float]
    """Seconds per answered request, at the client."""
    ttft_p50: float
    """Median time to first token from the server's histogram, seconds."""
    rejected: int
    """Requests answered anything but 200."""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def p99(self) -> float:
        lat = sorted(self.latencies)
        return lat[round(0.99 * (len(lat) - 1))]

    def row(self) -> str:
        return (
            f"| {self.mode} | {self.concurrency} | {self.throughput:.1f} "
            f"| {self.tokens / self.seconds:.0f} | {statistics.median(self.latencies) * 1e3:.0f} "
            f"| {self.p99 * 1e3:.0f} | {self.ttft_p50 * 1e3:.1f} | {self.rejected} |"
        )


def random_artifact(directory: Path) -> Path:
    """A tiny model with seeded random weights, for when no trained artifact is at hand."""
    import torch

    from workloads import artifact
    from workloads.model import GPT, preset

    torch.manual_seed(0)
    return artifact.write(
        GPT(preset("tiny")), run={"note": "random weights"}, step=0, directory=directory
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of a histogram in a Prometheus exposition."""
    buckets = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """``histogram_quantile`` over the observations made between two scrapes."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in delta:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = le, count
    return lower


class Server:
    """One server subprocess per mode."""

    def __init__(self, model: str, mode: str, args: argparse.Namespace, port: int):
        self.url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, "-m", "workloads", "serve", "--model", model,
            "--host", "127.0.0.1", "--port", str(port), "--batching", mode,
            "--max-batch-size", str(args.max_batch_size), "--max-queue", str(args.max_queue),
            "--log-level", "warning",
        ]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        self.log = Path(tempfile.mkdtemp(prefix="bench-serve-log-")) / f"{mode}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def body(rng: random.Random, args: argparse.Namespace) -> dict:
    prompt = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(args.prompt_bytes))
    return {"instances": [{"prompt": prompt, "max_new_tokens": args.max_new_tokens}]}


async def closed_loop(url: str, mode: str, concurrency: int, args: argparse.Namespace) -> Level:
    rng = random.Random(concurrency)
    total = max(args.requests, 4 * concurrency)
    latencies: list[float] = []
    tokens = rejected = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        before = histogram((await client.get("/metrics")).text, TTFT)
        start = time.perf_counter()
        deadline = start + args.level_seconds

        async def worker() -> None:
            nonlocal issued, tokens, rejected
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                sent = time.perf_counter()
                try:
                    answer = await client.post("/invocations", json=body(rng, args))
                except httpx.TransportError:
                    rejected += 1
                    continue
                if answer.status_code != 200:
                    rejected += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                tokens += answer.json()["predictions"][0]["tokens"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        after = histogram((await client.get("/metrics")).text, TTFT)
    return Level(
        mode, concurrency, len(latencies), seconds, tokens, latencies, quantile(0.5, before, after),
        rejected,
    )  # fmt: skip


async def overload(server: Server, args: argparse.Namespace) -> tuple[int, int, dict[int, int]]:
    """Idle RSS, peak RSS while 10x max_queue requests arrive at once, and their statuses."""
    idle = rss_bytes(server.proc.pid)
    peak = idle
    count = 10 * args.max_queue
    rng = random.Random(0)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as client:

        async def one() -> None:
            try:
                answer = await client.post("/invocations", json=body(rng, args))
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            except httpx.HTTPError:
                statuses[0] = statuses.get(0, 0) + 1

        flood = asyncio.gather(*(one() for _ in range(count)))
        while not flood.done():
            peak = max(peak, rss_bytes(server.proc.pid))
            await asyncio.sleep(0.05)
        await flood
    return idle, peak, statuses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="artifact dir or URL (default: random-weights tiny)")
    parser.add_argument("--modes", default="none,static,continuous")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--requests", type=int, default=48, help="minimum requests per level")
    parser.add_argument("--level-seconds", type=float, default=30.0, help="time cap per level")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompt-bytes", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="server torch threads")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args(argv)

    model = args.model or str(random_artifact(Path(tempfile.mkdtemp(prefix="bench-serve-"))))
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = args.modes.split(",")
    servers = {mode: Server(model, mode, args, args.port + i) for i, mode in enumerate(modes)}
    rows, memory = [], []
    try:
        for server in servers.values():
            server.wait_ready()
        # Modes take turns at each level, so a noisy neighbour slows all of them alike;
        # an idle server costs nothing while another is measured.
        for concurrency in levels:
            for mode, server in servers.items():
                level = asyncio.run(closed_loop(server.url, mode, concurrency, args))
                print(level.row(), flush=True)
                rows.append(level)
        for mode, server in servers.items():
            memory.append((mode, *asyncio.run(overload(server, args))))
    finally:
        for server in servers.values():
            server.stop()
    rows.sort(key=lambda level: modes.index(level.mode))

    print(f"\nmodel: {args.model or 'tiny preset, random weights'}; {args.max_new_tokens} new "
          f"tokens per request, {args.prompt_bytes}-byte prompts, max batch "
          f"{args.max_batch_size}, queue {args.max_queue}; {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| mode | concurrency | req/s | tokens/s | p50 ms | p99 ms | p50 TTFT ms | non-200 |")
    print("|---|---|---|---|---|---|---|---|")
    for level in rows:
        print(level.row())
    print(f"\n| mode | RSS idle MiB | RSS peak under {10 * args.max_queue} concurrent MiB "
          "| ratio | answers |")  # fmt: skip
    print("|---|---|---|---|---|")
    for mode, idle, peak, statuses in memory:
        answers = ", ".join(f"{n}x {code or 'conn error'}" for code, n in sorted(statuses.items()))
        print(
            f"| {mode} | {idle / 2**20:.0f} | {peak / 2**20:.0f} | {peak / idle:.2f} | {answers} |"
        )
    by = {(r.mode, r.concurrency): r for r in rows}
    for c in levels:
        base, cont = by.get(("none", c)), by.get(("continuous", c))
        if base and cont:
            print(f"concurrency {c}: continuous/none throughput "
                  f"{cont.throughput / base.throughput:.1f}x, p99 {cont.p99 * 1e3:.0f} ms "
                  f"vs {base.p99 * 1e3:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

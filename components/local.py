"""``gpuyard local``: the loop the cloud stacks run, on this machine, no cloud account.

Stages, each reusing what an earlier run finished: object store → prepare the corpus →
train the ``tiny`` preset under torchrun → export the serving artifact → serve it on
127.0.0.1 and ask it through the SageMaker, Vertex AI and KServe v2 routes → summary.
The workloads run as the same commands the cluster runs (``python -m workloads …``),
so this exercises the real entry points, not a shortcut.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROMPTS = ("def fibonacci(n):", "import os\n", "class Config:")
"""Sample prompts: the corpus is Python source, so code is what the model can continue."""


class StageError(RuntimeError):
    """A stage failed; the message names the stage and why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"stage {stage!r} failed: {reason}")
        self.stage = stage


@dataclass(frozen=True)
class LocalOptions:
    """How ``gpuyard local`` runs; the defaults finish in minutes on 2 CPU cores."""

    workdir: Path = Path(".gpuyard")
    """Where the store, logs and the loss curve live; reused by the next run."""
    store: str = "file"
    """``file`` (a directory under ``workdir``) or ``s3`` (an S3 server on 127.0.0.1)."""
    steps: int = 300
    """Optimizer steps to train the ``tiny`` preset for."""
    batch_size: int = 16
    """Sequences per micro-batch per worker."""
    ckpt_every: int = 100
    """Steps between checkpoints (a crash loses at most this many)."""
    workers: int = 0
    """Training processes; 0 means one per local GPU, or 2 on CPU."""
    max_new_tokens: int = 48
    """Bytes each sample prompt is continued by."""
    keep_serving: bool = False
    """Leave the server up after the summary until Ctrl-C."""
    fresh: bool = False
    """Delete ``workdir`` first and redo every stage."""


@dataclass
class Summary:
    """What one run did, for the final screen."""

    store: str = ""
    """URL of the object store's root."""
    data_url: str = ""
    """Where the prepared corpus is."""
    ckpt_url: str = ""
    """Where the checkpoints are."""
    model_url: str = ""
    """Where the exported serving artifact is."""
    reused: list[str] = field(default_factory=list)
    """Stages an earlier run had done, reused instead of redone."""
    steps: int = 0
    """Training steps reached."""
    final_loss: float | None = None
    """Training loss at the last logged step."""
    tokens_per_s: float | None = None
    """Training throughput at the last logged step."""
    completions: dict[str, str] = field(default_factory=dict)
    """Contract name → the text the server generated through it."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """Contract name → request latency in milliseconds."""
    server_url: str = ""
    """Where the inference server listened."""
    loss_png: str = ""
    """Path of the loss-curve picture."""


def say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Announce a stage, time it, and turn any failure into a StageError naming it."""
    say(f"==> {name}")
    started = time.perf_counter()
    try:
        yield
    except StageError:
        raise
    except Exception as exc:
        raise StageError(name, str(exc) or type(exc).__name__) from exc
    say(f"    {name} done in {time.perf_counter() - started:.1f}s")


def _workers(requested: int) -> tuple[int, bool]:
    import torch

    gpus = torch.cuda.device_count()
    return (requested or gpus or 2), gpus > 0


def _workload(*args: str) -> list[str]:
    return [sys.executable, "-m", "workloads", *args]


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        raise RuntimeError(f"{what} exited {done.returncode}: " + " | ".join(tail))
    return done.stdout


def _exists(url: str) -> bool:
    from workloads.store import fs_root

    fs, path = fs_root(url)
    return fs.exists(path)


class LocalRun:
    """One ``gpuyard local`` run: owns the store and server processes it starts."""

    def __init__(self, options: LocalOptions):
        self.options = options
        self.summary = Summary()
        self.server: subprocess.Popen | None = None
        self.trainer: subprocess.Popen | None = None
        self._server_log = None
        self._stop_store = lambda: None

    def __enter__(self) -> LocalRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_trainer()
        self.stop_server()
        self._stop_store()

    @property
    def log_path(self) -> Path:
        """Training log lines of this store's runs (each store trains its own model)."""
        return self.options.workdir / f"train-log.{self.options.store}.jsonl"

    def open_store(self) -> None:
        workdir = self.options.workdir
        if self.options.fresh and workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if self.options.store == "s3":
            from workloads.local_stores import apply_env, restore_env, start_s3

            store = start_s3()
            previous = apply_env(store.env)
            self._stop_store = lambda: (restore_env(previous), store.stop())
            root = store.url()
            # The S3 server keeps objects in memory: nothing carries over to a next run.
            self.log_path.unlink(missing_ok=True)
        elif self.options.store == "file":
            root = (workdir / "store").resolve().as_uri()
        else:
            raise ValueError(f"--store {self.options.store!r}: choose file or s3")
        self.summary.store = root
        self.summary.data_url = f"{root}/data/stdlib"
        self.summary.ckpt_url = f"{root}/checkpoints/tiny"
        self.summary.model_url = f"{root}/models/tiny"
        say(f"    store: {root}")

    def prepare(self) -> None:
        if _exists(f"{self.summary.data_url}/manifest.json"):
            self.summary.reused.append("prepare")
            say("    corpus already prepared: reusing it")
            return
        _run(_workload("prepare", "--out", self.summary.data_url), "prepare")

    def train(self) -> None:
        from tqdm import tqdm

        workers, gpu = _workers(self.options.workers)
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={workers}", "-m", "workloads", "train",
            "--data", self.summary.data_url, "--ckpt", self.summary.ckpt_url,
            "--preset", "tiny", "--steps", str(self.options.steps),
            "--batch-size", str(self.options.batch_size),
            "--ckpt-every", str(self.options.ckpt_every), "--log-every", "10",
            "--warmup", str(max(1, self.options.steps // 10)), "--resume", "auto",
        ]  # fmt: skip
        say(
            f"    torchrun: {workers} {'GPU' if gpu else 'CPU'} workers, {self.options.steps} steps"
        )
        # One thread per worker: the workers already fill the cores.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        errors = self.options.workdir / "train.stderr.log"
        with (
            errors.open("w") as stderr,
            tqdm(total=self.options.steps, desc="train", unit="step", disable=None) as bar,
            self.log_path.open("a") as log,
        ):
            # A session of its own, so stopping it reaches torchrun's workers too.
            proc = self.trainer = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                start_new_session=True,
            )  # fmt: skip
            for line in proc.stdout:
                record = _json(line)
                if record is None:
                    continue
                log.write(json.dumps(record) + "\n")
                if record.get("event") == "resume":
                    bar.update(record["step"] - bar.n)
                    self.summary.reused.append(f"train (resumed at step {record['step']})")
                elif "loss" in record:
                    bar.update(record["step"] - bar.n)
                    bar.set_postfix(loss=record["loss"])
            proc.wait()
        self.trainer = None
        if proc.returncode != 0:
            tail = " | ".join(errors.read_text().strip().splitlines()[-5:])
            raise RuntimeError(f"torchrun exited {proc.returncode}: {tail}")
        self._read_log()

    def stop_trainer(self) -> None:
        """Stop torchrun and its workers; SIGTERM first, so they checkpoint on the way out."""
        if self.trainer is None or self.trainer.poll() is not None:
            return
        os.killpg(self.trainer.pid, signal.SIGTERM)
        try:
            self.trainer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.trainer.pid, signal.SIGKILL)
            self.trainer.wait()

    def _read_log(self) -> None:
        records = [_json(line) for line in self.log_path.read_text().splitlines()]
        steps = [r for r in records if r and "loss" in r]
        if steps:
            last = steps[-1]
            self.summary.steps = last["step"]
            self.summary.final_loss = last["loss"]
            self.summary.tokens_per_s = last.get("tokens_per_s")

    def trained(self) -> bool:
        """Whether an earlier run's latest complete checkpoint reached the requested steps."""
        from workloads.checkpoint import find_latest

        latest = find_latest(self.summary.ckpt_url)
        if latest is None or latest.step < self.options.steps or not self.log_path.exists():
            return False
        self._read_log()
        done = self.summary.steps == latest.step
        if done:
            self.summary.reused.append("train")
            say(f"    already trained to step {self.summary.steps}: reusing it")
        return done

    def exported(self) -> bool:
        """Whether the model at ``model_url`` was exported from the step training reached."""
        import fsspec

        config = f"{self.summary.model_url}/config.json"
        if not _exists(config):
            return False
        with fsspec.open(config) as f:
            step = json.load(f).get("step")
        if step != self.summary.steps:
            return False
        self.summary.reused.append("export")
        say(f"    model already exported from step {step}: reusing it")
        return True

    def export(self) -> None:
        _run(
            _workload("export", "--ckpt", self.summary.ckpt_url, "--out", self.summary.model_url),
            "export",
        )

    def serve(self) -> None:
        import httpx

        from workloads.local_stores import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = self._server_log = (self.options.workdir / "server.log").open("w")
        self.server = subprocess.Popen(
            _workload(
                "serve", "--model", self.summary.model_url, "--host", "127.0.0.1",
                "--port", str(port), "--max-new-tokens", str(self.options.max_new_tokens),
                "--cache-dir", str(self.options.workdir / "serving-model"),
                # No load balancer has to notice it leave: stop as soon as it is drained.
                "--drain-delay-seconds", "0",
            ),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.server.returncode} before it was ready; see {log.name}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 120 s; see {log.name}")
            time.sleep(0.3)
        self.summary.server_url = url
        say(f"    serving at {url} (pid {self.server.pid})")

    def ask(self) -> None:
        import httpx

        url = self.summary.server_url
        # Sampled, with a fixed seed: reproducible, and livelier than greedy decoding of
        # a model this small, which mostly continues with indentation.
        instance = {
            "max_new_tokens": self.options.max_new_tokens,
            "temperature": 0.8,
            "top_k": 50,
            "seed": 1,
        }
        routes = {
            "SageMaker /invocations": (
                "/invocations",
                {"instances": [{"prompt": PROMPTS[0], **instance}]},
            ),
            "Vertex AI /predict": ("/predict", {"instances": [{"prompt": PROMPTS[1], **instance}]}),
            "KServe v2 /v2/models/gpuyard/infer": (
                "/v2/models/gpuyard/infer",
                {
                    "inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES",
                                "data": [PROMPTS[2]]}],
                    "parameters": instance,
                },
            ),
        }  # fmt: skip
        with httpx.Client(base_url=url, timeout=60) as client:
            for contract, (path, body) in routes.items():
                started = time.perf_counter()
                response = client.post(path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{contract} answered {response.status_code}: {response.text}"
                    )
                self.summary.completions[contract] = _completion(response.json())
                self.summary.latency_ms[contract] = round(elapsed, 1)
                say(f"    {contract}: {elapsed:.0f} ms")

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = [_json(line) for line in self.log_path.read_text().splitlines()]
        train = [(r["step"], r["loss"]) for r in records if r and "loss" in r]
        evals = [(r["step"], r["val_loss"]) for r in records if r and "val_loss" in r]
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.plot(*zip(*train, strict=True), label="train loss")
        if evals:
            axes.plot(*zip(*evals, strict=True), "o-", label="val loss")
        axes.set(xlabel="step", ylabel="cross-entropy (nats/byte)", title="gpuyard local: tiny")
        axes.legend()
        figure.tight_layout()
        path = self.options.workdir / "loss.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        self.summary.loss_png = str(path)

    def stop_server(self) -> None:
        """Stop the server (SIGTERM drains it) and close its log."""
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self._server_log is not None:
            self._server_log.close()

    def wait_for_interrupt(self) -> None:
        say("    serving until Ctrl-C ...")
        with contextlib.suppress(KeyboardInterrupt):
            while self.server.poll() is None:
                time.sleep(0.5)
            raise StageError("serve", f"server exited {self.server.returncode} while serving")


def _json(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _completion(body: dict) -> str:
    if "predictions" in body:
        return body["predictions"][0]["text"]
    text = next(o for o in body["outputs"] if o["name"] == "text")
    return text["data"][0]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(options: LocalOptions) -> Summary:
    """Run every stage; a failure raises StageError after stopping what was started."""
    # SIGTERM unwinds like Ctrl-C, so the server and store are stopped, not orphaned.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _stages(options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stages(options: LocalOptions) -> Summary:
    with LocalRun(options) as local:
        with stage("store"):
            local.open_store()
        with stage("prepare"):
            local.prepare()
        with stage("train"):
            if not local.trained():
                local.train()
        with stage("export"):
            if not local.exported():
                local.export()
        with stage("serve"):
            local.serve()
        with stage("ask"):
            local.ask()
        with stage("plot"):
            local.plot()
        say(render(local.summary))
        if options.keep_serving:
            local.wait_for_interrupt()
        return local.summary


def render(summary: Summary) -> str:
    """The one-screen summary."""
    loss = "n/a" if summary.final_loss is None else f"{summary.final_loss:.3f}"
    speed = "n/a" if summary.tokens_per_s is None else f"{summary.tokens_per_s:,.0f}"
    lines = [
        "",
        "gpuyard local: summary",
        f"  steps        {summary.steps}   final loss {loss}   tokens/s {speed}",
        f"  data         {summary.data_url}",
        f"  checkpoints  {summary.ckpt_url}",
        f"  model        {summary.model_url}",
        f"  server       {summary.server_url}",
        f"  loss curve   {summary.loss_png}",
        f"  reused       {', '.join(summary.reused) or 'nothing (fresh run)'}",
        "  completions (temperature 0.8, top-k 50, seed 1):",
    ]
    for contract, text in summary.completions.items():
        shown = text[:60]
        lines.append(f"    {contract:<36} {summary.latency_ms[contract]:7.1f} ms  {shown!r}")
    return "\n".join(lines)

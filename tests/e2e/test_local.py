"""`gpuyard local` end to end: the real commands, processes and routes, on short settings."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SHORT = ["--steps", "20", "--ckpt-every", "10", "--batch-size", "4", "--max-new-tokens", "8"]
CONTRACTS = ["SageMaker /invocations", "Vertex AI /predict", "KServe v2 /v2/models/gpuyard/infer"]


def gpuyard_local(workdir: Path, *extra: str, timeout: float = 300):
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.cli",
            "local",
            "--workdir",
            str(workdir),
            *SHORT,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.perf_counter() - started


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local") / "work"
    done, seconds = gpuyard_local(workdir)
    assert done.returncode == 0, done.stderr
    return workdir, done.stdout, seconds


def test_first_run_answers_every_contract_and_summarises(first_run):
    workdir, out, _ = first_run
    for stage in ("store", "prepare", "train", "export", "serve", "ask", "plot"):
        assert f"==> {stage}" in out and f"    {stage} done in" in out
    assert "gpuyard local: summary" in out
    summary = out[out.index("gpuyard local: summary") :]
    steps = re.search(r"steps\s+(\d+)\s+final loss ([\d.]+)\s+tokens/s ([\d,]+)", summary)
    assert steps and int(steps[1]) == 20 and float(steps[2]) < 5.0, summary
    store = (workdir / "store").resolve().as_uri()
    assert f"checkpoints  {store}/checkpoints/tiny" in summary
    assert f"model        {store}/models/tiny" in summary
    assert re.search(r"server\s+http://127\.0\.0\.1:\d+", summary)
    for contract in CONTRACTS:
        assert re.search(re.escape(contract) + r"\s+[\d.]+ ms  '", summary), contract
    assert "reused       nothing (fresh run)" in summary
    png = workdir / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "store" / "models" / "tiny" / "manifest.json").exists()
    assert processes_mentioning(str(workdir)) == [], "the server is stopped after the summary"


def test_second_run_reuses_the_work(first_run):
    workdir, _, first_seconds = first_run
    data = workdir / "store" / "data" / "stdlib" / "manifest.json"
    prepared_at = data.stat().st_mtime_ns
    done, seconds = gpuyard_local(workdir)
    assert done.returncode == 0, done.stderr
    assert "corpus already prepared: reusing it" in done.stdout
    assert "already trained to step 20: reusing it" in done.stdout
    assert "model already exported from step 20: reusing it" in done.stdout
    assert "reused       prepare, train, export" in done.stdout
    assert data.stat().st_mtime_ns == prepared_at
    assert seconds < first_seconds


def test_killed_server_names_the_stage_and_leaves_no_process(tmp_path):
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "components.cli", "local", "--workdir", str(workdir), *SHORT,
         "--keep-serving"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server_pid = None
    for line in proc.stdout:
        if match := re.search(r"serving at http://127\.0\.0\.1:\d+ \(pid (\d+)\)", line):
            server_pid = int(match[1])
        if "serving until Ctrl-C" in line:
            break
    assert server_pid is not None
    os.kill(server_pid, signal.SIGKILL)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 1
    assert "gpuyard local: stage 'serve' failed: server exited -9 while serving" in err
    assert processes_mentioning(str(workdir)) == []


def test_s3_store_runs_the_loop_over_the_real_protocol(tmp_path):
    workdir = tmp_path / "work"
    done, _ = gpuyard_local(workdir, "--store", "s3")
    assert done.returncode == 0, done.stderr
    assert "checkpoints  s3://gpuyard/checkpoints/tiny" in done.stdout
    assert "model        s3://gpuyard/models/tiny" in done.stdout
    for contract in CONTRACTS:
        assert contract in done.stdout
    assert not (workdir / "store").exists(), "nothing went to the local directory store"
    assert processes_mentioning(str(workdir)) == [], "server and S3 server are stopped"

"""benchmarks.gpu_check on the CPU: what it keeps when killed, its budget, its tests section without
pytest, and the concurrency section's failure handling and CUDA MPS daemon (with stand-ins)."""

import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_concurrency import BARRIER_S, run_level
from benchmarks.gpu_report import Interrupted, Report, catch_signals, run

ROOT = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, "-m", "benchmarks.gpu_check"]


def check(*flags: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CHECK + list(flags), cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)


def rows(path: Path) -> dict:
    return {r["check"]: r for r in json.loads(path.read_text())["rows"]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_the_check_exits_2_in_one_line():
    done = check("--budget", "5")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: no CUDA device here")


@pytest.mark.slow
def test_sigterm_halfway_leaves_every_finished_measurement_in_the_json(tmp_path):
    out = tmp_path / "gpu-check.json"
    proc = subprocess.Popen(CHECK + ["--simulate-cpu", "--sections", "throughput", "--archs", "resnet20", "--augments",
                                     "crop_flip", "--repeats", "20", "--steps", "1", "--warmup", "0", "--batch-size",
                                     "8", "--images", "64", "--workers", "0", "--json", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = []
    try:
        for line in proc.stdout:  # a measurement's line is printed once the file holds it
            printed.append(line)
            if "[1/20]" in line:
                break
        saved = json.loads(out.read_text())
        assert saved["state"] == "running" and len(saved["measurements"]) == 1
        proc.send_signal(signal.SIGTERM)  # while the second measurement trains
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    printed += rest.splitlines(keepends=True)
    assert proc.returncode == 128 + signal.SIGTERM, "".join(printed)
    saved = json.loads(out.read_text())
    assert saved["state"] == "interrupted by SIGTERM"
    measured = [(m["mode"], m["repeat"]) for m in saved["measurements"]]
    shown = [line for line in printed if line.strip().startswith("[")]
    assert 1 <= len(measured) == len(shown) < 4 * 20  # every finished one, and the run was cut
    assert measured[0] == ("DataLoader baseline", 1) and saved["measurements"][0]["images_per_second"] > 0
    assert rows(out)["throughput resnet20 DataLoader baseline"]["status"] == "ok"


def test_a_signal_stops_the_subprocess_the_check_waits_for(tmp_path):
    # The child says who it is, then signals the check: run() must not leave it running.
    pid_file = tmp_path / "pid"
    child = ("import os, signal, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
             "os.kill(os.getppid(), signal.SIGTERM); time.sleep(600)")
    report = Report(tmp_path / "check.json", {})
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    catch_signals(report)
    try:
        start = time.monotonic()
        with pytest.raises(Interrupted, match="SIGTERM"):
            run([sys.executable, "-c", child, str(pid_file)], 600, ROOT)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert time.monotonic() - start < 60


@pytest.mark.slow
def test_a_budget_too_small_for_a_section_skips_it_and_says_so(tmp_path):
    out = tmp_path / "gpu-check.json"
    done = check("--simulate-cpu", "--budget", "1", "--sections", "train", "throughput", "concurrency", "--json",
                 str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(out)
    assert {c: (r["status"], r["result"].split(":")[0]) for c, r in found.items()} == {
        "train": ("skipped", "budget"), "throughput": ("skipped", "budget"), "concurrency": ("skipped", "budget")}
    assert json.loads(out.read_text())["state"] == "finished"


@pytest.mark.slow
def test_without_pytest_the_tests_section_is_not_run_and_the_check_fails(tmp_path):
    out = tmp_path / "gpu-check.json"
    flags = ["--simulate-cpu", "--sections", "tests", "--json", str(out)]
    code = ("import sys; sys.modules['pytest'] = None; from benchmarks.gpu_check import get_args_parser, main; "
            f"sys.exit(main(get_args_parser().parse_args({flags!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    row = rows(out)["pytest -m gpu"]
    assert row["status"] == "NOT RUN" and "gpu_deps.sh" in row["result"]


def test_a_concurrent_training_that_fails_stops_the_others_at_once(tmp_path, monkeypatch):
    # Process 1 dies at start; process 0 would wait for it at the barrier for BARRIER_S seconds.
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\ncase " $* " in *" --id 1 "*) echo "process 1 breaks" >&2; exit 7;; esac\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    args = Namespace(concurrent_steps=5, concurrent_warmup=1, concurrent_batch_size=8)
    ctx = Namespace(args=args, device=torch.device("cpu"), scratch=tmp_path, left=lambda: 300.0)
    start = time.monotonic()
    result = run_level(ctx, 2, dict(os.environ))
    assert result == {"error": "process 1 exited with 7: process 1 breaks"}
    assert time.monotonic() - start < BARRIER_S / 2


@pytest.mark.slow
def test_the_mps_levels_start_the_daemon_and_stop_it(tmp_path):
    # A stand-in for nvidia-cuda-mps-control that logs what it is asked; the trainings run on the CPU.
    log = tmp_path / "mps.log"
    fake = tmp_path / "bin" / "nvidia-cuda-mps-control"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-d" ]; then echo "start $CUDA_MPS_PIPE_DIRECTORY" >> {log}; '
                    f'else echo "stdin $(cat)" >> {log}; fi\n')
    fake.chmod(0o755)
    out = tmp_path / "gpu-check.json"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = check("--simulate-cpu", "--sections", "concurrency", "--concurrency", "1", "--concurrent-steps", "2",
                 "--concurrent-warmup", "1", "--concurrent-batch-size", "8", "--json", str(out), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(out)
    assert found["1 concurrent resnet20"]["status"] == "ok"
    assert found["1 concurrent resnet20 under CUDA MPS"]["status"] == "ok"
    assert "of the same without MPS" in found["1 concurrent resnet20 under CUDA MPS"]["result"]
    started, stopped = log.read_text().splitlines()
    assert started.startswith("start ") and started.endswith("mps-pipe") and stopped == "stdin quit"

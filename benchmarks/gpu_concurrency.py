"""The concurrency section of ``benchmarks.gpu_check``: N resnet20 trainings sharing one GPU.

``--gpus-per-trial 0.25`` or ``0.5`` puts 4 or 2 trials, each its own process, on one GPU; the
summed images/s of 1, 2 and 4 such processes say what that buys. Where
``nvidia-cuda-mps-control`` exists, the same levels run again under CUDA MPS (the check starts
the daemon and stops it), which lets kernels of different processes run at the same time.

Each process warms up, waits until every sibling is ready, then times a fixed number of steps.
If one fails, the others are stopped at once; none waits for a sibling longer than 60 s.

One of the processes (started by the check)::

    python -m benchmarks.gpu_concurrency FOLDER --id 0 --of 2 --steps 200 --warmup 20 --batch-size 128 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.gpu_report import last_line, stop
from benchmarks.throughput import endless
from model.build import build_model
from model.checkpoint import write_json
from model.config import RunConfig
from model.data import synthetic_cifar10
from model.device import configure_threads, grad_scaler, precision, resolve_device
from model.loader import DeviceLoader
from model.optim import build_optimizer, build_scheduler
from model.train import train_one_epoch

ROOT = Path(__file__).resolve().parents[1]
SECTION = "concurrency"
BARRIER_S = 60.0  # the longest a process waits for its siblings to get ready
MPS_CONTROL = "nvidia-cuda-mps-control"


def worker(args: argparse.Namespace) -> int:
    """Train resnet20; after warming up, wait for every sibling, then time ``--steps`` steps."""
    folder, abort = Path(args.folder), Path(args.folder) / "abort"
    configure_threads(1)
    device = resolve_device(args.device)
    cfg = RunConfig(arch="resnet20", batch_size=args.batch_size, epochs=1000, device=device.type)
    data = synthetic_cifar10(num_train=max(4096, 4 * args.batch_size), num_test=10, val_size=0, seed=args.id)
    torch.manual_seed(args.id)
    model = build_model(cfg.arch).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, 100)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size=cfg.batch_size, mean=data.mean,
                          std=data.std, device=device, train=True, augment=cfg.augment, channels_last=True)
    stream, criterion, scaler = endless(loader), nn.CrossEntropyLoss(), grad_scaler(precision(device, cfg.amp))

    def steps(n: int) -> int:
        return train_one_epoch(model, criterion, optimizer, scheduler, itertools.islice(stream, n), device,
                               amp=cfg.amp, scaler=scaler)["images"]

    steps(args.warmup)
    (folder / f"ready-{args.id}").touch()
    deadline = time.monotonic() + BARRIER_S
    while len(list(folder.glob("ready-*"))) < args.of:
        if abort.exists():
            return 3
        if time.monotonic() > deadline:
            raise TimeoutError(f"the other trainings were not ready after {BARRIER_S:.0f} s")
        time.sleep(0.01)
    start, images = time.time(), 0
    for done in range(0, args.steps, 20):
        if abort.exists():
            return 3
        images += steps(min(20, args.steps - done))
    end = time.time()
    write_json(folder / f"{args.id}.json", {"images": images, "start": start, "end": end,
                                            "images_per_second": images / (end - start)})
    return 0


def run_level(ctx, n: int, env: dict) -> dict:
    """``n`` workers at once: their summed images/s, or {"error": ...}."""
    folder = Path(tempfile.mkdtemp(prefix=f"concurrent{n}-", dir=ctx.scratch))
    a = ctx.args
    cmd = [sys.executable, "-m", "benchmarks.gpu_concurrency", str(folder), "--of", str(n), "--steps",
           str(a.concurrent_steps), "--warmup", str(a.concurrent_warmup), "--batch-size", str(a.concurrent_batch_size),
           "--device", ctx.device.type]
    logs = [open(folder / f"{i}.log", "w") for i in range(n)]
    procs = [subprocess.Popen(cmd + ["--id", str(i)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
             for i, log in enumerate(logs)]
    deadline = time.monotonic() + ctx.left()
    error = None
    try:
        while error is None and any(p.poll() is None for p in procs):
            bad = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            if bad is not None:
                error = f"process {bad} exited with {procs[bad].returncode}"
            elif time.monotonic() > deadline:
                error = "timed out (budget)"
            time.sleep(0.05)
        bad = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
        if error is None and bad is not None:
            error = f"process {bad} exited with {procs[bad].returncode}"
    finally:
        if error is not None or any(p.poll() is None for p in procs):  # a failure or an Interrupted
            (folder / "abort").touch()
            for p in procs:
                stop(p)
        for log in logs:
            log.close()
    if error is not None:
        bad = bad if bad is not None else 0
        return {"error": f"{error}: {last_line((folder / f'{bad}.log').read_text())}"}
    each = [json.loads((folder / f"{i}.json").read_text()) for i in range(n)]
    wall = max(e["end"] for e in each) - min(e["start"] for e in each)
    return {"summed": sum(e["images"] for e in each) / wall, "each": [e["images_per_second"] for e in each]}


def run_levels(ctx, env: dict, suffix: str, without: dict | None = None) -> dict:
    """Every level of ``--concurrency`` that fits in the time left; a row for each."""
    found: dict[int, dict] = {}
    last = None  # (processes, seconds) of the level before
    for n in ctx.args.concurrency:
        check = f"{n} concurrent resnet20{suffix}"
        guess = last[1] * n / last[0] if last else 0.0
        if ctx.left() < guess + 1.0:
            ctx.report.row(SECTION, check, "skipped", f"budget: about {guess:.0f} s needed, {ctx.left():.0f} s left")
            continue
        start = time.monotonic()
        found[n] = result = run_level(ctx, n, env)
        last = (n, time.monotonic() - start)
        ctx.report.detail(SECTION, **{check: result})
        if "error" in result:
            ctx.report.row(SECTION, check, "FAILED", result["error"])
            continue
        one = next((r["summed"] for r in found.values() if "summed" in r), result["summed"])
        text = (f"{result['summed']:,.0f} images/s summed ({result['summed'] / one:.2f}x of "
                f"{ctx.args.concurrency[0]}), {min(result['each']):,.0f}-{max(result['each']):,.0f} each; "
                f"batch {ctx.args.concurrent_batch_size}")
        if without and "summed" in without.get(n, {}):
            text += f"; {result['summed'] / without[n]['summed']:.2f}x of the same without MPS"
        ctx.report.row(SECTION, check, "ok", text)
    return found


@contextlib.contextmanager
def mps_daemon(control: str, scratch: Path):
    """A CUDA MPS control daemon of our own for the block (its pipes in ``scratch``); yields the clients' env."""
    env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(scratch / "mps-pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(scratch / "mps-log")}
    for key in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    started = subprocess.run([control, "-d"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=30)
    if started.returncode != 0:
        raise RuntimeError(f"{control} -d exited with {started.returncode}: "
                           f"{last_line(started.stderr + started.stdout)}")
    try:
        yield env
    finally:
        subprocess.run([control], input="quit\n", env=env, capture_output=True, text=True, timeout=30)


def check_concurrency(ctx) -> None:
    without = run_levels(ctx, dict(os.environ), "")
    control = shutil.which(MPS_CONTROL)
    if control is None:
        ctx.report.row(SECTION, "concurrency under CUDA MPS", "skipped", f"no {MPS_CONTROL} on PATH")
        return
    try:
        with mps_daemon(control, ctx.scratch) as env:
            ctx.report.detail(SECTION, mps=control)
            run_levels(ctx, env, " under CUDA MPS", without)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        ctx.report.row(SECTION, "concurrency under CUDA MPS", "FAILED", f"{e.__class__.__name__}: {e}")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_concurrency", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="where the processes meet (ready-I files) and write I.json")
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--of", type=int, required=True, help="processes in all")
    p.add_argument("--steps", type=int, required=True, help="timed steps")
    p.add_argument("--warmup", type=int, required=True, help="untimed steps first")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--device", default="cuda")
    return p


if __name__ == "__main__":
    sys.exit(worker(get_args_parser().parse_args()))

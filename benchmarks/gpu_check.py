"""The GPU acceptance check: the first command to run on a machine with a GPU.

On CUDA it runs, and sums up in one table (``--json PATH`` also saves every number):

1. ``pytest -m gpu``: the GPU tests (resume on CUDA, CPU files, bf16 / fp16, fused optimizers).
2. ``python -m model.train`` for 2 epochs (autocast + channels_last), then ``--resume`` to a third.
3. Training throughput (``benchmarks.throughput``) of resnet20, resnet56 and resnet18 with every
   augmentation policy, against the DataLoader baseline.
4. Summed images/s of 1, 2, 4 and 8 resnet20 trainings sharing the GPU: what ``--gpus-per-trial``
   fractions buy.
5. With ray and optuna installed: a smoke search of 4 trials on one GPU (``--gpus-per-trial 0.25``).

All but the search need only torch, torchvision, numpy and pillow; a section whose needs are
missing says so and is skipped. The training runs read ``--data`` (default: data/cifar10-jpeg.tar.gz
if present), else synthetic images, and say which. Exit code: 0 all ran, 1 a section failed,
2 no GPU (or bad flags).

Example::

    python -m benchmarks.gpu_check --data data/cifar10-jpeg.tar.gz --json runs/gpu-check.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "cifar10-jpeg.tar.gz"
ARCHS = ("resnet20", "resnet56", "resnet18")
NO_GPU = "error: no CUDA device here (torch.cuda.is_available() is False); run this on a machine with a GPU"


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def tail(text: str, n: int = 2000) -> str:
    return text[-n:]


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


# ---------------------------------------------------------------------------------------------
# Sections: each returns rows of (check, status, result) and details for the JSON


def check_tests(args, data_path) -> tuple[list, dict]:
    if importlib.util.find_spec("pytest") is None:
        return [("pytest -m gpu", "skipped", "pytest is not installed")], {}
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    done = run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files], 3000)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", done.stdout)}
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    status = "ok" if done.returncode == 0 and not failed else "FAILED"
    result = ", ".join(f"{n} {k}" for k, n in counts.items()) or f"exit code {done.returncode}"
    return [("pytest -m gpu", status, result)], {"files": files, "counts": counts, "returncode": done.returncode,
                                                 "output": tail(done.stdout + done.stderr, 6000)}


def check_train(args, data_path) -> tuple[list, dict]:
    out = args.scratch / "train"
    base = [sys.executable, "-m", "model.train", "--data", str(data_path), "--out", str(out), "--device", "cuda",
            "--arch", "resnet20"]
    runs = {}
    for name, extra in (("2 epochs", ["--epochs", "2"]), ("resume to 3", ["--epochs", "3", "--resume"])):
        done = run(base + extra, 3000)
        runs[name] = {"returncode": done.returncode, "output": tail(done.stdout + done.stderr)}
        if done.returncode != 0:
            return [(f"model.train {name}", "FAILED", last_line(done.stderr))], runs
    metrics = json.loads((out / "metrics.json").read_text())
    files = {name: torch.load(out / name, weights_only=True) for name in ("model.pt", "checkpoint.pt")}
    on_cpu = all(t.device.type == "cpu" for state in files.values() for t in _tensors(state))
    ips = [h["images_per_second"] for h in metrics["history"]]
    ok = metrics["epochs"] == 3 and len(metrics["history"]) == 3 and on_cpu
    result = (f"{metrics['precision']}, val_acc {metrics['history'][1]['val_acc']:.4f} after 2, "
              f"{metrics['val_acc']:.4f} after 3; {ips[-1]:,.0f} images/s; files on CPU: {on_cpu}")
    return [("model.train 2 epochs + --resume to 3", "ok" if ok else "FAILED", result)], {**runs, "metrics": metrics}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (dict, list, tuple)):
        for v in obj.values() if isinstance(obj, dict) else obj:
            yield from _tensors(v)


def check_throughput(args, data_path) -> tuple[list, dict]:
    from benchmarks import throughput as tp
    from model.config import RunConfig
    from model.device import configure_threads
    from model.loader import AUGMENTATIONS

    flags = ["--device", "cuda", "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup",
             str(args.warmup), "--workers", str(args.workers), "--images", str(args.images)]
    targs = tp.get_args_parser().parse_args(flags + (["--data", str(data_path)] if args.real_data else []))
    configure_threads(0)
    device = torch.device("cuda")
    data, images, labels = tp.load_images(targs)
    rows, details = [], {}

    def median_ips(mode, cfg) -> float:
        return statistics.median(tp.measure(mode, targs, cfg, data, images, labels, device)["images_per_second"]
                                 for _ in range(args.repeats))

    for arch in ARCHS:
        cfg = RunConfig(arch=arch, batch_size=args.batch_size, epochs=1000, device="cuda", augment="crop_flip")
        base = median_ips("baseline", cfg)
        details[arch] = {"baseline": base}
        rows.append((f"throughput {arch} DataLoader baseline", "ok", f"{base:,.0f} images/s ({args.workers} workers)"))
        for augment in AUGMENTATIONS:
            ours = median_ips("ours", dataclasses.replace(cfg, augment=augment))
            details[arch][augment] = ours
            rows.append((f"throughput {arch} {augment}", "ok", f"{ours:,.0f} images/s, {ours / base:.1f}x baseline"))
    return rows, {"images_per_second": details, "args": vars(targs)}


def check_concurrency(args, data_path) -> tuple[list, dict]:
    rows, details = [], {}
    for n in args.concurrency:
        barrier = Path(tempfile.mkdtemp(prefix=f"conc{n}-", dir=args.scratch))
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", str(barrier), "--workers-total", str(n),
               "--duration", str(args.duration), "--concurrent-batch-size", str(args.concurrent_batch_size)]
        procs = [subprocess.Popen(cmd + ["--worker-id", str(i)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(n)]
        outputs = [p.communicate(timeout=600 + args.duration) for p in procs]
        if any(p.returncode for p in procs):
            err = next(o[1] for p, o in zip(procs, outputs) if p.returncode)
            rows.append((f"{n} concurrent resnet20", "FAILED", last_line(err)))
            details[n] = {"error": tail(err)}
            continue
        each = [json.loads((barrier / f"{i}.json").read_text())["images_per_second"] for i in range(n)]
        details[n] = {"each": each, "sum": sum(each)}
        one = details.get(args.concurrency[0], {}).get("sum") or sum(each)
        rows.append((f"{n} concurrent resnet20 (batch {args.concurrent_batch_size})", "ok",
                     f"{sum(each):,.0f} images/s summed ({sum(each) / one:.2f}x of {args.concurrency[0]}), "
                     f"{min(each):,.0f}-{max(each):,.0f} each"))
    return rows, details


def check_search(args, data_path) -> tuple[list, dict]:
    missing = [m for m in ("ray", "optuna") if importlib.util.find_spec(m) is None]
    if missing:
        return [("smoke search, 4 trials x 0.25 GPU", "skipped", f"{' and '.join(missing)} not installed")], {}
    out = args.scratch / "search"
    t0 = time.perf_counter()
    done = run([sys.executable, "-m", "search.run", "--space", "smoke", "--data", str(data_path), "--out", str(out),
                "--gpus-per-trial", "0.25", "--num-samples", "4", "--max-epochs", "2", "--no-report"], 3000)
    seconds = time.perf_counter() - t0
    details = {"returncode": done.returncode, "seconds": seconds, "output": tail(done.stdout + done.stderr, 6000)}
    if done.returncode != 0:
        return [("smoke search, 4 trials x 0.25 GPU", "FAILED", last_line(done.stderr))], details
    best = json.loads((out / "best" / "metrics.json").read_text())
    details["best"] = best
    return [("smoke search, 4 trials x 0.25 GPU", "ok",
             f"{seconds:.0f} s; retrained best: test_acc {best['test_acc']:.4f} ({best.get('precision', '?')})")], \
        details


SECTIONS = {"tests": check_tests, "train": check_train, "throughput": check_throughput,
            "concurrency": check_concurrency, "search": check_search}


# ---------------------------------------------------------------------------------------------
# One of the concurrent trainings


def worker(args) -> int:
    """Train resnet20 on the GPU; after warming up, wait for every sibling, then count images for --duration s."""
    import itertools as it

    from torch import nn

    from benchmarks.throughput import endless
    from model.build import build_model
    from model.config import RunConfig
    from model.data import synthetic_cifar10
    from model.device import configure_threads, grad_scaler, precision
    from model.loader import DeviceLoader
    from model.optim import build_optimizer, build_scheduler
    from model.train import train_one_epoch

    configure_threads(1)
    device = torch.device("cuda")
    cfg = RunConfig(arch="resnet20", batch_size=args.concurrent_batch_size, epochs=1000, device="cuda")
    data = synthetic_cifar10(num_train=8192, num_test=10, val_size=0, seed=args.worker_id)
    torch.manual_seed(args.worker_id)
    model = build_model(cfg.arch).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, 100)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size=cfg.batch_size, mean=data.mean,
                          std=data.std, device=device, train=True, augment=cfg.augment, channels_last=True)
    stream, criterion, scaler = endless(loader), nn.CrossEntropyLoss(), grad_scaler(precision(device))

    def steps(n: int) -> int:
        return train_one_epoch(model, criterion, optimizer, scheduler, it.islice(stream, n), device,
                               scaler=scaler)["images"]

    steps(30)
    barrier = Path(args.worker)
    (barrier / f"ready-{args.worker_id}").touch()
    deadline = time.monotonic() + 600
    while len(list(barrier.glob("ready-*"))) < args.workers_total:
        if time.monotonic() > deadline:
            raise TimeoutError("the other concurrent trainings never got ready")
        time.sleep(0.01)
    start = time.perf_counter()
    images = 0
    while time.perf_counter() - start < args.duration:
        images += steps(10)
    seconds = time.perf_counter() - start
    (barrier / f"{args.worker_id}.json").write_text(json.dumps({"images_per_second": images / seconds}))
    return 0


# ---------------------------------------------------------------------------------------------
# Command line


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0],
                                add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None,
                   help=f"CIFAR-10 source as in model.train (default: {DEFAULT_DATA.relative_to(ROOT)} if present, "
                        "else synthetic images)")
    p.add_argument("--json", default=None, help="also write every number to this JSON file")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS), help="what to run")
    p.add_argument("--steps", type=int, default=200, help="timed steps per throughput measurement")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps before each throughput measurement")
    p.add_argument("--repeats", type=int, default=1, help="throughput measurements per mode (the median is kept)")
    p.add_argument("--batch-size", type=int, default=256, help="images per step in the throughput section")
    p.add_argument("--images", type=int, default=25600, help="training images the throughput epochs go over")
    p.add_argument("--workers", type=int, default=8, help="DataLoader worker processes of the baseline")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="trainings sharing the GPU")
    p.add_argument("--concurrent-batch-size", type=int, default=128, help="batch size of the concurrent trainings")
    p.add_argument("--duration", type=float, default=15.0, help="seconds each concurrency level is timed")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # a concurrent training's barrier folder
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--workers-total", type=int, default=1, help=argparse.SUPPRESS)
    return p


def machine() -> dict:
    props = torch.cuda.get_device_properties(0)
    import torchvision

    return {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "gpus": torch.cuda.device_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "torchvision": torchvision.__version__,
            "python": sys.version.split()[0]}


def synthetic_folder(scratch: Path) -> Path:
    """Synthetic CIFAR-shaped images as train/ and test/ folders of PNGs, for the CLIs that read a path."""
    from model.data import synthetic_cifar10
    from tests._data_utils import write_image_folders

    return write_image_folders(synthetic_cifar10(num_train=12000, num_test=1000, val_size=2000, seed=0),
                               scratch / "synthetic")


def main(args: argparse.Namespace) -> int:
    if args.worker is not None:
        return worker(args)
    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else DEFAULT_DATA if DEFAULT_DATA.exists() else None
    if data is not None and not data.exists():
        print(f"error: --data {data} does not exist", file=sys.stderr)
        return 2
    info = machine()
    print(f"{info['gpu']} (capability {info['capability']}, {info['memory_gib']} GiB) x{info['gpus']}; "
          f"torch {info['torch']} (CUDA {info['cuda']}), torchvision {info['torchvision']}", flush=True)
    rows, details = [], {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        args.scratch, args.real_data = Path(scratch), data is not None
        if data is None:
            print("note: no --data and no data/cifar10-jpeg.tar.gz: training on synthetic images", flush=True)
            if {"train", "search"} & set(args.sections):
                data = synthetic_folder(args.scratch)
        for name in args.sections:
            print(f"== {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                section_rows, details[name] = SECTIONS[name](args, data)
            except Exception as e:  # one broken section must not hide the others' results
                section_rows, details[name] = [(name, "FAILED", f"{e.__class__.__name__}: {e}")], {}
            details[name]["seconds"] = time.perf_counter() - t0
            for row in section_rows:
                print(f"   {row[1]:7s} {row[0]}: {row[2]}", flush=True)
            rows += section_rows
    lines = ["| check | status | result |", "|---|---|---|"] + [f"| {c} | {s} | {r} |" for c, s, r in rows]
    print("\n" + "\n".join(lines) + "\n")
    print(f"data: {args.data or (DEFAULT_DATA if args.real_data else 'synthetic images')}")
    if args.json:
        from model.checkpoint import write_json

        write_json(Path(args.json), {"machine": info, "data": str(data) if args.real_data else "synthetic",
                                     "rows": [dict(zip(("check", "status", "result"), r)) for r in rows],
                                     "sections": details, "args": {k: str(v) for k, v in vars(args).items()}})
        print(f"wrote {args.json}")
    return 1 if any(s == "FAILED" for _, s, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

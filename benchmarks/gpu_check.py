"""The GPU acceptance check: the first command to run on a machine with a GPU, within a time budget.

Sections, in order of value; each gets a share of the time left, is shortened or skipped when
it would not fit (its rows say so), and no subprocess outlives the time left:

1. tests: ``pytest -m gpu`` on the test files that need only torch, torchvision, numpy and
   pillow (tests that need Ray skip themselves). pytest comes from the machine or from
   ``.gpu_deps/`` (``bash benchmarks/gpu_deps.sh``); without it the section is NOT RUN.
2. train: ``python -m model.train`` for 2 epochs, then ``--resume`` to a third.
3. throughput: ``benchmarks.gpu_throughput``, a small matrix of ``benchmarks.throughput`` modes.
4. concurrency: ``benchmarks.gpu_concurrency``, 1, 2 and 4 trainings sharing the GPU, and under CUDA MPS.
5. search: with ray and optuna installed, a smoke search with ``--gpus-per-trial 0.25``.

Every row is printed as it is made, and ``--json PATH`` is rewritten after every row and
measurement and on SIGTERM or SIGINT: a run killed at any moment leaves every finished number.
Exit code: 0 all ran, 1 a section failed or was not run, 2 no GPU (or bad flags), 128 + N
killed by signal N. ``--simulate-cpu`` runs every section on the CPU at tiny sizes, to find a
broken section before a GPU is at hand.

Example::

    python -m benchmarks.gpu_check --data data/cifar10-jpeg.tar.gz --budget 360 --json runs/gpu-check.json
    python -m benchmarks.gpu_check --simulate-cpu --budget 120 --json /tmp/gpu-check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from benchmarks.gpu_concurrency import check_concurrency
from benchmarks.gpu_report import Budget, Interrupted, Report, catch_signals, last_line, run, tail
from benchmarks.gpu_throughput import check_throughput
from model.checkpoint import tensors
from model.data import synthetic_cifar10
from model.device import configure_threads, cuda_backends, resolve_device
from model.loader import AUGMENTATIONS
from model.resnet import list_models

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "cifar10-jpeg.tar.gz"
DEPS = ROOT / ".gpu_deps"  # pytest for a machine without it: benchmarks/gpu_deps.sh
NO_GPU = ("error: no CUDA device here (torch.cuda.is_available() is False); run this on a machine with a GPU, "
          "or try every section on the CPU with --simulate-cpu")

# Sizes on a GPU, and with --simulate-cpu (tiny: every code path runs, no number means anything).
SIZES = {
    "archs": (["resnet20", "resnet18"], ["resnet20"], "architectures of the throughput matrix"),
    "augments": (["crop_flip", "trivialaugment", "randaugment"], ["crop_flip", "trivialaugment", "randaugment"],
                 "augmentations of the throughput matrix (the first is also timed with cudnn.benchmark off)"),
    "repeats": (3, 2, "rounds of the throughput matrix (medians over them)"),
    "batch_size": (256, 32, "images per step in the throughput matrix"),
    "steps": (100, 2, "timed steps per throughput measurement"),
    "warmup": (30, 1, "untimed steps before each throughput measurement"),
    "images": (25600, 256, "training images the throughput epochs go over"),
    "workers": (8, 1, "DataLoader worker processes of the baseline"),
    "concurrency": ([1, 2, 4], [1, 2], "how many trainings share the GPU, level by level"),
    "concurrent_batch_size": (128, 32, "batch size of the concurrent trainings"),
    "concurrent_steps": (200, 3, "timed steps of each concurrent training"),
    "concurrent_warmup": (20, 1, "untimed steps of each concurrent training first"),
}
SYNTHETIC = ((12000, 1000), (300, 100))  # training and test images of the CLIs when there is no --data
TRAIN_FLAGS = ([], ["--val-size", "100", "--batch-size", "50", "--threads", "1"])
SEARCH_FLAGS = (["--gpus-per-trial", "0.25", "--num-samples", "4", "--max-epochs", "2"],
                ["--gpus-per-trial", "0", "--cpus-per-trial", "1", "--num-samples", "2", "--max-epochs", "1",
                 "--retrain-epochs", "1", "--val-size", "100"])


@dataclass
class Context:
    """What a section needs: the flags, the report, the device, the data and its deadline."""

    args: argparse.Namespace
    report: Report
    device: torch.device
    data: Path | None  # what the CLIs read: --data, or a synthetic image folder
    real_data: Path | None  # --data, or None when the images are synthetic
    scratch: Path
    deadline: float = 0.0

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def flags(self, pair: tuple) -> list:
        return pair[self.args.simulate_cpu]


# ---------------------------------------------------------------------------------------------
# Sections: each adds its rows to ctx.report as it goes


def check_tests(ctx: Context) -> None:
    check = "pytest -m gpu"
    sys.path.append(str(DEPS))
    if importlib.util.find_spec("pytest") is None:
        ctx.report.row("tests", check, "NOT RUN", f"no pytest here nor in {DEPS.name}/: run bash "
                                                  "benchmarks/gpu_deps.sh where pip works and bring .gpu_deps/ along")
        return
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    xml = ctx.scratch / "pytest.xml"
    argv = ["-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *files]
    code = f"import sys; sys.path.append({str(DEPS)!r}); import pytest; sys.exit(pytest.main({argv!r}))"
    returncode, out = run([sys.executable, "-c", code], ctx.left(), ROOT)
    if not xml.exists():  # pytest writes it once every test has run
        why = "timed out (budget)" if returncode is None else f"exit code {returncode}"
        ctx.report.row("tests", check, "FAILED", f"{why}: {last_line(out)}")
        ctx.report.detail("tests", files=files, output=tail(out))
        return
    outcomes = [(case.get("classname", "") + "::" + case.get("name", ""), _outcome(case))
                for case in ET.parse(xml).getroot().iter("testcase")]
    counts = Counter(o if o in ("passed", "failed", "error") else "skipped" for _, o in outcomes)
    reasons = Counter(o.split(": ", 1)[1] for _, o in outcomes if o.startswith("skipped"))
    result = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no tests collected"
    if reasons:
        result += " (" + "; ".join(f"{n}: {why[:80]}" for why, n in reasons.most_common()) + ")"
    if returncode is None:
        result += "; every test had run, but pytest was still exiting at the deadline"
    ok = returncode in (0, None) and counts["passed"] > 0 and not counts["failed"] + counts["error"]
    ctx.report.row("tests", check, "ok" if ok else "FAILED", result)
    ctx.report.detail("tests", files=files, returncode=returncode, tests=dict(outcomes), output=tail(out))


def _outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is not None:
            message = found.get("message", "")
            if "Skipped: " in (found.text or ""):  # a whole module skipped: the reason is in the text
                message = re.sub(r"""["']\)$""", "", found.text.split("Skipped: ", 1)[1])
            return f"{'failed' if tag == 'failure' else tag}: {message}"
    return "passed"


def check_train(ctx: Context) -> None:
    out = ctx.scratch / "train"
    base = [sys.executable, "-m", "model.train", "--data", str(ctx.data), "--out", str(out), "--device",
            ctx.device.type, "--arch", "resnet20", *ctx.flags(TRAIN_FLAGS)]
    for check, extra in (("model.train 2 epochs", ["--epochs", "2"]),
                         ("model.train --resume to 3 epochs", ["--epochs", "3", "--resume"])):
        returncode, output = run(base + extra, ctx.left(), ROOT)
        ctx.report.detail("train", **{check: tail(output)})
        if returncode != 0:
            why = "timed out (budget)" if returncode is None else f"exit code {returncode}"
            ctx.report.row("train", check, "FAILED", f"{why}: {last_line(output)}")
            return
        metrics = json.loads((out / "metrics.json").read_text())
        files = [torch.load(out / name, weights_only=True) for name in ("model.pt", "checkpoint.pt")]
        on_cpu = all(t.device.type == "cpu" for state in files for t in tensors(state))
        backends = json.loads((out / "config.json").read_text())["versions"].get("cuda_backends")
        ok = metrics["epochs"] == len(metrics["history"]) == int(extra[1]) and on_cpu
        ctx.report.row("train", check, "ok" if ok else "FAILED",
                       f"{metrics['precision']}, val_acc {metrics['val_acc']:.4f}, "
                       f"{metrics['history'][-1]['images_per_second']:,.0f} images/s in the last epoch; files on "
                       f"CPU: {on_cpu}; config.json cuda_backends: {backends}")


def check_search(ctx: Context) -> None:
    check = "smoke search" + ("" if ctx.args.simulate_cpu else ", 4 trials x 0.25 GPU")
    out = ctx.scratch / "search"
    start = time.perf_counter()
    returncode, output = run([sys.executable, "-m", "search.run", "--space", "smoke", "--data", str(ctx.data), "--out",
                              str(out), "--no-report", *ctx.flags(SEARCH_FLAGS)], ctx.left(), ROOT)
    seconds = time.perf_counter() - start
    ctx.report.detail("search", returncode=returncode, output=tail(output))
    if returncode != 0:
        why = "timed out (budget)" if returncode is None else f"exit code {returncode}"
        ctx.report.row("search", check, "FAILED", f"{why}: {last_line(output)}")
        return
    best = json.loads((out / "best" / "metrics.json").read_text())
    ctx.report.row("search", check, "ok", f"{seconds:.0f} s; retrained best: test_acc {best['test_acc']:.4f} "
                                         f"({best.get('precision', '?')})")


# name: (run, share of the time left, at least seconds, modules it needs)
SECTIONS = {
    "tests": (check_tests, 0.6, 20, ()),
    "train": (check_train, 0.45, 15, ()),
    "throughput": (check_throughput, 0.5, 10, ()),
    "concurrency": (check_concurrency, 0.8, 10, ()),
    "search": (check_search, 1.0, 40, ("ray", "optuna")),
}


# ---------------------------------------------------------------------------------------------
# Command line


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0],
                                add_help=add_help)
    p.add_argument("--data", default=None,
                   help=f"CIFAR-10 source as in model.train (default: {DEFAULT_DATA.relative_to(ROOT)} if present, "
                        "else synthetic images)")
    p.add_argument("--json", default=None, help="write every row and number to this JSON file, as they are made")
    p.add_argument("--budget", type=float, default=360.0, help="seconds the whole check may take (default: 360)")
    p.add_argument("--simulate-cpu", action="store_true", help="run every section on the CPU, at tiny sizes")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS),
                   help="what to run, in this order (default: all)")
    for name, (gpu, cpu, what) in SIZES.items():
        kind = {"nargs": "+"} if isinstance(gpu, list) else {}
        show = (lambda v: " ".join(map(str, v))) if kind else str
        p.add_argument(f"--{name.replace('_', '-')}", type=type(gpu[0] if kind else gpu), default=None,
                       help=f"{what} (default: {show(gpu)} on a GPU, {show(cpu)} with --simulate-cpu)", **kind)
    return p


def machine(device: torch.device) -> dict:
    import torchvision

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "torchvision": torchvision.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count(),
                    cudnn=torch.backends.cudnn.version())
    return info


def synthetic_folder(root: Path, num_train: int, num_test: int) -> Path:
    """Synthetic CIFAR-shaped PNGs as train/<class>/ and test/<class>/, for the CLIs that read a path."""
    data = synthetic_cifar10(num_train=num_train, num_test=num_test, val_size=0, seed=0)
    for split, images, labels in (("train", data.train_images, data.train_labels),
                                  ("test", data.test_images, data.test_labels)):
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            (root / split / data.classes[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / split / data.classes[label] / f"{i:05d}.png")
    return root


def main(args: argparse.Namespace) -> int:
    for name, sizes in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, sizes[args.simulate_cpu])
    unknown = sorted(set(args.archs) - set(list_models())) + sorted(set(args.augments) - set(AUGMENTATIONS))
    if unknown:
        print(f"error: unknown --archs or --augments {', '.join(unknown)}; architectures: {', '.join(list_models())}; "
              f"augmentations: {', '.join(AUGMENTATIONS)}", file=sys.stderr)
        return 2
    if not args.simulate_cpu and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    real = Path(args.data) if args.data else DEFAULT_DATA if DEFAULT_DATA.exists() else None
    if real is not None and not real.exists():
        print(f"error: --data {real} does not exist", file=sys.stderr)
        return 2
    budget = Budget(args.budget)
    device = resolve_device("cpu" if args.simulate_cpu else "cuda")  # on CUDA: cudnn.benchmark and TF32 set
    configure_threads(1 if args.simulate_cpu else 0)  # a CPU shared with the subprocesses: no oversubscription
    info = machine(device)
    print(f"{info.get('gpu', 'CPU (--simulate-cpu)')}; torch {info['torch']} (CUDA {info['cuda']}), torchvision "
          f"{info['torchvision']}, Python {info['python']}; budget {args.budget:.0f} s", flush=True)
    header = {"machine": info, "cuda_backends": cuda_backends(), "budget_s": args.budget,
              "data": str(real) if real else "synthetic", "args": {k: str(v) for k, v in vars(args).items()}}
    report = Report(args.json, header)
    catch_signals(report)
    code = 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        data = real
        if data is None:
            print("note: no --data and no data/cifar10-jpeg.tar.gz: synthetic images", flush=True)
            if {"train", "search"} & set(args.sections):
                data = synthetic_folder(Path(scratch) / "synthetic", *SYNTHETIC[args.simulate_cpu])
        ctx = Context(args, report, device, data, real, Path(scratch))
        try:
            report.save()
            for i, name in enumerate(args.sections):
                run_section, fraction, floor, needs = SECTIONS[name]
                missing = [m for m in needs if importlib.util.find_spec(m) is None]
                seconds = budget.share(fraction, floor)
                print(f"== {name} ({budget.left():.0f} s left)", flush=True)
                if missing:
                    report.row(name, name, "skipped", f"{' and '.join(missing)} not installed")
                    continue
                if seconds is None:
                    report.row(name, name, "skipped", f"budget: {budget.left():.0f} s left, needs {floor} s")
                    continue
                ctx.deadline = time.monotonic() + seconds
                start = time.monotonic()
                try:
                    run_section(ctx)
                except Exception as e:  # one broken section must not hide the others' results
                    report.row(name, name, "FAILED", f"{e.__class__.__name__}: {e}")
                report.detail(name, seconds=round(time.monotonic() - start, 1), allowed_s=round(seconds, 1))
            report.finish("finished")
        except Interrupted as e:
            report.finish(f"interrupted by {e}")
            print(f"\n{e}: stopped; every finished measurement is in {args.json or 'the rows above'}", flush=True)
            code = 128 + e.signum
    print("\n" + report.table() + "\n", flush=True)
    if args.json:
        print(f"wrote {args.json}")
    return code or (1 if report.failed else 0)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

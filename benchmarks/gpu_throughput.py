"""The throughput section of ``benchmarks.gpu_check``: a small matrix of ``benchmarks.throughput`` modes.

Per architecture: the DataLoader baseline, ours with each augmentation, a model-only ceiling
and, for resnet20, ours with cudnn.benchmark off. Every round times each of them once, in
that order, so slow drifts of the machine (clocks, other load) touch every mode alike; the
rows give the median over rounds and the spread ((max - min) / median). A round that would
not fit in the section's time is cut, and the rows say how many repeats they hold.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import time

import torch

from benchmarks import throughput as tp
from model.config import RunConfig

SECTION = "throughput"
BASELINE, CEILING = "DataLoader baseline", "model-only"


@contextlib.contextmanager
def cudnn_benchmark(on: bool):
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def plan(archs: list[str], augments: list[str]) -> list[tuple[str, str, str, str, bool]]:
    """One round: (arch, label, throughput mode, augment, cudnn.benchmark), in the order they are timed."""
    todo = []
    for arch in archs:
        todo.append((arch, BASELINE, "baseline", "crop_flip", True))
        todo += [(arch, f"ours {augment}", "ours", augment, True) for augment in augments]
        if arch == "resnet20":
            todo.append((arch, f"ours {augments[0]}, cudnn.benchmark off", "ours", augments[0], False))
        todo.append((arch, CEILING, "model-only", "crop_flip", True))
    return todo


def describe(arch: str, label: str, results: dict, repeats: int, augments: list[str]) -> str:
    values = results[arch, label]
    med = statistics.median(values)
    parts = [f"{med:,.0f} images/s", f"median of {len(values)}" + (f" of {repeats} (budget)" if len(values) < repeats
                                                                    else ""),
             f"spread {(max(values) - min(values)) / med:.1%}"]
    base, top = (statistics.median(results[arch, k]) if (arch, k) in results else None for k in (BASELINE, CEILING))
    if base and label != BASELINE:
        parts.append(f"{med / base:.2f}x baseline")
    if top and label != CEILING:
        parts.append(f"{med / top:.0%} of model-only")
    if label.endswith("cudnn.benchmark off") and (arch, f"ours {augments[0]}") in results:
        parts.append(f"benchmark on is {statistics.median(results[arch, f'ours {augments[0]}']) / med:.2f}x this")
    return "; ".join(parts)


def check_throughput(ctx) -> None:
    args, device = ctx.args, ctx.device
    timing = argparse.Namespace(steps=args.steps, warmup=args.warmup, workers=args.workers)
    data, images, labels = tp.load_images(argparse.Namespace(data=ctx.real_data, images=args.images, seed=0))
    todo = plan(args.archs, args.augments)
    results: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], float] = {}
    cut = None
    for repeat in range(1, args.repeats + 1):
        for arch, label, mode, augment, benchmark in todo:
            guess = seconds.get((arch, label), max(seconds.values(), default=0.0))
            if ctx.left() < guess + 1.0:
                cut = f"cut by the budget in round {repeat}, before {arch} {label}"
                break
            cfg = RunConfig(arch=arch, batch_size=args.batch_size, epochs=1000, device=device.type, augment=augment)
            start = time.monotonic()
            with cudnn_benchmark(benchmark):
                r = tp.measure(mode, timing, cfg, data, images, labels, device)
            gc.collect()  # the baseline's DataLoader workers exit before the next mode is timed
            seconds[arch, label] = time.monotonic() - start
            results.setdefault((arch, label), []).append(r["images_per_second"])
            for a, lab in results:
                if a == arch:
                    ctx.report.row(SECTION, f"throughput {a} {lab}", "ok",
                                   describe(a, lab, results, args.repeats, args.augments), quiet=True)
            ctx.report.measure(SECTION, f"[{repeat}/{args.repeats}] {arch} {label}: {r['images_per_second']:,.0f} "
                                        f"images/s", arch=arch, mode=label, repeat=repeat,
                               images_per_second=r["images_per_second"], seconds=r["seconds"],
                               cudnn_benchmark=benchmark)
        if cut:
            break
    done = sum(map(len, results.values()))
    ctx.report.row(SECTION, "throughput matrix", "ok" if done else "skipped",
                   f"{done} of {len(todo) * args.repeats} measurements, batch {args.batch_size}, {args.warmup} + "
                   f"{args.steps} steps each, {args.workers} DataLoader workers; {cut or 'complete'}")

"""Record learning curves: train N configs of a space once, and keep every epoch's val_acc.

The table is what the simulator (``simulate.py``) replays instead of training, the way Syne
Tune's blackbox repository and HPOBench's tabular benchmarks do. Each config is trained with the
project's own ``model.train.fit`` for the full ``--epochs``; its curve (val_acc and wall seconds
after every epoch) is what any search would have seen of it, epoch by epoch, had it run it.

The configs are the space's recipes first (the search evaluates them first), then a seeded
random sample of the space. The data split, subset and training seed are fixed for every
config, so the table varies the config alone.

Resumable: a config is appended to the CSV as one block of rows when it finishes, flushed and
fsynced, and a restarted recording skips the config ids already there. A config cut mid-run is
trained again from the start.

Example (the committed table: about 2.5 hours of both cores of the 2-core machine)::

    nice -n 10 python -m benchmarks.curves record --data ../shared/data/cifar10-jpeg.tar.gz \\
        --configs 160 --epochs 12 --train-subset 2000 --val-size 1000 --workers 2 \\
        --out benchmarks/curves/scratch-resnet20.csv

On a GPU: ``--device cuda --workers 8`` runs 8 trainings at once on the GPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from benchmarks.curves.table import PARAM_COLUMNS, RECORD_COLUMNS, read_table

# Recorded after the space's own recipe, so that the simulator replays them exactly: the
# short-budget recipes (spaces/definitions.py SHORT_RECIPES), the first at batch 64, and a
# cosine one without augmentation.
EXTRA_RECIPES = [
    {"lr": 0.1, "weight_decay": 5e-4, "batch_size": 128, "schedule": "onecycle", "optimizer": "nesterov",
     "label_smoothing": 0.0, "augment": "crop_flip"},
    {"lr": 0.2, "weight_decay": 5e-4, "batch_size": 128, "schedule": "onecycle", "optimizer": "nesterov",
     "label_smoothing": 0.1, "augment": "crop_flip"},
    {"lr": 0.05, "weight_decay": 5e-4, "batch_size": 64, "schedule": "onecycle", "optimizer": "nesterov",
     "label_smoothing": 0.0, "augment": "crop_flip"},
    {"lr": 0.1, "weight_decay": 5e-4, "batch_size": 128, "schedule": "cosine", "optimizer": "nesterov",
     "label_smoothing": 0.0, "augment": "none"},
]


def plan_configs(space_name: str, choices: dict[str, list[str]], n: int, seed: int) -> list[dict]:
    """The space's recipe, the extra recipes, then a seeded random sample: ``n`` configs in all."""
    import spaces
    from spaces.asks import inspect_space, sample_space
    from spaces.narrow import narrow_space
    from spaces.recipe import fit_recipe

    fn = spaces.get_space(space_name)
    info = inspect_space(fn, space_name)
    narrowed_fn, narrowed = narrow_space(fn, info, choices, name=space_name)
    fixed = {k: v[0] for k, v in narrowed.items() if len(v) == 1}
    configs = []
    for recipe in [spaces.get_recipe(space_name) or {}, *EXTRA_RECIPES]:
        point = fit_recipe({**recipe, **fixed}, info, narrowed)
        if point and point not in configs:
            configs.append({**fixed, **point})
    sampled = sample_space(narrowed_fn, max(n - len(configs), 0), seed=seed)
    configs += [dict(t.params) for t in sampled]
    return configs[:n]


_DATA = None  # each worker process's copy of the data, loaded once by _init_worker


def _init_worker(data_args: dict, threads: int) -> None:
    global _DATA
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from model.data import load_cifar10

    torch.set_num_threads(threads)
    _DATA = load_cifar10(**data_args)


def _train(config_id: int, params: dict, base: dict) -> list[dict]:
    """Train one config; one row per epoch it ran (fewer than ``epochs`` if it diverged)."""
    from model.config import RunConfig
    from model.train import fit

    cfg = RunConfig(**{**base, **params})
    rows: list[dict] = []
    clock = [time.perf_counter()]

    def on_epoch(m: dict, _checkpoint) -> bool:
        now = time.perf_counter()
        rows.append({"config_id": config_id, **{k: params.get(k, "") for k in PARAM_COLUMNS},
                     "epoch": m["epoch"], "val_acc": round(m["val_acc"], 5),
                     "val_loss": round(m["val_loss"], 5) if m["val_loss"] == m["val_loss"] else "nan",
                     "train_loss": round(m["train_loss"], 5) if m["train_loss"] == m["train_loss"] else "nan",
                     "seconds": round(now - clock[0], 3), "status": "diverged" if m.get("diverged") else "ok"})
        clock[0] = now
        return False

    fit(cfg, _DATA, on_epoch)
    return rows


def header_lines(args: argparse.Namespace, data_desc: dict) -> list[str]:
    import torch

    return [
        "resnet-hpo learning-curve table: one row per (config, epoch); val_acc after that epoch, seconds = its wall time",
        f"command: python -m benchmarks.curves record {' '.join(sys.argv[2:]) if len(sys.argv) > 2 else ''}".rstrip(),
        f"space {args.space} with --choices {args.choices or '-'}; {args.configs} configs (recipes first, then a "
        f"random sample, seed {args.sample_seed}); {args.epochs} epochs; training seed {args.seed} for every config",
        f"data: CIFAR-10 (JPEG-75 copy) {data_desc.get('source', '')}; train_subset {args.train_subset}, "
        f"val_size {args.val_size}, split seed {args.split_seed}; fingerprint {data_desc.get('fingerprint', '')}",
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, {args.workers} workers x {args.threads} threads, "
        f"device {args.device}; torch {torch.__version__}, python {platform.python_version()}",
        f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]


def record(args: argparse.Namespace) -> int:
    choices = dict(parse_choice(c) for c in args.choices)
    configs = plan_configs(args.space, choices, args.configs, args.sample_seed)
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {int(r["config_id"]) for r in read_table(out).rows}
    todo = [(i, p) for i, p in enumerate(configs) if i not in done]
    print(f"{len(configs)} configs, {len(done)} recorded, {len(todo)} to go -> {out}", flush=True)
    if not todo:
        return 0
    data_args = {"source": args.data, "val_size": args.val_size, "train_subset": args.train_subset,
                 "seed": args.split_seed}
    base = {"epochs": args.epochs, "seed": args.seed, "device": args.device, "threads": args.threads}
    if not out.exists():
        from model.data import load_cifar10

        desc = load_cifar10(**data_args).describe()
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as f:
            f.writelines(f"# {line}\n" for line in header_lines(args, desc))
            csv.writer(f).writerow(RECORD_COLUMNS)
    start = time.perf_counter()
    ctx = get_context("spawn")  # fresh interpreters: no forked OpenMP pools, and the same on CUDA
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(data_args, args.threads)) as pool:
        pending = {pool.submit(_train, i, p, base): i for i, p in todo}
        finished = 0
        while pending:
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in ready:
                i = pending.pop(fut)
                rows = fut.result()
                with open(out, "a", newline="") as f:
                    w = csv.DictWriter(f, RECORD_COLUMNS)
                    w.writerows(rows)
                    f.flush()
                    os.fsync(f.fileno())
                finished += 1
                elapsed = time.perf_counter() - start
                print(f"config {i}: final val_acc {rows[-1]['val_acc']:.4f} after {len(rows)} epochs, "
                      f"{sum(r['seconds'] for r in rows):.0f} s; {finished}/{len(todo)} in {elapsed / 60:.1f} min, "
                      f"about {elapsed / finished * (len(todo) - finished) / 60:.0f} min left", flush=True)
    return 0


def parse_choice(text: str) -> tuple[str, list[str]]:
    name, _, values = text.partition("=")
    return name, values.split(",")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="scratch")
    parser.add_argument("--choices", nargs="*", default=["arch=resnet20"], help="NAME=V1,V2 narrowings")
    parser.add_argument("--configs", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", default=None)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="training seed, the same for every config")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the random sample of the space")
    parser.add_argument("--workers", type=int, default=2, help="trainings at once (one per CPU; several per GPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/curves/scratch-resnet20.csv")

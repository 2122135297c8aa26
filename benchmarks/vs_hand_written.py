"""``search.run`` against the hand-written Optuna script (and the paper recipe alone), at equal wall time.

Every arm gets the same total seconds for search, retrain on train + validation, and one test,
on the same data, subset and split, one after another (never two at once: they share the CPUs).
The plain script checks its clock only between trials, as ``study.optimize(timeout=...)`` does,
so it ends up to one trial past ``--total-seconds``; the other arms of a seed then get the wall
time it took (``--no-match-plain`` keeps ``--total-seconds``), so every arm has the same time:

- ``plain_optuna``: ``benchmarks/plain_optuna.py``, what an engineer writes without this project;
- ``search_run``: ``python -m search.run --space scratch --choices arch=resnet20`` with its
  defaults and ``--time-budget`` set to the total (the budget covers the retrain);
- ``paper_recipe`` (``--arms``): the ResNet paper's recipe trained alone on train + validation
  for as many epochs as the total affords at the plain arm's measured speed, then tested.

Example (the 4-epoch comparison of issue 18, 3 seeds, about 35 minutes per arm)::

    python -m benchmarks.vs_hand_written --data ../shared/data/cifar10-jpeg.tar.gz --train-subset 10000 \\
        --val-size 5000 --epochs 4 --total-seconds 660 --seeds 0 1 2 --out runs/vs-hand

A run whose JSON exists is reused, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARMS = ("plain_optuna", "search_run", "paper_recipe")


def plain_argv(args, seed: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.plain_optuna", "--data", args.data, "--train-subset",
            str(args.train_subset), "--val-size", str(args.val_size), "--split-seed", str(args.split_seed), "--epochs", str(args.epochs),
            "--total-seconds", str(args.total_seconds), "--seed", str(seed), "--json", str(out)]


def search_argv(args, seed: int, out: Path, total: float) -> list[str]:
    return [sys.executable, "-m", "search.run", "--space", "scratch", "--choices", "arch=resnet20", "--data",
            args.data, "--train-subset", str(args.train_subset), "--val-size", str(args.val_size), "--max-epochs",
            str(args.epochs), "--time-budget", f"{int(total)}s", "--seed", str(seed), "--out", str(out),
            "--split-seed", str(args.split_seed), *args.search_flags.split()]


def run_search_arm(args, seed: int, root: Path, total: float) -> dict:
    out = root / f"search_run-seed{seed}"
    start = time.perf_counter()
    subprocess.run(search_argv(args, seed, out, total), check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((out / "search.json").read_text())
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    return {"arm": "search_run", "seed": seed, "wall_seconds": wall, "budget_seconds": total, "test_acc": metrics["test_acc"],
            "best_val_acc": summary["best_val_acc"],
            "trials": summary["completed"] + summary["pruned"] + summary["failed"], "pruned": summary["pruned"],
            "retrain_epochs": metrics.get("epochs"), "time_split": summary.get("time_split")}


def run_paper_arm(args, seed: int, images_per_second: float, total: float) -> dict:
    from model.config import RunConfig
    from model.data import load_cifar10
    from model.train import evaluate_test, fit
    from spaces.definitions import SCRATCH_RECIPE

    start = time.perf_counter()
    data = load_cifar10(args.data, val_size=args.val_size, train_subset=args.train_subset, seed=args.split_seed)
    images = len(data.train_labels) + len(data.val_labels)
    epochs = max(1, int(total * 0.95 * images_per_second / images))
    cfg = RunConfig(**SCRATCH_RECIPE, epochs=epochs, seed=seed)
    result = fit(cfg, data, train_on_val=True)
    return {"arm": "paper_recipe", "seed": seed, "epochs": epochs, "budget_seconds": total,
            "wall_seconds": time.perf_counter() - start,
            "test_acc": evaluate_test(result.model, cfg, data)["test_acc"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--train-subset", type=int, default=10_000)
    p.add_argument("--val-size", type=int, default=5_000)
    p.add_argument("--split-seed", type=int, default=0,
                   help="which images form the subset and validation split (every arm gets the same)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--total-seconds", type=float, default=660)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=["plain_optuna", "search_run"], choices=ARMS)
    p.add_argument("--no-match-plain", dest="match_plain", action="store_false",
                   help="give every arm --total-seconds, not the plain arm's measured wall time of the seed")
    p.add_argument("--search-flags", default="", help="extra search.run flags, as one string")
    p.add_argument("--out", default="runs/vs-hand")
    args = p.parse_args(argv)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        for arm in args.arms:
            path = root / f"{arm}-seed{seed}.json"
            if not path.exists():
                if arm == "plain_optuna":
                    subprocess.run(plain_argv(args, seed, path), check=True, stdout=subprocess.DEVNULL)
                    result = json.loads(path.read_text())
                else:
                    plain_path = root / f"plain_optuna-seed{seed}.json"
                    plain = json.loads(plain_path.read_text()) if plain_path.exists() else None
                    total = plain["wall_seconds"] if plain and args.match_plain else args.total_seconds
                    if arm == "search_run":
                        result = run_search_arm(args, seed, root, total)
                    else:
                        result = run_paper_arm(args, seed, plain["images_per_second"] if plain else 1000.0, total)
                path.write_text(json.dumps(result, indent=1))
            results.append(json.loads(path.read_text()))
            r = results[-1]
            print(f"{arm} seed {seed}: test_acc {r['test_acc']:.4f} in {r['wall_seconds']:.0f} s", flush=True)
    print("\n| arm | wall (s) per seed | trials (pruned) | best val_acc | test acc per seed | mean test acc |")
    print("|---|---|---|---|---|---:|")
    for arm in args.arms:
        rs = [r for r in results if r["arm"] == arm]
        walls = " / ".join(f"{r['wall_seconds']:.0f}" for r in rs)
        trials = " / ".join(f"{r.get('trials', '-')} ({r.get('pruned', '-')})" for r in rs)
        vals = " / ".join(f"{r['best_val_acc']:.3f}" if r.get("best_val_acc") is not None else "-" for r in rs)
        tests = " / ".join(f"{r['test_acc']:.3f}" for r in rs)
        print(f"| {arm} | {walls} | {trials} | {vals} | {tests} | {statistics.mean(r['test_acc'] for r in rs):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

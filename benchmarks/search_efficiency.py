"""Search efficiency: TPE + ASHA against random search without early stopping.

Both arms are ``search.run`` with the same space, data, seeds and number of trials:

- ``tpe_asha``: the project's search as it ships: Optuna TPE (multivariate, constant liar)
  and ``PersistentASHA`` stopping weak trials at rungs of ``--grace-period`` x
  ``--reduction-factor``^k epochs.
- ``random_fifo``: ``search.run --sampler random --scheduler fifo``: Optuna's RandomSampler
  in the same ``PruneAwareOptunaSearch``, and no early stopping (Tune's FIFO scheduler):
  every trial runs ``--max-epochs``.

For each arm: the best val_acc among trials that ran every epoch (COMPLETE in ``study.db``),
the trial-epochs spent (the sum of ``epochs`` in ``trials.csv``) and the wall time. The goal:
``tpe_asha`` reaches the same or a better best val_acc with at most 1/3 of the epochs of
``random_fifo``.

Example::

    python -m benchmarks.search_efficiency --space smoke --data ../shared/data/cifar10-jpeg.tar.gz \\
        --train-subset 2000 --val-size 1000 --num-samples 12 --max-epochs 9 --grace-period 1 \\
        --reduction-factor 3 --cpus-per-trial 2 --json runs/bench-efficiency/results.json

Writes ``OUT/tpe_asha`` and ``OUT/random_fifo`` (each a complete ``search.run`` output folder).
Each arm starts a local Ray of its own (``RAY_ADDRESS=local`` unless RAY_ADDRESS is set).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import optuna
import pandas as pd

import search.run as search_run
import spaces
from model.train import add_data_args, load_data, write_json

ARMS = ("tpe_asha", "random_fifo")
ARM_INFO = "bench_arm.json"  # what this script adds to an arm's folder: its command and total wall time


def search_argv(arm: str, args: argparse.Namespace, out: Path) -> list[str]:
    """The ``search.run`` command line of one arm."""
    argv = [
        "--space", args.space, "--data", args.data, "--val-size", str(args.val_size), "--out", str(out),
        "--num-samples", str(args.num_samples), "--max-epochs", str(args.max_epochs),
        "--grace-period", str(args.grace_period), "--reduction-factor", str(args.reduction_factor),
        "--cpus-per-trial", str(args.cpus_per_trial), "--seed", str(args.seed), "--verbose", str(args.verbose),
        "--no-retrain", "--no-report",
    ]
    if arm == "random_fifo":
        argv += ["--sampler", "random", "--scheduler", "fifo"]
    if args.train_subset is not None:
        argv += ["--train-subset", str(args.train_subset)]
    if args.download:
        argv.append("--download")
    if args.gpus_per_trial is not None:
        argv += ["--gpus-per-trial", str(args.gpus_per_trial)]
    if args.max_concurrent is not None:
        argv += ["--max-concurrent", str(args.max_concurrent)]
    for item in args.choices:
        argv += ["--choices", item]
    return argv


def run_arm(arm: str, args: argparse.Namespace, out: Path) -> None:
    import ray

    argv = search_argv(arm, args, out)
    print(f"\n=== {arm}: python -m search.run {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    try:
        code = search_run.main(search_run.get_args_parser().parse_args(argv))
    finally:
        # Each arm gets a fresh local Ray, so neither inherits the other's workers or object store.
        ray.shutdown()
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{arm}: search.run exited with code {code}; see the output above")
    write_json(out / ARM_INFO, {"arm": arm, "argv": argv, "total_wall_seconds": wall})


def summarize_arm(arm: str, out: Path, space: str) -> dict:
    """Best COMPLETE val_acc from study.db, trial-epochs from trials.csv, wall times."""
    study = optuna.load_study(study_name=space, storage=f"sqlite:///{out / 'study.db'}")
    best = search_run.best_complete_trial(study)
    table = pd.read_csv(out / "trials.csv")
    states = table["state"].value_counts().to_dict()
    search_info = json.loads((out / "search.json").read_text())
    arm_info = json.loads((out / ARM_INFO).read_text()) if (out / ARM_INFO).exists() else {}
    return {
        "arm": arm,
        "out": str(out),
        "trials": len(table),
        "complete": int(states.get("COMPLETE", 0)),
        "pruned": int(states.get("PRUNED", 0)),
        "failed": int(states.get("FAIL", 0)),
        "trial_epochs": int(table["epochs"].fillna(0).sum()),
        "best_val_acc": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "search_wall_seconds": search_info.get("wall_seconds"),
        "total_wall_seconds": arm_info.get("total_wall_seconds"),
    }


def compare(results: dict[str, dict], max_epoch_ratio: float, tolerance: float) -> dict | None:
    """The goal, decided: tpe_asha's best val_acc against random_fifo's, and their epochs."""
    if not all(arm in results for arm in ARMS):
        return None
    a, b = results["tpe_asha"], results["random_fifo"]
    epoch_ratio = a["trial_epochs"] / b["trial_epochs"] if b["trial_epochs"] else None
    wall_ratio = (a["search_wall_seconds"] / b["search_wall_seconds"]
                  if a["search_wall_seconds"] and b["search_wall_seconds"] else None)
    difference = (a["best_val_acc"] - b["best_val_acc"]
                  if a["best_val_acc"] is not None and b["best_val_acc"] is not None else None)
    same_or_better = difference is not None and difference >= -tolerance
    within_ratio = epoch_ratio is not None and epoch_ratio <= max_epoch_ratio
    return {
        "epoch_ratio": epoch_ratio,
        "wall_ratio": wall_ratio,
        "val_acc_difference": difference,
        "same_or_better_val_acc": same_or_better,
        "epochs_within_ratio": within_ratio,
        "goal": f"tpe_asha's best val_acc >= random_fifo's - {tolerance:g}, with <= {max_epoch_ratio:.3g}x its "
                "trial-epochs",
        "met": same_or_better and within_ratio,
    }


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def markdown_table(results: dict[str, dict]) -> str:
    lines = ["| arm | trials (complete/pruned/failed) | best val_acc | trial-epochs | search wall | total wall |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results.values():
        lines.append(
            f"| {r['arm']} | {r['trials']} ({r['complete']}/{r['pruned']}/{r['failed']}) | "
            f"{fmt(r['best_val_acc'], '.4f')} | {r['trial_epochs']} | "
            f"{minutes(r['search_wall_seconds'])} | {minutes(r['total_wall_seconds'])} |")
    return "\n".join(lines)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", default="smoke", choices=[s for s in spaces.list_spaces() if not spaces.needs_weights(s)],
                   help="search space")
    add_data_args(p)
    p.add_argument("--choices", action="append", default=[], metavar="NAME=V1,V2",
                   help="passed on to search.run: narrow a categorical parameter, e.g. arch=resnet20 (repeatable)")
    p.add_argument("--out", default="runs/bench-efficiency", help="folder of the two arms' search outputs")
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS,
                   help="arms to run now; an arm not run is read back from OUT if it is there "
                        "(--arms alone: only summarize OUT)")
    p.add_argument("--overwrite", action="store_true", help="delete OUT/ARM of each arm run before running it")
    p.add_argument("--num-samples", type=int, default=12, help="trials per arm")
    p.add_argument("--max-epochs", type=int, default=9, help="epochs of a trial that is never stopped")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial may be stopped")
    p.add_argument("--reduction-factor", type=float, default=3, help="ASHA: keep the top 1/R at each rung")
    p.add_argument("--cpus-per-trial", type=float, default=2, help="CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs per trial (default: search.run's)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most K trials at once")
    p.add_argument("--seed", type=int, default=0, help="seed of both samplers, the validation split and every trial")
    p.add_argument("--max-epoch-ratio", type=float, default=1 / 3,
                   help="goal: tpe_asha spends at most this fraction of random_fifo's trial-epochs")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="goal: tpe_asha's best val_acc may be this much below random_fifo's")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Tune's console output level")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def main(args: argparse.Namespace) -> int:
    root = Path(args.out)
    for arm in args.arms:
        if (root / arm / "study.db").exists() and not args.overwrite:
            print(f"error: {root / arm} already holds a search; pass --overwrite to run it again, or leave {arm} "
                  "out of --arms to reuse it", file=sys.stderr)
            return 2
    if args.arms:
        # Decode the data into the cache now, so the first arm's wall time does not pay for it.
        try:
            load_data(args, seed=args.seed)
        except ValueError as e:  # DataError: one line that says what to do
            print(f"error: {e}", file=sys.stderr)
            return 2
    for arm in args.arms:
        out = root / arm
        if out.exists() and args.overwrite:
            shutil.rmtree(out)
        try:
            run_arm(arm, args, out)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    results = {arm: summarize_arm(arm, root / arm, args.space) for arm in ARMS if (root / arm / "trials.csv").exists()}

    print("\n" + markdown_table(results) + "\n")
    verdict = compare(results, args.max_epoch_ratio, args.tolerance)
    if verdict is not None:
        print(f"tpe_asha used {fmt(verdict['epoch_ratio'], '.2f')}x the trial-epochs of random_fifo "
              f"({fmt(verdict['wall_ratio'], '.2f')}x its search wall time); best val_acc difference "
              f"{fmt(verdict['val_acc_difference'], '+.4f')}")
        print(f"{'MET' if verdict['met'] else 'NOT MET'}: {verdict['goal']}")
    if args.json:
        write_json(Path(args.json), {"args": vars(args), "results": results, "comparison": verdict})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

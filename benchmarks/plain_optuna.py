"""The arm to beat: what a competent engineer writes with Optuna alone, without this project.

One process, no Ray: an Optuna study with ``TPESampler`` and ``HyperbandPruner`` over a
hand-narrowed space, ``study.optimize(timeout=...)`` calling ``model.train.fit`` directly and
reporting every epoch to the pruner, then a retrain of the best config on train + validation
and one test. The space is the one the hand-written script of issue 18 used: one-cycle and
Nesterov fixed (the known good short-run schedule), batch 64-256, no policy augmentation.

The search's timeout is the total budget less the retrain's estimated time (``--retrain-seconds``
or the trials' own throughput), so that search, retrain and test together fit the budget.

Example (one seed of the 4-epoch comparison: 10,000 training and 5,000 validation images)::

    python -m benchmarks.plain_optuna --data ../shared/data/cifar10-jpeg.tar.gz --train-subset 10000 \\
        --val-size 5000 --epochs 4 --total-seconds 660 --seed 0 --json runs/plain-optuna/seed0.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna

from model.config import RunConfig
from model.data import load_cifar10
from model.train import evaluate_test, fit


def hand_space(trial: optuna.Trial) -> dict:
    """The hand-narrowed space: what an engineer who knows short CIFAR runs would search."""
    return {
        "lr": trial.suggest_float("lr", 0.02, 0.5, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "augment": trial.suggest_categorical("augment", ["none", "crop_flip", "crop_flip_cutout"]),
    }


def make_config(params: dict, epochs: int, seed: int, threads: int) -> RunConfig:
    return RunConfig(arch="resnet20", schedule="onecycle", optimizer="nesterov", epochs=epochs, seed=seed,
                     threads=threads, device="auto", **params)


def run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    data = load_cifar10(args.data, val_size=args.val_size, train_subset=args.train_subset, seed=args.split_seed)
    retrain_images = args.epochs * (len(data.train_labels) + len(data.val_labels))
    speed: list[float] = []  # images/s of the trials' epochs, for the retrain's estimate

    def objective(trial: optuna.Trial) -> float:
        cfg = make_config(hand_space(trial), args.epochs, args.seed + trial.number, args.threads)

        def on_epoch(m: dict, _checkpoint) -> bool:
            speed.append(m["images_per_second"])
            trial.report(m["val_acc"], m["epoch"])
            return trial.should_prune()

        result = fit(cfg, data, on_epoch)
        if result.status == "stopped":
            raise optuna.TrialPruned()
        return result.history[-1]["val_acc"] if result.status == "completed" else 0.0

    def retrain_estimate() -> float:
        if args.retrain_seconds is not None:
            return args.retrain_seconds
        return retrain_images / (sorted(speed)[len(speed) // 2] if speed else 1000.0)

    def stop_in_time(study: optuna.Study, _trial) -> None:
        # study.optimize(timeout=) alone would start a trial at any time before it, and the
        # retrain after it: stop once the remaining time only fits the retrain.
        if time.perf_counter() - start + retrain_estimate() >= args.total_seconds:
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs))
    timeout = max(args.total_seconds - (time.perf_counter() - start) - retrain_estimate(), 1.0)
    study.optimize(objective, n_trials=args.max_trials, timeout=timeout, callbacks=[stop_in_time])
    search_seconds = time.perf_counter() - start
    best = study.best_trial
    cfg = make_config(best.params, args.epochs, args.seed, args.threads)
    final = fit(cfg, data, train_on_val=True)
    test = evaluate_test(final.model, cfg, data)
    states = [t.state.name for t in study.trials]
    return {
        "arm": "plain_optuna", "seed": args.seed, "wall_seconds": time.perf_counter() - start,
        "search_seconds": search_seconds, "trials": len(states), "pruned": states.count("PRUNED"),
        "best_val_acc": best.value, "best_params": best.params, "test_acc": test["test_acc"],
        "images_per_second": sorted(speed)[len(speed) // 2],
        "data": data.describe(),
    }


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="CIFAR-10 source, as for model.train")
    p.add_argument("--train-subset", type=int, default=10_000)
    p.add_argument("--val-size", type=int, default=5_000)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial and of the retrain")
    p.add_argument("--total-seconds", type=float, required=True, help="search + retrain + test")
    p.add_argument("--retrain-seconds", type=float, default=None, help="the retrain's time (default: estimated)")
    p.add_argument("--max-trials", type=int, default=None, help="stop after this many trials (default: time only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: every CPU)")
    p.add_argument("--json", default=None, help="write the result here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k != "data"}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

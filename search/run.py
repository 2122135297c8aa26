"""Search a space of ResNet configs on CIFAR-10: Ray Tune trials, Optuna TPE, ASHA early stopping.

Example::

    python -m search.run --space scratch                      # CIFAR-10 downloaded to the cache folder
    python -m search.run --space scratch --data ../shared/data/cifar10-jpeg.tar.gz --out runs/scratch \\
        --num-samples 32 --max-epochs 30 --gpus-per-trial 0.5
    python -m search.run --space finetune                     # torchvision's ImageNet weights by default
    python -m search.run --space my_spaces.py:wide --data ...  # your own define-by-run space
    python -m search.run --space scratch ... --resume          # after an interruption, same flags

Writes under ``--out``: ``study.db`` (the Optuna study), ``tune/`` (the Ray experiment, unless
``--storage-path`` puts it elsewhere), ``trials.csv``, ``search.json`` and ``best/config.json``;
then retrains the best config (``best/``) and writes ``report.html`` and ``plots/``.

The modules: ``cli`` (flags and checks), ``weights``, ``preflight`` (cluster checks),
``tuner`` (searcher, scheduler, Tuner), ``trial`` (one Tune trial), ``results`` (what is
written), ``warm_start``, ``retrain`` and ``report``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import optuna

import spaces
from model.build import WeightsError
from model.checkpoint import write_json
from model.config import DataConfig
from model.flags import config_kwargs
from model.sources import DataError

from .cli import SearchError, changed_flags, check_args, get_args_parser, parse_choices, parse_duration
from .lock import LOCK_NAME, OutLock
from .results import finish_orphans, mark_cut_by_budget, print_summary, write_results
from .schedulers import RayInternalsError
from .tuner import ASHA_STATE, EXPERIMENT, STUDY_DB, TrialStatuses, create_study, init_ray, make_tuner, \
    resolve_gpus, restore_tuner, study_name, study_url
from .weights import resolve_weights

__all__ = ["get_args_parser", "main", "SearchError"]


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except (SearchError, DataError, WeightsError, ValueError, RayInternalsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def storage_location(args: argparse.Namespace, out: Path) -> str:
    storage_path = args.storage_path or str(out)
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).expanduser().resolve())
    return storage_path.rstrip("/")


def check_resume(args: argparse.Namespace, out: Path, experiment_path: str) -> None:
    """A new search never overwrites one; a resume finds its experiment and keeps its flags."""
    if not args.resume:
        if (out / STUDY_DB).exists() or (out / ASHA_STATE).exists():
            raise SearchError(f"{out} already holds a search; pass --resume to continue it, or choose another --out")
        return
    from ray import tune

    if not tune.Tuner.can_restore(experiment_path):
        raise SearchError(f"--resume: no Ray experiment to resume at {experiment_path}; "
                          "run without --resume to start a new search")
    saved = json.loads((out / "search.json").read_text()).get("args", {}) if (out / "search.json").exists() else {}
    changed = changed_flags(saved, args)
    if changed:
        raise SearchError(f"--resume continues the search as it was defined; these flags differ: {'; '.join(changed)}. "
                          "Resume with the original values, or start a new search in another --out")


def _main(args: argparse.Namespace) -> int:
    check_args(args)
    out = Path(args.out or f"runs/{study_name(args)}").expanduser().resolve()
    storage_path = storage_location(args, out)
    experiment_path = f"{storage_path}/{EXPERIMENT}"
    created = [d for d in (out, *out.parents) if not d.exists()]  # out and the folders made for it
    out.mkdir(parents=True, exist_ok=True)
    try:
        with OutLock(out):
            check_resume(args, out, experiment_path)
            return _search(args, out, storage_path, experiment_path)
    finally:
        # A search refused before it wrote anything leaves no empty --out behind.
        if created and {p.name for p in out.iterdir()} <= {LOCK_NAME}:
            (out / LOCK_NAME).unlink(missing_ok=True)
            for folder in created:
                folder.rmdir()


def _search(args: argparse.Namespace, out: Path, storage_path: str, experiment_path: str) -> int:
    t_start = time.perf_counter()  # --time-budget counts from here: data, Ray and preflight included
    space_fn = spaces.get_space(args.space)
    info = spaces.inspect_space(space_fn, args.space)
    weights = resolve_weights(args.space, args.weights, info.archs)
    space, narrowed = spaces.narrow_space(space_fn, info, parse_choices(args.choices),
                                          archs_allowed=list(weights) if weights else None, name=args.space)
    recipe = None if args.no_recipe else spaces.fit_recipe(spaces.get_recipe(args.space), info, narrowed)
    split_seed = args.seed if args.split_seed is None else args.split_seed
    data = DataConfig(**config_kwargs(args, DataConfig)).load_data(seed=split_seed)
    warm = None
    if args.warm_start and not args.resume:
        from .warm_start import load_warm_trials

        warm = load_warm_trials(args, Path(args.warm_start), data.describe())

    ray = init_ray(args)
    from ray import tune

    from .trial import train_trial

    resources = ray.cluster_resources()
    gpus = resolve_gpus(args, resources.get("GPU", 0))
    if args.address is None and args.cpus_per_trial > resources.get("CPU", 0):
        # Tune would wait forever for a node that a local Ray will never get.
        raise SearchError(f"--cpus-per-trial {args.cpus_per_trial:g} is more than this machine's "
                          f"{resources.get('CPU', 0):g} CPUs; lower it or join a cluster with --address")
    extra = preflight(args, storage_path, gpus)
    fixed = {
        "epochs": args.max_epochs,
        "seed": args.seed,
        "device": "cuda" if gpus > 0 else "cpu",
        "compile": args.compile,
        "amp": not args.no_amp,
        "weights_by_arch": {arch: label for arch, (label, _) in weights.items()},
    }
    pretrained = {arch: state for arch, (_, state) in weights.items()}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, fixed=fixed, pretrained=pretrained),
        {"cpu": args.cpus_per_trial, "gpu": gpus},
    )
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if args.resume:
        tuner = restore_tuner(experiment_path, trainable)
        previous = json.loads((out / "search.json").read_text()) if (out / "search.json").exists() else {}
        started = previous.get("started", started)
        t0 -= previous.get("wall_seconds", 0.0)
    else:
        study = create_study(out, study_name(args))
        if warm is not None:
            warm.add_to(study)
        budget = parse_duration(args.time_budget) - (time.perf_counter() - t_start) if args.time_budget else None
        tuner = make_tuner(args, out, storage_path, space, trainable, params=info.params, time_budget_s=budget,
                           points_to_evaluate=[recipe] if recipe else None, callbacks=[TrialStatuses()])
    write_json(out / "search.json", {"space": args.space, "num_samples": args.num_samples,
                                     "max_epochs": args.max_epochs, "started": started, "finished": None,
                                     "args": vars(args), "data": data.describe(), **extra})
    TrialStatuses.last = {}
    grid = tuner.fit()
    wall = time.perf_counter() - t0

    study = optuna.load_study(study_name=study_name(args), storage=study_url(out))
    statuses = TrialStatuses.last
    tune_ids = set(statuses)
    unfinished = {tid for tid, status in statuses.items() if status not in ("TERMINATED", "ERROR")}
    budget_hit = args.time_budget is not None and time.perf_counter() - t_start >= parse_duration(args.time_budget)
    if budget_hit:
        # Cut short by --time-budget: PRUNED, like a trial ASHA stopped, so TPE and the plots
        # read its curve as a partial one; a --resume would not continue it.
        mark_cut_by_budget(study, tune_ids)
        unfinished = set()
    # Trials Tune did not finish (the search was interrupted, e.g. Ctrl-C) stay RUNNING in the
    # study so that --resume can finish them; every other RUNNING trial is an orphan.
    finish_orphans(study, unfinished)
    summary = write_results(args, out, study, tune_ids, fixed, data.describe(), started, wall,
                            extra={**extra, "time_budget_hit": budget_hit, "warm_start": warm.describe() if warm else None})
    print_summary(summary, out, storage_path)
    if grid.errors:
        print(f"note: {len(grid.errors)} trial(s) failed after retries; see {experiment_path}", file=sys.stderr)
    if unfinished or (len(statuses) < args.num_samples and not budget_hit):
        print(f"error: the search was interrupted with {len(statuses)} of {args.num_samples} trials started and "
              f"{len(unfinished)} unfinished; continue it with the same command and --resume", file=sys.stderr)
        return 1
    if budget_hit:
        print(f"note: --time-budget {args.time_budget} reached after {len(statuses)} of {args.num_samples} trials",
              file=sys.stderr)

    if not args.no_retrain and summary["best_trial"] is not None:
        from .retrain import retrain_run

        try:
            retrain_run(out, epochs=args.retrain_epochs, data=data, cpus=args.cpus_per_trial, gpus=gpus,
                        use_ray=args.address is not None, pretrained=pretrained)
        except Exception as e:  # the search's results are already on disk and stay valid
            print(f"error: the retrain failed ({e.__class__.__name__}: {e}); the search results in {out} are intact; "
                  f"run it again with: python -m search.retrain {out}", file=sys.stderr)
            return 1
    if not args.no_report:
        from .report import build_report

        print(f"  report: {build_report(out)}")
    return 0


def preflight(args: argparse.Namespace, storage_path: str, gpus: float) -> dict:
    """Cluster checks before any trial starts: storage every node reaches, GPUs that work."""
    from . import preflight as checks

    found = {}
    try:
        checks.check_storage(storage_path)
        if gpus > 0:
            found["gpus"] = checks.check_gpus(amp=not args.no_amp, gpus_per_trial=gpus)
    except checks.PreflightError as e:
        raise SearchError(str(e)) from None
    return found


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

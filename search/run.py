"""Search a space of ResNet configs on CIFAR-10: Ray Tune trials, Optuna TPE, ASHA early stopping.

Example::

    python -m search.run --space scratch --data ../shared/data/cifar10-jpeg.tar.gz --out runs/scratch \\
        --num-samples 32 --max-epochs 30 --gpus-per-trial 0.5
    python -m search.run --space finetune --weights imagenet --data data --download
    python -m search.run --space scratch ... --resume          # after an interruption, same flags

Writes under ``--out``: ``study.db`` (the Optuna study), ``tune/`` (the Ray experiment, unless
``--storage-path`` puts it elsewhere), ``trials.csv``, ``search.json`` and ``best/config.json``;
then retrains the best config (``best/``) and writes ``report.html`` and ``plots/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import optuna
import pandas as pd

import spaces
from model.build import TORCHVISION_WEIGHTS, WeightsError, imagenet_state_dict, load_pretrained
from model.data import DataError
from model.resnet import get_builder
from model.train import add_data_args, load_data, versions, write_json

from .trial import run_config

METRIC, MODE = "val_acc", "max"
EXPERIMENT = "tune"  # the Ray experiment's folder name under the storage path
ASHA_STATE = "asha_state.json"
# Column headers of Tune's progress table, kept short so that the table fits a terminal.
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "bs", "label_smoothing": "smooth", "frozen_stages": "frozen",
               "backbone_lr_mult": "bb_lr", "input_size": "px", "optimizer": "opt", "schedule": "sched"}


class SearchError(Exception):
    """Bad input for a search: printed as one line, exit code 2."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0],
                                add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", required=True, choices=spaces.list_spaces(), help="search space")
    add_data_args(p)
    p.add_argument("--out", default=None, help="output folder (default: runs/SPACE)")
    p.add_argument("--num-samples", type=int, default=32, help="trials in total (a resumed search counts old ones)")
    p.add_argument("--max-epochs", type=int, default=30,
                   help="epochs of a trial that is never stopped; ASHA's max_t; the retrain's default budget")
    p.add_argument("--grace-period", type=int, default=2, help="epochs every trial runs before ASHA may stop it")
    p.add_argument("--reduction-factor", type=float, default=3,
                   help="ASHA keeps the top 1/R of trials at each rung (rungs at G, G*R, G*R^2 ... epochs)")
    p.add_argument("--cpus-per-trial", type=float, default=2, help="CPUs per trial (torch threads on CPU trials)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, fractions allowed (0.5: two trials share a GPU). "
                        "None: 0.5 when the cluster has GPUs, else 0")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="at most K trials at once (default: as many as the resources allow)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler, the validation split and every trial")
    p.add_argument("--weights", default=None,
                   help="pretrained weights for the finetune space: 'imagenet' (torchvision cache or download), "
                        "a torchvision state-dict file (fixes the architecture), or a folder of "
                        "resnet18/34/50 .pth files")
    p.add_argument("--choices", action="append", default=[], metavar="NAME=V1,V2",
                   help="narrow a categorical parameter of the space to some of its choices, e.g. "
                        "arch=resnet20,resnet32 (repeatable)")
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster: 'auto', 'ray://HEAD:10001' or 'IP:PORT' (default: start Ray locally)")
    p.add_argument("--storage-path", default=None,
                   help="where the Ray experiment and trial checkpoints live: a shared path or s3://bucket/prefix "
                        "for clusters (default: the --out folder)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search in --out: finished trials are kept, unfinished ones "
                        "resume from their checkpoints")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"),
                   help="Optuna sampler: TPE (multivariate, constant liar) or random search, as a baseline")
    p.add_argument("--scheduler", default="asha", choices=("asha", "fifo"),
                   help="ASHA early stopping, or fifo: every trial runs all --max-epochs (a baseline)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial from its last checkpoint")
    p.add_argument("--no-retrain", action="store_true", help="skip retraining the best config at the end")
    p.add_argument("--retrain-epochs", type=int, default=None, help="epochs of the retrain (default: --max-epochs)")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html and plots/")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Tune's console output level")
    return p


# ---------------------------------------------------------------------------------------------
# Checks before anything starts


def check_args(args: argparse.Namespace) -> None:
    for name in ("num_samples", "max_epochs", "grace_period"):
        if getattr(args, name) < 1:
            raise SearchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.grace_period > args.max_epochs:
        raise SearchError(f"--grace-period {args.grace_period} is larger than --max-epochs {args.max_epochs}")
    if args.reduction_factor <= 1:
        raise SearchError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    if args.cpus_per_trial <= 0:
        raise SearchError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise SearchError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")


def sample_space(space, n: int) -> list[optuna.trial.FrozenTrial]:
    """Run a space ``n`` times on a throwaway in-memory study, to see what it asks."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t: space(t) or 0.0, n_trials=n)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study.trials


def space_archs(space: str) -> list[str]:
    """The architectures a space may choose."""
    distribution = sample_space(spaces.get_space(space), 1)[0].distributions.get("arch")
    return list(distribution.choices) if distribution is not None else []


def resolve_weights(space: str, weights: str | None) -> dict[str, str]:
    """Map each pretrained architecture of the space to weights that are known to load.

    Done once on the driver, before any trial starts, so that a search with unusable
    weights refuses to start instead of failing every trial.
    """
    if not spaces.needs_weights(space):
        if weights is not None:
            raise SearchError(f"--weights is for pretrained spaces ({', '.join(sorted(spaces.NEEDS_WEIGHTS))}); "
                              f"space {space!r} trains from scratch")
        return {}
    if weights is None:
        raise SearchError(f"space {space!r} fine-tunes pretrained ResNets: pass --weights imagenet "
                          "or --weights PATH (a torchvision state-dict file or a folder of them)")
    archs = [a for a in space_archs(space) if a in TORCHVISION_WEIGHTS]
    if weights == "imagenet":
        for arch in archs:
            imagenet_state_dict(arch)  # raises WeightsError with the how-to when offline
        return {arch: "imagenet" for arch in archs}
    path = Path(weights).expanduser().resolve()
    if path.is_dir():
        candidates = {arch: sorted(path.glob(f"{arch}*.pth")) + sorted(path.glob(f"{arch}*.pt")) for arch in archs}
        found = {arch: str(files[0]) for arch, files in candidates.items() if files}
    elif path.is_file():
        found = {arch: str(path) for arch in archs}
    else:
        raise SearchError(f"--weights {weights}: no such file or folder; pass 'imagenet', a torchvision "
                          "state-dict file, or a folder of resnet18/34/50 .pth files")
    for arch, file in list(found.items()):
        if not _loads_into(arch, Path(file)):
            del found[arch]
    if not found:
        raise SearchError(f"--weights {weights}: no torchvision {'/'.join(archs)} state dict found there that loads")
    return found


def _loads_into(arch: str, path: Path) -> bool:
    try:
        load_pretrained(get_builder(arch)(stem="imagenet"), arch, path)
    except WeightsError:
        return False
    return True


def parse_choices(items: list[str]) -> dict[str, list[str]]:
    """``["arch=resnet20,resnet32", "batch_size=128"]`` -> ``{"arch": [...], "batch_size": ["128"]}``."""
    choices = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise SearchError(f"--choices {item!r}: expected NAME=VALUE[,VALUE...], e.g. arch=resnet20,resnet32")
        choices[name] = values.split(",")
    return choices


class ConstrainedSpace:
    """A space whose categorical parameters are narrowed to some of their choices.

    The command line's ``--choices`` (and the architectures that have weights) fix part of a
    space without editing it. A class, not a closure, because Ray pickles the searcher.
    """

    def __init__(self, fn, choices: dict[str, list]) -> None:
        self.fn, self.choices = fn, choices
        self.__name__ = fn.__name__

    def __call__(self, trial):
        original = trial.suggest_categorical

        def suggest_categorical(name, choices):
            return original(name, self.choices.get(name, choices))

        trial.suggest_categorical = suggest_categorical
        try:
            return self.fn(trial)
        finally:
            del trial.suggest_categorical


def constrain_space(space: str, wanted: dict[str, list[str]], archs_with_weights: list[str]):
    """The named space with ``wanted`` choices (strings, matched to the space's own values)."""
    fn = spaces.get_space(space)
    categorical = {}
    for t in sample_space(fn, 16):
        for name, dist in t.distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                categorical[name] = list(dist.choices)
    narrowed = {}
    for name, values in wanted.items():
        if name not in categorical:
            raise SearchError(f"--choices {name}: not a categorical parameter of space {space!r}; "
                              f"those are: {', '.join(categorical)}")
        by_text = {str(c): c for c in categorical[name]}
        unknown = [v for v in values if v not in by_text]
        if unknown:
            raise SearchError(f"--choices {name}: {', '.join(unknown)} not among its choices "
                              f"{', '.join(by_text)}")
        narrowed[name] = [by_text[v] for v in values]
    if archs_with_weights:
        archs = [a for a in narrowed.get("arch", categorical["arch"]) if a in archs_with_weights]
        if not archs:
            raise SearchError(f"no weights for the chosen architectures; weights found for {', '.join(archs_with_weights)}")
        narrowed["arch"] = archs
    narrowed = {k: v for k, v in narrowed.items() if v != categorical[k]}
    return ConstrainedSpace(fn, narrowed) if narrowed else fn


# ---------------------------------------------------------------------------------------------
# Ray


def init_ray(args: argparse.Namespace):
    import ray

    # Tune's new console output ignores custom reporters; the classic table shows our columns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Snapshot the experiment often: a driver killed with SIGKILL resumes from the last one.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    if ray.is_initialized():
        return ray
    # "local": a plain ray.init() would join any cluster this machine started earlier.
    kwargs = dict(address=args.address or "local", log_to_driver=args.verbose >= 2)
    if args.address is None:
        kwargs.update(include_dashboard=False)
    ray.init(**kwargs)
    return ray


def resolve_gpus(args: argparse.Namespace, cluster_gpus: float) -> float:
    if args.gpus_per_trial is None:
        gpus = 0.5 if cluster_gpus > 0 else 0.0
        if cluster_gpus == 0:
            print("note: no GPU in the Ray cluster; trials run on CPUs (--gpus-per-trial 0)", file=sys.stderr)
        return gpus
    if args.gpus_per_trial > 0 and cluster_gpus == 0:
        raise SearchError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but the Ray cluster has no GPU; "
                          "use --gpus-per-trial 0 or join a GPU cluster with --address")
    if args.gpus_per_trial > cluster_gpus:
        raise SearchError(f"--gpus-per-trial {args.gpus_per_trial} is more than the cluster's {cluster_gpus:g} GPUs")
    return args.gpus_per_trial


def space_param_names(space) -> list[str]:
    names: list[str] = []
    for t in sample_space(space, 8):
        names += [n for n in t.params if n not in names]
    return names


def make_tuner(args, out: Path, storage_path: str, space, trainable, fixed: dict):
    from ray import tune
    from ray.tune import CLIReporter

    from .schedulers import PersistentASHA, PruneAwareOptunaSearch

    if args.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=args.seed, multivariate=True, constant_liar=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
    searcher = PruneAwareOptunaSearch(
        space,
        metric=METRIC,
        mode=MODE,
        sampler=sampler,
        storage=optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}"),
        study_name=args.space,
        max_t=args.max_epochs,
    )
    scheduler = None  # fifo
    if args.scheduler == "asha":
        scheduler = PersistentASHA(
            time_attr="training_iteration",
            max_t=args.max_epochs,
            grace_period=args.grace_period,
            reduction_factor=args.reduction_factor,
            metric=METRIC,
            mode=MODE,
            state_path=out / ASHA_STATE,
        )
    params = {name: SHORT_NAMES.get(name, name) for name in space_param_names(space)}
    reporter = CLIReporter(
        parameter_columns=params,
        metric_columns={"training_iteration": "epoch", "val_acc": "val_acc", "train_loss": "loss"},
        max_progress_rows=12,
        max_report_frequency=30,
        sort_by_metric=True,
        metric=METRIC,
        mode=MODE,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=args.num_samples,
            max_concurrent_trials=args.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=args.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=reporter,
            verbose=args.verbose,
        ),
    )


def restore_tuner(args, experiment_path: str, trainable, out: Path):
    from ray import tune

    from .schedulers import PersistentASHA

    tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    # Tuner.restore brings back the scheduler as it was pickled at the start; tell it to read
    # the rungs and decisions it persisted since.
    scheduler = tuner._local_tuner._tune_config.scheduler
    if isinstance(scheduler, PersistentASHA):
        scheduler._state_path, scheduler._loaded = str(out / ASHA_STATE), False
    return tuner


# ---------------------------------------------------------------------------------------------
# Results


def finish_orphans(study: optuna.Study, unfinished: set[str]) -> int:
    """Mark as FAIL every trial RUNNING in study.db that no Tune trial will ever finish.

    That happens when the driver died between asking Optuna for a config and snapshotting the
    experiment: on resume, Tune asks Optuna again, for a new trial.
    """
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("ray_trial_id") in unfinished:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "orphaned")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


def trials_table(study: optuna.Study, tune_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per Tune trial: number, state, params, epochs, best/last val_acc, wall time, node."""
    rows = []
    names: list[str] = []
    for t in study.get_trials(deepcopy=False):
        if tune_ids is not None and t.user_attrs.get("ray_trial_id") not in tune_ids:
            continue
        values = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        names += [n for n in t.params if n not in names]
        rows.append({
            "number": t.number,
            "state": t.state.name,
            **{f"params_{k}": v for k, v in t.params.items()},
            "epochs": t.user_attrs.get("epochs", len(values)),
            "best_val_acc": max(values) if values else None,
            "last_val_acc": values[-1] if values else None,
            "wall_seconds": t.user_attrs.get("wall_seconds"),
            "node": t.user_attrs.get("node"),
            "node_ip": t.user_attrs.get("node_ip"),
            "ray_trial_id": t.user_attrs.get("ray_trial_id"),
            "fail_reason": t.user_attrs.get("fail_reason"),
        })
    columns = ["number", "state", *[f"params_{n}" for n in names], "epochs", "best_val_acc", "last_val_acc",
               "wall_seconds", "node", "node_ip", "ray_trial_id", "fail_reason"]
    return pd.DataFrame(rows, columns=columns)


def best_complete_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def write_results(args, out: Path, study: optuna.Study, tune_ids: set[str], fixed: dict, data_info: dict,
                  started: str, wall: float) -> dict:
    table = trials_table(study, tune_ids)
    table.to_csv(out / "trials.csv", index=False)
    counts = table["state"].value_counts().to_dict()
    best = best_complete_trial(study)
    summary = {
        "space": args.space,
        "num_samples": args.num_samples,
        "max_epochs": args.max_epochs,
        "wall_seconds": wall,
        "completed": counts.get("COMPLETE", 0),
        "pruned": counts.get("PRUNED", 0),
        "failed": counts.get("FAIL", 0),
        "trial_epochs": int(table["epochs"].fillna(0).sum()),
        "best_trial": best.number if best else None,
        "best_val_acc": best.value if best else None,
        "started": started,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": vars(args),
        "data": data_info,
        "versions": versions(),
    }
    write_json(out / "search.json", summary)
    if best is not None:
        write_json(out / "best" / "config.json", {
            "trial": best.number,
            "ray_trial_id": best.user_attrs.get("ray_trial_id"),
            "val_acc": best.value,
            "params": best.params,
            "config": run_config(best.params, fixed).to_dict(),
            "data": data_info,
        })
    return summary


def print_summary(summary: dict, out: Path, storage_path: str) -> None:
    best = (f"best val_acc {summary['best_val_acc']:.4f} (trial {summary['best_trial']})"
            if summary["best_trial"] is not None else "no trial ran all epochs: no best config")
    print(
        f"\n{summary['space']}: {summary['completed']} completed, {summary['pruned']} pruned, "
        f"{summary['failed']} failed in {summary['wall_seconds'] / 60:.1f} min "
        f"({summary['trial_epochs']} trial-epochs); {best}\n"
        f"  study:  {out / 'study.db'}  (optuna-dashboard sqlite:///{out / 'study.db'})\n"
        f"  trials: {out / 'trials.csv'}\n"
        f"  best:   {out / 'best' / 'config.json'}\n"
        f"  ray:    {storage_path}/{EXPERIMENT}"
    )


# ---------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except (SearchError, DataError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    check_args(args)
    out = Path(args.out or f"runs/{args.space}").expanduser().resolve()
    storage_path = args.storage_path or str(out)
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).expanduser().resolve())
    experiment_path = f"{storage_path.rstrip('/')}/{EXPERIMENT}"
    if not args.resume and ((out / "study.db").exists() or (out / ASHA_STATE).exists()):
        raise SearchError(f"{out} already holds a search; pass --resume to continue it, or choose another --out")
    if args.resume:
        from ray import tune

        if not tune.Tuner.can_restore(experiment_path):
            raise SearchError(f"--resume: no Ray experiment to resume at {experiment_path}; "
                              "run without --resume to start a new search")
    weights_by_arch = resolve_weights(args.space, args.weights)
    space = constrain_space(args.space, parse_choices(args.choices), list(weights_by_arch))
    data = load_data(args, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)

    ray = init_ray(args)
    from ray import tune

    from .trial import train_trial

    resources = ray.cluster_resources()
    gpus = resolve_gpus(args, resources.get("GPU", 0))
    if args.address is None and args.cpus_per_trial > resources.get("CPU", 0):
        # Tune would wait forever for a node that a local Ray will never get.
        raise SearchError(f"--cpus-per-trial {args.cpus_per_trial:g} is more than this machine's "
                          f"{resources.get('CPU', 0):g} CPUs; lower it or join a cluster with --address")
    fixed = {
        "epochs": args.max_epochs,
        "seed": args.seed,
        "device": "cuda" if gpus > 0 else "cpu",
        "weights_by_arch": weights_by_arch,
    }
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, fixed=fixed),
        {"cpu": args.cpus_per_trial, "gpu": gpus},
    )
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if args.resume:
        tuner = restore_tuner(args, experiment_path, trainable, out)
        previous = json.loads((out / "search.json").read_text()) if (out / "search.json").exists() else {}
        started = previous.get("started", started)
        t0 -= previous.get("wall_seconds", 0.0)
    else:
        tuner = make_tuner(args, out, storage_path, space, trainable, fixed)
    write_json(out / "search.json", {"space": args.space, "num_samples": args.num_samples,
                                     "max_epochs": args.max_epochs, "started": started, "finished": None,
                                     "args": vars(args), "data": data.describe()})
    grid = tuner.fit()
    wall = time.perf_counter() - t0

    study = optuna.load_study(study_name=args.space, storage=f"sqlite:///{out / 'study.db'}")
    # ResultGrid has no public list of trials; its analysis holds every trial, with or without results.
    trials = grid._experiment_analysis.trials
    tune_ids = {t.trial_id for t in trials}
    # Trials Tune did not finish (the search was interrupted, e.g. Ctrl-C) stay RUNNING in the
    # study so that --resume can finish them; every other RUNNING trial is an orphan.
    unfinished = {t.trial_id for t in trials if t.status not in ("TERMINATED", "ERROR")}
    finish_orphans(study, unfinished)
    summary = write_results(args, out, study, tune_ids, fixed, data.describe(), started, wall)
    print_summary(summary, out, storage_path)
    if grid.errors:
        print(f"note: {len(grid.errors)} trial(s) failed after retries; see {experiment_path}", file=sys.stderr)
    if unfinished or len(trials) < args.num_samples:
        print(f"error: the search was interrupted with {len(trials)} of {args.num_samples} trials started and "
              f"{len(unfinished)} unfinished; continue it with the same command and --resume", file=sys.stderr)
        return 1

    if not args.no_retrain and summary["best_trial"] is not None:
        from .retrain import retrain_run

        try:
            retrain_run(out, epochs=args.retrain_epochs, data=data, cpus=args.cpus_per_trial, gpus=gpus,
                        use_ray=args.address is not None)
        except Exception as e:  # the search's results are already on disk and stay valid
            print(f"error: the retrain failed ({e.__class__.__name__}: {e}); the search results in {out} are intact; "
                  f"run it again with: python -m search.retrain {out}", file=sys.stderr)
            return 1
    if not args.no_report:
        from .report import build_report

        print(f"  report: {build_report(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

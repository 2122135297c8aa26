"""How the Tuner is assembled: Ray, the Optuna searcher, the ASHA scheduler, and restoring a search."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import optuna
from ray.tune import Callback

from .cli import SearchError

METRIC, MODE = "val_acc", "max"
EXPERIMENT = "tune"  # the Ray experiment's folder name under the storage path
ASHA_STATE = "asha_state.json"
STUDY_DB = "study.db"
# Column headers of Tune's progress table, kept short so that the table fits a terminal.
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "bs", "label_smoothing": "smooth", "frozen_stages": "frozen",
               "backbone_lr_mult": "bb_lr", "input_size": "px", "optimizer": "opt", "schedule": "sched"}


def study_url(out: Path) -> str:
    return f"sqlite:///{out / STUDY_DB}"


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
    try:
        ray.init(**kwargs)
    except ConnectionError as e:
        raise SearchError(f"--address {args.address}: cannot join the Ray cluster ({str(e).splitlines()[0]}); "
                          "start one with `ray start --head` or check the address") from None
    return ray


def resolve_gpus(args: argparse.Namespace, cluster_gpus: float) -> float:
    if args.gpus_per_trial is None:
        if cluster_gpus == 0:
            print("note: no GPU in the Ray cluster; trials run on CPUs (--gpus-per-trial 0)", file=sys.stderr)
            return 0.0
        return 0.5
    if args.gpus_per_trial > 0 and cluster_gpus == 0:
        raise SearchError(f"--gpus-per-trial {args.gpus_per_trial} asked for, but the Ray cluster has no GPU; "
                          "use --gpus-per-trial 0 or join a GPU cluster with --address")
    if args.gpus_per_trial > cluster_gpus:
        raise SearchError(f"--gpus-per-trial {args.gpus_per_trial} is more than the cluster's {cluster_gpus:g} GPUs")
    return args.gpus_per_trial


def n_startup_trials(args: argparse.Namespace) -> int:
    """Random trials before TPE: a quarter of the budget, at least 4.

    Optuna's default of 10 makes a 10-trial search pure random search; a quarter leaves TPE
    most of a small budget while its first model still sees a few configs.
    """
    if args.n_startup_trials is not None:
        return args.n_startup_trials
    return max(4, args.num_samples // 4)


def make_sampler(args: argparse.Namespace) -> optuna.samplers.BaseSampler:
    if args.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=args.seed, multivariate=True, constant_liar=True,
                                          n_startup_trials=n_startup_trials(args))
    return optuna.samplers.RandomSampler(seed=args.seed)


def create_study(out: Path, study_name: str) -> optuna.Study:
    """The study in ``OUT/study.db``, created before Tune so that it names its metric."""
    study = optuna.create_study(storage=study_url(out), study_name=study_name, direction="maximize",
                                load_if_exists=True)
    # optuna-dashboard and every Optuna plot then say val_acc, not "Objective 0". Experimental
    # since Optuna 3.2 and unchanged since; its warning would only clutter the console.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC])
    return study


def make_tuner(args, out: Path, storage_path: str, space, trainable, *, params=(), time_budget_s: float | None = None,
               points_to_evaluate: list[dict] | None = None, callbacks: list | None = None):
    """The Tuner of a new search: ``space`` searched by Optuna, stopped by ASHA, ``params`` as table columns.

    ``points_to_evaluate`` (the space's recipe) are the first trials, before any sampling.
    """
    from ray import tune
    from ray.tune import CLIReporter

    from .schedulers import PersistentASHA, PruneAwareOptunaSearch

    searcher = PruneAwareOptunaSearch(
        space,
        metric=METRIC,
        mode=MODE,
        sampler=make_sampler(args),
        storage=optuna.storages.RDBStorage(study_url(out)),
        study_name=study_name(args),
        max_t=args.max_epochs,
        points_to_evaluate=points_to_evaluate or None,
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
    reporter = CLIReporter(
        parameter_columns={name: SHORT_NAMES.get(name, name) for name in params} or None,
        metric_columns={"training_iteration": "epoch", "val_acc": "val_acc", "train_loss": "loss"},
        max_progress_rows=12,
        max_report_frequency=30,
        # Tune's sort fails on trials that a time budget ended before their first result.
        sort_by_metric=args.time_budget is None,
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
            time_budget_s=max(time_budget_s, 1.0) if time_budget_s is not None else None,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=args.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=reporter,
            verbose=args.verbose,
            callbacks=callbacks,
        ),
    )


def study_name(args: argparse.Namespace) -> str:
    """The Optuna study's name: the space's name (a user space's function name)."""
    return args.space.rpartition(":")[2]


def restore_tuner(experiment_path: str, trainable):
    from ray import tune

    # PersistentASHA reloads its rungs from its state file when unpickled by the restore.
    return tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=False)


class TrialStatuses(Callback):
    """Every Tune trial's id and final status, recorded when the experiment ends.

    A Tune ``Callback`` (public API) instead of ResultGrid's private trial list. The result
    goes to a class attribute because ``Tuner.restore`` runs an unpickled copy of the
    callback, not the object the driver made.
    """

    last: dict[str, str] = {}

    def on_experiment_end(self, trials, **info):
        TrialStatuses.last = {t.trial_id: t.status for t in trials}

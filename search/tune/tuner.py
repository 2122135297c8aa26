"""How the Tuner is assembled: the study's searcher and scheduler, the trainable, the stoppers and the callbacks."""

from __future__ import annotations

import optuna
from ray.tune.schedulers import FIFOScheduler

from ..config import SearchConfig
from ..constants import EXPERIMENT, KEPT_CHECKPOINTS, METRIC, MODE
from .callbacks import RecordCheckpoints, StopSearch
from .scheduler import StudyASHA
from .searcher import StudySearcher, check_suggestion, study_number

# Column headers of Tune's progress table (--verbose 1), kept short so that the table fits a terminal.
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "bs", "label_smoothing": "smooth", "frozen_stages": "frozen",
               "backbone_lr_mult": "bb_lr", "input_size": "px", "optimizer": "opt", "schedule": "sched"}


def trial_dirname(trial) -> str:
    """``trial-0003-8df3d350``: the study's trial number, then the Tune trial (a resumed trial runs in a new one)."""
    return f"trial-{study_number(trial):04d}-{trial.trial_id}"


def make_searcher(config: SearchConfig, study: optuna.Study, storage: optuna.storages.BaseStorage, space,
                  stop: StopSearch | None = None) -> StudySearcher:
    """``space`` searched in ``study`` (its sampler is the study's), ``--num-samples`` trials in all."""
    return StudySearcher(study, storage, space, num_samples=config.num_samples, max_t=config.max_epochs,
                         validate=check_suggestion, stop=stop)


def make_scheduler(config: SearchConfig, study: optuna.Study,
                   storage: optuna.storages.BaseStorage) -> StudyASHA | FIFOScheduler:
    """ASHA on the study's curves (rungs on each trial's planned epochs, ``--rungs``); for ``--scheduler fifo``,
    every trial runs all ``--max-epochs``."""
    if config.scheduler != "asha":
        return FIFOScheduler()
    return StudyASHA(study, storage, max_t=config.max_epochs, grace_period=config.grace_period,
                     reduction_factor=config.reduction_factor, fractional=config.rungs == "fraction",
                     early_rungs=config.early_rungs)


def make_tuner(config: SearchConfig, storage_path: str, trainable, searcher: StudySearcher, scheduler, *,
               params=(), time_budget_s: float | None = None, stoppers=(), callbacks=()):
    """A Tune run of the study's trials: ``searcher`` hands them out, ``stoppers`` may end it early."""
    from ray import tune
    from ray.tune import CLIReporter
    from ray.tune.stopper import CombinedStopper

    reporter = None  # Tune prints nothing at verbose 0: the progress display speaks instead
    if config.verbose >= 1:
        reporter = CLIReporter(
            parameter_columns={name: SHORT_NAMES.get(name, name) for name in params} or None,
            metric_columns={"epoch": "epoch", METRIC: METRIC, "train_loss": "loss"},
            max_progress_rows=12,
            max_report_frequency=30,
            # Tune's sort fails on trials that a time budget ended before their first result.
            sort_by_metric=config.time_budget is None,
            metric=METRIC,
            mode=MODE,
        )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=-1,  # the searcher says when the study has --num-samples trials (Searcher.FINISHED)
            max_concurrent_trials=config.max_concurrent,
            time_budget_s=max(time_budget_s, 1.0) if time_budget_s is not None else None,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=storage_path,
            stop=CombinedStopper(*stoppers) if stoppers else None,
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_CHECKPOINTS),
            progress_reporter=reporter,
            verbose=config.verbose,
            callbacks=[RecordCheckpoints(searcher, storage_path), *callbacks],
        ),
    )

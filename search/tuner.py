"""How the Tuner is assembled: the Optuna study and sampler, the searcher, the scheduler, and a restore."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from .asha import PersistentASHA
from .config import SearchConfig
from .constants import ASHA_STATE, EXPERIMENT, METRIC, MODE, study_url
from .searcher import PruneAwareOptunaSearch
from .states import TrialStatuses

# Column headers of Tune's progress table, kept short so that the table fits a terminal.
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "bs", "label_smoothing": "smooth", "frozen_stages": "frozen",
               "backbone_lr_mult": "bb_lr", "input_size": "px", "optimizer": "opt", "schedule": "sched"}


def n_startup_trials(config: SearchConfig) -> int:
    """Random trials before TPE: a quarter of the budget, at least 4.

    Optuna's default of 10 makes a 10-trial search pure random search; a quarter leaves TPE
    most of a small budget while its first model still sees a few configs.
    """
    if config.n_startup_trials is not None:
        return config.n_startup_trials
    return max(4, config.num_samples // 4)


def make_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler:
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, constant_liar=True,
                                          n_startup_trials=n_startup_trials(config))
    return optuna.samplers.RandomSampler(seed=config.seed)


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


def make_searcher(config: SearchConfig, out: Path, space, points_to_evaluate: list[dict] | None = None,
                  storage: optuna.storages.BaseStorage | None = None):
    """``space`` searched by Optuna in ``OUT/study.db``; ``points_to_evaluate`` (the recipe) go first.

    ``storage`` replaces the study's database (the search-quality simulator keeps it in memory).
    """
    return PruneAwareOptunaSearch(
        space,
        metric=METRIC,
        mode=MODE,
        sampler=make_sampler(config),
        storage=storage or optuna.storages.RDBStorage(study_url(out)),
        study_name=config.study_name,
        max_t=config.max_epochs,
        points_to_evaluate=points_to_evaluate or None,
    )


def make_scheduler(config: SearchConfig, out: Path) -> PersistentASHA | None:
    """ASHA, whose state lives in ``OUT/asha_state.json``; None for ``--scheduler fifo``."""
    if config.scheduler != "asha":
        return None
    return PersistentASHA(
        time_attr="training_iteration",
        max_t=config.max_epochs,
        grace_period=config.grace_period,
        reduction_factor=config.reduction_factor,
        metric=METRIC,
        mode=MODE,
        state_path=out / ASHA_STATE,
    )


def make_tuner(config: SearchConfig, out: Path, storage_path: str, space, trainable, *, params=(),
               time_budget_s: float | None = None, points_to_evaluate: list[dict] | None = None, stop=None,
               callbacks=()):
    """The Tuner of a new search: ``space`` searched by Optuna, stopped by ASHA, ``params`` as table columns."""
    from ray import tune
    from ray.tune import CLIReporter

    from .progress import progress_callbacks

    reporter = None  # Tune prints nothing at verbose 0: the progress display speaks instead
    if config.verbose >= 1:
        reporter = CLIReporter(
            parameter_columns={name: SHORT_NAMES.get(name, name) for name in params} or None,
            metric_columns={"training_iteration": "epoch", METRIC: METRIC, "train_loss": "loss"},
            max_progress_rows=12,
            max_report_frequency=30,
            # Tune's sort fails on trials that a time budget ended before their first result.
            sort_by_metric=config.time_budget is None,
            metric=METRIC,
            mode=MODE,
        )
    asha = config.scheduler == "asha"
    progress = progress_callbacks(config.num_samples, config.max_epochs, verbose=config.verbose >= 1,
                                  grace_period=config.grace_period if asha else None,
                                  reduction_factor=config.reduction_factor if asha else None,
                                  deadline_s=time_budget_s, retrain=stop)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(config, out, space, points_to_evaluate),
            scheduler=make_scheduler(config, out),
            num_samples=config.num_samples,
            max_concurrent_trials=config.max_concurrent,
            time_budget_s=max(time_budget_s, 1.0) if time_budget_s is not None else None,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=storage_path,
            stop=stop,  # search.deadline.RetrainDeadline under --time-budget
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=reporter,
            verbose=config.verbose,
            callbacks=[TrialStatuses(study_url(out), config.study_name), *progress, *([stop] if stop else []),
                       *callbacks],
        ),
    )


def restore_tuner(experiment_path: str, trainable):
    from ray import tune

    # PersistentASHA reloads its rungs from its state file when unpickled by the restore.
    return tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=False)

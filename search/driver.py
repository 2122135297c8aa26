"""``run_search``: one search, from a ``SearchConfig`` to a ``SearchResult``, on the Ray driver.

The steps: check the run folder, load the data and the weights once, start or join Ray, check
every node, open the study (``search/study.py``: the search's only state), run a Tune run of its
trials to the end or to an interruption, write the results from the study, then retrain the best
config and write the report. ``--resume`` is the same with an existing study: the Tune run starts
with the trials it left unfinished.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

import spaces
from model.data import CIFAR10Data
from spaces.asks import inspect_space, longest
from spaces.budget import PAPER_IMAGES, Budget, BudgetPlan, plan_budget
from spaces.narrow import narrow_space
from spaces.recipe import fit_recipe

from . import storage
from .config import SearchConfig
from .constants import EXPERIMENT, STUDY_DB
from .deadline import RetrainDeadline
from .disk import DiskFullError, DiskGuard, check_free_space, disk_full_message, is_disk_full
from .errors import RetrainError, SearchError
from .lock import LOCK_NAME, OutLock
from .progress import format_duration, progress_callbacks
from .ray_start import check_address, ray_session, resolve_gpus, trial_device, trial_slots
from .results import SearchResult, print_summary, write_results
from .sampler import make_sampler, n_startup_trials
from . import signals
from .signals import resume_line, say_once, stop_on_signals
from .state import (CONFIG, FINISHED, INTERRUPTED, TIME_BUDGET_HIT, WALL_SECONDS, any_trial_started, inspect_study,
                    read_record, record_end, record_start, save_record)
from .study import (EPOCHS_PARAM, ERROR, FAIL_REASON, count_trials, create_study, enqueue_recipes, open_storage,
                    own_trials, prune_cut_by_budget)
from .warm_start import WarmStart, load_warm_trials
from .weights import resolve_weights


def run_search(config: SearchConfig, *, resume: bool = False) -> SearchResult:
    """Run the search ``config`` describes in ``config.out``, or with ``resume`` continue the one there.

    Raises SearchError (and DataError, WeightsError) for bad input before any
    trial starts, and RetrainError if the retrain fails after the search. An interrupted search
    returns with ``interrupted=True``: ``run_search(config, resume=True)`` continues it.
    """
    if config.address is not None:
        check_address(config.address)
    out = config.out_dir()
    config = dataclasses.replace(config, out=str(out))
    storage_path = storage.resolve(config.storage_path, out)
    created = [d for d in (out, *out.parents) if not d.exists()]  # out and the folders made for it
    out.mkdir(parents=True, exist_ok=True)
    # A search that loses the race for the lock cleans up nothing: the folder is the winner's.
    with OutLock(out), signals.phase(signals.restart_line):
        try:
            check_free_space(out, storage.local_folder(storage_path))
            check_resume(config, resume, out)
            if resume:
                signals.now(lambda name: resume_line(out, name))
            return _search(config, resume, out, storage_path)
        except Exception as e:
            if is_disk_full(e) and not isinstance(e, DiskFullError):
                # A write that failed where the guard could not look ahead: the state on disk is
                # what the last whole write left (every file of ours is written atomically).
                raise DiskFullError(disk_full_message(out)) from None
            raise
        finally:
            # A search refused before it wrote anything leaves no empty --out behind.
            if created and {p.name for p in out.iterdir()} <= {LOCK_NAME}:
                (out / LOCK_NAME).unlink(missing_ok=True)
                for folder in created:
                    folder.rmdir()


def check_resume(config: SearchConfig, resume: bool, out: Path) -> None:
    """A new search never overwrites one; a resume finds its study and keeps its defining settings."""
    if not resume:
        if (out / STUDY_DB).exists():
            if any_trial_started(out):
                raise SearchError(f"{out} already holds a search; pass --resume to continue it, or choose another "
                                  "--out")
            # The search died (or was refused) before Tune started a trial: nothing to resume, and its
            # study holds at most the recipes and warm-start trials that this start adds again. Start afresh.
            print(f"note: {out} holds a search that started no trial; starting it afresh", file=sys.stderr)
            (out / STUDY_DB).unlink()
        return

    study = inspect_study(out)
    if study is None:
        raise SearchError(f"--resume: {out} holds no search to resume (no {STUDY_DB}, or one that started no "
                          "trial); run without --resume to start a new search")
    record = read_record(out) or {}  # a search from before the record moved into the study: its search.json
    if CONFIG not in record:
        raise SearchError(f"--resume: {out / STUDY_DB} does not say how its search was defined (no record in the "
                          "study, no search.json beside it); start a new search that learns from it: "
                          f"--warm-start {out} --out NEW_FOLDER")
    changed = config.changed_flags(SearchConfig.from_dict(record[CONFIG]))
    if changed:
        raise SearchError(f"--resume continues the search as it was defined; these flags differ: "
                          f"{'; '.join(changed)}. Resume with the original values, or start a new search in "
                          "another --out")
    check_not_complete(out, record)
    try:
        with open(out / STUDY_DB, "r+b"):  # what a read-only or immutable (chattr +i) file refuses, even root
            pass
    except OSError as e:
        raise SearchError(f"--resume: cannot write {out / STUDY_DB} ({e.strerror}); make it writable") from None


def check_not_complete(out: Path, record: dict) -> None:
    """A search that finished, or that its --time-budget ended, has nothing to resume: say so, change nothing."""
    if record.get(FINISHED) is None or record.get(INTERRUPTED):
        return
    why = "its --time-budget ended it" if record.get(TIME_BUDGET_HIT) else "every trial ran"
    raise SearchError(f"--resume: the search in {out} is complete ({why}); to search more, start a new search that "
                      f"learns from it: --warm-start {out} --out NEW_FOLDER")


@dataclass
class _Setup:
    """What a search needs before Ray starts, all checked: its space, weights, recipe, data and warm start."""

    space: object
    params: tuple[str, ...]
    weights: dict[str, tuple[str, dict]]  # arch -> (where the weights came from, state dict)
    recipes: list[dict]  # evaluated first, in order
    data: CIFAR10Data
    warm: WarmStart | None
    budget: BudgetPlan | None  # what the budget rules chose (spaces/budget.py); None: none apply


def plan_space(config: SearchConfig, space_fn, info, archs_allowed: list[str] | None, train_images: int):
    """The space as searched, its narrowed choices, the recipes to evaluate first, and the budget's plan.

    The budget rules (spaces/budget.py) narrow what ``--choices`` left open, and their recipes
    replace the space's own; ``--full-space`` (or a space without rules) keeps the space as written.
    """
    space, narrowed = narrow_space(space_fn, info, config.choices, archs_allowed=archs_allowed, name=config.space)
    recipes = [spaces.get_recipe(config.space)]
    budget = None if config.full_space else plan_budget(
        config.space, {**info.categorical, **narrowed}, Budget(config.max_epochs, train_images),
        fixed=set(config.choices))
    if budget is not None:
        wanted = {**{k: [str(v) for v in vs] for k, vs in budget.choices.items()}, **config.choices}
        space, narrowed = narrow_space(space_fn, info, wanted, archs_allowed=archs_allowed, name=config.space)
        recipes = budget.recipes
    points = [fit_recipe(r, info, narrowed) for r in recipes] if config.recipe else []
    points = [p for i, p in enumerate(points) if p and p not in points[:i]]
    return space, narrowed, points, budget


def check_searched_epochs(info, config: SearchConfig) -> None:
    """A space may search ``epochs`` (each trial then completes at its own end; ASHA's rungs are on the fraction of
    each trial's epochs), up to ``--max-epochs``, ASHA's ``max_t``: a full trial."""
    if EPOCHS_PARAM in info.distributions and longest(info.distributions[EPOCHS_PARAM]) > config.max_epochs:
        raise SearchError(f"space {config.space} searches {EPOCHS_PARAM} up to "
                          f"{longest(info.distributions[EPOCHS_PARAM]):g}, more than --max-epochs {config.max_epochs}:"
                          f" raise --max-epochs to it (a full trial) or lower the space's bound")


def _search(config: SearchConfig, resume: bool, out: Path, storage_path: str) -> SearchResult:
    t_start = time.perf_counter()  # --time-budget counts from here: data, Ray and preflight included
    space_fn = spaces.get_space(config.space)
    info = inspect_space(space_fn, config.space)
    check_searched_epochs(info, config)
    # Only the architectures --choices leaves: offline with resnet18's weights cached, arch=resnet18 needs no other.
    archs = [a for a in info.archs if a in config.choices.get("arch", info.archs)] or info.archs
    weights = resolve_weights(config.space, config.weights, archs)
    if config.verbose == 0:
        # "A new study created in RDB" then "Using an existing study": the same study, said twice.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"loading data from {config.data or 'the default folder'} ...", flush=True)
    data = config.search_data()
    space, _, points, budget = plan_space(config, space_fn, info, list(weights) if weights else None,
                                          len(data.train_labels))
    warm = None
    if config.warm_start and not resume:
        warm = load_warm_trials(config, Path(config.warm_start), data.describe(), space)
    with ray_session(config.address, config.verbose):
        return _tune(config, resume, out, storage_path, t_start,
                     _Setup(space, info.params, weights, points, data, warm, budget))


def _tune(config: SearchConfig, resume: bool, out: Path, storage_path: str, t_start: float,
          setup: _Setup) -> SearchResult:
    import ray
    from ray import tune

    from .tune.callbacks import StopSearch
    from .tune.trainable import train_trial
    from .tune.tuner import make_scheduler, make_searcher, make_tuner

    data, warm = setup.data, setup.warm
    resources = ray.cluster_resources()
    gpus = resolve_gpus(config.gpus_per_trial, resources.get("GPU", 0))
    if config.address is None and config.cpus_per_trial > resources.get("CPU", 0):
        # Tune would wait forever for a node that a local Ray will never get.
        raise SearchError(f"--cpus-per-trial {config.cpus_per_trial:g} is more than this machine's "
                          f"{resources.get('CPU', 0):g} CPUs; lower it or join a cluster with --address")
    extra = preflight(config, storage_path, gpus)
    base = config.base_run_config(trial_device(gpus))
    weights_by_arch = {arch: label for arch, (label, _) in setup.weights.items()}
    pretrained = {arch: state for arch, (_, state) in setup.weights.items()}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, base=base, weights_by_arch=weights_by_arch,
                             pretrained=pretrained),
        {"cpu": config.cpus_per_trial, "gpu": gpus},
    )
    t0 = time.perf_counter()
    per_epoch = len(data.train_labels) + len(data.val_labels)  # images a retrain epoch sees: train + validation
    startup = n_startup_trials(config.num_samples, config.n_startup_trials)
    study_storage = open_storage(out)
    sampler = make_sampler(config.sampler, config.seed, startup, independent_share=config.tpe_independent)
    study = create_study(study_storage, config.study_name, sampler)
    signals.now(lambda name: resume_line(out, name))  # from here the study holds what a --resume continues
    t0 -= record_start(study, config.to_dict(), data.describe(), resume=resume, **extra)  # earlier runs' time
    if not resume:
        enqueue_recipes(study, setup.recipes, config.num_samples)
        if warm is not None:
            warm.add_to(study, room=max(0, config.num_samples - len(setup.recipes)))
    slots = trial_slots(resources, config.cpus_per_trial, gpus, config.max_concurrent)
    cost = estimate(config, setup, base, weights_by_arch, pretrained, gpus, slots,
                    trials=config.num_samples - count_trials(study).finished)
    budget = config.time_budget_s - (time.perf_counter() - t_start) if config.time_budget else None
    deadline = None
    if budget is not None and config.retrain:
        epochs = config.retrain_epochs or config.max_epochs
        # A --retrain-epochs the user chose is what is kept; otherwise a share (search/deadline.py says why),
        # up to the paper's images seen (spaces/budget.py).
        deadline = RetrainDeadline(
            time.monotonic() + budget, epochs * per_epoch, config.max_epochs,
            budget_s=None if config.retrain_epochs else config.time_budget_s, share=config.retrain_share,
            slots=slots, trials_needed=min(config.num_samples, len(setup.recipes) + startup),
            max_images=None if config.retrain_epochs else max(epochs * per_epoch, PAPER_IMAGES), study=study)
    stop = StopSearch()
    guard = DiskGuard(out, storage.local_folder(storage_path), stop)
    asha = config.scheduler == "asha"
    progress = progress_callbacks(study, config.num_samples, config.max_epochs, verbose=config.verbose >= 1,
                                  grace_period=config.grace_period if asha else None,
                                  reduction_factor=config.reduction_factor if asha else None,
                                  deadline_s=budget, retrain=deadline, plan=cost)
    tuner = make_tuner(config, storage_path, trainable, make_searcher(config, study, study_storage, setup.space, stop),
                       make_scheduler(config, study, study_storage), params=setup.params, time_budget_s=budget,
                       stoppers=[stop, *([deadline] if deadline else [])], callbacks=[*progress, guard])
    save_record(study, budget_plan=setup.budget.to_dict() if setup.budget else None,
                plan=cost.to_dict() if cost else None, warm_start=warm.describe() if warm else None,
                # The earlier runs' wall time, kept should this run be killed too.
                **{WALL_SECONDS: time.perf_counter() - t0})
    with stop_on_signals(stop, out):
        try:
            tuner.fit()
        except Exception:
            if stop.reason is None:
                raise
            # Interrupted: Ray's own processes may have died with the driver's. The study holds the search.
        wall = time.perf_counter() - t0
        # Ended by --time-budget: Tune's cap on the search, or the deadline that keeps time for the retrain.
        budget_hit = config.time_budget is not None and (time.perf_counter() - t_start >= config.time_budget_s or (
            deadline is not None and deadline.fired))
        if budget_hit:
            prune_cut_by_budget(study, study_storage)
        counts = count_trials(study)
        interrupted = not budget_hit and (counts.running > 0 or counts.samples < config.num_samples)
        record_end(study, wall, interrupted=interrupted, time_budget_hit=budget_hit,
                   time_split=deadline.describe() if deadline is not None else None)
        summary = write_results(out, study, base, weights_by_arch)
        print_summary(summary, out, storage_path)
        if guard.message:
            raise DiskFullError(guard.message)
        own = own_trials(study)
        errors = sum(t.state == TrialState.FAIL and t.user_attrs.get(FAIL_REASON) == ERROR for t in own)
        if errors:
            print(f"note: {errors} trial(s) failed after retries; their logs are in {storage_path}/{EXPERIMENT}",
                  file=sys.stderr)
        if interrupted:
            say_once(resume_line(out, stop.reason or "the Tune run ended early",
                                 f" with {counts.finished} of {config.num_samples} trials finished"))
            return SearchResult.from_run(out)
    if budget_hit:
        print(f"note: --time-budget {config.time_budget} reached after {counts.samples} of {config.num_samples} "
              "trials", file=sys.stderr)

    if config.retrain and summary["best_trial"] is not None:
        from .retrain import retrain_run

        epochs = config.retrain_epochs
        if deadline is not None and deadline.retrain_seconds() is not None:
            left = config.time_budget_s - (time.perf_counter() - t_start)
            if epochs is None:
                epochs = deadline.epochs_that_fit(left, per_epoch, at_least=config.max_epochs)
            print(f"note: the retrain of {epochs} epochs should take about "
                  f"{format_duration(deadline.seconds_for(epochs * per_epoch))}; "
                  f"{format_duration(left)} of --time-budget {config.time_budget} left{deadline.split_note()}",
                  file=sys.stderr)

        signals.now(lambda name: signals.retrain_line(out, name))
        try:
            # On this machine the search's cores are all free now: the retrain takes them all (the
            # deadline's estimate, from one trial's speed, stays an upper bound). On a cluster it is a trial.
            cpus = config.cpus_per_trial if config.address is not None else max(resources.get("CPU", 1),
                                                                                 config.cpus_per_trial)
            retrain_run(out, epochs=epochs, data=data, cpus=cpus, gpus=gpus,
                        use_ray=config.address is not None, pretrained=pretrained)
        except Exception as e:  # the search's results are already on disk and stay valid
            raise RetrainError(f"the retrain failed ({e.__class__.__name__}: {e}); the search results in {out} are "
                               f"intact; run it again with: python -m search.retrain {out}") from e
    if config.report:
        from .report import build_report

        signals.now(lambda name: signals.report_line(out, name))
        print(f"  report: {build_report(out)}")
    return SearchResult.from_run(out)


def estimate(config: SearchConfig, setup: _Setup, base, weights_by_arch: dict, pretrained: dict, gpus: float,
             slots: int, trials: int):
    """Time the search's first config where the trials run, print the plan line, and return the ``Plan``.

    None, after a plan line that says why, when the timing failed: the search itself goes on.
    """
    import ray

    from spaces.asks import sample_space

    from .config import trial_config
    from .plan import make_plan, plan_line, probe_data, timed_config_task, unmeasured_line

    first = setup.recipes[0] if setup.recipes else sample_space(setup.space, 1, config.seed)[0].params
    cfg = dataclasses.replace(trial_config(base, first, weights_by_arch), threads=max(1, int(config.cpus_per_trial)))
    try:
        task = ray.remote(num_cpus=config.cpus_per_trial, num_gpus=gpus, max_retries=0)(timed_config_task)
        t0 = time.perf_counter()
        speed, steps_s = ray.get(task.remote(cfg, probe_data(setup.data, cfg), pretrained.get(cfg.arch)))
        start_s = max(0.0, time.perf_counter() - t0 - steps_s)  # the worker's start, as each trial's
    except Exception as e:  # a config the device cannot run (memory), a node lost: the trials will say it better
        print(unmeasured_line(config, trials, setup.data, slots, f"{e.__class__.__name__}: {str(e).splitlines()[0]}"),
              flush=True)
        return None
    cost = make_plan(config, base=base, space=setup.space, first=first, weights_by_arch=weights_by_arch,
                     data=setup.data, speed=speed, start_s=start_s, trials=trials, slots=slots)
    print(plan_line(cost, config), flush=True)
    return cost


def preflight(config: SearchConfig, storage_path: str, gpus: float) -> dict:
    """Cluster checks before any trial starts: storage every node reaches, GPUs that work."""
    from . import preflight as checks

    found = {}
    try:
        checks.check_reach(storage_path)
        if gpus > 0:
            found["gpus"] = checks.check_gpus(amp=config.amp, gpus_per_trial=gpus)
    except checks.PreflightError as e:
        raise SearchError(str(e)) from None
    return found

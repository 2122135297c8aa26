"""Replay searches on recorded learning curves: the shipped searcher and scheduler, a simulated clock.

A discrete-event loop in the manner of Syne Tune's ``SimulatorBackend``: W workers, each
running one trial; a trial's epochs take the wall seconds recorded for its config, and the
next event is always the earliest epoch end. The searcher and the scheduler are the objects a
real search builds (``StudySearcher`` and ``StudyASHA``, made by the same factories as
``search.tune.tuner``), called through the interfaces Ray Tune calls, in Tune's order:

- a new trial: ``searcher.suggest(trial_id)``, then ``scheduler.on_trial_add``;
- each epoch's result: ``scheduler.on_trial_result`` first; only if it says CONTINUE,
  ``searcher.on_trial_result``;
- a trial that the scheduler stopped, or whose trainable returned (it ran its planned epochs, or
  diverged): ``scheduler.on_trial_complete`` then ``searcher.on_trial_complete`` with the last
  result (Tune's ``stop_trial``).

Every result carries ``planned_epochs``, the reports the trial was to make: its curve's
``planned`` where the lookup says it (a table's format knows each config's plan: ``formats.py``),
else the config's own value of ``epochs_param`` when the table searches the number of epochs
(opda's AlexNet runs train 20 to 100), else ``max_t``. A report is an epoch, or a table's own
unit (1,000 optimizer steps on opda's DeBERTa table); the budget counts the resource each report
took (``Curve.cost``: 1, or less for a run's short last report). A trial is COMPLETE by the search's one rule,
``search.study.ran_all_epochs``: its last result is its last planned epoch and did not diverge;
only such trials can be the incumbent, as only they can be the search's best config.

Tune keeps at most one trial suggested ahead of the free workers for a custom searcher (its
``_get_max_pending_trials``), or none when ``max_concurrent_trials`` wraps the searcher in a
``ConcurrencyLimiter``; ``lookahead`` is that number, so TPE sees exactly as many pending
trials as in a real run.

``lookup`` gives a proposal its curve (``modes.py``): ``surrogate.CurveSurrogate`` (a
k-nearest-neighbour model of the curve, with divergence as its own outcome) in the protocol's
surrogate mode; ``NearestCurve``, the nearest recorded config's curve (Syne Tune's
``add_surrogate`` with a 1-nearest-neighbour model), in its nearest mode and in the tests that
check the loop against Ray Tune.

A searcher's ``suggest`` may answer None, "nothing now" (Tune asks again at its next step): the
simulator asks again after the next event, and the search ends when nothing is running and
nothing is suggested.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import optuna
from ray.tune.schedulers import TrialScheduler

from benchmarks.curves.table import Curve
from search.study import DIVERGED, EPOCH, PLANNED_EPOCHS, ran_all_epochs
from search.tune.searcher import trial_params


class NearestCurve:
    """The recorded curve nearest to a config: fewest categorical mismatches, then the normalised distance."""

    def __init__(self, curves: list[Curve], distributions: dict) -> None:
        self.curves = curves
        self.distributions = distributions
        self._points = [self._coords(c.params) for c in curves]

    def _coords(self, params: dict) -> tuple[dict, dict]:
        cats, nums = {}, {}
        for name, d in self.distributions.items():
            if name not in params:
                continue
            v = params[name]
            if isinstance(d, optuna.distributions.CategoricalDistribution):
                cats[name] = str(v)
            else:
                lo, hi, x = float(d.low), float(d.high), float(v)
                if getattr(d, "log", False):
                    lo, hi, x = math.log(lo), math.log(hi), math.log(x)
                nums[name] = (x - lo) / (hi - lo) if hi > lo else 0.0
        return cats, nums

    def lookup(self, params: dict) -> tuple[Curve, int, float]:
        """(curve, categorical mismatches, normalised euclidean distance of the numeric parameters)."""
        cats, nums = self._coords(params)
        best = None
        for curve, (c_cats, c_nums) in zip(self.curves, self._points):
            mismatch = sum(c_cats.get(k) != v for k, v in cats.items())
            dist = math.sqrt(sum((c_nums.get(k, 0.5) - v) ** 2 for k, v in nums.items()))
            key = (mismatch, dist)
            if best is None or key < best[0]:
                best = (key, curve)
        (mismatch, dist), curve = best
        return curve, mismatch, dist


@dataclass
class SimTrial:
    """What the scheduler reads of a Tune trial: its id and its config (the study's trial number)."""

    trial_id: str
    config: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    curve: Curve | None = None
    epochs: int = 0
    started: float = 0.0
    mismatch: int = 0
    distance: float = 0.0
    planned: int = 0  # the reports it is to make (result["planned_epochs"])
    # "complete", "diverged", "scheduler" (stopped early), "budget" (cut by the trial-epoch budget), or
    # "short" (its curve ends before its planned epochs: a NearestCurve of a shorter recorded run)
    stopped: str = ""


@dataclass
class SimResult:
    trials: list[SimTrial]
    # One point per result, in simulated-time order: (resource spent, in trial-epochs or reports; seconds; incumbent)
    # where the incumbent is the best final val_acc of the COMPLETE trials (None before): the best seen, and its
    # noise-free value where the lookup added noise.
    trace: list[tuple[int, float, float | None]]


def _result(trial: SimTrial, epoch: int) -> dict:
    acc = trial.curve.val_acc[epoch - 1]
    diverged = trial.curve.diverged and epoch == len(trial.curve.val_acc)
    return {"val_acc": acc, EPOCH: epoch, PLANNED_EPOCHS: trial.planned, "training_iteration": epoch,
            "time_this_iter_s": trial.curve.seconds[epoch - 1], "done": False, **({DIVERGED: True} if diverged else {})}


def simulate(searcher, scheduler, lookup, *, num_samples: int, max_t: int, workers: int,
             budget_epochs: int | None = None, max_concurrent: int | None = None,
             epochs_param: str | None = None) -> SimResult:
    """Run one search on recorded curves; stop at ``num_samples`` trials or ``budget_epochs`` trial-epochs.

    ``lookup``: has ``lookup(params) -> (curve, mismatches, distance)``. ``max_concurrent`` is
    ``TuneConfig.max_concurrent_trials``: None keeps one trial suggested ahead of the free
    workers, as Tune does for a custom searcher; N allows N live trials, running or pending
    (Tune's ConcurrencyLimiter). A trial plans its curve's ``planned`` reports, where set; else
    ``epochs_param``: the config key that sets a trial's epochs, if the space searches it; else ``max_t``.
    """
    max_pending, live_limit = (1, None) if max_concurrent is None else (max_concurrent, max_concurrent)
    clock = 0.0
    spent = 0
    incumbent = None
    best_seen = None  # the incumbent's val_acc as the search saw it (with the nearest mode's noise, if any)
    trials: list[SimTrial] = []
    pending: list[SimTrial] = []  # suggested, waiting for a worker
    running: list[tuple[float, int, SimTrial]] = []  # heap of (time of its next epoch end, tiebreak, trial)
    trace: list[tuple[int, float, float | None]] = []
    finished = False  # the searcher or num_samples has no more trials

    def start(trial: SimTrial) -> None:
        trial.started = clock
        heapq.heappush(running, (clock + trial.curve.seconds[0], int(trial.trial_id), trial))

    def add_trial() -> bool:
        nonlocal finished
        trial = SimTrial(trial_id=f"{len(trials):05d}")
        config = searcher.suggest(trial.trial_id)
        if config == "FINISHED":
            finished = True
        if config is None or config == "FINISHED":
            return False
        trial.config, trial.params = config, trial_params(config)
        trial.curve, trial.mismatch, trial.distance = lookup.lookup(trial.params)
        if trial.curve.planned is not None:
            trial.planned = min(trial.curve.planned, max_t)
        else:
            trial.planned = min(int(trial.params[epochs_param]), max_t) if epochs_param in trial.params else max_t
        trials.append(trial)
        if scheduler is not None:
            scheduler.on_trial_add(None, trial)
        pending.append(trial)
        return True

    def fill() -> None:
        # One pass of Tune's loop: start pending trials on free workers, and suggest new ones
        # while fewer than max_pending wait and the live limit allows.
        while True:
            while pending and len(running) < workers:
                start(pending.pop(0))
            live = len(pending) + len(running)
            if finished or len(trials) >= num_samples or len(pending) >= max_pending or (
                    live_limit is not None and live >= live_limit):
                return
            if not add_trial():
                return

    fill()
    while running:
        clock, _, trial = heapq.heappop(running)
        trial.epochs += 1
        spent += trial.curve.cost(trial.epochs)
        result = _result(trial, trial.epochs)
        decision = TrialScheduler.CONTINUE if scheduler is None else scheduler.on_trial_result(None, trial, result)
        if decision == TrialScheduler.CONTINUE:
            searcher.on_trial_result(trial.trial_id, result)
        # The trainable returns after its planned epochs, or after the epoch whose loss diverged.
        returned = trial.epochs >= min(trial.planned, len(trial.curve.val_acc))
        over_budget = budget_epochs is not None and spent >= budget_epochs - 1e-9
        if decision == TrialScheduler.CONTINUE and not returned and not over_budget:
            heapq.heappush(running, (clock + trial.curve.seconds[trial.epochs], int(trial.trial_id), trial))
        else:
            complete = ran_all_epochs(result, max_t)
            trial.stopped = ("diverged" if result.get(DIVERGED) else "complete" if complete
                             else "scheduler" if decision == TrialScheduler.STOP else "budget" if over_budget
                             else "short")
            if scheduler is not None:
                scheduler.on_trial_complete(None, trial, result)
            searcher.on_trial_complete(trial.trial_id, result=result)
            if complete and (best_seen is None or result["val_acc"] > best_seen):
                best_seen = result["val_acc"]
                incumbent = (trial.curve.truth or trial.curve.val_acc)[trial.epochs - 1]
        trace.append((spent, clock, incumbent))
        if over_budget:
            break
        fill()
    return SimResult(trials, trace)

"""``StudyASHA``: asynchronous successive halving (ASHA) whose rungs are the study's intermediate values.

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020) decides at
each rung, epochs ``G, G*R, G*R^2, ...`` below ``max_t``: a trial that reaches a rung goes on if
its val_acc there is in the top ``1/R`` of the values other trials had when they reached it, and
stops otherwise. Ray's ``ASHAScheduler`` keeps those values in memory, so a resumed search would
start with empty rungs and let every trial through. Here every value at a rung is a trial's
intermediate value in the study (the searcher records each epoch, the result that stopped a trial
included), and every rung a trial passed is its user attribute ``PASSED_RUNGS``, so a resume
decides as the interrupted search would have; a trial that passed a rung before the
interruption, and reaches it again from an older checkpoint, goes on. The cutoff is Ray's:
``numpy.nanpercentile`` at ``(1 - 1/R) * 100`` of the other trials' values.

No decision depends on the order in which Tune tells the scheduler and the searcher of a result:
the trial's own value is never among the others, whether the searcher recorded it first or not,
and a passed rung is this scheduler's own record. ``tests/test_schedulers.py`` plays both orders.

A space may search the epochs themselves (each result's ``planned_epochs``, at most ``max_t``).
With ``fractional`` rungs (the default of ``search.run``, ``--rungs fraction``) a trial that plans
``P`` epochs meets the rung at milestone ``m`` at epoch ``ceil(m * P / max_t)``, and is compared
with the other trials' values at the same fraction of their own epochs: a short trial is judged
too, and a long one is not judged early in its schedule against short ones near the end of
theirs. With rungs in epochs (Ray's, ``--rungs epochs``) every trial meets a rung at the same
epoch. When every trial plans ``max_t`` epochs the two are the same rungs.

Early rungs (``--early-rungs K``, none by default) are K more rungs below the grace period, ``G/R,
G/R^2, ...`` (at least one epoch), that stop a trial only once the study has *earned* them: its
best finished trials, as many as ``evidence(R)``, reached the rung and every one of them is in the
top ``1/R`` of the other trials' values there, so the rung would have let them all through. Early
epochs rank configs as their ends do on some spaces and not on others: opda's AlexNet runs keep
95% of their final top tenth in the top third at a ninth of the run, this project's one-cycle
CIFAR runs 62% (and within their final top third rank inversely: Spearman -0.26). The finished trials
are the only evidence of which kind the searched space is; until they say so, an early rung
stops nothing and the search is ASHA from the grace period. Whether a rung is earned is read from
the study at each decision, so a resumed search decides as the interrupted one would have. Why
they are not the default (they made the held-out DeBERTa searches worse): docs/budget.md.

It runs only the trials of a ``StudySearcher`` (their config names the study's trial), and
decides on ``val_acc``, maximised: another searcher, metric or mode is refused in one line.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..constants import METRIC, MODE
from ..study import DIVERGED, EPOCH, EPOCHS_PARAM, PLANNED_EPOCHS, StudyTrial, own_trials
from .searcher import study_number

PASSED_RUNGS = "asha_passed"  # a trial's user attribute: the rungs (0 = the first) at which StudyASHA let it go on
PASSED_EARLY = "asha_passed_early"  # the same for the early rungs (0 = the highest, the one below the grace period)
# An early rung is earned when this many best finished trials would all pass it: so many that a rung whose values
# say nothing of the ends (each trial passing with chance 1/R) passes them all with a chance of at most 1%.
CHANCE = 0.01


def evidence(reduction_factor: float) -> int:
    """The best finished trials that must all pass an early rung before it stops trials: 5 at R = 3, 7 at R = 2."""
    return math.ceil(math.log(CHANCE) / math.log(1 / reduction_factor) - 1e-9)


def asha_rungs(max_epochs: int, grace_period: int | None, reduction_factor: float | None) -> list[float]:
    """The milestones at which ASHA decides, below ``max_epochs``: ``grace * rf**k``, as Ray's ASHAScheduler has them."""
    if grace_period is None or reduction_factor is None or grace_period >= max_epochs:
        return []
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    return [m for m in (grace_period * reduction_factor ** k for k in range(count)) if m < max_epochs]


def early_milestones(milestones: list[float], reduction_factor: float, count: int) -> list[float]:
    """``count`` early rungs below the first of ``milestones``, a factor ``reduction_factor`` apart, highest first,
    of at least 1 epoch."""
    if not milestones:
        return []
    return [m for m in (milestones[0] / reduction_factor ** k for k in range(1, count + 1)) if m >= 1]


def planned_epochs(params: dict, max_t: int) -> int:
    """The epochs a trial of the study plans (its result's ``planned_epochs``): its own ``epochs`` if the space
    searches them, at most ``max_t``."""
    return min(int(params.get(EPOCHS_PARAM, max_t)), max_t)


def rung_epochs(milestones: list[float], planned: int, max_t: int, fractional: bool) -> list[int | None]:
    """The epoch at which a trial that plans ``planned`` epochs meets each milestone (None: never).

    A rung is decided at the first epoch at or past its milestone, as Ray's bracket does. Rungs in
    epochs are the same for every trial; ``fractional`` ones are at that fraction of the trial's
    own epochs, and one at its last epoch decides nothing (the trial completes there).
    """
    if not fractional:
        return [math.ceil(m) for m in milestones]
    epochs = [math.ceil(m * planned / max_t - 1e-9) for m in milestones]
    return [e if 1 <= e < planned else None for e in epochs]


class StudyASHA(FIFOScheduler):
    """ASHA with one bracket, on Tune's public scheduler interface; FIFO's order of starting trials."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, *, max_t: int, grace_period: int,
                 reduction_factor: float, fractional: bool = False, early_rungs: int = 0) -> None:
        super().__init__()
        self.study, self.storage, self.max_t, self.reduction_factor = study, storage, max_t, reduction_factor
        self.fractional, self.evidence = fractional, evidence(reduction_factor)
        self.milestones = asha_rungs(max_t, grace_period, reduction_factor)
        self.early = early_milestones(self.milestones, reduction_factor, early_rungs)
        # The rungs of a trial that plans max_t epochs.
        self.rung_epochs = sorted({e for e in rung_epochs(self.milestones, max_t, max_t, fractional) if e})

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        """Tune passes TuneConfig's metric and mode: the rungs are the study's val_acc, maximised, and nothing else."""
        if (metric or METRIC) != METRIC or (mode or MODE) != MODE:
            raise ValueError(f"StudyASHA decides on the study's {METRIC} ({MODE}); TuneConfig asks for metric={metric!r}, "
                             f"mode={mode!r}: leave them unset")
        return True

    def on_trial_add(self, tune_controller, trial) -> None:
        if study_number(trial) is None:
            raise ValueError(f"StudyASHA runs only the trials of a StudySearcher (search.tune.searcher); trial "
                             f"{trial.trial_id} names no trial of the study: use StudySearcher as the search_alg")
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch = result.get(EPOCH)
        if epoch is None or result.get(DIVERGED):
            return TrialScheduler.CONTINUE  # a diverged trial ends itself
        if epoch >= self.max_t:
            return TrialScheduler.STOP
        planned = min(int(result.get(PLANNED_EPOCHS) or self.max_t), self.max_t)
        number = study_number(trial)
        for rung, at in enumerate(rung_epochs(self.early, planned, self.max_t, self.fractional)):
            if at != epoch:
                continue
            values = self.values_at(self.early, rung)  # read once: whether the rung is earned, then the decision
            if self.early_rung_earned(values) and \
                    self._decide(values, PASSED_EARLY, number, result[METRIC], rung) == TrialScheduler.STOP:
                return TrialScheduler.STOP
        for rung, at in enumerate(rung_epochs(self.milestones, planned, self.max_t, self.fractional)):
            # A trial of few epochs may meet two milestones at one epoch: it must pass both.
            if at == epoch and self.decide(number, epoch, result[METRIC], rung) == TrialScheduler.STOP:
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def decide(self, number: int, epoch: int, value: float, rung: int | None = None) -> str:
        """STOP or CONTINUE for trial ``number`` reaching rung ``rung`` (default: the one at ``epoch``) with ``value``.

        The others' values at the rung are their intermediate values at their own epoch of it.
        """
        if rung is None:
            rung = rung_epochs(self.milestones, self.max_t, self.max_t, self.fractional).index(epoch)
        return self._decide(self.values_at(self.milestones, rung), PASSED_RUNGS, number, value, rung)

    def values_at(self, milestones: list[float], rung: int) -> dict[int, float]:
        """Every trial's intermediate value at its own epoch of ``milestones[rung]``, by trial number."""
        values = {}
        for t in own_trials(self.study):
            at = rung_epochs(milestones, planned_epochs(t.params, self.max_t), self.max_t, self.fractional)[rung]
            if at is not None and t.intermediate_values.get(at) is not None:
                values[t.number] = t.intermediate_values[at]
        return values

    def cutoff(self, values: dict[int, float], number: int) -> float | None:
        """The value trial ``number`` must reach to go on: Ray's percentile of the other trials' ``values``."""
        others = [v for n, v in values.items() if n != number]
        return float(np.nanpercentile(others, (1 - 1 / self.reduction_factor) * 100)) if others else None

    def _decide(self, values: dict[int, float], passed_attr: str, number: int, value: float, rung: int) -> str:
        """STOP or CONTINUE for trial ``number`` reaching ``rung`` with ``value``; ``values``: every trial's there."""
        trial = StudyTrial(self.storage, self.study, number)
        if rung in trial.user_attrs.get(passed_attr, ()):
            return TrialScheduler.CONTINUE  # it passed this rung before an interruption
        cut = self.cutoff(values, number)
        if cut is not None and value < cut:
            return TrialScheduler.STOP
        # By rung, not epoch: a short trial may meet two rungs at one epoch, and must pass both.
        trial.set_user_attr(passed_attr, sorted({*trial.user_attrs.get(passed_attr, ()), rung}))
        return TrialScheduler.CONTINUE

    def early_rung_earned(self, values: dict[int, float]) -> bool:
        """Whether an early rung may stop trials now, ``values`` being every trial's there (``values_at``): the
        study's ``evidence`` best finished trials (of those that reached it) would all pass it today. A function
        of the study alone, so a resume decides the same."""
        finished = sorted((t for t in own_trials(self.study, states=(TrialState.COMPLETE,)) if t.number in values),
                          key=lambda t: t.value, reverse=True)[:self.evidence]
        return len(finished) == self.evidence and all(values[t.number] >= self.cutoff(values, t.number)
                                                      for t in finished)

    def debug_string(self) -> str:
        where = (f"at {', '.join(f'{m / self.max_t:.3g}' for m in self.milestones)} of each trial's epochs"
                 if self.fractional else f"at epochs {self.rung_epochs} of {self.max_t}")
        early = (f"; early rungs at {', '.join(f'{m / self.max_t:.3g}' for m in self.early)} once earned"
                 if self.early else "")
        return f"StudyASHA: rungs {where}, keeping the top 1/{self.reduction_factor:g}{early}"

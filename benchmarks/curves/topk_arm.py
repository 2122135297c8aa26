"""One-rung top-k: train every trial to one rung, keep the top k, finish those (arXiv 2307.15422).

Egele et al., "Is One Epoch All You Need For Multi-Fidelity Hyperparameter Optimization?"
(2023), find that this baseline matches many multi-fidelity methods on common benchmarks. The
protocol gives it the same budget as every arm and splits it in two halves (``plan``):

- the rung is a small fraction of a full trial, ``RUNG_FRACTION`` of ``max_t`` reports and at
  least one (one epoch of the project's 12-epoch table, 5 of opda's 100-epoch AlexNet runs,
  5,000 of DeBERTa's 98,175 steps); the paper's one epoch is 1-2% of its benchmarks' runs, and
  5% keeps the first rung past the first epochs of a 100-epoch warm-up;
- ``n`` random configs (Optuna's ``RandomSampler``) each train to the rung: half the budget;
- the best at the rung then train to their planned end, in the order of their rung values: the
  other half, on average k = half the budget over an average trial's planned reports. The
  finishing phase goes on down the ranking until the budget is spent, so that finishing runs
  that diverge or plan few reports leave none of it unused; ``num_trials`` allows 2n.

The simulator has no PAUSE, so a finishing run starts again from its first report rather than
resuming from the rung's checkpoint, as Tune would: it costs k x rung reports more than the
paper's (5% of the budget's finishing half), and the budget counts them. Its trials are COMPLETE
at their planned end by the search's one rule; a trial whose plan ends at or before the rung
completes in the first phase. ``TopKSearcher`` and ``RungScheduler`` are the loop's two halves,
on the methods Ray Tune's ``Searcher`` and ``TrialScheduler`` have, as ``optuna_arm.py``'s are.
"""

from __future__ import annotations

import math

import optuna
from ray.tune.schedulers import TrialScheduler

from search.constants import METRIC
from search.study import DIVERGED, EPOCH

RUNG_FRACTION = 0.05  # the rung, as a fraction of a full trial's reports


def plan(budget: int, max_t: int, planned: list[int] | None = None) -> tuple[int, int, int]:
    """``(rung, n, k)`` for ``budget`` full trials of ``max_t`` reports; ``planned``: a random trial's planned reports
    (drawn uniformly), None: always max_t."""
    rung = max(1, round(RUNG_FRACTION * max_t))
    half = budget * max_t / 2
    mean_planned = sum(planned) / len(planned) if planned else max_t
    return rung, max(1, math.floor(half / rung)), max(1, round(half / mean_planned))


class TopKSearcher:
    """``n`` random configs, then, once every one of them has ended, the best at the rung again, to finish: k of
    them on average before the budget is spent."""

    def __init__(self, space, seed: int, n: int, k: int) -> None:
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
        self.space, self.n, self.k = space, n, k
        self.at_rung: dict[str, tuple[float, int, dict]] = {}  # first-phase trial -> (its value, order, params)
        self.finishing: set[str] = set()  # second-phase trial ids
        self.configs: dict[str, dict] = {}  # first-phase trial -> its config
        self.queue: list[dict] | None = None  # the k configs to finish, once chosen
        self.asked = 0

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.asked < self.n:
            self.asked += 1
            trial = self.study.ask()
            self.space(trial)
            self.configs[trial_id] = dict(trial.params)
            return dict(trial.params)
        if len(self.at_rung) < self.n:
            return None  # the first phase is still running: nothing to finish yet
        if self.queue is None:
            ranked = sorted(self.at_rung.values(), key=lambda v: (-v[0], v[1]))
            self.queue = [params for _, _, params in ranked]
        if not self.queue:
            return "FINISHED"
        self.finishing.add(trial_id)
        return self.queue.pop(0)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.finishing:
            return
        # A diverged run ranks last; its config is still recorded, so the first phase's count is whole.
        value = -math.inf if error or not result or result.get(DIVERGED) else result[METRIC]
        self.at_rung[trial_id] = (value, len(self.at_rung), self.configs[trial_id])


class RungScheduler:
    """STOP a first-phase trial at the rung; a finishing trial runs to its planned end."""

    def __init__(self, searcher: TopKSearcher, rung: int) -> None:
        self.searcher, self.rung = searcher, rung

    def on_trial_add(self, tune_controller, trial) -> None:
        pass

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self.searcher.finishing or result.get(DIVERGED):
            return TrialScheduler.CONTINUE
        return TrialScheduler.STOP if result[EPOCH] >= self.rung else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        pass


def build(space, seed: int, rung: int, n: int, k: int) -> tuple[TopKSearcher, RungScheduler]:
    searcher = TopKSearcher(space, seed, n, k)
    return searcher, RungScheduler(searcher, rung)

"""The best speed-up a setting allows: issue 33's arithmetic for settings where 3× is impossible by construction.

No search has a regret at or below a level before one of its trials has finished a run that good: the
incumbent is always a COMPLETE trial. Among the recorded runs that end at or below the level (finished, not
diverged), the cheapest takes ``e_min`` trial-epochs (reports, on a table of steps) and the quickest
``t_min`` seconds. So:

- **in time**, no search gets there before ``t_min``: the best time speed-up is random_fifo's reach in
  seconds over ``t_min``;
- **in trial-epochs** there is only the issue's arithmetic: a search keeps its W workers busy from the
  start (Tune fills every free worker, and so does each arm here), so if every worker trained at that run's
  speed, the first wave would be ``W × e_min`` trial-epochs before the first such run finished, and the
  speed-up at most random_fifo's reach over that. It is not a bound where trials' epoch times differ: workers
  on slower epochs train fewer of them meanwhile (on the CIFAR table batch sizes differ, and the shipped search
  beats this figure at budget 20 with W = 4).

The time bound is that of an oracle that proposes the quickest such run first. Both are read from the recorded
runs, so in the surrogate mode, whose curves are the model's, they are approximate.
"""

from __future__ import annotations

from benchmarks.curves.stats import normalised_regret


def best_allowed(bed, level: float, workers: int, reach_epochs: float | None, reach_seconds: float | None,
                 budget_epochs: float) -> dict | None:
    """The oracle's bounds (see the module docstring) for reaching normalised regret ``level`` on ``bed``, with
    ``workers`` at once, against random_fifo's reach (``reach_epochs``, ``reach_seconds``); None when no recorded
    run ends at or below ``level``."""
    best, worst = bed.finals()
    good = [c for c in bed.finished_runs() if normalised_regret(c.val_acc[-1], best, worst) <= level + 1e-12]
    if not good:
        return None
    e_min = min(sum(c.cost(i + 1) for i in range(len(c.val_acc))) for c in good)
    t_min = min(sum(c.seconds) for c in good)
    first_wave = workers * e_min
    return {"runs_at_or_below": len(good), "cheapest_run_epochs": e_min, "quickest_run_seconds": t_min,
            "first_wave_epochs": first_wave, "first_wave_share": first_wave / budget_epochs,
            "max_speedup_epochs": reach_epochs / first_wave if reach_epochs else None,
            "max_speedup_seconds": reach_seconds / t_min if reach_seconds else None}

"""The search-quality protocol: arms, seeds, budgets in trial-epochs, and the summary over seeds.

An arm is a searcher + scheduler as ``search.run`` would build them from its flags. Every arm
gets the same trial-epoch budget (``budget`` full evaluations x ``max_t`` epochs); a FIFO arm
spends it on ``budget`` trials, an ASHA arm on as many as its rungs let through on average
(``asha_trials``), and every run stops when the budget is spent. The random arms are plain
random search over the whole recorded space (no recipe, no budget plan); the TPE arms search
as shipped: the space narrowed by the budget plan for the table's epochs and images
(``spaces/budget.py``), its recipes evaluated first.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import optuna

from benchmarks.curves.simulate import NearestCurve, simulate
from benchmarks.curves.stats import first_reach, mean_se, normalised_regret, ranks, sign_test, step_at, wilcoxon
from benchmarks.curves.table import Curve
from search.progress import expected_epochs_left
from search.tune.scheduler import asha_rungs
from spaces.budget import default_grace_period

BASELINE = "random_fifo"
GRID_POINTS = 60  # points of the regret curves over the budget
CHECKPOINTS = (0.25, 0.5, 1.0)  # fractions of the budget at which the arms are tested against the baseline


@dataclass(frozen=True)
class Arm:
    """One way to search: what ``search.run`` flags would choose."""

    name: str
    sampler: str = "tpe"  # tpe | random
    scheduler: str = "asha"  # asha | fifo
    recipe: bool = True  # evaluate the space's recipe first
    grace_period: int | None = None  # None: as shipped, spaces.budget.default_grace_period(max_t)
    reduction_factor: float = 3
    constant_liar: bool = True
    startup: str = "quarter"  # quarter: max(4, N // 4) as shipped; or an integer as text
    space: str = "budget"  # budget: narrowed by the budget plan, its recipes first (as shipped); full: --full-space


# The shipped search and its baselines, then one change each.
ARMS = {a.name: a for a in [
    Arm("random_fifo", sampler="random", scheduler="fifo", recipe=False, space="full"),
    Arm("random_asha", sampler="random", recipe=False, space="full"),
    Arm("tpe_fifo", scheduler="fifo"),
    Arm("tpe_asha"),
    # The grace period: the shipped default is half of max_t (6 at 12 epochs); 2 was the default before.
    Arm("tpe_asha_grace1", grace_period=1),
    Arm("tpe_asha_grace2", grace_period=2),
    Arm("tpe_asha_grace3", grace_period=3),
    Arm("tpe_asha_grace4", grace_period=4),
    Arm("tpe_asha_rf2", reduction_factor=2),
    Arm("tpe_asha_rf4", reduction_factor=4),
    Arm("tpe_asha_no_liar", constant_liar=False),
    Arm("tpe_asha_startup10", startup="10"),
    # What the budget plan adds: the shipped search with --full-space, and random search on the plan's space.
    Arm("tpe_asha_full_space", space="full"),
    Arm("random_fifo_budget", sampler="random", scheduler="fifo", recipe=False),
]}
DEFAULT_ARMS = ["random_fifo", "random_asha", "tpe_fifo", "tpe_asha"]


def num_trials(arm: Arm, budget: int, max_t: int) -> int:
    if arm.scheduler == "fifo":
        return budget
    # The progress display's estimate of an average trial's epochs under these rungs (1/R go on at each).
    rungs = asha_rungs(max_t, arm.grace_period or default_grace_period(max_t), arm.reduction_factor)
    per_trial = expected_epochs_left(0, max_t, rungs, arm.reduction_factor)
    return math.ceil(budget * max_t / per_trial - 1e-9)


def build_search(arm: Arm, space, recipes: list[dict], seed: int, num_samples: int, max_t: int, storage=None):
    """The searcher and scheduler that ``search.run`` builds for the arm's flags, by its own factories.

    ``storage``: the study's (in memory by default). The one arm that is not a flag of search.run
    changes one thing: the sampler's constant liar.
    """
    from search.config import SearchConfig
    from search.sampler import make_sampler, n_startup_trials
    from search.study import create_study, enqueue_recipes
    from search.tune.tuner import make_scheduler, make_searcher

    config = SearchConfig(space="scratch", sampler=arm.sampler, scheduler=arm.scheduler, recipe=arm.recipe,
                          num_samples=num_samples, max_epochs=max_t, seed=seed, grace_period=arm.grace_period,
                          reduction_factor=arm.reduction_factor,
                          n_startup_trials=None if arm.startup == "quarter" else int(arm.startup))
    storage = storage or optuna.storages.InMemoryStorage()
    sampler = make_sampler(config.sampler, seed, n_startup_trials(num_samples, config.n_startup_trials),
                           constant_liar=arm.constant_liar)
    study = create_study(storage, config.study_name, sampler)
    if config.recipe and recipes:
        enqueue_recipes(study, list(recipes), num_samples)
    return make_searcher(config, study, storage, space), make_scheduler(config, study)


def run_one(arm: Arm, curves: list[Curve], spaces: dict, distributions, *, seed: int, budget: int, max_t: int,
            workers: int) -> dict:
    """One simulated search: its trace (trial-epochs, seconds, regret) and its trials.

    ``spaces``: ``Arm.space`` -> (the space as searched, the recipes it evaluates first).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    finals = [c.val_acc[-1] for c in curves if not c.diverged and len(c.val_acc) == max_t]
    best, worst = max(finals), min(finals)
    n = num_trials(arm, budget, max_t)
    space, recipes = spaces[arm.space]
    searcher, scheduler = build_search(arm, space, recipes, seed, n, max_t)
    result = simulate(searcher, scheduler, NearestCurve(curves, distributions), num_samples=n, max_t=max_t,
                      workers=workers, budget_epochs=budget * max_t)
    return {
        "arm": arm.name, "seed": seed, "budget": budget, "workers": workers, "num_samples": n,
        "epochs": [e for e, _, _ in result.trace],
        "seconds": [t for _, t, _ in result.trace],
        "regret": [normalised_regret(inc, best, worst) for _, _, inc in result.trace],
        "trials": [{"config_id": t.curve.config_id, "epochs": t.epochs, "stopped": t.stopped,
                    "mismatch": t.mismatch, "distance": round(t.distance, 4)} for t in result.trials],
    }


def summarise(runs: list[dict], budget: int, max_t: int) -> dict:
    """Per arm over seeds: regret curves (mean ± s.e.) over trial-epochs and time, ranks, reach, tests."""
    arms = sorted({r["arm"] for r in runs}, key=lambda a: list(ARMS).index(a) if a in ARMS else 99)
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    total = budget * max_t
    grid = [total * (i + 1) / GRID_POINTS for i in range(GRID_POINTS)]
    end_time = max(r["seconds"][-1] for r in runs if r["arm"] == BASELINE) if BASELINE in arms else max(
        r["seconds"][-1] for r in runs)
    time_grid = [end_time * (i + 1) / GRID_POINTS for i in range(GRID_POINTS)]
    curves = {a: [step_at(by[a, s]["epochs"], by[a, s]["regret"], grid, 1.0) for s in seeds] for a in arms}
    tcurves = {a: [step_at(by[a, s]["seconds"], by[a, s]["regret"], time_grid, 1.0) for s in seeds] for a in arms}
    # Average rank at each grid point: arms ranked within each seed by regret (1 = lowest).
    rank_curves = {a: [] for a in arms}
    for g in range(GRID_POINTS):
        per_seed = [ranks([curves[a][i][g] for a in arms]) for i in range(len(seeds))]
        for j, a in enumerate(arms):
            rank_curves[a].append(sum(r[j] for r in per_seed) / len(seeds))
    out = {"budget": budget, "max_t": max_t, "trial_epochs": total, "seeds": seeds, "grid_epochs": grid,
           "grid_seconds": time_grid, "arms": {}}
    base_final = mean_se([c[-1] for c in curves[BASELINE]])[0] if BASELINE in arms else None
    for a in arms:
        mean = [mean_se([c[g] for c in curves[a]]) for g in range(GRID_POINTS)]
        tmean = [mean_se([c[g] for c in tcurves[a]]) for g in range(GRID_POINTS)]
        row = {
            "regret_mean": [m for m, _ in mean], "regret_se": [s for _, s in mean],
            "time_regret_mean": [m for m, _ in tmean], "time_regret_se": [s for _, s in tmean],
            "rank": rank_curves[a], "final_regret": mean[-1][0], "final_regret_se": mean[-1][1],
            "final_rank": rank_curves[a][-1],
            "trials": mean_se([len(by[a, s]["trials"]) for s in seeds])[0],
        }
        if base_final is not None:
            reach = first_reach(grid, row["regret_mean"], base_final)
            row["reach_baseline_final_at"] = reach
            row["reach_ratio"] = reach / total if reach is not None else None
            row["tests"] = {}
            for frac in CHECKPOINTS:
                g = round(frac * GRID_POINTS) - 1
                mine = [c[g] for c in curves[a]]
                base = [c[g] for c in curves[BASELINE]]
                row["tests"][str(frac)] = {"sign": sign_test(mine, base), "wilcoxon": wilcoxon(mine, base),
                                           "mean_diff": mean_se([x - y for x, y in zip(mine, base)])[0]}
        out["arms"][a] = row
    mismatches = [t["mismatch"] for r in runs for t in r["trials"]]
    distances = [t["distance"] for r in runs for t in r["trials"]]
    out["nearest"] = {
        "lookups": len(mismatches),
        "exact_categoricals": sum(m == 0 for m in mismatches) / len(mismatches),
        "one_categorical_off": sum(m == 1 for m in mismatches) / len(mismatches),
        "two_or_more_off": sum(m >= 2 for m in mismatches) / len(mismatches),
        "median_distance": sorted(distances)[len(distances) // 2],
        "far": sum(m > 0 or d > 0.25 for m, d in zip(mismatches, distances)) / len(mismatches),
    }
    return out


def arm_from_text(text: str) -> Arm:
    """``NAME`` of ARMS, or ``NAME:field=value,...`` (a new arm from Arm's fields)."""
    name, _, spec = text.partition(":")
    if not spec:
        if name not in ARMS:
            raise ValueError(f"unknown arm {name!r}; known: {', '.join(ARMS)}, or NAME:field=value,...")
        return ARMS[name]
    fields = {f.name: f.type for f in dataclasses.fields(Arm)}
    kwargs = {}
    for item in spec.split(","):
        k, _, v = item.partition("=")
        if k not in fields or k == "name":
            raise ValueError(f"arm {name}: unknown field {k!r}; fields: {', '.join(f for f in fields if f != 'name')}")
        default = getattr(Arm(name), k)
        kind = int if default is None else type(default)  # None: grace_period's shipped default
        kwargs[k] = (v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else kind(v)
    return Arm(name, **kwargs)

"""The search-quality protocol: arms, seeds, budgets in trial-epochs, and the summary over seeds.

An arm is a searcher + scheduler as ``search.run`` would build them from its flags, or, for
``optuna_hyperband``, the plain-Optuna loop a user would write instead (``optuna_arm.py``).
Every arm gets the same trial-epoch budget (``budget`` full trials x ``max_t`` epochs) and asks
for as many trials as a user would set for it (``num_trials``); every run stops when the budget
is spent. On the project's CIFAR table the random arms and plain Optuna search the whole
recorded space, and the TPE arms search as shipped: the space narrowed by the budget plan for
the table's epochs and images (``spaces/budget.py``), its recipes evaluated first. On a table of
another format (opda's) every arm searches the file's own space; there is no plan and no recipe.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import optuna

from benchmarks.curves.simulate import simulate
from benchmarks.curves.stats import first_reach, mean_se, normalised_regret, ranks, sign_test, step_at, wilcoxon
from search.progress import expected_epochs_left
from search.sampler import INDEPENDENT_SHARE
from search.tune.scheduler import asha_rungs, rung_epochs
from spaces.budget import EARLY_RUNGS, default_grace_period

BASELINE = "random_fifo"  # every arm is tested against it
SECOND_BASELINE = "random_asha"  # Ray's own CIFAR example; the shipped arm is tested against it too
SHIPPED = "tpe_asha"
# Issue 33's goal: the shipped arm ends lower than each of these (Holm-corrected over every table, budget, W and mode).
GOAL_BASELINES = [BASELINE, SECOND_BASELINE, "optuna_hyperband", "one_rung_topk"]
GRID_POINTS = 300  # points of the regret curves over the budget (and over time)
CHECKPOINTS = (0.25, 0.5, 1.0)  # fractions of the budget at which the arms are tested against the baseline


@dataclass(frozen=True)
class Arm:
    """One way to search: what ``search.run`` flags would choose, or plain Optuna."""

    name: str
    sampler: str = "tpe"  # tpe | random | optuna (Optuna's default TPESampler, for the plain-Optuna loop)
    scheduler: str = "asha"  # asha | fifo | hyperband (Optuna's HyperbandPruner, plain-Optuna loop only) | topk
    recipe: bool = True  # evaluate the space's recipe first
    grace_period: int | None = None  # None: grace_fraction of max_t, or as shipped (spaces.budget.default_grace_period)
    grace_fraction: float | None = None  # the grace period as a fraction of max_t (at least 1 epoch)
    reduction_factor: float = 3
    constant_liar: bool = True
    startup: str = "quarter"  # quarter: max(4, N // 4) as shipped; or an integer as text
    space: str = "budget"  # budget: narrowed by the budget plan, its recipes first (as shipped); full: --full-space
    rungs: str = "fraction"  # --rungs: fraction of each trial's planned epochs (shipped), or epochs (Ray's ASHA)
    random_fraction: float = 0.0  # the share of TPE's trials drawn at random (search.sampler.make_sampler)
    early_rungs: int = EARLY_RUNGS  # --early-rungs: ASHA's rungs below the grace period, once the study earns them
    tpe_independent: float = INDEPENDENT_SHARE  # --tpe-independent: the share of TPE's trials that are not multivariate

    def grace(self, max_t: int) -> int:
        if self.grace_period is not None:
            return self.grace_period
        if self.grace_fraction is not None:
            return max(1, int(max_t * self.grace_fraction))
        return default_grace_period(max_t)


# The shipped search and the baselines a user would otherwise pick; then one change each of the shipped search.
ARMS = {a.name: a for a in [
    Arm("random_fifo", sampler="random", scheduler="fifo", recipe=False, space="full"),
    Arm("random_asha", sampler="random", recipe=False, space="full", rungs="epochs"),  # Ray's ASHAScheduler
    Arm("tpe_fifo", scheduler="fifo"),
    Arm(SHIPPED),
    Arm("optuna_hyperband", sampler="optuna", scheduler="hyperband", recipe=False, space="full"),
    # Every trial to one rung, the top k finished (arXiv 2307.15422; topk_arm.py).
    Arm("one_rung_topk", sampler="random", scheduler="topk", recipe=False, space="full"),
    # The grace period: the shipped default is half of max_t.
    Arm("tpe_asha_grace1", grace_period=1),
    Arm("tpe_asha_grace_quarter", grace_fraction=0.25),
    Arm("tpe_asha_rf2", reduction_factor=2),
    Arm("tpe_asha_rf4", reduction_factor=4),
    Arm("tpe_asha_startup4", startup="4"),
    Arm("tpe_asha_startup10", startup="10"),
    Arm("tpe_asha_no_liar", constant_liar=False),
    # Issue 33: the rungs in epochs, the same for every trial (the default before it); random + ASHA on fractions.
    Arm("tpe_asha_epoch_rungs", rungs="epochs"),
    Arm("tpe_asha_early_rungs", early_rungs=2),  # two early rungs, earned by the study (issue 33; not the default)
    Arm("tpe_asha_tpe_half", tpe_independent=0.5),  # half of TPE's trials not multivariate (issue 33; not the default)
    Arm("random_asha_fraction", sampler="random", recipe=False, space="full"),
    # What the budget plan and its recipes add (the CIFAR table; on a table without a plan the first two are tpe_asha
    # and the third random_fifo): the shipped search with --no-recipe, with --full-space, and random search on the
    # plan's space.
    Arm("tpe_asha_no_recipe", recipe=False),
    Arm("tpe_asha_full_space", space="full"),
    Arm("random_fifo_budget", sampler="random", scheduler="fifo", recipe=False),
]}
DEFAULT_ARMS = ["random_fifo", "random_asha", "tpe_fifo", SHIPPED, "optuna_hyperband", "one_rung_topk"]
VARIANTS = ["tpe_asha_grace1", "tpe_asha_grace_quarter", "tpe_asha_rf2", "tpe_asha_rf4", "tpe_asha_startup4",
            "tpe_asha_startup10", "tpe_asha_no_liar", "tpe_asha_epoch_rungs", "random_asha_fraction",
            "tpe_asha_early_rungs", "tpe_asha_tpe_half"]
DECOMPOSITION = ["tpe_asha_no_recipe", "tpe_asha_full_space", "random_fifo_budget"]
UNLIMITED = 10 ** 9  # plain Optuna's n_trials: the trial-epoch budget stops it


def num_trials(arm: Arm, budget: int, max_t: int, planned: list[int] | None = None) -> int:
    """The trials a user would set for ``budget`` full trials: the budget over an average trial's epochs.

    ``planned``: the planned epochs a trial draws uniformly, when the space searches them (an
    average opda trial plans 60 of the 100); None: every trial plans ``max_t``. Under ASHA a trial
    stops at the rungs below its planned epochs (1/R go on at each), as the progress display
    estimates it. Plain Optuna runs trials until the budget is spent.
    """
    if arm.scheduler == "hyperband":
        return UNLIMITED
    if arm.scheduler == "topk":
        from benchmarks.curves import topk_arm

        _, n, _ = topk_arm.plan(budget, max_t, planned)
        return 2 * n  # the first phase, then the finishing runs until the budget is spent
    milestones = [] if arm.scheduler == "fifo" else asha_rungs(max_t, arm.grace(max_t), arm.reduction_factor)
    lengths = planned or [max_t]
    per_trial = sum(expected_epochs_left(0, e, [r for r in rung_epochs(milestones, e, max_t, arm.rungs == "fraction")
                                                if r and r < e], arm.reduction_factor)
                    for e in lengths) / len(lengths)
    return math.ceil(budget * max_t / per_trial - 1e-9)


def build_search(arm: Arm, space, recipes: list[dict], seed: int, num_samples: int, max_t: int, storage=None,
                 check_suggestion: bool = True, topk: tuple[int, int, int] | None = None):
    """The searcher and scheduler that ``search.run`` builds for the arm's flags, by its own factories.

    ``storage``: the study's (in memory by default). ``check_suggestion`` False: a table's own
    space, whose parameters are not RunConfig fields, gets the same ``StudySearcher`` with the
    same defaults but no RunConfig check (``make_searcher`` adds it). The one arm that is not a
    flag of search.run changes one thing: the sampler's constant liar. ``optuna_hyperband`` is
    plain Optuna (``optuna_arm.build``); ``one_rung_topk`` is ``topk_arm.build`` with ``topk`` = (rung, n, k).
    """
    from search.config import SearchConfig
    from search.sampler import make_sampler, n_startup_trials
    from search.study import create_study, enqueue_recipes
    from search.tune.searcher import StudySearcher
    from search.tune.tuner import make_scheduler, make_searcher

    if arm.scheduler == "hyperband":
        from benchmarks.curves import optuna_arm

        return optuna_arm.build(space, seed, max_t, arm.reduction_factor)
    if arm.scheduler == "topk":
        from benchmarks.curves import topk_arm

        return topk_arm.build(space, seed, *topk)
    config = SearchConfig(space="scratch", sampler=arm.sampler, scheduler=arm.scheduler, recipe=arm.recipe,
                          num_samples=num_samples, max_epochs=max_t, seed=seed, grace_period=arm.grace(max_t),
                          reduction_factor=arm.reduction_factor, rungs=arm.rungs, early_rungs=arm.early_rungs,
                          n_startup_trials=None if arm.startup == "quarter" else int(arm.startup),
                          tpe_independent=arm.tpe_independent)
    storage = storage or optuna.storages.InMemoryStorage()
    sampler = make_sampler(config.sampler, seed, n_startup_trials(num_samples, config.n_startup_trials),
                           constant_liar=arm.constant_liar, random_fraction=arm.random_fraction,
                           independent_share=config.tpe_independent)
    study = create_study(storage, config.study_name, sampler)
    if config.recipe and recipes:
        enqueue_recipes(study, list(recipes), num_samples)
    if check_suggestion:
        searcher = make_searcher(config, study, storage, space)
    else:
        searcher = StudySearcher(study, storage, space, num_samples=config.num_samples, max_t=config.max_epochs,
                                 validate=None)
    return searcher, make_scheduler(config, study, storage)


def _changes(trace: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """The points of a regret trace where the regret changes, and its last point: the step function, smaller."""
    out = [p for i, p in enumerate(trace) if i == 0 or p[2] != trace[i - 1][2]]
    if trace and out[-1] is not trace[-1]:
        out.append(trace[-1])
    return out


def run_one(arm: Arm, bed, *, seed: int, budget: int, workers: int, keep_trials: bool = False,
            mode: str = "surrogate", noise: float = 0.0) -> dict:
    """One simulated search on ``bed`` (a ``testbed.Testbed``): its regret trace and how its trials ended.

    ``mode``: how a proposal gets its curve (``modes.py``: "surrogate" or "nearest", the latter
    with Gaussian ``noise`` of that standard deviation). The budget is ``budget`` full trials of
    the table's resource (``bed.full``).

    The trace keeps the points where the regret changes (trial-epochs spent, simulated seconds,
    normalised regret), and the last one. Per trial: how it ended (``stopped``), and its
    categorical mismatches with and numeric distance to the nearest recorded config; with
    ``keep_trials``, every trial's record as well (``trials``).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    best, worst = bed.finals()
    n = num_trials(arm, budget, bed.max_t, bed.planned_choices())
    space, recipes = bed.spaces[arm.space]
    from benchmarks.curves import modes, topk_arm

    topk = topk_arm.plan(budget, bed.max_t, bed.planned_choices()) if arm.scheduler == "topk" else None
    searcher, scheduler = build_search(arm, space, recipes, seed, n, bed.max_t,
                                       check_suggestion=bed.check_suggestion, topk=topk)
    # Plain Optuna's workers ask when they are free; Tune keeps one trial suggested ahead of them.
    result = simulate(searcher, scheduler, modes.answer(mode, bed, seed=seed, noise=noise), num_samples=n,
                      max_t=bed.max_t, workers=workers, budget_epochs=budget * bed.full, epochs_param=bed.epochs_param,
                      max_concurrent=workers if arm.scheduler == "hyperband" else None)
    trace = _changes([(e, t, normalised_regret(inc, best, worst)) for e, t, inc in result.trace])
    return {
        "arm": arm.name, "mode": mode, "seed": seed, "budget": budget, "workers": workers,
        "num_samples": n if n < UNLIMITED else None,
        "epochs": [e for e, _, _ in trace],
        "seconds": [t for _, t, _ in trace],
        "regret": [r for _, _, r in trace],
        "stopped": [t.stopped for t in result.trials],
        "mismatch": [t.mismatch for t in result.trials],
        "distance": [round(t.distance, 3) for t in result.trials],
        **({"trials": [{"config_id": t.curve.config_id, "params": t.params, "epochs": t.epochs, "planned": t.planned,
                        "stopped": t.stopped, "final": t.curve.val_acc[t.epochs - 1] if t.epochs else None}
                       for t in result.trials]} if keep_trials else {}),
    }


def _tests(mine: list[float], base: list[float]) -> dict:
    return {"sign": sign_test(mine, base), "wilcoxon": wilcoxon(mine, base),
            "mean_diff": mean_se([x - y for x, y in zip(mine, base)])[0]}


def summarise(runs: list[dict], budget: int, max_t: int) -> dict:
    """Per arm over seeds: regret curves (mean ± s.e.) over trial-epochs and time, ranks, reach, speed-ups, tests.

    Reach: where the arm's mean regret first gets down to random_fifo's final mean regret, in
    trial-epochs (``reach_ratio``: as a fraction of the budget) and in simulated seconds.
    Speed-up: random_fifo's own reach over the arm's, in trial-epochs and in seconds (random_fifo
    may get to its final regret before it spends the whole budget). The time grid runs to the
    last simulated second of any run.
    """
    arms = sorted({r["arm"] for r in runs}, key=lambda a: list(ARMS).index(a) if a in ARMS else 99)
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    total = budget * max_t
    grid = [total * (i + 1) / GRID_POINTS for i in range(GRID_POINTS)]
    end_time = max(r["seconds"][-1] for r in runs)
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
    for a in arms:
        mean = [mean_se([c[g] for c in curves[a]]) for g in range(GRID_POINTS)]
        tmean = [mean_se([c[g] for c in tcurves[a]]) for g in range(GRID_POINTS)]
        stopped: dict[str, int] = {}
        for s in seeds:
            for label in by[a, s]["stopped"]:
                stopped[label or "running"] = stopped.get(label or "running", 0) + 1
        out["arms"][a] = {
            "regret_mean": [m for m, _ in mean], "regret_se": [s for _, s in mean],
            "time_regret_mean": [m for m, _ in tmean], "time_regret_se": [s for _, s in tmean],
            "rank": rank_curves[a], "final_regret": mean[-1][0], "final_regret_se": mean[-1][1],
            "final_per_seed": [c[-1] for c in curves[a]], "final_rank": rank_curves[a][-1],
            "trials": mean_se([len(by[a, s]["stopped"]) for s in seeds])[0],
            "epochs_spent": mean_se([by[a, s]["epochs"][-1] for s in seeds])[0],
            "trials_by_end": {k: v / len(seeds) for k, v in sorted(stopped.items())},
            "seconds": mean_se([by[a, s]["seconds"][-1] for s in seeds])[0],
        }
    if BASELINE in arms:
        base = out["arms"][BASELINE]
        level = base["final_regret"]
        base_reach = first_reach(grid, base["regret_mean"], level)
        base_treach = first_reach(time_grid, base["time_regret_mean"], level)
        for a, row in out["arms"].items():
            reach = first_reach(grid, row["regret_mean"], level)
            treach = first_reach(time_grid, row["time_regret_mean"], level)
            row["reach_baseline_final_at"] = reach
            row["reach_ratio"] = reach / total if reach is not None else None
            row["reach_seconds"] = treach
            row["speedup_epochs"] = base_reach / reach if reach else None
            row["speedup_seconds"] = base_treach / treach if treach and base_treach else None
            row["tests"] = {}
            for frac in CHECKPOINTS:
                g = round(frac * GRID_POINTS) - 1
                row["tests"][str(frac)] = _tests([c[g] for c in curves[a]], [c[g] for c in curves[BASELINE]])
    # The final regrets, paired by seed, against the goal's baselines and against the shipped arm (its one-change
    # variants).
    for a, row in out["arms"].items():
        row["vs"] = {b: _tests(row["final_per_seed"], out["arms"][b]["final_per_seed"])
                     for b in (*GOAL_BASELINES[1:], SHIPPED) if b in arms and b != a}
    mismatches = [m for r in runs for m in r["mismatch"]]
    distances = [d for r in runs for d in r["distance"]]
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
        kind = float if k == "grace_fraction" else int if default is None else type(default)
        kwargs[k] = (v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else kind(v)
    return Arm(name, **kwargs)

"""The search-quality instrument: the table, the statistics, the simulator, and its equivalence with Ray Tune."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import optuna
import pytest

from benchmarks.curves import protocol, stats, testbed
from benchmarks.curves.simulate import NearestCurve, simulate
from benchmarks.curves.table import RECORD_COLUMNS, Curve, read_table
from search.tune.searcher import trial_params

# --- statistics on hand-made numbers ------------------------------------------------------

A = [0.1, 0.3, 0.2, 0.5, 0.05, 0.4, 0.35, 0.2, 0.15, 0.6, 0.3, 0.1]
B = [0.2, 0.3, 0.4, 0.45, 0.25, 0.5, 0.5, 0.1, 0.3, 0.7, 0.45, 0.3]


def test_regret_is_normalised_by_the_tables_best_and_worst():
    assert stats.normalised_regret(0.8, best=0.8, worst=0.2) == 0.0
    assert stats.normalised_regret(0.5, best=0.8, worst=0.2) == pytest.approx(0.5)
    assert stats.normalised_regret(None, best=0.8, worst=0.2) == 1.0


def test_ranks_share_ties_and_step_function_holds_its_last_value():
    assert stats.ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert stats.step_at([2, 5], [0.7, 0.3], [1, 2, 4, 5, 9], before=1.0) == [1.0, 0.7, 0.7, 0.3, 0.3]
    assert stats.first_reach([1, 2, 3], [0.9, 0.5, 0.2], 0.5) == 2
    assert stats.first_reach([1, 2, 3], [0.9, 0.5, 0.2], 0.1) is None
    m, se = stats.mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and se == pytest.approx(math.sqrt(5 / 3 / 4))


def test_sign_test_is_the_exact_binomial():
    r = stats.sign_test(A, B)
    assert (r["wins"], r["losses"], r["ties"]) == (9, 2, 1)
    assert r["p"] == pytest.approx(0.0654296875)  # scipy.stats.binomtest(2, 11).pvalue


def test_wilcoxon_matches_scipy_normal_approximation():
    r = stats.wilcoxon(A, B)
    # scipy.stats.wilcoxon(A, B, zero_method="wilcox", correction=True, method="approx")
    assert r["n"] == 11 and r["w_plus"] == 5.5
    assert r["p"] == pytest.approx(0.0161569312611813, rel=1e-9)


def test_asha_budget_arithmetic():
    # Grace 2: rungs at 2 and 6 epochs, then 12: an average trial runs 2 + 4/3 + 6/9 = 4 epochs, so 30 x 12 / 4 trials.
    assert protocol.num_trials(protocol.ARMS["random_fifo"], 30, 12) == 30
    assert protocol.num_trials(protocol.Arm("g2", grace_period=2), 30, 12) == 90
    # As shipped, grace is half of max_t: one rung at 6, so 6 + 6/3 = 8 epochs a trial, 45 trials.
    assert protocol.num_trials(protocol.ARMS["tpe_asha"], 30, 12) == 45
    quarter = protocol.ARMS["tpe_asha_grace_quarter"]
    assert (quarter.grace(12), quarter.grace(100), protocol.ARMS["tpe_asha"].grace(100)) == (3, 25, 50)
    # opda: a trial plans 20..100 epochs, 60 on average, so 20 x 100 / 60 trials without ASHA; with the rung at 50,
    # a trial planning e > 50 epochs runs 50 + (e - 50) / 3 on average: 49.5 epochs a trial over the 81 lengths.
    planned = list(range(20, 101))
    assert protocol.num_trials(protocol.ARMS["random_fifo"], 20, 100, planned) == 34
    per_trial = (sum(range(20, 51)) + sum(50 + (e - 50) / 3 for e in range(51, 101))) / 81
    assert protocol.num_trials(protocol.ARMS["tpe_asha_epoch_rungs"], 20, 100, planned) == math.ceil(
        2000 / per_trial) == 41
    # As shipped, the rung is at half of each trial's own epochs: e planned epochs cost ceil(e/2) + (e - ceil(e/2))/3.
    per_trial = sum(-(-e // 2) + (e - -(-e // 2)) / 3 for e in planned) / 81
    assert protocol.num_trials(protocol.ARMS["tpe_asha"], 20, 100, planned) == math.ceil(2000 / per_trial) == 50
    assert protocol.num_trials(protocol.ARMS["optuna_hyperband"], 20, 100, planned) == protocol.UNLIMITED


def test_summary_ranks_and_tests_on_hand_made_runs():
    runs = []
    for seed in range(4):
        # The baseline reaches regret 0.5 at the end; "good" reaches 0.1 at half the budget, in a quarter of the time.
        runs.append({"arm": "random_fifo", "seed": seed, "epochs": [10, 20], "seconds": [5.0, 10.0],
                     "regret": [1.0, 0.5], "stopped": ["complete"], "mismatch": [0], "distance": [0.0]})
        runs.append({"arm": "good", "seed": seed, "epochs": [10, 20], "seconds": [2.5, 5.0],
                     "regret": [0.1, 0.1], "stopped": ["scheduler", ""], "mismatch": [1, 0], "distance": [0.3, 0.1]})
    s = protocol.summarise(runs, budget=2, max_t=10)
    good, base = s["arms"]["good"], s["arms"]["random_fifo"]
    assert good["final_regret"] == pytest.approx(0.1) and base["final_regret"] == pytest.approx(0.5)
    assert good["final_rank"] == 1.0 and base["final_rank"] == 2.0
    assert good["reach_ratio"] == 0.5 and base["reach_ratio"] == 1.0
    assert good["speedup_epochs"] == 2.0 and good["speedup_seconds"] == 4.0
    assert good["trials_by_end"] == {"running": 1.0, "scheduler": 1.0} and good["epochs_spent"] == 20
    assert good["tests"]["1.0"]["sign"] == {"wins": 4, "losses": 0, "ties": 0, "p": 0.125}
    assert s["nearest"]["exact_categoricals"] == pytest.approx(2 / 3) and s["nearest"]["far"] == pytest.approx(1 / 3)


# --- the table and the nearest neighbour --------------------------------------------------


def test_table_round_trip(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["# made by hand", ",".join(RECORD_COLUMNS)]
    for epoch, acc in ((1, 0.3), (2, 0.5)):
        rows.append(f"7,resnet20,0.1,0.0005,128,cosine,sgd,0.0,crop_flip,{epoch},{acc},1.0,1.0,2.5,ok")
    path.write_text("\n".join(rows) + "\n")
    table = read_table(path)
    assert table.header == ["made by hand"]
    (curve,) = table.curves()
    assert curve.config_id == 7 and curve.params["batch_size"] == 128 and curve.params["lr"] == 0.1
    assert curve.val_acc == [0.3, 0.5] and curve.seconds == [2.5, 2.5] and not curve.diverged


def test_simulated_search_applies_the_budget_plan_of_the_tables_budget(tmp_path):
    from benchmarks.curves.testbed import load_space
    from spaces.definitions import SCRATCH_RECIPE, SHORT_RECIPES

    path = tmp_path / "t.csv"
    rows = ["# data: CIFAR-10 (JPEG-75 copy) x; train_subset 2000, val_size 1000, split seed 0", ",".join(RECORD_COLUMNS)]
    rows += [f"0,resnet20,0.1,0.0005,128,step,sgd,0.0,crop_flip,{e},0.3,1.0,1.0,2.5,ok" for e in range(1, 13)]
    path.write_text("\n".join(rows) + "\n")
    table = read_table(path)
    assert table.train_images() == 2000
    kinds, dists = load_space(table, "scratch")
    # 12 epochs of 2,000 images: 24,000 images seen, 0.3% of the paper's budget.
    budget_space, budget_recipes = kinds["budget"]
    full_space, full_recipes = kinds["full"]
    assert [r["schedule"] for r in budget_recipes] == [r["schedule"] for r in SHORT_RECIPES] == ["onecycle"] * 2
    assert full_recipes[0]["schedule"] == SCRATCH_RECIPE["schedule"] == "step"
    from spaces.asks import inspect_space
    budget_choices = inspect_space(budget_space, "scratch").categorical
    assert budget_choices["schedule"] == ["cosine", "onecycle"]
    assert budget_choices["batch_size"] == [64, 128]  # 24,000 / 256 < 150 steps
    assert "trivialaugment" not in budget_choices["augment"]
    assert inspect_space(full_space, "scratch").categorical["schedule"] == ["cosine", "onecycle", "step"]
    assert dists["batch_size"].choices == (64, 128, 256, 512)  # the lookup normalises over the recorded space


DISTS = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
         "batch_size": optuna.distributions.CategoricalDistribution([32, 64])}


def test_nearest_curve_matches_categoricals_first_then_log_distance():
    near_lr_other_bs = Curve(0, {"lr": 0.1, "batch_size": 64})
    far_lr_same_bs = Curve(1, {"lr": 0.001, "batch_size": 32})
    close_in_log = Curve(2, {"lr": 0.5, "batch_size": 32})
    nn = NearestCurve([near_lr_other_bs, far_lr_same_bs, close_in_log], DISTS)
    curve, mismatch, dist = nn.lookup({"lr": 0.1, "batch_size": 32})
    # 0.1 is 1/3 of the log range from 1.0 (ln 10 / ln 1000) and 2/3 from 0.001: curve 2 wins.
    assert curve.config_id == 2 and mismatch == 0
    assert dist == pytest.approx(math.log(5) / math.log(1000))


# --- the simulator -------------------------------------------------------------------------

def _table(seconds: dict | None = None):
    """Eight configs over a small space: lr decides the final accuracy, batch 64 learns slower; ``seconds``: an
    epoch's seconds per batch size."""
    seconds = seconds or {32: 1.25, 64: 1.0}
    curves = []
    for i, lr in enumerate([0.002, 0.005, 0.01, 0.03, 0.08, 0.2, 0.5, 0.9]):
        for bs in (32, 64):
            peak = 0.9 - 0.5 * abs(math.log10(lr) - math.log10(0.08))
            acc = [round(peak * (1 - 0.6 ** e) * (0.8 if bs == 64 and e < 3 else 1.0), 4) for e in range(1, 5)]
            curves.append(Curve(2 * i + (bs == 64), {"lr": lr, "batch_size": bs}, acc, [seconds[bs]] * 4))
    return curves


def space(trial):
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    trial.suggest_categorical("batch_size", [32, 64])


def _search(tmp_path, name, seed=0):
    arm = protocol.Arm("t", grace_period=1, reduction_factor=2, startup="3")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / name}.db")
    searcher, scheduler = protocol.build_search(arm, space, [{"lr": 0.08, "batch_size": 32}], seed, 8, 4,
                                                storage=storage)
    return searcher, scheduler, storage


class _FifoSearcher:
    """A searcher that hands out a fixed list of configs, for clock tests."""

    def __init__(self, configs):
        self.configs, self.told = list(configs), []

    def suggest(self, trial_id):
        return self.configs.pop(0) if self.configs else None

    def on_trial_result(self, trial_id, result):
        pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, result["training_iteration"]))


def test_simulator_clock_with_two_workers_and_a_budget():
    curves = [Curve(0, {"lr": 0.01, "batch_size": 32}, [0.1, 0.2], [1.0, 1.0]),
              Curve(1, {"lr": 0.1, "batch_size": 32}, [0.3, 0.6], [3.0, 3.0]),
              Curve(2, {"lr": 0.9, "batch_size": 32}, [0.2, 0.4], [1.0, 1.0])]
    searcher = _FifoSearcher([c.params for c in curves])
    result = simulate(searcher, None, NearestCurve(curves, DISTS), num_samples=3, max_t=2, workers=2)
    # Trial 0 ends at t=2 and trial 2 takes its worker (t=2..4); trial 1 ends at t=6.
    assert result.trace == [(1, 1.0, None), (2, 2.0, 0.2), (3, 3.0, 0.2), (4, 3.0, 0.2), (5, 4.0, 0.4),
                            (6, 6.0, 0.6)]
    assert searcher.told == [("00000", 2), ("00002", 2), ("00001", 2)]
    cut = simulate(_FifoSearcher([c.params for c in curves]), None, NearestCurve(curves, DISTS), num_samples=3,
                   max_t=2, workers=2, budget_epochs=3)
    assert cut.trace[-1][0] == 3 and [t.stopped for t in cut.trials] == ["complete", "budget", ""]


def test_a_trial_that_plans_fewer_epochs_completes_at_its_own_epochs_and_can_be_the_incumbent():
    # A space that searches epochs (as opda's): max_t 4, a 2-epoch run is COMPLETE at epoch 2 and, better than the
    # 4-epoch run, the incumbent; a curve that ends before its planned epochs (1-NN of a shorter run) is not.
    dists = {"epochs": optuna.distributions.IntDistribution(1, 4), **DISTS}
    curves = [Curve(0, {"epochs": 4, "lr": 0.01, "batch_size": 32}, [0.1, 0.2, 0.3, 0.4], [1.0] * 4),
              Curve(1, {"epochs": 2, "lr": 0.1, "batch_size": 32}, [0.3, 0.6], [1.0] * 2)]
    searcher = _FifoSearcher([{"epochs": 4, "lr": 0.01, "batch_size": 32}, {"epochs": 2, "lr": 0.1, "batch_size": 32},
                              {"epochs": 3, "lr": 0.1, "batch_size": 32}])
    result = simulate(searcher, None, NearestCurve(curves, dists), num_samples=3, max_t=4, workers=1,
                      epochs_param="epochs")
    assert [(t.planned, t.epochs, t.stopped) for t in result.trials] == [(4, 4, "complete"), (2, 2, "complete"),
                                                                         (3, 2, "short")]
    assert [inc for _, _, inc in result.trace] == [None, None, None, 0.4, 0.4, 0.6, 0.6, 0.6]


@pytest.mark.slow
def test_simulator_makes_the_same_decisions_as_ray_tune(tmp_path):
    """A real Tune run (max_concurrent=1, a trainable that reports the recorded curve) and the
    simulator with W=1 propose the same configs and stop the same trials at the same epochs."""
    ray = pytest.importorskip("ray")
    from ray import tune

    curves = _table()
    lookup = NearestCurve(curves, DISTS)

    def trainable(config):
        curve, _, _ = lookup.lookup(trial_params(config))
        for epoch, acc in enumerate(curve.val_acc, 1):
            tune.report({"epoch": epoch, "val_acc": acc})

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        searcher, scheduler, storage = _search(tmp_path, "tune")
        tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=8,
                                                          max_concurrent_trials=1),
                   run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0)).fit()
    finally:
        ray.shutdown()
    sim_searcher, sim_scheduler, sim_storage = _search(tmp_path, "sim")
    simulate(sim_searcher, sim_scheduler, lookup, num_samples=8, max_t=4, workers=1, max_concurrent=1)

    def decisions(storage):
        (study,) = optuna.get_all_study_summaries(storage)
        trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
        return [(t.params, t.state.name, sorted(t.intermediate_values)) for t in trials]

    real, simulated = decisions(storage), decisions(sim_storage)
    assert len(real) == 8
    assert {s for _, s, _ in real} == {"COMPLETE", "PRUNED"}  # ASHA stopped some, others ran to the end
    assert real == simulated


def _study_decisions(storage):
    (study,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    return [(t.params, t.state.name, sorted(t.intermediate_values)) for t in trials]


@pytest.mark.slow
def test_simulator_makes_the_same_decisions_as_ray_tune_with_two_workers(tmp_path):
    """A real Tune run with two trials at once and the simulator at W = 2 propose the same configs, and the
    scheduler decides the same at every result, in the same order. Epochs of batch 32 take 1.0 s, of batch 64
    1.35 s, so that no two results of different trials come closer than 0.3 s (``min_gap``); the real run keeps
    the simulated clock (``tests/_tuner_order.py``), so Tune's own overheads move no result past another."""
    pytest.importorskip("ray")
    from tests._tuner_order import decisions, min_gap, record_calls, run_tuner, schedule_of

    lookup = NearestCurve(_table({32: 1.0, 64: 1.35}), DISTS)
    sim_searcher, sim_scheduler, sim_storage = _search(tmp_path, "sim")
    sim_calls = []
    record_calls(sim_searcher, sim_scheduler, sim_calls)
    sim = simulate(sim_searcher, sim_scheduler, lookup, num_samples=8, max_t=4, workers=2, max_concurrent=2)
    assert min_gap(sim) == pytest.approx(0.3)
    # Both workers busy from the start: the second trial starts at 0, not after the first.
    assert [t.started for t in sim.trials[:2]] == [0.0, 0.0] and max(t.started for t in sim.trials) > 0

    searcher, scheduler, storage = _search(tmp_path, "tune")
    calls = run_tuner(tmp_path, searcher, scheduler, lookup, schedule_of(sim), num_samples=8, workers=2, unit=1.0)
    assert _study_decisions(storage) == _study_decisions(sim_storage)
    real = decisions(calls)
    assert real == decisions(sim_calls)
    # ASHA decided at both rungs (epochs 1 and 2), and stopped trials at each.
    assert {(e, d) for _, e, d in real if e <= 2} == {(1, "CONTINUE"), (1, "STOP"), (2, "CONTINUE"), (2, "STOP")}
    # The order the simulator follows is Tune's: the scheduler hears of a result before the searcher, which hears of
    # it only if the trial goes on; the searcher hears of a trial's end before the callbacks do.
    where = {(c.who, c.hook, c.trial_id, c.epoch): i for i, c in enumerate(calls)}
    for (who, hook, trial, epoch), i in where.items():
        if who == "searcher" and hook == "on_trial_result":
            assert where["scheduler", "on_trial_result", trial, epoch] < i
        if who == "callback" and hook == "on_trial_complete":
            ended = [j for (w, h, t, _), j in where.items() if (w, h, t) == ("searcher", "on_trial_complete", trial)]
            assert ended and max(ended) < i
    stopped = [(c.trial_id, c.epoch) for c in calls if c.decision == "STOP"]
    assert not any(("searcher", "on_trial_result", t, e) in where for t, e in stopped)


# --- the shipped searcher and scheduler on slices of the two tables ------------------------

ROOT = Path(__file__).resolve().parents[1]
CIFAR_TABLE = ROOT / "benchmarks" / "curves" / "scratch-resnet20.csv"
OPDA_TABLE = ROOT.parent / "shared" / "data" / "opda-alexnet" / "alexnet_tuning.results.jsonl"


def _cifar_slice(tmp_path, configs: int = 32) -> str:
    """The recorded CIFAR table's header and its first ``configs`` configs."""
    lines = CIFAR_TABLE.read_text().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    keep = [line for line in body[1:] if int(line.split(",")[0]) < configs]
    path = tmp_path / "cifar-slice.csv"
    path.write_text("\n".join([line for line in lines if line.startswith("#")] + body[:1] + keep) + "\n")
    return str(path)


def _opda_slice(tmp_path, runs: int = 96) -> str:
    """opda's first ``runs`` lines, in a temporary file (never in the repository)."""
    path = tmp_path / "opda-slice.jsonl"
    path.write_text("\n".join(OPDA_TABLE.read_text().splitlines()[:runs]) + "\n")
    return str(path)


def _shipped(bed, budget: int, workers: int, seed: int = 0):
    """The shipped search on ``bed``, as protocol.run_one runs it, with its searcher at hand to read the study."""
    arm = protocol.ARMS[protocol.SHIPPED]
    n = protocol.num_trials(arm, budget, bed.max_t, bed.planned_choices())
    space, recipes = bed.spaces[arm.space]
    searcher, scheduler = protocol.build_search(arm, space, recipes, seed, n, bed.max_t,
                                                check_suggestion=bed.check_suggestion)
    result = simulate(searcher, scheduler, bed.lookup, num_samples=n, max_t=bed.max_t, workers=workers,
                      budget_epochs=budget * bed.max_t, epochs_param=bed.epochs_param)
    states = Counter(t.state.name for t in searcher.study.trials)
    return n, result, states, searcher.study


def test_the_shipped_search_on_a_slice_of_the_cifar_table(tmp_path):
    bed = testbed.load(_cifar_slice(tmp_path))
    assert (len(bed.curves), bed.max_t, bed.check_suggestion, bed.epochs_param) == (32, 12, True, None)
    # 10 full trials = 120 trial-epochs; grace 6 and R 3: 8 epochs a trial, so 15 trials, 4 at once.
    n, result, states, study = _shipped(bed, budget=10, workers=4)
    assert n == 15 and result.trace[-1][0] == 120
    assert Counter(t.stopped for t in result.trials) == {"scheduler": 10, "complete": 5}
    assert states == {"PRUNED": 10, "COMPLETE": 5}  # the study says what the simulator says
    assert {t.epochs for t in result.trials if t.stopped == "scheduler"} == {6}
    # The budget plan's two recipes go first, then TPE's random start.
    assert [t.params for t in result.trials[:2]] == bed.spaces["budget"][1]
    best = max(t.curve.val_acc[-1] for t in result.trials if t.stopped == "complete")
    assert result.trace[-1][2] == best == pytest.approx(0.535332, abs=1e-6)
    assert study.best_value == best


@pytest.mark.skipif(not OPDA_TABLE.exists(), reason=f"opda's AlexNet data is not at {OPDA_TABLE} (see the README of "
                                                     "benchmarks/: it is read from ../shared, never copied here)")
def test_the_shipped_search_on_a_slice_of_opdas_table(tmp_path):
    bed = testbed.load(_opda_slice(tmp_path))
    assert (len(bed.curves), bed.max_t, bed.check_suggestion, bed.epochs_param) == (96, 100, False, "epochs")
    # 10 full trials = 1,000 trial-epochs; with ASHA's one rung at half of each trial's own epochs, a trial
    # planning e epochs runs ceil(e/2) + (e - ceil(e/2))/3 on average, 40 over 20..100: 25 trials.
    n, result, states, study = _shipped(bed, budget=10, workers=4)
    assert n == 25
    ends = Counter(t.stopped for t in result.trials)
    assert ends == {"scheduler": 14, "diverged": 6, "complete": 5}
    # The searcher has no RunConfig check here: opda's names are asked and none is refused; diverged runs FAIL.
    assert states == {"PRUNED": 14, "FAIL": 6, "COMPLETE": 5}
    # A trial is COMPLETE when it ran its own planned epochs, fewer than max_t; ASHA stops a trial at its rung, half
    # of its own planned epochs (rounded up).
    complete = [t for t in result.trials if t.stopped == "complete"]
    assert all(t.epochs == t.planned == t.params["epochs"] for t in complete) and min(t.planned for t in complete) < 100
    stopped = [t for t in result.trials if t.stopped == "scheduler"]
    assert all(t.epochs == -(-t.planned // 2) for t in stopped) and len({t.epochs for t in stopped}) > 5
    # Every trial ended within the budget: 25 trials used 656 of the 1,000 trial-epochs.
    assert result.trace[-1][0] == 656
    best = max(t.curve.val_acc[-1] for t in complete)
    assert result.trace[-1][2] == best == pytest.approx(0.504903, abs=1e-6) == study.best_value


def test_plain_optuna_prunes_with_hyperband_on_the_simulated_clock(tmp_path):
    bed = testbed.load(_cifar_slice(tmp_path))
    run = protocol.run_one(protocol.ARMS["optuna_hyperband"], bed, seed=0, budget=10, workers=4, keep_trials=True)
    # No trial limit: the 120 trial-epochs end the search, the last trials cut or still running.
    assert run["num_samples"] is None and run["epochs"][-1] == 120
    ends = Counter(run["stopped"])
    assert ends["scheduler"] > 0 and ends["complete"] > 0 and ends["scheduler"] + ends["complete"] + ends[
        "budget"] + ends[""] == len(run["stopped"])
    assert all(t["epochs"] < 12 for t in run["trials"] if t["stopped"] == "scheduler")


def test_the_command_writes_the_tables_and_merging_its_runs_reproduces_them(tmp_path):
    from benchmarks.curves.__main__ import main

    table = _cifar_slice(tmp_path, configs=24)
    common = ["--tables", table, "--seeds", "2", "--budgets", "4", "--workers", "2"]
    assert main(["simulate", *common, "--arms", "random_fifo", "random_asha", "tpe_asha", "--variants",
                 "tpe_asha_rf2", "--out", str(tmp_path / "a"), "--runs-json", str(tmp_path / "a.json")]) == 0
    # The shipped arm again, beside another variant: the same seeds give the same runs, so merging is one run of all.
    assert main(["simulate", *common, "--arms", "tpe_asha", "--variants", "tpe_asha_no_liar", "--out",
                 str(tmp_path / "b"), "--runs-json", str(tmp_path / "b.json")]) == 0
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "m"),
                 "--runs-json", str(tmp_path / "m-runs" / "all.json")]) == 0
    # 2 seeds x (3 arms in 2 modes + 2 variants in the surrogate mode), the shared ones once
    assert len(json.loads((tmp_path / "m-runs" / "all.json").read_text())) == 2 * (3 * 2 + 2)
    one = json.loads((tmp_path / "a" / "results.json").read_text())["tables"]["cifar-slice"]["settings"]
    merged = json.loads((tmp_path / "m" / "results.json").read_text())["tables"]["cifar-slice"]["settings"]
    # Both modes by default; the variants in the surrogate mode only.
    assert set(merged) == {"surrogate-budget4-w2", "nearest-budget4-w2"}
    assert set(merged["surrogate-budget4-w2"]["arms"]) == {"random_fifo", "random_asha", "tpe_asha", "tpe_asha_rf2",
                                                           "tpe_asha_no_liar"}
    assert set(merged["nearest-budget4-w2"]["arms"]) == {"random_fifo", "random_asha", "tpe_asha"}
    for key in merged:
        assert merged[key]["mode"] == key.split("-")[0]
        for arm in ("random_fifo", "random_asha", "tpe_asha"):
            assert merged[key]["arms"][arm]["final_per_seed"] == one[key]["arms"][arm]["final_per_seed"]
    # A run of a variant without the shipped arm reports it without the test against it (merge adds that).
    assert main(["simulate", *common, "--mode", "surrogate", "--arms", "random_fifo", "--variants", "tpe_asha_rf4",
                 "--out", str(tmp_path / "c")]) == 0
    assert "| tpe_asha_rf4 |" in (tmp_path / "c" / "report.md").read_text()
    report = (tmp_path / "m" / "report.md").read_text()
    assert "**The goal**" in report and "| tpe_asha_no_liar |" in report
    # Each setting's goal carries what it allows at best, from the table's recorded runs (bound.py).
    # Every CIFAR run plans 12 epochs, so two workers' first wave is 24 of the budget's 4 x 12.
    allowed = merged["surrogate-budget4-w2"]["goal"]["best_allowed"]
    assert (allowed["cheapest_run_epochs"], allowed["first_wave_share"]) == (12, 0.5)
    assert allowed["max_speedup_seconds"] > 0
    assert "at most in time" in report


def test_the_best_a_setting_allows_is_read_from_the_cheapest_and_quickest_recorded_run_that_good():
    from types import SimpleNamespace

    from benchmarks.curves.bound import best_allowed

    # Regret is normalised by the finished runs' best (0.9) and worst (0.5) final metric.
    long_best = Curve(0, {}, val_acc=[0.5] * 9 + [0.9], seconds=[2.0] * 10)
    short_good = Curve(1, {}, val_acc=[0.6, 0.7, 0.8, 0.85], seconds=[3.0] * 4, planned=4)  # regret 0.125, 12 s
    worst = Curve(2, {}, val_acc=[0.5] * 10, seconds=[1.0] * 10)
    diverged = Curve(3, {}, val_acc=[0.95, 0.95], seconds=[0.1, 0.1], diverged=True)  # never counts
    unfinished = Curve(4, {}, val_acc=[0.9] * 3, seconds=[0.1] * 3)  # planned 10, ran 3: never counts
    bed = SimpleNamespace(curves=[long_best, short_good, worst, diverged, unfinished],
                          planned_epochs=lambda params: 10)
    bed.finished_runs = lambda: testbed.Testbed.finished_runs(bed)  # the real rule over the hand-made runs
    bed.finals = lambda: testbed.Testbed.finals(bed)
    assert bed.finals() == (0.9, 0.5)

    # At random search's level 0.125, both good runs qualify: the cheapest takes 4 epochs, the quickest 12 s.
    a = best_allowed(bed, 0.125, workers=4, reach_epochs=80.0, reach_seconds=60.0, budget_epochs=200.0)
    assert (a["runs_at_or_below"], a["cheapest_run_epochs"], a["quickest_run_seconds"]) == (2, 4, 12.0)
    assert a["first_wave_epochs"] == 16 and a["first_wave_share"] == pytest.approx(0.08)
    assert a["max_speedup_epochs"] == pytest.approx(5.0) and a["max_speedup_seconds"] == pytest.approx(5.0)
    # At level 0 only the long run qualifies (10 epochs, 20 s); below it, no recorded run does.
    a = best_allowed(bed, 0.0, workers=16, reach_epochs=80.0, reach_seconds=60.0, budget_epochs=200.0)
    assert (a["cheapest_run_epochs"], a["quickest_run_seconds"], a["first_wave_share"]) == (10, 20.0, 0.8)
    assert a["max_speedup_epochs"] == pytest.approx(0.5) and a["max_speedup_seconds"] == pytest.approx(3.0)
    assert best_allowed(bed, -0.01, workers=4, reach_epochs=80.0, reach_seconds=60.0, budget_epochs=200.0) is None

"""Tables of every format, read by content: detection, the DeBERTa adapter, attribution, the two modes, the one-rung
top-k baseline and Holm's correction, on hand-made files and on slices of opda's tables (read from ../shared)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import optuna
import pytest

from benchmarks.curves import formats, modes, opda_steps, protocol, stats, testbed, topk_arm
from benchmarks.curves.__main__ import apply_holm
from benchmarks.curves.simulate import simulate
from benchmarks.curves.table import RECORD_COLUMNS, Curve

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEBERTA = SHARED / "opda-deberta" / "deberta-base_tuning.results.jsonl"
ALEXNET = SHARED / "opda-alexnet" / "alexnet_tuning.results.jsonl"
needs_deberta = pytest.mark.skipif(not DEBERTA.exists(), reason=f"opda's DeBERTa data is not at {DEBERTA}")


def _step_run(iteration: int, epochs: int, batch: int, acc: list[float], warmup: int = 100) -> dict:
    """One line of opda's DeBERTa format for a training set of 10,000 examples, evaluated every 100 steps and at the
    end of each epoch; ``acc`` is the matched accuracy at each evaluation but the epoch ends."""
    examples, interval = 10_000, 100
    steps = examples * epochs // batch
    epoch_steps = -(-examples // batch)
    at = sorted(set(range(interval, steps + 1, interval)) | {steps})
    points, i = [], 0
    for s in sorted(set(at) | {k * epoch_steps for k in range(1, epochs) if k * epoch_steps < steps}):
        if s in at:
            points.append([s, acc[i]])
            i += 1
        else:
            points.append([s, 0.5])  # an epoch's end: left out of the replay
    assert i == len(acc), f"{len(acc)} accuracies for {i} evaluations"
    return {"iteration": iteration, "num_train_epochs": epochs, "train_batch_size": batch, "total_model_steps": steps,
            "learning_rate": 1e-5 * iteration, "warmup_steps": warmup, "cls_drop_out": 0.1,
            "learning_curves": {"matched": points, "mismatched": points}}


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- the format of a file, from its content -----------------------------------------------------


def test_the_format_is_told_by_content_not_by_suffix(tmp_path):
    steps = _write(tmp_path / "steps.csv", [_step_run(1, 1, 40, [0.5, 0.6, 0.7])])
    epochs = _write(tmp_path / "epochs.txt", [{"iteration": 1, "nan_train_loss": False, "epochs": 1, "lr": 0.1,
                                               "learning_curve": [{"time": 1.0, "epoch": 0, "top_1": 0.3}]}])
    csv = tmp_path / "table.jsonl"
    csv.write_text("# made by hand\n" + ",".join(RECORD_COLUMNS) + "\n")
    bare = tmp_path / "bare"
    bare.write_text(",".join(RECORD_COLUMNS) + "\n")
    assert [formats.detect(p) for p in (steps, epochs, csv, bare)] == ["opda-steps", "opda-epochs", "csv", "csv"]
    other = _write(tmp_path / "other.jsonl", [{"iteration": 1, "curve": [0.1, 0.2]}])
    with pytest.raises(ValueError, match="not a table of a known format"):
        formats.detect(other)


# --- the DeBERTa adapter on a hand-made file ----------------------------------------------------


def test_the_step_adapter_replays_steps_plans_proposals_and_marks_collapsed_runs(tmp_path):
    path = _write(tmp_path / "t.jsonl", [
        _step_run(1, 1, 40, [0.6, 0.7, 0.8]),  # 250 steps: evaluated at 100, 200 and 250
        _step_run(2, 2, 30, [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9]),  # 666 steps; an epoch ends at 334
        _step_run(3, 1, 25, [0.7, 0.4, 0.36, 0.35], warmup=40),  # collapsed to one class: diverged
    ])
    curves, plan = opda_steps.read_curves(path)
    assert plan == opda_steps.StepPlan(10_000, 100)
    short, long, collapsed = curves
    assert short.resource == [1.0, 2.0, 2.5] and short.planned == 3 and not short.diverged
    # Time is the examples seen over the nominal throughput: 100 steps x 40 examples, then 50 x 40.
    assert short.seconds == pytest.approx([4000 / opda_steps.EXAMPLES_PER_SECOND] * 2 + [2000 / 250])
    assert long.val_acc == [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9] and long.resource[-1] == 6.66 and long.planned == 7
    assert (collapsed.diverged, collapsed.val_acc[-1], collapsed.planned) == (True, 0.35, 4)
    # warmup_steps / steps of an epoch: 40 of 400.
    assert collapsed.params == {"num_train_epochs": 1, "train_batch_size": 25, "learning_rate": pytest.approx(3e-5),
                                "cls_drop_out": 0.1, "warmup_proportion": 0.1}
    # A proposal's plan: 10,000 x 3 // 16 = 1,875 steps, 19 reports, the last a 0.75 interval of 16 x 75 examples.
    proposal = {"num_train_epochs": 3, "train_batch_size": 16}
    assert plan.steps(proposal) == 1875 and len(plan.points(proposal)) == 19
    assert plan.points(proposal)[-1] == 18.75 and plan.seconds(proposal)[-1] == pytest.approx(16 * 75 / 250)
    rec = formats.read(path)
    assert (rec.format, rec.max_t, rec.full, rec.unit) == ("opda-steps", 7, 6.66, "100 optimizer steps")
    assert rec.planned(proposal) == 7  # at most a full trial
    assert rec.distributions["warmup_proportion"] == opda_steps.DEBERTA_SPACE["warmup_proportion"]


def test_the_budget_counts_a_short_last_report_by_its_steps(tmp_path):
    curves = [Curve(0, {"x": 0.1}, [0.5, 0.6, 0.7], [1.0, 1.0, 0.5], resource=[1.0, 2.0, 2.5], planned=3)]

    class One:
        def __init__(self):
            self.asked = 0

        def suggest(self, trial_id):
            self.asked += 1
            return {"x": 0.1} if self.asked <= 2 else "FINISHED"

        def on_trial_result(self, trial_id, result):
            pass

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    lookup = modes.NearestAnswer(curves, {"x": optuna.distributions.FloatDistribution(0, 1)})
    result = simulate(One(), None, lookup, num_samples=2, max_t=3, workers=1)
    assert [e for e, _, _ in result.trace] == [1.0, 2.0, 2.5, 3.5, 4.5, 5.0]
    assert [t.stopped for t in result.trials] == ["complete", "complete"]
    cut = simulate(One(), None, lookup, num_samples=2, max_t=3, workers=1, budget_epochs=4.5)
    assert [t.stopped for t in cut.trials] == ["complete", "budget"] and cut.trace[-1][0] == 4.5


# --- attribution from the table's own LICENSE -----------------------------------------------------


def test_the_attribution_is_parsed_from_the_license_and_source_beside_the_table(tmp_path):
    table = _write(tmp_path / "runs.jsonl", [_step_run(1, 1, 40, [0.6, 0.7, 0.8])])
    assert formats.attribution(table, "unknown") == "unknown"
    (tmp_path / "LICENSE").write_text("Some Tuning Data © 2024 by A. Person is\nlicensed under CC BY 4.0. To view a "
                                      "copy of this license, visit http://creativecommons.org/licenses/by/4.0/")
    assert formats.attribution(table, "unknown") == "Some Tuning Data © 2024 by A. Person, CC BY 4.0"
    (tmp_path / "SOURCE.md").write_text("- The public repository `someone/tables`, folder `data/`.\n")
    assert formats.attribution(table, "unknown") == ("Some Tuning Data © 2024 by A. Person "
                                                     "(https://github.com/someone/tables), CC BY 4.0")
    assert formats.read(table).source == formats.attribution(table, "unknown")


@pytest.mark.skipif(not (DEBERTA.exists() and ALEXNET.exists()), reason="opda's data is not in ../shared")
def test_opdas_tables_are_attributed_from_their_own_licenses():
    assert formats.attribution(DEBERTA, "") == ("DeBERTa Hyperparameter Tuning Data © 2023 by Nicholas Lourie "
                                                "(https://github.com/nicholaslourie/opda), CC BY-SA 4.0")
    assert formats.attribution(ALEXNET, "") == ("AlexNet Hyperparameter Tuning Data © 2025 by Nicholas Lourie "
                                                "(https://github.com/nicholaslourie/opda), CC BY-SA 4.0")


# --- a slice of opda's DeBERTa table --------------------------------------------------------------


def _deberta_slice(tmp_path, runs: int = 48) -> str:
    """opda's first ``runs`` DeBERTa lines, in a temporary file (never in the repository)."""
    path = tmp_path / "deberta-slice.jsonl"
    path.write_text("\n".join(DEBERTA.read_text().splitlines()[:runs]) + "\n")
    return str(path)


@needs_deberta
def test_the_whole_deberta_table_reads_as_1024_runs_in_steps():
    # "DeBERTa Hyperparameter Tuning Data © 2023 by Nicholas Lourie", CC BY-SA 4.0, read in place.
    rec = formats.read(DEBERTA)
    assert len(rec.curves) == 1024 and sum(c.diverged for c in rec.curves) == 264
    assert (rec.max_t, rec.full) == (99, 98.175)  # 4 epochs at batch 16: 392,702 x 4 // 16 = 98,175 steps
    assert all(c.resource == rec.points(c.params) and len(c.val_acc) == c.planned for c in rec.curves)
    assert max(c.val_acc[-1] for c in rec.curves if c.diverged) < 0.37 < 0.43 < min(
        c.val_acc[-1] for c in rec.curves if not c.diverged)


@needs_deberta
def test_the_shipped_search_on_a_slice_of_the_deberta_table(tmp_path):
    bed = testbed.load(_deberta_slice(tmp_path))
    assert (len(bed.curves), sum(c.diverged for c in bed.curves), bed.max_t, bed.full) == (48, 17, 75, 74.8)
    assert (bed.check_suggestion, bed.epochs_param, bed.unit) == (False, None, "1,000 optimizer steps")
    assert bed.finals() == pytest.approx((0.890066, 0.821396), abs=1e-6)
    # A random trial's plan: 4 epochs x 49 batch sizes, 7 to 99 reports, at most 75 here.
    planned = bed.planned_choices()
    assert (len(planned), min(planned), max(planned)) == (196, 7, 75)
    run = protocol.run_one(protocol.ARMS[protocol.SHIPPED], bed, seed=0, budget=10, workers=4, keep_trials=True)
    assert run["num_samples"] == 39 and run["mode"] == "surrogate"
    assert Counter(run["stopped"]) == {"scheduler": 16, "complete": 7, "": 4, "diverged": 2, "budget": 1}
    assert run["epochs"][-1] == pytest.approx(748.397, abs=1e-6)  # the budget, 748, in steps / 1,000
    # ASHA's one rung is at half of a full trial (37 of 75 reports), met by each trial at the same fraction of its own
    # plan: report ceil(37 x planned / 75), e.g. the 4th of 7 (4,000 of 6,135 steps).
    stopped = [(t["epochs"], t["planned"]) for t in run["trials"] if t["stopped"] == "scheduler"]
    assert len(stopped) == 16 and (4, 7) in stopped
    assert all(e == math.ceil(37 * p / 75) for e, p in stopped)
    complete = [t for t in run["trials"] if t["stopped"] == "complete"]
    assert all(t["epochs"] == t["planned"] for t in complete)
    assert sorted(t["planned"] for t in complete) == [14, 23, 28, 37, 38, 54, 57]
    best = max(t["final"] for t in complete)
    assert best == pytest.approx(0.890064, abs=1e-6)
    assert run["regret"][-1] == pytest.approx(stats.normalised_regret(best, *bed.finals()), abs=1e-9)


# --- the nearest-recorded-run mode ----------------------------------------------------------------

DISTS = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
         "epochs": optuna.distributions.IntDistribution(1, 4)}


def test_the_nearest_mode_answers_a_recorded_run_whole_and_measures_regret_without_its_noise():
    recorded = [Curve(0, {"lr": 0.01, "epochs": 2}, [0.3, 0.5], [1.0, 1.0], planned=2),
                Curve(1, {"lr": 0.5, "epochs": 4}, [0.2, 0.4, 0.6, 0.7], [2.0] * 4, planned=4)]
    exact = modes.NearestAnswer(recorded, DISTS)
    curve, mismatch, _ = exact.lookup({"lr": 0.4, "epochs": 3})
    assert curve is recorded[1] and mismatch == 0
    noisy = modes.NearestAnswer(recorded, DISTS, noise=0.05, seed=3)
    first = noisy.lookup({"lr": 0.4, "epochs": 3})[0]
    offset = first.val_acc[0] - 0.2
    assert offset != 0 and first.val_acc == pytest.approx([a + offset for a in recorded[1].val_acc])
    assert first.truth == recorded[1].val_acc
    again = modes.NearestAnswer(recorded, DISTS, noise=0.05, seed=3).lookup({"lr": 0.4, "epochs": 3})[0]
    assert again.val_acc == first.val_acc  # one seed, one run

    class Fixed:
        def __init__(self):
            self.configs = [{"lr": 0.4, "epochs": 3}]

        def suggest(self, trial_id):
            return self.configs.pop(0) if self.configs else "FINISHED"

        def on_trial_result(self, trial_id, result):
            pass

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.result = result

    searcher = Fixed()
    result = simulate(searcher, None, modes.NearestAnswer(recorded, DISTS, noise=0.05, seed=3), num_samples=1,
                      max_t=4, workers=1, epochs_param="epochs")
    # The proposal planned 3 epochs; the recorded run it got planned 4, and the trial runs all 4, COMPLETE.
    assert [(t.planned, t.epochs, t.stopped) for t in result.trials] == [(4, 4, "complete")]
    assert searcher.result["val_acc"] == pytest.approx(0.7 + offset) and result.trace[-1][2] == 0.7


@needs_deberta
def test_the_protocol_runs_both_modes_on_a_table_and_records_the_mode(tmp_path):
    bed = testbed.load(_deberta_slice(tmp_path))
    runs = {m: protocol.run_one(protocol.ARMS["random_fifo"], bed, seed=1, budget=4, workers=2, mode=m,
                                keep_trials=True) for m in modes.MODES}
    assert [r["mode"] for r in runs.values()] == list(modes.MODES)
    recorded = {c.config_id: c for c in bed.curves}
    # The nearest mode replays recorded curves, exactly; the surrogate's curves are predictions.
    assert all(t["final"] == recorded[t["config_id"]].val_acc[-1] for t in runs["nearest"]["trials"])
    assert any(t["final"] != recorded[t["config_id"]].val_acc[-1] for t in runs["surrogate"]["trials"])
    with pytest.raises(ValueError, match="unknown mode"):
        modes.answer("tabular", bed)


# --- the one-rung top-k baseline ------------------------------------------------------------------


def test_one_rung_top_k_spends_half_the_budget_at_the_rung_and_half_finishing():
    # 12-epoch trials, budget 20: rung 1 (5% of 12, at least 1), 120 trials at it, 10 of them finished.
    assert topk_arm.plan(20, 12) == (1, 120, 10)
    # opda's AlexNet: rung 5 of 100 epochs; 1,000 trial-epochs at the rung; a trial plans 60 on average: 17 finished.
    assert topk_arm.plan(20, 100, list(range(20, 101))) == (5, 200, 17)
    assert protocol.num_trials(protocol.ARMS["one_rung_topk"], 20, 12) == 240


def test_one_rung_top_k_finishes_the_best_at_the_rung_in_their_order():
    # lr sets the rung value (report 1) and the final one in opposite orders for two configs, so the test can tell
    # which was chosen by what.
    lrs = [0.002, 0.01, 0.05, 0.2, 0.9]
    rung_value = {0.002: 0.1, 0.01: 0.5, 0.05: 0.4, 0.2: 0.3, 0.9: 0.2}
    curves = [Curve(i, {"lr": lr}, [rung_value[lr], rung_value[lr] + 0.1 * i, 0.9 - 0.1 * i], [1.0] * 3, planned=3)
              for i, lr in enumerate(lrs)]
    nearest = modes.NearestAnswer(curves, {"lr": DISTS["lr"]})

    def space(trial):
        trial.suggest_categorical("lr", lrs)

    searcher, scheduler = topk_arm.build(space, seed=0, rung=1, n=6, k=2)
    result = simulate(searcher, scheduler, nearest, num_samples=12, max_t=3, workers=2, budget_epochs=12)
    first, then = result.trials[:6], result.trials[6:]
    assert all((t.epochs, t.stopped) == (1, "scheduler") for t in first)
    values = [t.curve.val_acc[0] for t in first]
    ranked = sorted(range(6), key=lambda i: (-values[i], i))
    assert [values[i] for i in ranked] == [0.5, 0.4, 0.3, 0.3, 0.2, 0.1]
    # The finishing phase starts when the first has ended (two workers, 6 one-second rungs: at 3.0), goes down the
    # ranking, and the budget ends it: 6 trial-epochs at the rung and two finished, the third started, a fourth asked.
    assert [t.params for t in then] == [first[i].params for i in ranked[:4]]
    assert [(t.started, t.epochs, t.stopped) for t in then[:3]] == [(3.0, 3, "complete"), (3.0, 3, "complete"),
                                                                    (6.0, 0, "")]
    # The incumbent is the better finished run's final value, 0.8 (lr 0.01), though the other was second at the rung.
    assert result.trace[-1] == (12, 6.0, 0.8)


# --- Holm's correction over the goal's family -----------------------------------------------------


def test_holm_multiplies_the_ith_smallest_by_m_minus_i_and_keeps_the_order():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0] and stats.holm([]) == []
    assert stats.holm([0.02]) == [0.02]


def test_the_goal_is_met_only_where_every_holm_adjusted_test_and_both_speedups_pass():
    def setting(p: float, diff: float, speed: float) -> dict:
        tests = {b: {"p": p, "mean_diff": diff} for b in protocol.GOAL_BASELINES}
        return {"goal": {"speedup_epochs": speed, "speedup_seconds": speed, "baselines": tests}}

    results = {"tables": {"t": {"settings": {"a": setting(0.001, -0.1, 4.0), "b": setting(0.001, -0.1, 2.0),
                                             "c": setting(0.02, -0.1, 4.0)}}}}
    assert apply_holm(results) == 12 == results["holm_family"]
    goals = {k: sm["goal"] for k, sm in results["tables"]["t"]["settings"].items()}
    # The 8 smallest (0.001) are multiplied by 12 .. 5, and none may fall below the first, 0.012; the four 0.02 by
    # 4 .. 1, none below 0.08.
    assert [t["holm_p"] for t in goals["a"]["baselines"].values()] == pytest.approx([0.012] * 4)
    assert [t["holm_p"] for t in goals["b"]["baselines"].values()] == pytest.approx([0.012] * 4)
    assert [t["holm_p"] for t in goals["c"]["baselines"].values()] == pytest.approx([0.08] * 4)
    # b is not 3x faster; c's tests do not pass once corrected, though each raw p (0.02) is below 0.05.
    assert (goals["a"]["met"], goals["b"]["met"], goals["c"]["met"]) == (True, False, False)

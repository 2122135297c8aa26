"""The search-efficiency benchmark's arithmetic on hand-made epoch events: no Ray, no training.

Curves, the incumbent rule (only trials that ran every epoch), trial-epochs to reach the
baseline's best, mean ± sd over seeds, and the benchmark's reading of a fabricated OUT folder.
"""

import json
import math
import random
from pathlib import Path

import pytest

from benchmarks import search_efficiency as bench
from benchmarks.anytime import (EpochEvent, anytime_curve, band, event_times, final_best, first_reach, mean_sd,
                                read_events, step_value)
from benchmarks.anytime_plot import anytime_figure, write_figure
from search.plots import PLOTLY_JS

MAX = 3  # max_epochs of the hand-made searches


def events_of(trial, values, start, step=1.0, diverged_at=None):
    """One trial's epoch events: epoch k at ``start + k * step``."""
    return [EpochEvent(time=start + k * step, trial=trial, epoch=k, val_acc=v, diverged=k == diverged_at)
            for k, v in enumerate(values, start=1)]


def curve_of(points):
    """(epochs, best) pairs of a curve, for short asserts."""
    return [(p.epochs, p.best) for p in points]


# ---------------------------------------------------------------------------------------------
# The incumbent


def test_incumbent_steps_only_when_a_trial_runs_every_epoch():
    # a: complete (0.50 at its 3rd epoch); b: stopped at epoch 1 with 0.90; c: complete, 0.60.
    events = (events_of("a", [0.3, 0.4, 0.5], start=0)
              + events_of("b", [0.9], start=0.5)
              + events_of("c", [0.2, 0.35, 0.6], start=3.2))
    curve = anytime_curve(events, MAX, start=-10)
    # Time order: a1(1) b1(1.5) a2(2) a3(3) c1(4.2) c2(5.2) c3(6.2)
    assert curve_of(curve) == [(1, None), (2, None), (3, None), (4, 0.5), (5, 0.5), (6, 0.5), (7, 0.6)]
    assert [p.trial for p in curve] == ["a", "b", "a", "a", "c", "c", "c"]
    assert curve[0].seconds == pytest.approx(11.0)  # from start=-10
    assert final_best(curve) == 0.6


def test_pruned_trial_never_becomes_incumbent():
    # The pruned trial's 0.95 is the highest number anywhere, and never counts.
    events = events_of("pruned", [0.9, 0.95], start=0) + events_of("done", [0.1, 0.2, 0.3], start=0.1)
    curve = anytime_curve(events, MAX)
    assert all(p.best in (None, 0.3) for p in curve)
    assert final_best(curve) == 0.3
    assert first_reach(curve, 0.9) is None


def test_only_pruned_trials_no_incumbent():
    curve = anytime_curve(events_of("x", [0.5], start=0) + events_of("y", [0.6, 0.7], start=0), MAX)
    assert final_best(curve) is None and [p.epochs for p in curve] == [1, 2, 3]
    assert first_reach(curve, 0.0) is None


def test_diverged_or_nan_last_epoch_is_not_incumbent():
    events = (events_of("nan", [0.5, 0.6, math.nan], start=0)
              + events_of("div", [0.5, 0.6, 0.9], start=0.1, diverged_at=3)
              + events_of("ok", [0.1, 0.2, 0.4], start=0.2))
    assert final_best(anytime_curve(events, MAX)) == 0.4


def test_epoch_reported_twice_counts_once_at_its_first_report():
    # A crash after epoch 2's report; the trial re-runs epoch 2 from its epoch-1 checkpoint.
    events = events_of("a", [0.3, 0.4], start=0) + [
        EpochEvent(time=10, trial="a", epoch=2, val_acc=0.41),
        EpochEvent(time=11, trial="a", epoch=3, val_acc=0.5)]
    curve = anytime_curve(events, MAX)
    assert curve_of(curve) == [(1, None), (2, None), (3, 0.5)]
    assert curve[1].seconds == pytest.approx(1.0)


def test_curve_does_not_depend_on_event_order():
    events = (events_of("b", [0.3, 0.4, 0.5], start=0) + events_of("a", [0.1, 0.2, 0.7], start=0)
              + events_of("c", [0.6, 0.6, 0.6], start=0.5))
    expected = anytime_curve(events, MAX)
    shuffled = events[:]
    random.Random(0).shuffle(shuffled)
    assert anytime_curve(shuffled, MAX) == expected
    # Same time: trial id breaks the tie, so "a" spends epoch 1 before "b".
    assert [p.trial for p in expected[:2]] == ["a", "b"]


def test_ties_reach_the_target_and_do_not_change_the_incumbent():
    events = events_of("a", [0.1, 0.2, 0.5], start=0) + events_of("b", [0.1, 0.2, 0.5], start=10)
    curve = anytime_curve(events, MAX)
    assert curve_of(curve)[-1] == (6, 0.5)
    point = first_reach(curve, 0.5)  # equal counts as reached, at a's last epoch
    assert (point.epochs, point.trial) == (3, "a")
    assert first_reach(curve, 0.5000001) is None


def test_step_value_and_band_across_seeds():
    s0 = anytime_curve(events_of("a", [0.1, 0.2, 0.4], start=0) + events_of("b", [0.1, 0.2, 0.6], start=3), MAX)
    s1 = anytime_curve(events_of("a", [0.3, 0.3, 0.5], start=0), MAX)  # a short seed: ends after 3 epochs
    assert step_value(s0, 2) is None and step_value(s0, 3) == 0.4 and step_value(s0, 5.5) == 0.4
    assert step_value(s1, 100) == 0.5  # the incumbent stays after the last epoch
    b = band([s0, s1], "epochs")
    assert b["x"] == [1, 2, 3, 4, 5, 6]
    assert b["mean"][:2] == [None, None]  # no seed has an incumbent yet
    assert b["mean"][2] == pytest.approx(0.45) and b["lo"][2] == 0.4 and b["hi"][2] == 0.5
    assert b["sd"][2] == pytest.approx(math.sqrt(0.005))
    assert b["mean"][5] == pytest.approx(0.55) and b["lo"][5] == 0.5 and b["hi"][5] == 0.6
    # Until every seed has one, there is no mean: a seed with an incumbent alone would make it jump.
    late = anytime_curve(events_of("p", [0.1, 0.1], start=0) + events_of("z", [0.1, 0.1, 0.9], start=5), MAX)
    b = band([s0, late], "epochs")
    assert b["mean"][:4] == [None] * 4 and b["mean"][4] == pytest.approx(0.65)


def test_mean_sd_skips_missing_values():
    assert mean_sd([0.5, None, 0.7]) == {"mean": pytest.approx(0.6), "sd": pytest.approx(math.sqrt(0.02)), "n": 2,
                                         "of": 3, "values": [0.5, None, 0.7]}
    assert mean_sd([None])["mean"] is None and mean_sd([1.0])["sd"] is None


# ---------------------------------------------------------------------------------------------
# Epochs to reach the baseline, over seeds


def fake_runs(curves):
    """``load_run``-like records for hand-made curves: {arm: {seed: run}}."""
    return {arm: {seed: {"arm": arm, "seed": seed, "final_best": final_best(c), "trial_epochs": c[-1].epochs,
                         "complete": 0, "total_wall_seconds": c[-1].seconds, "search_wall_seconds": None}
                  for seed, c in by_seed.items()}
            for arm, by_seed in curves.items()}


def test_epochs_to_reach_baseline_same_seed_and_mean():
    # Baseline (fifo): two complete trials per seed, 6 trial-epochs; seed 0 ends at 0.5, seed 1 at 0.7.
    base = {0: anytime_curve(events_of("a", [.1, .2, .3], 0) + events_of("b", [.1, .2, .5], 3), MAX),
            1: anytime_curve(events_of("a", [.1, .2, .7], 0) + events_of("b", [.1, .2, .4], 3), MAX)}
    # The other arm: seed 0 reaches 0.5 after 4 trial-epochs; seed 1 tops out at 0.65: never 0.7.
    other = {0: anytime_curve(events_of("p", [.3], 0) + events_of("c", [.2, .3, .55], 1), MAX),
             1: anytime_curve(events_of("c", [.2, .3, .65], 0) + events_of("p", [.3], 3.5), MAX)}
    curves = {"random_fifo": base, "tpe_asha": other}
    runs = fake_runs(curves)
    summary = bench.summarize(runs, curves)

    assert summary["baseline_final_best"]["mean"] == pytest.approx(0.6)
    # The baseline reaches its own final best when it is set: 6 of 6 epochs (seed 0), 3 of 6 (seed 1).
    assert [runs["random_fifo"][s]["reach_same_seed"]["epoch_ratio"] for s in (0, 1)] == [1.0, 0.5]
    r0, r1 = runs["tpe_asha"][0]["reach_same_seed"], runs["tpe_asha"][1]["reach_same_seed"]
    assert (r0["target"], r0["reached"], r0["epochs"], r0["epoch_ratio"]) == (0.5, True, 4, pytest.approx(4 / 6))
    assert (r1["target"], r1["reached"], r1["epochs"], r1["epoch_ratio"]) == (0.7, False, None, None)
    # Against the mean best 0.6: the seed-1 curve's 0.65 (3 epochs) counts, seed 0's 0.55 does not.
    m0, m1 = runs["tpe_asha"][0]["reach_mean"], runs["tpe_asha"][1]["reach_mean"]
    assert m0["reached"] is False and m1["epochs"] == 3 and m1["epoch_ratio"] == pytest.approx(3 / 6)

    arm = summary["arms"]["tpe_asha"]
    assert arm["never_reached_same_seed"] == [1] and arm["never_reached_vs_mean"] == [0]
    assert arm["epoch_ratio_same_seed"]["mean"] == pytest.approx(4 / 6) and arm["epoch_ratio_same_seed"]["n"] == 1
    assert arm["final_best"]["mean"] == pytest.approx(0.6) and arm["trial_epochs"]["mean"] == 4
    table = bench.markdown_table(summary)
    assert "never in 1 of 2 seeds: 1" in table and "0.6000 ± 0.0707" in table


def test_never_reached_in_every_seed_and_no_baseline():
    low = {0: anytime_curve(events_of("a", [.1, .1, .1], 0), MAX)}
    high = {0: anytime_curve(events_of("a", [.1, .1, .9], 0), MAX)}
    curves = {"random_fifo": high, "tpe_asha": low}
    summary = bench.summarize(fake_runs(curves), curves)
    assert "never (1 seed)" in bench.markdown_table(summary)
    # Without a baseline run there is no target: neither reached nor "never".
    alone = {"tpe_asha": low}
    runs = fake_runs(alone)
    summary = bench.summarize(runs, alone)
    assert runs["tpe_asha"][0]["reach_same_seed"]["reached"] is None
    assert summary["arms"]["tpe_asha"]["never_reached_same_seed"] == []


# ---------------------------------------------------------------------------------------------
# Tune's result.json


def test_event_times_refine_whole_second_timestamps():
    # A trial started at 100.6 s; epochs end at 101.9, 103.1 and 104.3 (time_total_s 1.3, 2.5, 3.7).
    true = [101.9, 103.1, 104.3]
    rows = [{"timestamp": int(t), "time_total_s": t - 100.6, "iterations_since_restore": k}
            for k, t in enumerate(true, start=1)]
    times = event_times(rows)
    for t, ts, refined in zip(true, (r["timestamp"] for r in rows), times):
        assert ts <= refined <= t + 1e-9 and t - refined < 1
    assert times == sorted(times)
    # A restore starts a new run of the trial with its own start (time_total_s comes from the checkpoint).
    rows.append({"timestamp": 200, "time_total_s": 3.0, "iterations_since_restore": 1})
    assert event_times(rows)[-1] == 200
    # Precise timestamps reported by the trial are kept as they are.
    assert event_times([{"timestamp": 5.25, "time_total_s": 1.0}]) == [5.25]


def write_trial(folder, trial_id, values, start, step=2.0, cut=False):
    folder.mkdir(parents=True)
    lines = []
    for k, v in enumerate(values, start=1):
        t = start + k * step
        lines.append(json.dumps({"val_acc": v, "diverged": False, "timestamp": int(t), "training_iteration": k,
                                 "trial_id": trial_id, "time_total_s": t - start, "iterations_since_restore": k,
                                 "done": k == len(values)}))
    text = "\n".join(lines) + "\n"
    (folder / "result.json").write_text(text + ('{"val_acc": 0.9, "timest' if cut else ""))


def test_read_events_from_result_json(tmp_path):
    write_trial(tmp_path / "train_trial_a_1", "a", [0.2, 0.3, 0.4], start=1000.0)
    write_trial(tmp_path / "train_trial_b_2", "b", [0.5], start=1000.5, cut=True)  # interrupted mid-line
    events = read_events(tmp_path)
    assert sorted((e.trial, e.epoch, e.val_acc) for e in events) == [
        ("a", 1, 0.2), ("a", 2, 0.3), ("a", 3, 0.4), ("b", 1, 0.5)]
    assert [p.trial for p in anytime_curve(events, MAX)] == ["a", "b", "a", "a"]


# ---------------------------------------------------------------------------------------------
# The benchmark: planning runs, reading an OUT folder, the figure


def args_for(tmp_path, *argv):
    return bench.resolve_args(bench.get_args_parser().parse_args(
        ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *argv]))


def test_arm_flags_come_last_and_arms_can_be_defined(tmp_path):
    args = args_for(tmp_path, "--seeds", "3", "--define-arm", "tpe_fifo_small=--sampler tpe --scheduler fifo "
                                                               "--max-epochs 4")
    assert args.arms == [*bench.DEFAULT_ARMS, "tpe_fifo_small"]
    argv = bench.search_argv("tpe_fifo_small", 3, args)
    assert argv[-6:] == ["--sampler", "tpe", "--scheduler", "fifo", "--max-epochs", "4"]
    assert argv[argv.index("--seed") + 1] == "3" and argv[argv.index("--split-seed") + 1] == "0"
    assert argv[argv.index("--choices") + 1] == "arch=resnet20"
    parsed = bench.search_cli.get_args_parser().parse_args(argv)
    assert (parsed.max_epochs, parsed.sampler, parsed.seed, parsed.cpus_per_trial) == (4, "tpe", 3, 1)
    assert bench.search_cli.get_args_parser().parse_args(bench.search_argv("random_fifo", 3, args)).scheduler == "fifo"


def test_bad_arms_fail_before_anything_runs(tmp_path):
    with pytest.raises(bench.BenchmarkError, match="unknown nope"):
        args_for(tmp_path, "--arms", "tpe_asha,nope")
    args = args_for(tmp_path, "--define-arm", "odd=--no-such-flag")
    with pytest.raises(bench.BenchmarkError, match="arm odd: search.run refuses"):
        bench.plan_runs(args)


def fake_finished_run(args, arm, seed, trials, start=1000.0):
    """What a finished run leaves in OUT/ARM/seedS, for a hand-made list of (trial id, val_accs)."""
    out = bench.run_dir(Path(args.out), arm, seed)
    for i, (trial_id, values) in enumerate(trials):
        write_trial(out / "tune" / f"train_trial_{trial_id}", trial_id, values, start=start + 0.5 * i)
    complete = [v[-1] for _, v in trials if len(v) == args.max_epochs]
    (out / "search.json").write_text(json.dumps({
        "finished": "2026-01-01T00:00:00+00:00", "wall_seconds": 40.0,
        "trial_epochs": sum(len(v) for _, v in trials), "best_val_acc": max(complete) if complete else None}))
    (out / bench.RUN_INFO).write_text(json.dumps({
        "arm": arm, "seed": seed, "argv": bench.search_argv(arm, seed, args), "started_unix": start,
        "wall_seconds": 50.0}))
    return out


def test_finished_runs_are_reused_and_summarized(tmp_path):
    args = args_for(tmp_path, "--seeds", "0,1", "--arms", "random_fifo,tpe_asha", "--max-epochs", "3")
    for seed in (0, 1):
        fake_finished_run(args, "random_fifo", seed, [("a", [.1, .2, .3]), ("b", [.2, .3, .5 + seed / 10])])
        fake_finished_run(args, "tpe_asha", seed, [("c", [.3, .4, .55]), ("d", [.1])])
    plan = bench.plan_runs(args)
    assert [(arm, seed, reuse) for arm, seed, _, reuse in plan] == [
        ("random_fifo", 0, True), ("tpe_asha", 0, True), ("random_fifo", 1, True), ("tpe_asha", 1, True)]
    args.force = True
    assert not any(reuse for *_, reuse in bench.plan_runs(args))

    args.force, args.screenshot = False, None
    results = bench.collect(args, Path(args.out))
    tpe = results["summary"]["arms"]["tpe_asha"]
    assert tpe["trial_epochs"]["values"] == [4, 4] and tpe["final_best"]["mean"] == pytest.approx(0.55)
    # Seed 0: c's 0.55 >= 0.5 at the 4th event (c1 d1 c2 c3) of the baseline's 6; seed 1: 0.55 < 0.6, never.
    assert tpe["epoch_ratio_same_seed"]["values"] == [pytest.approx(4 / 6), None]
    assert tpe["never_reached_same_seed"] == [1]
    assert all(r["consistent_with_study"] for by_seed in results["runs"].values() for r in by_seed.values())
    assert results["data_label"] == args.data
    assert bench.data_label("../shared/data/cifar10-jpeg.tar.gz") == "CIFAR-10 (JPEG-75 copy)"
    out = Path(args.out)
    assert json.loads((out / "results.json").read_text())["summary"]["baseline"] == "random_fifo"
    assert (out / "anytime.html").is_file() and (out / PLOTLY_JS).is_file()


def test_a_finished_run_with_other_settings_is_refused(tmp_path):
    args = args_for(tmp_path, "--seeds", "0", "--arms", "tpe_asha", "--max-epochs", "3")
    fake_finished_run(args, "tpe_asha", 0, [("c", [.3, .4, .55])])
    args.num_samples = 48
    with pytest.raises(bench.BenchmarkError, match="other settings"):
        bench.plan_runs(args)
    args.force = True
    assert bench.plan_runs(args)[0][3] is False
    # --out and --verbose do not change a result.
    assert bench.comparable(["--seed", "0", "--out", "x", "--verbose", "2"]) == ["--seed", "0"]


def test_unfinished_run_is_not_reused(tmp_path):
    args = args_for(tmp_path, "--seeds", "0", "--arms", "tpe_asha", "--max-epochs", "3")
    out = fake_finished_run(args, "tpe_asha", 0, [("c", [.3, .4, .55])])
    (out / "search.json").write_text(json.dumps({"finished": None}))
    assert bench.finished_info(out) is None and bench.plan_runs(args)[0][3] is False


def test_figure_has_a_mean_line_and_band_per_arm_and_opens_offline(tmp_path):
    curves = {arm: {s: anytime_curve(events_of("a", [.1, .2, .3 + s / 10 + i / 10], 0), MAX) for s in (0, 1)}
              for i, arm in enumerate(("random_fifo", "tpe_asha"))}
    fig = anytime_figure(curves, title="t", target=0.35, target_label="baseline")
    means = [t for t in fig.data if t.showlegend is not False and t.name]
    assert [t.name.split(" ")[0] for t in means] == ["random_fifo", "tpe_asha"]
    assert sum(t.fill == "tonexty" for t in fig.data) == 4  # one band per arm and panel
    path = write_figure(fig, tmp_path / "fig" / "anytime.html")
    html = path.read_text()
    assert f'src="{PLOTLY_JS}"' in html and "cdn.plot.ly" not in html
    assert (path.parent / PLOTLY_JS).stat().st_size > 1_000_000


def test_time_left_is_each_arms_mean_so_far():
    walls = {}
    left = [("tpe_asha", 0, []), ("random_fifo", 1, [])]
    assert bench.remaining(walls, "random_fifo", 600.0, left) == "; about 20 min left for 2 run(s)"
    assert bench.remaining(walls, "tpe_asha", 300.0, left[1:]) == "; about 10 min left for 1 run(s)"
    assert bench.remaining(walls, "random_fifo", 0.0, []) == ""

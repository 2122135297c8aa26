"""The search's progress display, driven with hand-made trials and results and a fake clock."""

import io
import pickle
import sys
from types import SimpleNamespace

import pytest

from search.progress import SearchProgress, expected_epochs_left, format_duration, progress_callbacks
from search.study import COMPLETE, PRUNED
from search.tune.scheduler import asha_rungs


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def trial(tid, status="RUNNING", **last_result):
    return SimpleNamespace(trial_id=tid, status=status, last_result=last_result)


def result(epoch, acc, seconds=10.0, **extra):
    return {"epoch": epoch, "val_acc": acc, "time_this_iter_s": seconds, **extra}


def make(stream=None, clock=None, **kwargs):
    kwargs = {"grace_period": 2, "reduction_factor": 3, **kwargs}
    return SearchProgress(4, 4, stream=stream if stream is not None else io.StringIO(), clock=clock or Clock(), **kwargs)


def run_epochs(progress, t, accs, seconds=10.0):
    for epoch, acc in enumerate(accs, 1):
        progress.on_trial_result(0, [], t, result(epoch, acc, seconds))
    t.last_result = result(len(accs), accs[-1], seconds)


# ---------------------------------------------------------------------------------------
# The estimate


def test_asha_rungs_match_rays_milestones():
    assert asha_rungs(30, 1, 3) == [1, 3, 9, 27]
    assert asha_rungs(4, 2, 3) == [2]
    assert asha_rungs(9, 1, 3) == [1, 3]  # the rung at max_t itself decides nothing
    assert asha_rungs(4, 4, 3) == [] and asha_rungs(4, None, None) == []


def test_expected_epochs_left_weights_each_segment_by_the_survivors():
    assert expected_epochs_left(0, 4, [2], 3) == pytest.approx(2 + 2 / 3)
    assert expected_epochs_left(1, 4, [2], 3) == pytest.approx(1 + 2 / 3)
    assert expected_epochs_left(2, 4, [2], 3) == pytest.approx(2)  # past its rung: it runs to the end
    assert expected_epochs_left(0, 30, [1, 3, 9, 27], 3) == pytest.approx(1 + 2 / 3 + 6 / 9 + 18 / 27 + 3 / 81)
    assert expected_epochs_left(1, 4, [], None) == 3  # FIFO: every trial runs max_epochs


def test_eta_from_mean_epoch_time_remaining_work_and_parallel_trials():
    p = make()
    assert p.eta_seconds() is None and "0s elapsed, ETA after the first epoch |" in p.status_text()
    a, b = trial("a"), trial("b")
    p.on_trial_start(0, [], a)
    p.on_trial_start(0, [], b)
    p.on_trial_result(0, [], a, result(1, 0.30, seconds=10.0))
    p.on_trial_result(0, [], b, result(1, 0.40, seconds=20.0))
    # 2 running at epoch 1 (1 + 2/3 epochs each to go), 2 not started (2 + 2/3 each),
    # 15 s per trial-epoch on average, 2 trials at once.
    work = 2 * (1 + 2 / 3) + 2 * (2 + 2 / 3)
    assert p.eta_seconds() == pytest.approx(work * 15 / 2)  # 65 s
    assert "ETA ~1m05s (est.)" in p.status_text()


def test_eta_uses_no_more_slots_than_trials_left():
    clock = Clock()
    p = make(clock=clock)
    ts = [trial(t) for t in "abcd"]
    for t in ts:
        p.on_trial_start(0, [], t)
    for t in ts[:3]:
        run_epochs(p, t, [0.1, 0.2])
        p.on_trial_complete(0, [], t)
    # One trial left at epoch 0 (it never reported): 2 + 2/3 epochs at 10 s, alone.
    assert p.peak_running == 4 and p.eta_seconds() == pytest.approx((2 + 2 / 3) * 10)


def test_eta_is_capped_by_the_time_budget():
    clock = Clock()
    p = make(clock=clock, deadline_s=30)
    a = trial("a")
    p.on_trial_result(0, [], a, result(1, 0.3, seconds=100.0))
    clock.now += 10
    assert p.eta_seconds() == pytest.approx(20)
    assert "ETA ~20s (est., time budget)" in p.status_text()


def test_eta_ends_where_the_retrain_deadline_stops_the_search():
    from search.deadline import REPORT_MARGIN_S, RetrainDeadline

    clock = Clock()
    # A 10-minute budget, of which the retrain of 6,000 images at 100 images/s (60 s + margin) is kept back.
    retrain = RetrainDeadline(clock.now + 600, retrain_images=6000, max_t=4, clock=clock)
    p = make(clock=clock, deadline_s=600, retrain=retrain)
    a = trial("a")
    retrain("a", {"images_per_second": 100.0})
    p.on_trial_result(0, [], a, result(1, 0.3, seconds=1000.0))
    assert p.eta_seconds() == pytest.approx(600)  # no trial ran every epoch yet: the retrain deadline waits
    retrain._completed = True  # as when the study holds a COMPLETE trial
    assert p.eta_seconds() == pytest.approx(600 - 60 - REPORT_MARGIN_S)
    assert f"ETA ~{format_duration(600 - 60 - REPORT_MARGIN_S)} (est., time budget)" in p.status_text()


def test_format_duration():
    assert [format_duration(s) for s in (0, 45.4, 65, 3599, 3720)] == ["0s", "45s", "1m05s", "59m59s", "1h02m"]


# ---------------------------------------------------------------------------------------
# Plain lines when the output is not a terminal


def test_one_plain_line_per_finished_trial_and_a_summary():
    clock, out = Clock(), io.StringIO()
    p = make(stream=out, clock=clock)
    a, b, c = trial("a_00000"), trial("a_00001"), trial("a_00002")
    for t in (a, b, c):
        p.on_trial_start(0, [], t)
    run_epochs(p, b, [0.20, 0.25])
    clock.now += 25
    p.on_trial_complete(0, [], b)  # ASHA stopped it at its rung
    run_epochs(p, a, [0.3, 0.5, 0.6, 0.7])
    clock.now += 40
    p.on_step_end(0, [])  # no redraw and no line off a terminal
    p.on_trial_complete(0, [], a)
    p.on_trial_result(0, [], c, result(1, 0.1))
    c.status = "ERROR"
    clock.now += 5
    p.on_trial_error(0, [], c)
    p.on_experiment_end([a, b, c])

    lines = out.getvalue().splitlines()
    # No best before a trial ran every epoch: a pruned trial's accuracy is no result of its config.
    # Each line ends with where the running trials are inside their epochs (10 s each, estimated).
    assert lines == [
        "[   25s] trial a_00001 pruned by ASHA at epoch 2/4 | 1/4 trials done, 2 running | 25s elapsed, "
        "ETA ~27s (est.) | 0 complete, 1 pruned, 0 failed | 2 trial-epochs | trial a_00000 epoch 1/4 ~99%, "
        "trial a_00002 epoch 1/4 ~99%",
        "[ 1m05s] trial a_00000 complete at epoch 4/4 | 2/4 trials done, 1 running | 1m05s elapsed, "
        "ETA ~27s (est.) | best val_acc 0.7000 (trial a_00000) | 1 complete, 1 pruned, 0 failed | 6 trial-epochs "
        "| trial a_00002 epoch 1/4 ~99%",
        "[ 1m10s] trial a_00002 failed at epoch 1/4 | 3/4 trials done, 0 running | 1m10s elapsed, "
        "ETA ~27s (est.) | best val_acc 0.7000 (trial a_00000) | 1 complete, 1 pruned, 1 failed | 7 trial-epochs",
        "search ended after 1m10s: 3/4 trials (1 complete, 1 pruned by ASHA, 1 failed), 7 trial-epochs; "
        "best val_acc 0.7000 (trial a_00000)",
    ]
    # Each ETA is 8/3 epochs of work per slot at 10 s an epoch: (2 running + 1 not started) at
    # epoch 0 on 3 slots, then 2 trials on 2 slots, then the last one alone.
    assert p.epochs == {"a_00001": 2, "a_00000": 4, "a_00002": 1}


def test_first_eta_in_the_lines_is_the_documented_arithmetic():
    clock = Clock()
    p = make(clock=clock)
    a, b, c = trial("a"), trial("b"), trial("c")
    for t in (a, b, c):
        p.on_trial_start(0, [], t)
    run_epochs(p, b, [0.20, 0.25])
    p.on_trial_complete(0, [], b)
    # a and c still at epoch 0, one trial not started: 3 * (2 + 2/3) epochs, 10 s each, 3 at once.
    assert p.eta_seconds() == pytest.approx(3 * (2 + 2 / 3) * 10 / 3)  # 26.7 s
    assert "ETA ~27s (est.)" in p.status_text()


def test_diverged_is_failed_and_the_budget_cut_is_named():
    clock, out = Clock(), io.StringIO()
    p = make(stream=out, clock=clock, deadline_s=60)
    d, e = trial("d"), trial("e")
    run_epochs(p, d, [float("nan")])
    d.last_result["diverged"] = True
    p.on_trial_complete(0, [], d)
    run_epochs(p, e, [0.4])
    clock.now += 60
    p.on_experiment_end([d, e])  # Tune ended e at the budget without a completion hook
    lines = out.getvalue().splitlines()
    assert "trial d failed at epoch 1/4" in lines[0] and "best val_acc" not in lines[0]
    assert "trial e cut by the time budget at epoch 1/4" in lines[1]
    assert "0 complete, 0 pruned, 1 failed, 1 cut by budget" in lines[1]
    assert lines[2] == ("search ended after 1m00s: 2/4 trials (0 complete, 0 pruned by ASHA, "
                        "1 cut by the time budget, 1 failed), 2 trial-epochs")  # a cut trial is no best


# ---------------------------------------------------------------------------------------
# A redrawn bar on a terminal


def test_terminal_gets_one_redrawn_bar_not_lines(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    clock, out = Clock(), Terminal()
    p = make(stream=out, clock=clock)
    a, b = trial("a"), trial("b")
    p.on_trial_start(0, [], a)
    p.on_trial_start(0, [], b)
    redraws = out.getvalue().count("\r")
    p.on_trial_result(0, [], a, result(1, 0.3))
    p.on_step_end(0, [])
    assert out.getvalue().count("\r") == redraws  # within REDRAW_S of the last draw: nothing new
    clock.now += 2
    p.on_step_end(0, [])
    assert out.getvalue().count("\r") > redraws
    run_epochs(p, a, [0.3, 0.6, 0.65, 0.66])
    p.on_trial_complete(0, [], a)
    p.on_experiment_end([a, b])
    text = out.getvalue()
    last_bar, summary = text.rsplit("\r", 1)[1].splitlines()
    assert last_bar.endswith("| 1/4 trials done, 1 running | 2s elapsed, ETA ~40s (est.) | best val_acc 0.6600 "
                             "(trial a) | 1 complete, 0 pruned, 0 failed | 4 trial-epochs | trial b epoch 1/4 ~20%")
    assert last_bar.startswith("##") and summary == ("search ended after 2s: 1/4 trials (1 complete, "
                                                     "0 pruned by ASHA, 0 failed, 1 unfinished), 4 trial-epochs; "
                                                     "best val_acc 0.6600 (trial a)")
    assert "trial a complete" not in text  # no per-trial line on a terminal
    assert text.count("\n") == 2  # the bar's last state, then the summary


# ---------------------------------------------------------------------------------------
# The entry point


def test_progress_callbacks_entry_point():
    assert progress_callbacks(None, 8, 4, verbose=True) == []
    (p,) = progress_callbacks(None, 8, 30, verbose=False, stream=sys.stdout, grace_period=1, reduction_factor=3)
    assert isinstance(p, SearchProgress) and p.num_samples == 8 and p.rungs == [1, 3, 9, 27]
    # Tune pickles callbacks with the experiment; the stream comes back as stdout.
    restored = pickle.loads(pickle.dumps(p))
    assert restored.stream is sys.stdout and restored.rungs == [1, 3, 9, 27]


@pytest.mark.slow
def test_a_real_tune_run_drives_it(tmp_path):
    """The hooks and result keys this module reads are the ones Tune calls and sends."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    def trainable(config):
        for epoch in range(1, 5):
            tune.report({"epoch": epoch, "val_acc": config["q"] * epoch / 4})

    out = io.StringIO()
    progress = SearchProgress(4, 4, stream=out, grace_period=1, reduction_factor=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"q": tune.grid_search([0.9, 0.1, 0.8, 0.05])},
            tune_config=tune.TuneConfig(scheduler=ASHAScheduler(metric="val_acc", mode="max", max_t=4,
                                                                grace_period=1, reduction_factor=2)),
            run_config=tune.RunConfig(storage_path=str(tmp_path), callbacks=[progress], verbose=0))
        grid = tuner.fit()
    finally:
        ray.shutdown()
    epochs = {r.metrics["trial_id"]: r.metrics["training_iteration"] for r in grid}
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("search ended after")
    assert progress.epochs == epochs and f"{sum(epochs.values())} trial-epochs" in lines[-1]
    counts = progress.counts()
    assert counts[COMPLETE] == sum(e == 4 for e in epochs.values()) >= 1
    assert counts[PRUNED] == sum(e < 4 for e in epochs.values())
    best = next(r.metrics["trial_id"] for r in grid if r.config["q"] == 0.9)
    assert progress.best == (pytest.approx(0.9), best)


def test_a_narrow_terminal_keeps_the_counts_and_the_eta(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = Terminal()
    p = make(stream=out)
    a = trial("a_00000")
    p.on_trial_start(0, [], a)
    p.on_trial_result(0, [], a, result(1, 0.3))
    p._draw(force=True)
    bar = out.getvalue().rsplit("\r", 1)[1]
    assert len(bar) == 80 and "0/4 trials done, 1 running | 0s elapsed, ETA ~" in bar


def test_inside_the_first_epoch_the_plans_speed_moves_the_estimate_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    clock, out = Clock(), Terminal()
    # The plan measured its speed: an epoch should take 40 s, before any epoch was timed.
    p = make(stream=out, clock=clock, planned_epoch_s=40.0)
    p.on_trial_start(0, [], trial("a"))
    seen = []
    for _ in range(3):  # the first epoch has not ended: only the plan's speed says where it is
        clock.now += 10
        p.on_step_end(0, [])
        seen.append(out.getvalue().rsplit("\r", 1)[1].split("| ")[-1].strip())
    assert seen == ["trial a epoch 1/4 ~25%", "trial a epoch 1/4 ~50%", "trial a epoch 1/4 ~75%"]


def test_a_log_gets_a_status_line_when_nothing_was_said_for_a_minute():
    clock, out = Clock(), io.StringIO()
    p = make(stream=out, clock=clock)
    p.on_trial_start(0, [], trial("a"))
    clock.now += 59
    p.on_step_end(0, [])
    assert out.getvalue() == ""
    clock.now += 1
    p.on_step_end(0, [])
    p.on_step_end(0, [])
    (line,) = out.getvalue().splitlines()
    assert line.startswith("[ 1m00s] 0/4 trials done, 1 running | 1m00s elapsed, ETA after the first epoch")
    clock.now += 60
    p.on_step_end(0, [])
    assert len(out.getvalue().splitlines()) == 2


def test_a_resumed_search_counts_what_its_study_finished(tmp_path):
    from search.study import create_study, open_storage
    from search.tune.searcher import StudySearcher

    storage = open_storage(tmp_path)
    study = create_study(storage, "smoke")
    searcher = StudySearcher(study, storage, lambda t: t.suggest_float("lr", 0.01, 0.1), num_samples=4, max_t=4)
    for tid, (epochs, acc) in zip("abc", [(4, 0.6), (2, 0.3), (1, 0.2)]):
        searcher.suggest(tid)
        for epoch in range(1, epochs + 1):
            searcher.on_trial_result(tid, result(epoch, acc))
        if tid != "c":
            searcher.on_trial_complete(tid, result(epochs, acc))
    out = io.StringIO()
    p = SearchProgress(4, 4, study=study, stream=out, clock=Clock(), grace_period=2, reduction_factor=3)
    assert p.counts() == {COMPLETE: 1, PRUNED: 1, "cut by the time budget": 0, "failed": 0}
    assert p.best == (0.6, 0) and p.epochs == {0: 4, 1: 2}
    assert "2/4 trials done" in p.status_text() and "best val_acc 0.6000 (trial 0)" in p.status_text()


def test_trials_the_retrain_deadline_stopped_are_cut_by_the_budget():
    # The search stopped early to keep time for the retrain: the trials still running are cut by the budget
    # in the summary line, as the study then records them (search.study.prune_cut_by_budget), not "unfinished".
    clock, out = Clock(), io.StringIO()
    deadline = SimpleNamespace(fired=False, completed=False)
    p = make(stream=out, clock=clock, deadline_s=600, retrain=deadline)
    a = trial("a")
    p.on_trial_start(0, [], a)
    p.on_trial_result(0, [], a, result(1, 0.3))
    deadline.fired = True
    p.on_experiment_end([a])
    assert out.getvalue().splitlines()[-1].startswith(
        "search ended after 0s: 1/4 trials (0 complete, 0 pruned by ASHA, 1 cut by the time budget, 0 failed)")


def test_a_trial_asked_but_not_started_when_the_budget_ends_is_cut_by_it(tmp_path):
    from search.study import create_study, open_storage
    from search.tune.searcher import StudySearcher

    storage = open_storage(tmp_path)
    study = create_study(storage, "smoke")
    searcher = StudySearcher(study, storage, lambda t: t.suggest_float("lr", 0.01, 0.1), num_samples=4, max_t=4)
    running = trial(0)
    running.config = searcher.suggest("a")
    searcher.suggest("b")  # Tune's next trial, asked ahead of a free worker: it never starts
    clock, out = Clock(), io.StringIO()
    p = SearchProgress(4, 4, study=study, stream=out, clock=clock, deadline_s=60, grace_period=2, reduction_factor=3)
    p.on_trial_start(0, [], running)
    p.on_trial_result(0, [], running, result(1, 0.3))
    clock.now += 60
    p.on_experiment_end([running])
    assert "2/4 trials (0 complete, 0 pruned by ASHA, 2 cut by the time budget, 0 failed)" in out.getvalue()

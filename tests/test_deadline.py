"""--time-budget bounds the whole command: the search stops while the retrain still fits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.deadline import REPORT_MARGIN_S, RetrainDeadline, retrain_share
from search.study import DIVERGED_RUN, FAIL_REASON, ORIGIN, WARM_START
from tests._searches import ROOT, SEARCH, load_study, signal_at


def finish(study, state=TrialState.COMPLETE, **attrs):
    """A trial of ``study`` ended as the searcher tells it: COMPLETE with a value, or PRUNED / FAIL."""
    study.add_trial(create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                 intermediate_values={1: 0.5}, user_attrs=attrs))


def test_the_deadline_fires_when_only_the_retrain_fits():
    now = [0.0]
    study = optuna.create_study(direction="maximize")
    stop = RetrainDeadline(deadline=100.0, retrain_images=6000, max_t=2, clock=lambda: now[0], study=study)
    assert not stop.stop_all()  # nothing measured yet: Tune's own time budget decides
    stop("t1", {"images_per_second": 100.0, "epoch": 1})
    stop("t1", {"images_per_second": 300.0, "epoch": 2})
    stop("t2", {"images_per_second": 200.0, "epoch": 1})
    finish(study)
    assert stop.retrain_seconds() == 6000 / 200.0 + REPORT_MARGIN_S  # the median speed
    now[0] = 49.0
    assert not stop.stop_all()  # 49 + 50 < 100
    now[0] = 50.0
    assert stop.stop_all() and stop.fired
    assert stop("t3", {"images_per_second": 1e9}) is False  # it never stops one trial alone


def test_the_retrain_share_is_kept_and_filled_with_epochs():
    # 12-epoch trials on 2,000 + 1,000 images at 300 images/s: the retrain at 12 epochs needs 120 s,
    # but --retrain-share 0.5 of a 1,000 s budget keeps 500 s, and the retrain then trains 50 epochs.
    now = [0.0]
    study = optuna.create_study(direction="maximize")
    stop = RetrainDeadline(deadline=1000.0, retrain_images=12 * 3000, max_t=12, clock=lambda: now[0],
                           budget_s=1000.0, share=0.5, study=study)
    stop("t1", {"images_per_second": 300.0, "epoch": 12, "time_this_iter_s": 8.0})
    finish(study)
    assert stop.seconds_for(12 * 3000) == 120.0 + REPORT_MARGIN_S
    assert stop.retrain_seconds() == 500.0 + REPORT_MARGIN_S
    now[0] = 479.0
    assert not stop.stop_all()  # 479 + 520 < 1000
    now[0] = 480.0
    assert stop.stop_all()
    assert stop.epochs_that_fit(500.0 + REPORT_MARGIN_S, 3000, at_least=12) == 50
    assert stop.epochs_that_fit(60.0, 3000, at_least=12) == 12  # never fewer than the trials ran
    # A search that ended early (every trial done) has 900 s left, but the retrain gets what was kept.
    assert stop.epochs_that_fit(900.0, 3000, at_least=12) == 50
    assert stop.describe()["retrain_share"] == 0.5 and "(--retrain-share)" in stop.split_note()
    # The estimate wins when it is the larger: a share never shortens what --max-epochs needs.
    slow = RetrainDeadline(1000.0, 12 * 3000, 12, budget_s=1000.0, share=0.05, clock=lambda: 0.0)
    slow("t1", {"images_per_second": 100.0, "time_this_iter_s": 30.0})
    assert slow.retrain_seconds() == 360.0 + REPORT_MARGIN_S


def test_the_default_share_grows_when_the_budget_affords_too_few_trials_to_search():
    # Half of a 1,000 s budget on one slot affords 500 / 100 = 5 trials of 100 s; a search that
    # needs 10 first (its recipes and TPE's random start) gets half of its half, the retrain 75%.
    assert retrain_share(1000.0, trial_seconds=100.0, slots=1, trials_needed=10) == 0.75
    assert retrain_share(1000.0, trial_seconds=100.0, slots=2, trials_needed=10) == 0.5  # two at once: 10 fit
    assert retrain_share(10_000.0, trial_seconds=100.0, slots=1, trials_needed=10) == 0.5  # never below half
    assert retrain_share(1000.0, trial_seconds=1000.0, slots=1, trials_needed=10) == 0.975  # not one trial fits
    # The deadline measures the trial's time from Tune's epoch timings (median x --max-epochs).
    now = [0.0]
    study = optuna.create_study(direction="maximize")
    stop = RetrainDeadline(deadline=1000.0, retrain_images=12 * 3000, max_t=12, clock=lambda: now[0],
                           budget_s=1000.0, slots=1, trials_needed=10, study=study)
    assert stop.share_kept() is None and stop.retrain_seconds() is None  # nothing timed yet
    for seconds in (9.0, 100.0 / 12, 8.0):  # the first epoch also started the trial
        stop("t1", {"images_per_second": 300.0, "time_this_iter_s": seconds})
    finish(study)
    assert stop.share_kept() == 0.75 and stop.retrain_seconds() == 750.0 + REPORT_MARGIN_S
    assert stop.epochs_that_fit(900.0, 3000, at_least=12) == 75
    now[0] = 229.0
    assert not stop.stop_all()
    now[0] = 230.0
    assert stop.stop_all()
    assert "afforded about 5.0 full trials of the 10" in stop.split_note()
    assert stop.describe() == {"retrain_share": 0.75, "share_fixed": False, "trial_seconds": 100.0, "slots": 1,
                               "trials_needed": 10}


def test_the_retrain_trains_at_most_the_papers_images_and_the_search_keeps_the_rest():
    # A 10-hour budget and 3,000 images an epoch at 300 images/s: half the budget would be
    # 5,400 epochs; the retrain stops at max_images (30 epochs here) and keeps only their time.
    stop = RetrainDeadline(deadline=36_000.0, retrain_images=12 * 3000, max_t=12, clock=lambda: 0.0,
                           budget_s=36_000.0, share=0.5, max_images=30 * 3000)
    stop("t1", {"images_per_second": 300.0, "time_this_iter_s": 10.0})
    assert stop.retrain_seconds() == 300.0 + REPORT_MARGIN_S
    assert stop.epochs_that_fit(36_000.0, 3000, at_least=12) == 30


@pytest.mark.parametrize("share", [1.0, -0.1, float("nan")])
def test_a_retrain_share_outside_0_1_is_refused_in_one_line(share):
    from search.config import SearchConfig
    from search.errors import SearchError

    with pytest.raises(SearchError, match=r"^--retrain-share must be in \[0, 1\)"):
        SearchConfig(space="smoke", retrain_share=share)


def test_the_deadline_waits_for_a_config_to_retrain():
    study = optuna.create_study(direction="maximize")
    stop = RetrainDeadline(deadline=10.0, retrain_images=6000, max_t=3, clock=lambda: 100.0, study=study)
    stop("t1", {"images_per_second": 100.0, "epoch": 3})
    assert not stop.stop_all()  # past the deadline, and a result at max_t, but not yet recorded as complete
    finish(study, TrialState.PRUNED)
    assert not stop.stop_all()  # an ASHA-stopped trial is no best config
    finish(study, TrialState.FAIL, **{FAIL_REASON: DIVERGED_RUN})
    assert not stop.stop_all()  # nor is a diverged one
    finish(study, **{ORIGIN: WARM_START})
    assert not stop.stop_all()  # nor an earlier search's trial that --warm-start copied in
    finish(study)
    assert stop.stop_all()


def test_a_resumed_search_counts_the_trials_completed_before_its_interruption():
    # The interrupted run completed trial 0; the resumed run's trials are all still training when
    # only the retrain fits. The deadline fires: the config to retrain is trial 0's, from the study.
    study = optuna.create_study(direction="maximize")
    finish(study)
    for _ in range(2):
        study.ask()  # RUNNING: resumed, training
    stop = RetrainDeadline(deadline=100.0, retrain_images=6000, max_t=3, clock=lambda: 50.0, study=study)
    stop("t1", {"images_per_second": 100.0, "epoch": 1})
    assert stop.completed and stop.stop_all()


def stderr_until_the_retrain_note(argv, epochs: int) -> list[str]:
    """Run ``search.run argv`` and return its stderr up to the retrain's note, then kill it (the retrain follows)."""
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # the search's results are written before this note
            lines.append(line)
            if line.startswith(f"note: the retrain of {epochs} epochs should take about"):
                break
    finally:
        proc.kill()
        proc.wait()
    return lines


@pytest.mark.slow
def test_time_budget_keeps_time_for_the_retrain(image_folder, tmp_path):
    out = tmp_path / "budget"
    # 800 training + 200 validation images x 300 retrain epochs cannot fit in 2 minutes on any
    # machine, so the search stops as soon as one trial has run both epochs, and says so.
    lines = stderr_until_the_retrain_note([*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples",
                                           "8", "--max-epochs", "2", "--retrain-epochs", "300", "--time-budget", "2m",
                                           "--no-report"], epochs=300)
    assert lines and "of --time-budget 2m left" in lines[-1], "".join(lines)[-3000:]
    summary = json.loads((out / "search.json").read_text())
    assert summary["time_budget_hit"] is True and summary["completed"] >= 1
    trials = load_study(out).trials
    assert len(trials) < 8  # trials not started were not run
    assert all(t.state.name == "PRUNED" for t in trials if t.user_attrs.get("stopped_by") == "time_budget")


@pytest.mark.slow
def test_a_resumed_search_under_a_time_budget_keeps_the_retrains_time_from_its_first_result(image_folder,
                                                                                          tmp_path):
    """Issue 32: the deadline ignored the trials that completed before the interruption. A resume that
    completed none of its own ran on to Tune's cap, and the retrain then trained past the budget."""
    out = tmp_path / "budget"
    flags = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "3", "--max-epochs", "3",
             "--scheduler", "fifo", "--max-concurrent", "1", "--no-report"]
    # The first run completes trial 0 and is stopped as trial 1 trains (a signal, as after a Ctrl-C).
    code, _, printed = signal_at([*flags, "--no-retrain"], "] trial 0 complete", signal.SIGTERM)
    assert code == 1 and "--resume" in printed, printed[-3000:]
    # The resume: 400 retrain epochs of 1,200 images cannot fit in 2 minutes, so only the retrain fits from
    # the first result on. The config to retrain is trial 0's, from before the interruption.
    lines = stderr_until_the_retrain_note([*flags, "--resume", "--time-budget", "2m", "--retrain-epochs", "400"],
                                          epochs=400)
    assert lines and "of --time-budget 2m left" in lines[-1], "".join(lines)[-3000:]
    trials = {t.number: t for t in load_study(out).trials}
    assert trials[0].state.name == "COMPLETE"
    # Stopped at the resumed run's first result: no trial of its own completed, the rest were cut by the budget.
    assert all(t.state.name == "PRUNED" and t.user_attrs.get("stopped_by") == "time_budget" and
               len(t.intermediate_values) < 3 for n, t in trials.items() if n > 0), {
        n: (t.state.name, len(t.intermediate_values)) for n, t in trials.items()}
    assert json.loads((out / "search.json").read_text())["time_budget_hit"] is True


def test_resume_of_a_complete_search_is_refused_and_changes_nothing(tmp_path):
    from search.config import SearchConfig
    from search.driver import check_not_complete
    from search.errors import SearchError

    saved = {"config": SearchConfig(space="smoke").to_dict(), "finished": "2026-12-01T10:00:00+00:00",
             "time_budget_hit": True, "interrupted": False}
    with pytest.raises(SearchError, match=r"is complete \(its --time-budget ended it\).*--warm-start"):
        check_not_complete(tmp_path, saved)
    with pytest.raises(SearchError, match=r"is complete \(every trial ran\)"):
        check_not_complete(tmp_path, {**saved, "time_budget_hit": False})
    check_not_complete(tmp_path, {**saved, "interrupted": True})  # an interrupted one resumes
    check_not_complete(tmp_path, {**saved, "finished": None})  # so does one that died mid-search


@pytest.mark.slow
def test_resume_after_the_budget_exits_2_and_leaves_search_json(image_folder, tmp_path):
    from tests._searches import run_search

    out = tmp_path / "done"
    flags = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "2", "--max-epochs", "1",
             "--no-retrain", "--no-report"]
    first = run_search(*flags)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (out / "search.json").read_bytes()
    again = run_search(*flags, "--resume")
    assert again.returncode == 2 and "is complete (every trial ran)" in again.stderr
    assert len([ln for ln in again.stderr.splitlines() if ln.strip()]) == 1, again.stderr
    assert (out / "search.json").read_bytes() == before


def test_trial_slots_count_the_trials_that_run_at_once():
    from search.ray_start import trial_slots

    assert trial_slots({"CPU": 2.0}, cpus_per_trial=2, gpus_per_trial=0, max_concurrent=None) == 1
    assert trial_slots({"CPU": 2.0}, cpus_per_trial=1, gpus_per_trial=0, max_concurrent=None) == 2
    assert trial_slots({"CPU": 16.0, "GPU": 1.0}, cpus_per_trial=2, gpus_per_trial=0.5, max_concurrent=None) == 2
    assert trial_slots({"CPU": 16.0, "GPU": 4.0}, cpus_per_trial=2, gpus_per_trial=0.5, max_concurrent=3) == 3
    assert trial_slots({"CPU": 1.0}, cpus_per_trial=2, gpus_per_trial=0, max_concurrent=None) == 1  # never 0

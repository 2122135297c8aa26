"""Tests for search.report: plots, report.html, the CLI, and a render in headless Chromium."""

import datetime
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import report
from search.config import SearchConfig
from tests._figures import _array, _figures, _only_figure
from tests._tiny_run import make_run, tiny_image_folder

REPO = Path(__file__).resolve().parents[1]
PLOT_NAMES = [
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "intermediate_values",
    "slice",
    "timeline",
]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A finished search with a retrained best config, report already built; its data is named as the JPEG copy."""
    data = tiny_image_folder(tmp_path_factory.mktemp("data") / "cifar10-jpeg")
    run_dir = make_run(tmp_path_factory.mktemp("runs") / "smoke", data, retrained=True)
    report.build_report(run_dir)
    return run_dir


def _study(run_dir):
    return optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")


def _summary_table(page):
    """The report's summary rows as {label: text}."""
    table = re.search(r'<table class="summary">(.*?)</table>', page, re.S).group(1)
    return dict(re.findall(r"<th>(.*?)</th><td>(.*?)</td>", table))


def _leaderboard_rows(page):
    """(trial, state) of each leaderboard row, top first."""
    table = re.search(r'<table class="dataframe leaderboard">(.*?)</table>', page, re.S).group(1)
    return [(int(n), s) for n, s in re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>(\w+)</td>", table)]


def test_write_plots_writes_every_plot_with_local_plotlyjs(full_run):
    written = report.write_plots(full_run)
    assert list(written) == PLOT_NAMES
    for name, path in written.items():
        assert path == full_run / "plots" / f"{name}.html" and path.is_file()
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in path.read_text()
    bundle = full_run / "plots" / "plotly.min.js"
    assert bundle.stat().st_size > 1_000_000
    assert "plotly.js" in bundle.read_text()[:500]


def test_no_page_loads_anything_from_the_network(full_run):
    pages = sorted(full_run.rglob("*.html"))
    assert len(pages) == len(PLOT_NAMES) + 1
    for page in pages:
        text = page.read_text()
        assert "cdn.plot.ly" not in text, page
        # Every script a page loads is a file in the run folder.
        sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', text)
        assert sources, page
        for src in sources:
            assert not re.match(r"[a-z]+:", src), (page, src)
            assert (page.parent / src).is_file(), (page, src)


def test_optimization_history_has_every_complete_trial(full_run):
    complete = [t for t in _study(full_run).trials if t.state == TrialState.COMPLETE]
    figure = _only_figure(full_run / "plots" / "optimization_history.html")
    (markers,) = [d for d in figure["data"] if d["name"] == "val_acc"]
    assert _array(markers["x"]) == [t.number for t in complete]
    assert _array(markers["y"]) == pytest.approx([t.value for t in complete])
    assert len(complete) == 6


def test_intermediate_values_has_one_curve_per_trial_pruned_ones_shorter(full_run):
    trials = _study(full_run).trials
    figure = _only_figure(full_run / "plots" / "intermediate_values.html")
    curves = {d["name"]: _array(d["y"]) for d in figure["data"]}
    drawn = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(curves) == sorted(f"Trial{t.number}" for t in drawn)
    for t in drawn:
        curve = curves[f"Trial{t.number}"]
        steps = sorted(t.intermediate_values)
        assert curve == pytest.approx([t.intermediate_values[s] for s in steps])
        if t.state == TrialState.COMPLETE:
            assert len(curve) == 4
        else:
            assert 1 <= len(curve) < 4


def test_report_summary_numbers(full_run):
    page = (full_run / "report.html").read_text()
    summary = _summary_table(page)
    best = json.loads((full_run / "best" / "config.json").read_text())
    metrics = json.loads((full_run / "best" / "metrics.json").read_text())
    assert summary["space"] == "smoke"
    assert (summary["completed"], summary["pruned by ASHA"], summary["failed"]) == ("6", "5", "1")
    assert "cut by the time budget" not in summary  # no --time-budget: no such row
    assert summary["running (interrupted)"] == "0"
    assert summary["best trial"] == str(best["trial"])
    assert summary["best validation accuracy (val_acc)"] == f"{best['val_acc']:.4f}"
    assert summary["retrained test accuracy"] == f"{metrics['test_acc']:.4f}"
    assert summary["wall time"] != "unknown"
    assert "CIFAR-10 (JPEG-75 copy)" in page
    assert "did not finish" not in page and "search.retrain" not in page


def test_report_leaderboard_complete_first_by_value(full_run):
    trials = _study(full_run).trials
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value
    )
    rest = sorted(
        (t for t in trials if t.state != TrialState.COMPLETE),
        key=lambda t: -max(t.intermediate_values.values()),
    )
    expected = [(t.number, t.state.name) for t in complete + rest][:10]
    page = (full_run / "report.html").read_text()
    assert _leaderboard_rows(page) == expected
    assert f"<td>{complete[0].value:.4f}</td>" in page


def test_report_embeds_every_plot_once_with_one_plotlyjs(full_run):
    page = (full_run / "report.html").read_text()
    assert sorted(_figures(page)) == sorted(f"plot-{name}" for name in PLOT_NAMES)
    assert page.count("<script charset=\"utf-8\" src=\"plots/plotly.min.js\"></script>") == 1
    assert "Skipped:" not in page


def test_importances_skipped_with_one_complete_trial(tmp_path, image_folder):
    run_dir = make_run(tmp_path / "run", image_folder, n_complete=1, n_pruned=3)
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "param_importances.html").write_text("stale")
    written = report.write_plots(run_dir)
    assert isinstance(written["param_importances"], str)
    assert "at least 2 COMPLETE" in written["param_importances"]
    assert not (run_dir / "plots" / "param_importances.html").exists()
    for name in set(PLOT_NAMES) - {"param_importances"}:
        assert written[name].is_file(), name
    page = report.build_report(run_dir).read_text()
    assert f"Skipped: {written['param_importances']}" in page


def test_no_complete_trial_skips_plots_of_values(tmp_path, image_folder):
    run_dir = make_run(tmp_path / "run", image_folder, n_complete=0, n_pruned=3)
    assert not (run_dir / "best").exists()
    written = report.write_plots(run_dir)
    skipped = {name for name, result in written.items() if isinstance(result, str)}
    assert skipped == {"optimization_history", "param_importances", "parallel_coordinate", "slice"}
    page = report.build_report(run_dir).read_text()
    assert _summary_table(page)["best trial"] == "none yet"
    assert page.count("Skipped:") == 4
    assert "<td>None</td>" not in page


def test_interrupted_run_still_reported(tmp_path, image_folder):
    run_dir = make_run(tmp_path / "run", image_folder, running=2, n_complete=3)
    page = report.build_report(run_dir).read_text()
    summary = _summary_table(page)
    assert (summary["completed"], summary["running (interrupted)"]) == ("3", "2")
    assert "did not finish" in page
    assert f"python -m search.retrain {run_dir}" in page
    assert "retrained test accuracy" not in summary
    running = [t.number for t in _study(run_dir).trials if t.state == TrialState.RUNNING]
    curves = _figures(page)["plot-intermediate_values"]["data"]
    assert {f"Trial{n}" for n in running} <= {d["name"] for d in curves}


def test_plain_cifar10_is_not_labelled_jpeg(tmp_path, image_folder):
    run_dir = make_run(tmp_path / "run", image_folder)
    page = report.build_report(run_dir).read_text()
    assert "JPEG" not in page and "Data: CIFAR-10." in page


@pytest.mark.slow
def test_cli_writes_report(tmp_path, image_folder):
    run_dir = make_run(tmp_path / "run", image_folder, running=1)
    proc = subprocess.run(
        [sys.executable, "-m", "search.report", str(run_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").is_file()
    assert all((run_dir / "plots" / f"{name}.html").is_file() for name in PLOT_NAMES)


@pytest.mark.parametrize("case", ["missing folder", "no study.db"])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, case):
    run_dir = tmp_path / "run"
    if case == "no study.db":
        run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "search.report", str(run_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and str(run_dir) in lines[0], proc.stderr
    assert not (run_dir / "study.db").exists()


def _chromium():
    """Path of a Chromium binary; skips (fails under CI) when there is none."""
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium not installed: apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _headless(chromium, tmp_path, *args):
    # The resolver rule makes every host name fail, so a page that needed a CDN would not draw.
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_report_renders_in_headless_chromium(full_run, tmp_path):
    from PIL import Image

    chromium = _chromium()
    url = (full_run / "report.html").as_uri()
    proc = _headless(chromium, tmp_path, "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for name in PLOT_NAMES:
        # Each plot's div, up to the next one, holds plotly's rendered SVG.
        start = dom.index(f'id="plot-{name}"')
        end = dom.find('id="plot-', start + 1)
        assert 'class="main-svg"' in dom[start: end if end > 0 else None], name

    png = tmp_path / "report.png"
    proc = _headless(
        chromium, tmp_path, "--hide-scrollbars", f"--screenshot={png}",
        "--window-size=1280,2400", url,
    )
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 2400)
    # The page's own styling is grey; coloured pixels below the tables come from the plots.
    plots = np.asarray(image)[1200:].astype(int)
    coloured = plots[(plots.max(axis=2) - plots.min(axis=2)) > 60]
    assert len(coloured) > 5000
    assert len({tuple(p) for p in coloured}) > 50


# ---------------------------------------------------------------------------------------
# A search that its --time-budget ended: outcomes, timeline, precision


QUEUED = datetime.datetime(2025, 1, 1, 12, 0, 0)


def _budget_run(run_dir):
    """A run folder as a budget-ended search leaves it, with trials queued long before they trained.

    Trial 0 COMPLETE, 1 PRUNED by ASHA, 2 FAIL (diverged), 3 cut by the time budget (its first
    epoch's start recorded by the searcher, no training time); 6 trials requested.
    """
    run_dir.mkdir(parents=True)
    study = optuna.create_study(study_name="scratch", direction="maximize",
                                storage=f"sqlite:///{run_dir / 'study.db'}")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    specs = [  # state, epochs, training seconds, queued->ended seconds, extra attrs
        (TrialState.COMPLETE, 3, 300.0, 900.0, {}),
        (TrialState.PRUNED, 1, 100.0, 1000.0, {}),
        (TrialState.FAIL, 1, 50.0, 1100.0, {"fail_reason": "diverged"}),
        # Its first epoch began 1060 s after the queueing, as the searcher recorded it.
        (TrialState.PRUNED, 2, None, 1140.0, {"stopped_by": "time_budget",
                                              "started": (QUEUED + datetime.timedelta(seconds=1060)).isoformat()}),
    ]
    for number, (state, epochs, seconds, ended, attrs) in enumerate(specs):
        attrs = {"ray_trial_id": f"abc_{number:05d}", "epochs": epochs, **attrs}
        if seconds is not None:
            attrs["wall_seconds"] = seconds
        study.add_trial(optuna.trial.FrozenTrial(
            number=-1, trial_id=-1, state=state, value=0.5 if state == TrialState.COMPLETE else None,
            datetime_start=QUEUED, datetime_complete=QUEUED + datetime.timedelta(seconds=ended),
            params={"lr": 0.1}, distributions=dist, user_attrs=attrs, system_attrs={},
            intermediate_values={e: 0.1 * e for e in range(1, epochs + 1)}))
    config = SearchConfig(space="scratch", num_samples=6, max_epochs=3, time_budget="20m", data="cifar10-jpeg.tar.gz")
    (run_dir / "search.json").write_text(json.dumps({
        "config": config.to_dict(), "wall_seconds": 1205.0, "started": "2025-01-01T12:00:00+00:00",
        "finished": "2025-01-01T12:20:05+00:00", "time_budget_hit": True,
        "time_split": {"retrain_share": 0.85, "share_fixed": False, "trial_seconds": 300.0, "slots": 1,
                       "trials_needed": 6}}))
    (run_dir / "best").mkdir()
    (run_dir / "best" / "config.json").write_text(json.dumps({
        "trial": 0, "val_acc": 0.5, "params": {"lr": 0.1},
        "config": {"arch": "resnet20", "lr": 0.1, "amp": True, "epochs": 3}}))
    (run_dir / "best" / "metrics.json").write_text(json.dumps({
        "test_acc": 0.48, "epochs": 3, "seconds": 60.0, "images_per_second": 900.0, "device": "cpu",
        "precision": "fp32"}))
    return run_dir


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    run_dir = _budget_run(tmp_path_factory.mktemp("budget") / "scratch")
    report.build_report(run_dir)
    return run_dir


def test_budget_cut_trials_are_not_counted_as_asha_prunes(budget_run):
    page = (budget_run / "report.html").read_text()
    summary = _summary_table(page)
    assert (summary["completed"], summary["pruned by ASHA"], summary["cut by the time budget"],
            summary["failed"]) == ("1", "1", "1", "1")
    assert summary["time budget"] == "20m: ended the search; 85% of it kept for the retrain"
    assert ("The time budget (--time-budget 20m) ended this search at 2025-01-01 12:20:05 UTC: 1 trial was "
            "cut short (PRUNED, stopped_by=time_budget) and 2 of the 6 requested never started.") in page


def test_timeline_bars_start_when_training_started_not_when_queued(budget_run):
    figure = _figures((budget_run / "report.html").read_text())["plot-timeline"]
    bars = {}
    for trace in figure["data"]:
        for number, base, length in zip(_array(trace["y"]), trace["base"], _array(trace["x"])):
            bars[number] = (trace["name"], datetime.datetime.fromisoformat(base), length / 1000)
    at = lambda s: QUEUED + datetime.timedelta(seconds=s)  # noqa: E731
    # The end less the recorded training time, for trials the searcher finished ...
    assert bars[0] == ("complete", at(600), 300)
    assert bars[1] == ("pruned by ASHA", at(900), 100)
    assert bars[2] == ("failed", at(1050), 50)
    # ... and the start of its first epoch, as the searcher recorded it, for the trial the budget cut.
    assert bars[3] == ("cut by the time budget", at(1060), 80)


def test_config_shows_the_precision_the_retrain_used(budget_run):
    page = (budget_run / "report.html").read_text()
    config = json.loads(html.unescape(re.search(r"<h3>Best trial config</h3>\s*<pre>(.*?)</pre>", page, re.S)[1]))
    assert config["precision"] == "fp32" and "amp" not in config
    assert _summary_table(page)["retrain"].endswith("on cpu, fp32")


def test_report_fits_a_1280_px_window(full_run, budget_run, tmp_path):
    """Nothing wider than the window: tables scroll in their box and plots take the page's width."""
    chromium = _chromium()
    probe = """<script>setTimeout(function () {
      var body = document.body.getBoundingClientRect(), style = getComputedStyle(document.body);
      var inner = body.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      var plots = Array.from(document.querySelectorAll("div[id^=plot-]")).map(function (d) {
        return d.querySelector(".main-svg").getBoundingClientRect().width; });
      var boxes = Array.from(document.querySelectorAll(".scroll, pre")).map(function (b) {
        return b.getBoundingClientRect().right; });
      document.title = JSON.stringify({page: document.documentElement.scrollWidth, inner: inner,
                                       plots: plots, boxes: boxes});
    }, 3000);</script></body>"""
    for run_dir in (full_run, budget_run):
        page = (run_dir / "report.html").read_text()
        (run_dir / "probe.html").write_text(page.replace("</body>", probe))
        proc = _headless(chromium, tmp_path, "--window-size=1280,2400", "--dump-dom",
                         (run_dir / "probe.html").as_uri())
        assert proc.returncode == 0, proc.stderr[-2000:]
        sizes = json.loads(html.unescape(re.search(r"<title>(.*?)</title>", proc.stdout, re.S)[1]))
        assert sizes["page"] <= 1280, sizes
        assert max(sizes["boxes"]) <= 1280, sizes
        assert len(sizes["plots"]) == len(_figures(page)) >= 5, sizes
        assert all(abs(w - sizes["inner"]) <= 2 for w in sizes["plots"]), sizes

"""The Optuna plots of a search: one HTML file per plot in ``plots/``, with plotly.js beside them (offline)."""

import datetime
import warnings
from pathlib import Path

import optuna
import optuna.visualization as vis
import plotly.graph_objects as go
import plotly.offline
from optuna.trial import TrialState

from .constants import METRIC
from .study import BUDGET, COMPLETE, FAILED, PRUNED, STARTED, WALL_SECONDS, is_warm_start, label

PLOTLY_JS = "plotly.min.js"


def write_plotly_bundle(folder: Path) -> Path:
    """``folder/plotly.min.js``, which the plots' pages load, so that they open offline."""
    folder.mkdir(parents=True, exist_ok=True)
    # Written every time rather than left to plotly's "directory" mode, which keeps an
    # existing bundle: a page rebuilt after a plotly upgrade must not load an older one.
    path = folder / PLOTLY_JS
    path.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    return path


def _skip_reason(name, trials):
    """Why plot ``name`` cannot be drawn from ``trials`` (None when it can)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if name == "intermediate_values":
        # Optuna draws curves for these states only; FAIL trials are left out.
        drawn = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        if not any(t.intermediate_values for t in trials if t.state in drawn):
            return "no COMPLETE, PRUNED or RUNNING trial reported a validation accuracy yet"
        return None
    if name == "timeline":
        return None if any(t.datetime_start for t in trials) else "no trial has started yet"
    if not complete:
        return "needs at least 1 COMPLETE trial, the study has none"
    if name in ("parallel_coordinate", "slice") and not any(t.params for t in complete):
        return "the COMPLETE trials have no parameters"
    if name == "param_importances":
        if len(complete) < 2:
            return f"needs at least 2 COMPLETE trials, the study has {len(complete)}"
        if len({t.value for t in complete}) < 2:
            return "every COMPLETE trial has the same value, so no parameter explains it"
    return None


def _importances(study):
    """Parameter-importance figure, or the reason Optuna gives for not computing it."""
    # With too few trials Optuna's default evaluator (PED-ANOVA) warns and returns equal
    # importances; a bar chart of that would look like a finding, so it becomes a skip note.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = vis.plot_param_importances(study, target_name=METRIC)
    for w in caught:
        if "importances will be equal" in str(w.message):
            return f"Optuna could not rank the parameters: {w.message}"
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fig


RUNNING = "running"  # the state of a trial an interrupted search left for --resume
OUTCOMES = {COMPLETE: "#1f77b4", PRUNED: "#ff7f0e", BUDGET: "#9467bd", FAILED: "#d62728",
            RUNNING: "#7f7f7f"}  # how a trial ended -> its timeline colour


def outcome(trial):
    """How the trial ended, as the study says it (``search.study.label``), or "running"."""
    return label(trial) or RUNNING


def training_interval(trial, now=None):
    """(start, end, how the start is known) of the trial's training.

    Its first epoch's start as the searcher recorded it; else the end less the training time
    (``wall_seconds``); else Optuna's own start, which is when the trial was proposed (queued).
    """
    end = trial.datetime_complete
    if STARTED in trial.user_attrs:
        return (datetime.datetime.fromisoformat(trial.user_attrs[STARTED]), end or now or datetime.datetime.now(),
                "first epoch")
    seconds = trial.user_attrs.get(WALL_SECONDS)
    if end is not None and seconds is not None:
        return end - datetime.timedelta(seconds=float(seconds)), end, "training time"
    return trial.datetime_start, end or now or datetime.datetime.now(), "queued"


def plot_timeline(study):
    """When each trial trained, one bar per trial, coloured by how it ended."""
    bars = {name: [] for name in OUTCOMES}
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start is None:
            continue
        start, end, known = training_interval(t)
        bars.setdefault(outcome(t), []).append((t, start, end, known))
    fig = go.Figure()
    for name, rows in bars.items():
        if not rows:
            continue
        fig.add_trace(go.Bar(
            name=name, orientation="h", textposition="none",
            y=[t.number for t, *_ in rows],
            base=[start.isoformat() for _, start, _, _ in rows],
            x=[(end - start).total_seconds() * 1000 for _, start, end, _ in rows],
            text=[f"trial {t.number}: {name}, {t.user_attrs.get('epochs', len(t.intermediate_values))} epochs<br>"
                  f"{start:%H:%M:%S} to {end:%H:%M:%S} ({(end - start).total_seconds():.0f} s)"
                  + ("<br>start: when queued" if known == "queued" else "") for t, start, end, known in rows],
            hovertemplate="%{text}<extra></extra>",
            marker={"color": OUTCOMES.get(name, "#7f7f7f")},
            width=0.8,  # per bar: plotly would size each trace's bars by its own trials' spacing
        ))
    fig.update_xaxes(type="date", title="time")
    numbers = [t.number for rows in bars.values() for t, *_ in rows]
    fig.update_yaxes(title="trial", dtick=1, range=[max(numbers) + 0.5, min(numbers) - 0.5] if numbers else None)
    fig.update_layout(title="Timeline: when each trial trained", showlegend=True, barmode="overlay")
    return fig


PLOTS = {
    "optimization_history": lambda s: vis.plot_optimization_history(s, target_name=METRIC),
    "param_importances": _importances,
    "parallel_coordinate": lambda s: vis.plot_parallel_coordinate(s, target_name=METRIC),
    "intermediate_values": lambda s: vis.plot_intermediate_values(s).update_layout(
        xaxis_title="epoch", yaxis_title=METRIC
    ),
    "slice": lambda s: vis.plot_slice(s, target_name=METRIC),
    "timeline": plot_timeline,
}


def split_warm_start(study):
    """(this search's trials, the trials --warm-start copied in) as two in-memory studies; the second may be None.

    The plots show this search's own trials; the history plot draws the warm-start trials as
    a series of their own, so the two are never mistaken for each other.
    """
    trials = study.get_trials(deepcopy=False)
    warm = [t for t in trials if is_warm_start(t)]
    if not warm:
        return study, None

    def copy(name, subset):
        s = optuna.create_study(study_name=name, directions=study.directions)
        s.set_metric_names(study.metric_names or [METRIC])
        s.add_trials(subset)
        return s

    own = copy(study.study_name, [t for t in trials if not is_warm_start(t)])
    return own, copy(f"{study.study_name} (warm start)", warm)


def make_figures(study):
    """One plotly figure per entry of PLOTS, or a string saying why it was skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study, warm = split_warm_start(study)
    trials = study.get_trials(deepcopy=False)
    figures = {}
    for name, plot in PLOTS.items():
        reason = _skip_reason(name, trials)
        if reason is not None:
            figures[name] = reason
        else:
            figures[name] = plot(study)
    if warm is not None and not isinstance(figures["optimization_history"], str):
        figures["optimization_history"] = vis.plot_optimization_history([study, warm], target_name=METRIC)
    return figures


def write_figures(figures, plots_dir):
    """Save each figure as ``plots_dir/<name>.html``; skipped ones keep their reason."""
    write_plotly_bundle(plots_dir)
    written = {}
    for name, fig in figures.items():
        path = plots_dir / f"{name}.html"
        if isinstance(fig, str):
            path.unlink(missing_ok=True)  # a stale plot from an earlier build would mislead
            written[name] = fig
        else:
            fig.write_html(path, include_plotlyjs="directory", full_html=True)
            written[name] = path
    return written

"""The Optuna plots of a search: one HTML file per plot in ``plots/``, with plotly.js beside them (offline)."""

import math
import warnings

import optuna
import optuna.visualization as vis
import plotly.offline
from optuna.trial import TrialState

PLOTLY_JS = "plotly.min.js"
TARGET = "val_acc"  # what the study's objective value is


def curve(trial):
    """Validation accuracy per epoch, NaNs (diverged epochs) dropped."""
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    return [v for v in values if not math.isnan(v)]


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
        fig = vis.plot_param_importances(study, target_name=TARGET)
    for w in caught:
        if "importances will be equal" in str(w.message):
            return f"Optuna could not rank the parameters: {w.message}"
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fig


PLOTS = {
    "optimization_history": lambda s: vis.plot_optimization_history(s, target_name=TARGET),
    "param_importances": _importances,
    "parallel_coordinate": lambda s: vis.plot_parallel_coordinate(s, target_name=TARGET),
    "intermediate_values": lambda s: vis.plot_intermediate_values(s).update_layout(
        xaxis_title="epoch", yaxis_title=TARGET
    ),
    "slice": lambda s: vis.plot_slice(s, target_name=TARGET),
    "timeline": vis.plot_timeline,
}


def split_warm_start(study):
    """(this search's trials, the trials --warm-start copied in) as two in-memory studies; the second may be None.

    The plots show this search's own trials; the history plot draws the warm-start trials as
    a series of their own, so the two are never mistaken for each other.
    """
    trials = study.get_trials(deepcopy=False)
    warm = [t for t in trials if t.user_attrs.get("origin") == "warm_start"]
    if not warm:
        return study, None

    def copy(name, subset):
        s = optuna.create_study(study_name=name, directions=study.directions)
        s.set_metric_names(study.metric_names or [TARGET])
        s.add_trials(subset)
        return s

    own = copy(study.study_name, [t for t in trials if t.user_attrs.get("origin") != "warm_start"])
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
        figures[name] = reason if reason is not None else plot(study)
    if warm is not None and not isinstance(figures["optimization_history"], str):
        figures["optimization_history"] = vis.plot_optimization_history([study, warm], target_name=TARGET)
    return figures


def write_figures(figures, plots_dir):
    """Save each figure as ``plots_dir/<name>.html``; skipped ones keep their reason."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    # Written every time rather than left to plotly's "directory" mode, which keeps an
    # existing bundle: a report rebuilt after a plotly upgrade must not load an older one.
    (plots_dir / PLOTLY_JS).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
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

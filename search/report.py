"""Plots and an HTML report for a search's run folder, made from its files alone.

Reads ``runs/NAME/study.db`` (the Optuna study: its trials and the search's record, opened
read-only) and, when they exist, ``best/config.json`` and ``best/metrics.json``; an interrupted
search (no end in its record, trials still RUNNING, no ``best/``) is reported too. Writes ``runs/NAME/plots/<plot>.html``
with ``plots/plotly.min.js`` beside them, and ``runs/NAME/report.html``, which loads that same
bundle, so everything opens offline.

Example:
    python -m search.report runs/smoke
"""

import argparse
import datetime
import html
import json
import re
from pathlib import Path

from optuna.trial import TrialState

from model.checkpoint import write_text

from .config import SearchConfig
from .constants import BEST, BEST_CONFIG, BEST_METRICS, METRIC, STUDY_DB
from .errors import SearchError
from .plots import PLOTLY_JS, make_figures, outcome, write_figures
from .results import BEST_PARAMS, BEST_RUN_CONFIG, BEST_TRIAL, BEST_VAL_ACC, read_summary, trials_table
from .state import CONFIG, FINISHED, inspect_study
from .study import BUDGET, PRUNED, best_complete_trial, count_trials, is_warm_start

TOP_TRIALS = 10  # rows in the leaderboard
RETRAIN_COMMAND = "python -m search.retrain {run_dir}"


class RunFolderError(Exception):
    """A run folder the report cannot be made from."""


def load_study(run_dir):
    """Load the one Optuna study in ``run_dir/study.db``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder not found: {run_dir}")
    db = run_dir / STUDY_DB
    if not db.is_file():
        raise RunFolderError(f"no {STUDY_DB} in {run_dir} (is it a search's run folder?)")
    try:
        study = inspect_study(run_dir)  # read-only: a report never changes the study
    except SearchError:  # "file is not a database", a truncated file
        raise RunFolderError(f"{db} is not an Optuna database; pass a search's run folder") from None
    if study is None:
        raise RunFolderError(f"{db} holds no study (the search died creating it); pass a search's run folder")
    return study


def _read_json(path):
    """The parsed JSON at ``path``, or None when the file is missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _saved_config(run_dir):
    """The search's SearchConfig from its study, or None when the study does not record it."""
    return SearchConfig.from_dict(saved[CONFIG]) if CONFIG in (saved := read_summary(run_dir) or {}) else None


def write_plots(run_dir):
    """Write ``run_dir/plots/<name>.html`` for every plot; skipped plots map to a reason."""
    return write_figures(make_figures(load_study(run_dir)), Path(run_dir) / "plots")


def leaderboard(study, top=TOP_TRIALS):
    """The best ``top`` rows of the trials table: COMPLETE ones by value, then the others by best accuracy."""
    table = trials_table(study)
    best = f"best_{METRIC}"
    df = table.rename(columns={"number": "trial"})[["trial", "state", "origin", METRIC, best, "epochs"]].copy()
    # Every parameter any trial has, so conditional ones get a column (blank where absent).
    for name in sorted(c.removeprefix("params_") for c in table.columns if c.startswith("params_")):
        # Text, so an int parameter missing from some trials is not shown as "512.0".
        df[name] = [f"{v:.3g}" if isinstance(v, float) else "" if v is None else str(v)
                    for v in table[f"params_{name}"]]
    df[["wall_seconds", "node"]] = table[["wall_seconds", "node"]]
    # Float even when every entry is missing, so the table shows blanks rather than "None".
    df[[METRIC, best, "wall_seconds"]] = df[[METRIC, best, "wall_seconds"]].astype(float)
    df["_complete"] = df["state"] == TrialState.COMPLETE.name
    df = df.sort_values(
        ["_complete", METRIC, best, "trial"],
        ascending=[False, False, False, True],
        na_position="last",
    )
    return df.drop(columns="_complete").head(top).reset_index(drop=True)


def _wall_seconds(search, trials):
    """Search wall time: from the search's record, else first trial start to last trial end."""
    if search and search.get("wall_seconds") is not None:
        return float(search["wall_seconds"])
    starts = [t.datetime_start for t in trials if t.datetime_start]
    # RUNNING trials were cut off by the interruption; their last known moment is unknown.
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return None
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def _format_seconds(seconds):
    """``3725.0`` -> ``1:02:05``."""
    if seconds is None:
        return "unknown"
    return str(datetime.timedelta(seconds=round(seconds)))


def _dataset_label(*configs):
    """How to name the data: the JPEG copy of CIFAR-10 must be labelled as such."""
    def strings(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                yield from strings(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from strings(v)
        elif isinstance(obj, str):
            yield obj

    if any("cifar10-jpeg" in s for c in configs if c for s in strings(c)):
        return "CIFAR-10 (JPEG-75 copy)"
    return "CIFAR-10"


def _table(rows):
    """An HTML table of (label, value) pairs; values are escaped."""
    cells = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
        for label, value in rows
    )
    return f'<table class="summary">{cells}</table>'


def _budget_note(search, searched, trials):
    """One sentence saying that --time-budget ended the search, and what it left undone; or None."""
    if not search or not search.get("time_budget_hit"):
        return None
    budget = searched.time_budget
    own = [t for t in trials if not is_warm_start(t)]
    cut = sum(outcome(t) == BUDGET for t in own)
    never = max(searched.num_samples - len(own), 0)
    when = _format_time(search.get("finished"))
    return (f"The time budget (--time-budget {budget}) ended this search{f' at {when}' if when else ''}: "
            f"{cut} trial{'s were' if cut != 1 else ' was'} cut short (PRUNED, stopped_by=time_budget) and "
            f"{never} of the {searched.num_samples} requested never started.")


def _format_time(iso):
    """``2025-01-01T12:30:00+00:00`` -> ``2025-01-01 12:30:00 UTC``; None stays None."""
    if not iso:
        return None
    when = datetime.datetime.fromisoformat(iso)
    if when.tzinfo is not None:
        return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _shown_config(config, metrics):
    """The best config as shown: ``amp`` replaced by the precision the retrain actually used."""
    config = dict(config)
    if metrics and metrics.get("precision") and "amp" in config:
        # amp=True only asks for mixed precision; on a CPU (or with --no-amp) the run is fp32.
        del config["amp"]
        config["precision"] = metrics["precision"]
    return config


def _summary(run_dir, study, search, searched, best_json, metrics):
    """The summary section: counts, wall time, best trial, retrained test accuracy."""
    trials = study.get_trials(deepcopy=False)
    counts = count_trials(study)
    best = best_complete_trial(study)
    if best_json is not None:
        best_number, best_value = best_json[BEST_TRIAL], best_json[BEST_VAL_ACC]
        config = best_json.get(BEST_RUN_CONFIG) or best_json.get(BEST_PARAMS)
    elif best is not None:
        best_number, best_value, config = best.number, best.value, best.params
    else:
        best_number = best_value = config = None

    rows = [("space", study.study_name)]
    if searched:
        rows.append(("trials requested", searched.num_samples))
        rows.append(("max epochs per trial", searched.max_epochs))
    rows += [
        ("completed", counts.complete),
        (PRUNED, counts.pruned),
    ]
    budget = searched.time_budget if searched else None
    if budget or counts.budget:
        rows.append((BUDGET, counts.budget))
    rows.append(("failed", counts.failed))
    if counts.invalid:
        rows.append(("invalid suggestions (not run, not counted)", counts.invalid))
    if counts.warm_start:
        rows.append(("earlier trials (--warm-start, not run here)", counts.warm_start))
    rows += [
        ("running (interrupted)", counts.running),
        ("wall time", _format_seconds(_wall_seconds(search, trials))),
    ]
    if budget:
        hit = search.get("time_budget_hit")
        share = (search.get("time_split") or {}).get("retrain_share")  # search/deadline.py
        kept = "" if share is None else f"; {share:.0%} of it kept for the retrain"
        rows.append(("time budget", f"{budget}: {'ended the search' if hit else 'not reached'}{kept}"))
    rows += [
        ("best trial", best_number if best_number is not None else "none yet"),
        (f"best validation accuracy ({METRIC})",
         f"{best_value:.4f}" if best_value is not None else "none yet"),
    ]
    if metrics:
        rows.append(("retrained test accuracy", f"{metrics['test_acc']:.4f}"))
        rows.append(("retrain", f"{metrics.get('epochs')} epochs, "
                     f"{_format_seconds(metrics.get('seconds'))}, "
                     f"{metrics.get('images_per_second', 0):,.0f} images/s on "
                     f"{metrics.get('device')}"
                     + (f", {metrics['precision']}" if metrics.get("precision") else "")))
    parts = [_table(rows)]
    note = _budget_note(search, searched, trials)
    if note:
        parts.append(f'<p class="note budget">{html.escape(note)}</p>')
    if not metrics and best_number is not None:
        command = RETRAIN_COMMAND.format(run_dir=run_dir)
        parts.append(
            '<p class="note">No retrained test accuracy yet: retrain the best config with '
            f"<code>{html.escape(command)}</code></p>"
        )
    if config:
        parts.append("<h3>Best trial config</h3>")
        shown = _shown_config(config, metrics)
        parts.append(f"<pre>{html.escape(json.dumps(shown, indent=2, sort_keys=True))}</pre>")
    return "\n".join(parts)


# Fits a 1280 px window: the body is at most 1200 px with its padding inside, wide tables and
# long lines scroll inside their own box, and the plots take the body's width (see _figure_html).
STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: sans-serif; margin: 1em auto; padding: 0 1em; max-width: 1200px; color: #222; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
table.leaderboard { font-size: 0.85em; }
table.leaderboard td { white-space: nowrap; }
table.summary th { text-align: left; background: #f4f4f4; }
table.summary td { text-align: left; white-space: normal; }
.note, .skipped { color: #555; font-style: italic; }
.warning { border: 1px solid #999; background: #eee; padding: 0.5em 1em; }
pre { background: #f4f4f4; padding: 0.5em 1em; overflow-x: auto; max-width: 100%; }
.plot { width: 100%; overflow-x: auto; }
"""


def _figure_html(fig, plot_name):
    """The figure as a div as wide as the page: Optuna sets fixed widths (300 px per slice subplot)."""
    fig = fig.update_layout(width=None, autosize=True)
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{plot_name}",
                      default_width="100%", config={"responsive": True})
    return f'<div class="plot">{div}</div>'


def build_report(run_dir):
    """Write the plots and ``run_dir/report.html``; return the report's path."""
    run_dir = Path(run_dir)
    study = load_study(run_dir)
    search = read_summary(run_dir)
    searched = _saved_config(run_dir)
    figures = make_figures(study)
    write_figures(figures, run_dir / "plots")
    best_json = _read_json(run_dir / BEST / BEST_CONFIG)
    metrics = _read_json(run_dir / BEST / BEST_METRICS)
    running = count_trials(study).running

    name = html.escape(study.study_name)
    dataset = _dataset_label(searched and searched.to_dict(), best_json)
    body = [f"<h1>Search report: {name}</h1>", f"<p>Data: {html.escape(dataset)}. "
            f"Accuracies are on this data's validation split (search) and test split "
            f"(retrain).</p>"]
    if search is None or search.get(FINISHED) is None or running:
        body.append(
            '<p class="warning">This search did not finish (no finish time in its study, or '
            "trials still RUNNING): the numbers below are what the study held when it stopped."
            "</p>"
        )
    body.append("<h2>Summary</h2>")
    body.append(_summary(run_dir, study, search, searched, best_json, metrics))
    body.append(f"<h2>Leaderboard (top {TOP_TRIALS})</h2>")
    board = leaderboard(study)
    accuracy = "{:.4f}".format
    # Ray node ids are 56 hex digits; their first 8 tell the nodes of one cluster apart.
    formatters = {METRIC: accuracy, f"best_{METRIC}": accuracy, "wall_seconds": "{:.0f}".format,
                  "node": lambda node: node[:8] if isinstance(node, str) else ""}
    table = board.to_html(index=False, na_rep="", formatters=formatters,
                          classes="leaderboard", border=0)
    # Headers may break after an underscore (label_smoothing), so that columns are as narrow as their values.
    table = re.sub(r"<th>(.*?)</th>", lambda m: "<th>" + m[1].replace("_", "_<wbr>") + "</th>", table)
    body.append(f'<div class="scroll">{table}</div>')
    body.append("<h2>Plots</h2>")
    for plot_name, fig in figures.items():
        title = html.escape(plot_name.replace("_", " "))
        if isinstance(fig, str):
            body.append(f"<h3>{title}</h3>")
            body.append(f'<p class="skipped">Skipped: {html.escape(fig)}</p>')
        else:
            body.append(f'<h3><a href="plots/{plot_name}.html">{title}</a></h3>')
            body.append(_figure_html(fig, plot_name))
    # The bundle in plots/ (not a CDN) so the report opens offline; one copy serves every page.
    script = f'<script charset="utf-8" src="plots/{PLOTLY_JS}"></script>'
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>Search report: {name}</title>\n{script}\n<style>{STYLE}</style></head>\n"
        f"<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = run_dir / "report.html"
    write_text(path, page)
    return path


def get_args_parser(add_help=True):
    """Command-line flags of the report."""
    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description="Rebuild the plots and report.html of a search's run folder",
        add_help=add_help,
    )
    parser.add_argument("run_dir", type=Path, help="run folder holding study.db, e.g. runs/smoke")
    return parser


def main(args):
    """Build the report for ``args.run_dir`` and print where it is."""
    try:
        path = build_report(args.run_dir)
    except RunFolderError as e:
        # One line and status 2, as argparse gives for bad arguments, without its usage text.
        get_args_parser().exit(2, f"python -m search.report: error: {e}\n")
    print(path)
    return path


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""The protocol's figure: normalised regret (mean ± s.e. band) over trial-epochs and time, and average rank."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from benchmarks.anytime_plot import COLORS, rgba


def protocol_figure(summary: dict, title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=3, subplot_titles=("regret vs trial-epochs", "regret vs simulated time (s)",
                                                        "average rank (1 = best)"))
    for i, (arm, row) in enumerate(summary["arms"].items()):
        color = COLORS[i % len(COLORS)]
        for col, x, mean, se in ((1, summary["grid_epochs"], row["regret_mean"], row["regret_se"]),
                                 (2, summary["grid_seconds"], row["time_regret_mean"], row["time_regret_se"])):
            upper = [m + s for m, s in zip(mean, se)]
            lower = [m - s for m, s in zip(mean, se)]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", line=dict(width=0),
                                     fillcolor=rgba(color, 0.15), hoverinfo="skip", showlegend=False,
                                     legendgroup=arm), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=mean, name=arm, line=dict(color=color), legendgroup=arm,
                                     showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=summary["grid_epochs"], y=row["rank"], name=arm, line=dict(color=color),
                                 legendgroup=arm, showlegend=False), row=1, col=3)
    fig.update_yaxes(type="log", title_text="normalised regret", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="trial-epochs", row=1, col=1)
    fig.update_xaxes(title_text="seconds", row=1, col=2)
    fig.update_xaxes(title_text="trial-epochs", row=1, col=3)
    fig.update_layout(title=title, width=1400, height=520, template="plotly_white")
    return fig


def overview_figure(settings: dict, arms: list[str], title: str) -> go.Figure:
    """Mean regret (± s.e. band) of ``arms``: one row per table, and per worker count a column over trial-epochs
    and one over simulated hours. ``settings``: ``{table name: {W: summary}}``, one budget."""
    names = list(settings)
    workers = sorted({w for by_w in settings.values() for w in by_w})
    titles = [f"{name}, W = {w}: {axis}" for name in names for w in workers
              for axis in ("vs trial-epochs", "vs simulated hours")]
    fig = make_subplots(rows=len(names), cols=2 * len(workers), subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.12)
    for row, name in enumerate(names, 1):
        for j, w in enumerate(workers):
            summary = settings[name].get(w)
            if summary is None:
                continue
            for i, arm in enumerate(arms):
                r = summary["arms"].get(arm)
                if r is None:
                    continue
                color = COLORS[i % len(COLORS)]
                hours = [s / 3600 for s in summary["grid_seconds"]]
                for col, x, mean, se in ((2 * j + 1, summary["grid_epochs"], r["regret_mean"], r["regret_se"]),
                                         (2 * j + 2, hours, r["time_regret_mean"], r["time_regret_se"])):
                    upper = [m + s for m, s in zip(mean, se)]
                    lower = [max(m - s, 1e-4) for m, s in zip(mean, se)]
                    fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", line=dict(width=0),
                                             fillcolor=rgba(color, 0.12), hoverinfo="skip", showlegend=False,
                                             legendgroup=arm), row=row, col=col)
                    fig.add_trace(go.Scatter(x=x, y=mean, name=arm, line=dict(color=color, width=2), legendgroup=arm,
                                             showlegend=row == 1 and col == 1), row=row, col=col)
            for col in (2 * j + 1, 2 * j + 2):
                fig.update_yaxes(type="log", row=row, col=col, title_text="normalised regret" if col == 1 else None)
            fig.update_xaxes(title_text="trial-epochs", row=row, col=2 * j + 1)
            fig.update_xaxes(title_text="simulated hours", row=row, col=2 * j + 2)
    fig.update_layout(title=title, width=1800, height=430 * len(names) + 120, template="plotly_white",
                      legend=dict(orientation="h", y=-0.08))
    fig.update_annotations(font_size=12)
    return fig

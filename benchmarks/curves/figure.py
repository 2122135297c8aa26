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

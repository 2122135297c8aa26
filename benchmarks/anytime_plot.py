"""The anytime-curve figure of the search-efficiency benchmark, and a PNG of it.

One plotly HTML file with two panels, incumbent val_acc against trial-epochs and against wall
time: per arm, the mean across seeds as a line and the min-max across seeds as a band.
``plotly.min.js`` is written beside the HTML, as ``search.report`` does, so it opens offline.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from benchmarks.anytime import CurvePoint, band
from search.plots import write_plotly_bundle
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
AXES = (("epochs", "trial-epochs spent", 1.0), ("seconds", "wall time (min)", 1 / 60))


def rgba(hex_color: str, alpha: float) -> str:
    """A #rrggbb colour as rgba() with ``alpha``: the bands under the curves."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _present(xs, ys):
    pairs = [(x, y) for x, y in zip(xs, ys) if y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def anytime_figure(curves: dict[str, dict[int, list[CurvePoint]]], title: str,
                   target: float | None = None, target_label: str = "") -> go.Figure:
    """``curves[arm][seed]``: each arm's mean line and min-max band, in both panels."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("incumbent vs trial-epochs", "incumbent vs wall time"))
    for i, (arm, by_seed) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        seeds = sorted(by_seed)
        for col, (axis, _, scale) in enumerate(AXES, start=1):
            b = band([by_seed[s] for s in seeds], axis)
            xs = [x * scale for x in b["x"]]
            lo_x, lo = _present(xs, b["lo"])
            hi_x, hi = _present(xs, b["hi"])
            mean_x, mean = _present(xs, b["mean"])
            fig.add_trace(go.Scatter(x=lo_x, y=lo, mode="lines", line=dict(width=0, shape="hv"),
                                     legendgroup=arm, showlegend=False, hoverinfo="skip"), row=1, col=col)
            fig.add_trace(go.Scatter(x=hi_x, y=hi, mode="lines", line=dict(width=0, shape="hv"),
                                     fill="tonexty", fillcolor=rgba(color, 0.18), legendgroup=arm,
                                     showlegend=False, hoverinfo="skip"), row=1, col=col)
            fig.add_trace(go.Scatter(
                x=mean_x, y=mean, mode="lines", line=dict(color=color, width=2.5, shape="hv"),
                name=f"{arm} (mean of {len(seeds)} seeds, band min-max)", legendgroup=arm, showlegend=col == 1,
                hovertemplate=f"{arm}<br>%{{x:.4g}}<br>val_acc %{{y:.4f}}<extra></extra>"), row=1, col=col)
    if target is not None:
        line = dict(color="grey", dash="dash", width=1)
        fig.add_hline(y=target, line=line, row=1, col=1, annotation_text=target_label,
                      annotation_position="bottom right")
        fig.add_hline(y=target, line=line, row=1, col=2)
    for col, (_, label, _) in enumerate(AXES, start=1):
        fig.update_xaxes(title_text=label, rangemode="tozero", row=1, col=col)
    fig.update_yaxes(title_text="best val_acc of trials that ran every epoch", row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", width=1400, height=560,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig


def write_figure(fig: go.Figure, path: Path) -> Path:
    """``path`` (HTML) with ``plotly.min.js`` beside it, so it opens offline."""
    path = Path(path)
    write_plotly_bundle(path.parent)
    fig.write_html(path, include_plotlyjs="directory", full_html=True)
    return path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, size: tuple[int, int] = (1400, 600)) -> Path:
    """Render ``html`` in headless Chromium to ``png``; no network, as in tests/test_report.py."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("chromium not installed: apt-get install chromium")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        # The resolver rule makes every host name fail: a page that needed a CDN would not draw.
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=10000", "--hide-scrollbars", f"--screenshot={png}",
            f"--window-size={size[0]},{size[1]}", Path(html).resolve().as_uri(),
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium could not render {html}: {proc.stderr[-1000:]}")
    return png

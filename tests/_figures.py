"""The figures a report or plot page draws, read back from its HTML: what the report tests assert on."""

import base64
import json
import re
from pathlib import Path

import numpy as np


def _array(value):
    """A trace's x or y as a list, whether plotly wrote it plain or base64-packed."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def _figures(page):
    """Every figure a page draws with Plotly.newPlot, as {div id: {"data", "layout"}}."""
    decoder = json.JSONDecoder()
    figures = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, m.end())
        end += re.match(r"\s*,\s*", page[end:]).end()
        layout, _ = decoder.raw_decode(page, end)
        figures[m.group(1)] = {"data": data, "layout": layout}
    return figures


def _only_figure(path):
    (figure,) = _figures(Path(path).read_text()).values()
    return figure

"""A tuning table of any known format, read by its own adapter: chosen by the file's content, never its suffix.

Each adapter turns one run into a ``table.Curve``: the config (``params``), a curve of (resource,
metric) points (``resource``, ``val_acc``, and ``seconds`` per report), the planned resource
(``planned`` reports) and whether it diverged. The formats:

- ``csv``: the project's learning-curve table (``table.py``, ``# `` header lines then a
  ``config_id,...`` row). A report is an epoch; every run plans the table's last epoch; the
  metric is val_acc; seconds are the recorded wall time; a run diverged when its loss went NaN.
- ``opda-epochs``: opda's training-from-scratch JSON Lines (``opda.py``, its AlexNet table: a
  ``learning_curve`` list of per-epoch points). A report is an epoch; a run plans its ``epochs``;
  the metric is top-1; seconds are the recorded time; diverged: ``nan_train_loss``.
- ``opda-steps``: opda's fine-tuning JSON Lines (``opda_steps.py``, its DeBERTa tables:
  ``learning_curves`` of [step, accuracy] per validation set, ``total_model_steps``). The resource
  is optimizer steps, a report every 1,000; a run plans floor(examples x epochs / batch size)
  steps; the metric is the matched-set accuracy; time is proportional to the examples seen;
  diverged: it ended near chance.

In every format a full trial, the budget's unit, is the longest planned run in the table
(``Recorded.max_t`` reports). The attribution printed beside a table's numbers is read from the
``LICENSE`` beside the file (and the repository named in its ``SOURCE.md``), never written here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.curves import opda, opda_steps
from benchmarks.curves.table import Curve, Table, read_table

FORMATS = ("csv", "opda-epochs", "opda-steps")
LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt")


@dataclass
class Recorded:
    """One table, read: its runs as curves, its space, a full trial's reports, and what a proposal would plan."""

    path: str
    format: str  # one of FORMATS
    curves: list[Curve]
    distributions: dict  # the recorded space (optuna distributions)
    max_t: int  # reports of a full trial: the longest planned run
    full: float  # resource of a full trial (the budget's unit): max_t, or less where its last report is short
    unit: str  # what one report is, for the report's text
    source: str  # the attribution line
    points: Callable[[dict], list[float]]  # a config's resource at each of its planned reports
    # A config's seconds per report where the format computes time from the config, else None (recorded seconds).
    seconds: Callable[[dict], list[float]] | None = None
    table: Table | None = field(default=None, repr=False)  # the project's CSV, for its space and budget plan

    def planned(self, params: dict) -> int:
        """The reports a run of ``params`` plans, at most a full trial."""
        return min(len(self.points(params)), self.max_t)


def detect(path: str | Path) -> str:
    """The format of the file at ``path``, from its first line that is not blank."""
    with open(path) as f:
        first = next((line.strip() for line in f if line.strip()), "")
    if first.startswith("#") or first.startswith("config_id,"):
        return "csv"
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        record = None
    if isinstance(record, dict):
        if opda.matches(record):
            return "opda-epochs"
        if opda_steps.matches(record):
            return "opda-steps"
    raise ValueError(f"{path}: not a table of a known format ({', '.join(FORMATS)}): its first line starts "
                     f"{first[:60]!r}")


def attribution(path: str | Path, fallback: str) -> str:
    """"<work> © <year> by <author> (<repository>), <license>" from the LICENSE and SOURCE.md beside ``path``.

    The LICENSE's first sentence, "X is licensed under Y.", gives X and Y; SOURCE.md's first
    "repository `owner/name`" gives the address. Without a LICENSE: ``fallback``.
    """
    folder = Path(path).resolve().parent
    lic = next((folder / n for n in LICENSE_NAMES if (folder / n).is_file()), None)
    if lic is None:
        return fallback
    text = " ".join(lic.read_text().split())
    m = re.match(r"(?P<work>.+?) is licensed under (?P<license>.+?)\.(\s|$)", text)
    if not m:
        return f"{fallback}; license: {text[:200]}"
    repo = ""
    source = folder / "SOURCE.md"
    if source.is_file():
        r = re.search(r"repository `([\w.-]+/[\w.-]+)`", source.read_text())
        repo = f" (https://github.com/{r.group(1)})" if r else ""
    return f"{m['work']}{repo}, {m['license']}"


def _csv_fallback(table: Table) -> str:
    data = next((line for line in table.header if line.startswith("data: ")), "")
    return "the project's recorded table" + (f" ({data.split(';')[0]})" if data else "")


def read(path: str | Path) -> Recorded:
    """The table at ``path``, read by the adapter of its format (``detect``)."""
    kind = detect(path)
    if kind == "csv":
        table = read_table(path)
        max_t = max(r["epoch"] for r in table.rows)
        # A run cut short by the recording (not diverged, fewer epochs) is not a run the table planned.
        curves = [c for c in table.curves() if len(c.val_acc) == max_t or c.diverged]
        for c in curves:
            c.planned = max_t
        return Recorded(str(path), kind, curves, opda.infer_distributions(curves, known={}), max_t, max_t, "epoch",
                        attribution(path, _csv_fallback(table)), lambda params: [float(e) for e in range(1, max_t + 1)],
                        table=table)
    if kind == "opda-epochs":
        curves, distributions = opda.read_opda(path)
        if opda.EPOCHS in distributions:
            max_t = int(distributions[opda.EPOCHS].high)
        else:
            max_t = max(len(c.val_acc) for c in curves if not c.diverged)

        def points(params: dict) -> list[float]:
            return [float(e) for e in range(1, int(params.get(opda.EPOCHS, max_t)) + 1)]

        return Recorded(str(path), kind, curves, distributions, max_t, max_t, "epoch",
                        attribution(path, "an opda-format jsonl (no LICENSE beside it)"), points)
    curves, plan = opda_steps.read_curves(path)
    distributions = opda.infer_distributions(curves, known=opda_steps.DEBERTA_SPACE)
    longest = max(curves, key=lambda c: plan.steps(c.params))
    return Recorded(str(path), kind, curves, distributions, longest.planned, plan.points(longest.params)[-1],
                    f"{plan.interval:,} optimizer steps", attribution(path, "an opda-format jsonl (no LICENSE beside it)"),
                    plan.points, plan.seconds)

"""The learning-curve table: one CSV row per (config, epoch), ``#`` lines on top saying how it was made."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

# The recorded space's parameters (scratch's), in the table's column order.
PARAM_COLUMNS = ["arch", "lr", "weight_decay", "batch_size", "schedule", "optimizer", "label_smoothing", "augment"]
RECORD_COLUMNS = ["config_id", *PARAM_COLUMNS, "epoch", "val_acc", "val_loss", "train_loss", "seconds", "status"]
_FLOATS = {"lr", "weight_decay", "label_smoothing", "val_acc", "val_loss", "train_loss", "seconds"}
_INTS = {"config_id", "batch_size", "epoch"}


@dataclass
class Curve:
    """One run of a config: its parameters and, per report (an epoch, or a table's own unit), the metric and seconds.

    Every table format's adapter gives these: ``formats.py`` says what a report is in each.
    """

    config_id: int
    params: dict
    val_acc: list[float] = field(default_factory=list)  # the metric after each report, higher is better
    seconds: list[float] = field(default_factory=list)  # time each report took
    diverged: bool = False  # the run failed at its last report (a non-finite loss, or a format's own rule)
    # The resource spent by the end of each report, in reports (None: 1, 2, 3, ...); a run whose planned steps end
    # between two evaluations has a shorter last report, e.g. 7.012 for 7,012 steps evaluated every 1,000.
    resource: list[float] | None = None
    planned: int | None = None  # the reports the run was to make (None: the simulator's rule, see simulate.py)
    # The noise-free metric where val_acc has noise added (the protocol's nearest mode with --noise): a search sees
    # val_acc, and its regret is measured on this.
    truth: list[float] | None = None

    def cost(self, report: int) -> float:
        """The resource report ``report`` (1-based) took: 1 unless ``resource`` says less."""
        if self.resource is None:
            return 1.0
        return self.resource[report - 1] - (self.resource[report - 2] if report > 1 else 0.0)


@dataclass
class Table:
    header: list[str]
    rows: list[dict]

    def train_images(self) -> int:
        """The training images per epoch the table was recorded on: its header's ``train_subset N``.

        Without a subset, CIFAR-10's 50,000 training images less the validation split.
        """
        for line in self.header:
            m = re.search(r"\btrain_subset (\d+|None), val_size (\d+)", line)
            if m:
                return 50_000 - int(m.group(2)) if m.group(1) == "None" else int(m.group(1))
        raise ValueError("the table's header does not say its train_subset; pass --train-images")

    def curves(self) -> list[Curve]:
        """The configs, by id, each with its rows in epoch order."""
        by_id: dict[int, Curve] = {}
        for r in sorted(self.rows, key=lambda r: (r["config_id"], r["epoch"])):
            c = by_id.get(r["config_id"])
            if c is None:
                params = {k: r[k] for k in PARAM_COLUMNS if r.get(k) not in ("", None)}
                c = by_id[r["config_id"]] = Curve(r["config_id"], params)
            c.val_acc.append(r["val_acc"])
            c.seconds.append(r["seconds"])
            c.diverged = c.diverged or r["status"] == "diverged"
        return list(by_id.values())


def _convert(key: str, value: str):
    if value == "":
        return value
    if key in _INTS:
        return int(value)
    if key in _FLOATS:
        return float(value)
    return value


def read_table(path: str | Path) -> Table:
    header, body = [], []
    with open(path, newline="") as f:
        for line in f:
            if line.startswith("#"):
                header.append(line[1:].strip())
            else:
                body.append(line)
    rows = [{k: _convert(k, v) for k, v in r.items()} for r in csv.DictReader(body)]
    return Table(header, rows)

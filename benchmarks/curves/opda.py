"""Learning curves in opda's JSON Lines format, as ``Curve`` objects, and the search space they were sampled from.

opda (Optimal Design Analysis, https://github.com/nicholaslourie/opda) publishes random-search
results one run per line: ``iteration``, ``nan_train_loss``, the hyperparameters, and a
``learning_curve`` with, after each epoch, the seconds since the start of training (``time``),
the 0-indexed ``epoch``, ``top_1``, ``top_5`` and ``train_loss``. Its AlexNet data ("AlexNet
Hyperparameter Tuning Data © 2025 by Nicholas Lourie", CC BY-SA 4.0) lives outside this
repository, in ``../shared/data/opda-alexnet/``; read it by path, never copy it here.

How a run diverged shows in that file: ``nan_train_loss`` is true and the learning curve stops
at the last epoch whose loss was finite; the epoch in which the loss went NaN is not recorded
(147 of the 512 AlexNet runs, 49 of them with no epoch at all). The project's trainer records
that epoch instead (``model/train.py``: val_acc 0.0, ``diverged``), and the simulator reports
divergence at a curve's last epoch, so ``read_curves`` appends it the same way (see there).
Many runs whose loss stayed finite still collapsed to chance (top-1 0.001 on ImageNet's 1,000
classes: 171 of the 365); they are ordinary curves here, as they are for a searcher.

A report is an epoch; a run plans ``epochs`` of them (``Curve.planned``). The attribution line
of a file is read from the LICENSE beside it (``formats.attribution``).

Example::

    python -c "from benchmarks.curves import opda; \\
        c, d = opda.read_opda('../shared/data/opda-alexnet/alexnet_tuning.results.jsonl'); \\
        print(len(c), sum(x.diverged for x in c), d)"
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from benchmarks.curves.table import Curve

# The keys of a line that are not hyperparameters; every other key is one.
NON_PARAMS = ("iteration", "nan_train_loss", "learning_curve")
EPOCHS = "epochs"  # the hyperparameter that sets a run's length: its planned reports, one per epoch


def matches(record: dict) -> bool:
    """Whether a parsed line is in this format: a ``learning_curve`` list of per-epoch points."""
    curve = record.get("learning_curve")
    return isinstance(curve, list) and all(isinstance(p, dict) and "epoch" in p for p in curve)


# opda's AlexNet tuning space, from its data README (data/alexnet/README.md). ``lr_peak_epoch``
# is the file's value, the 0-indexed epoch at which the lr peaks, floor(p * epochs) with
# p ~ U(0, 0.8): at most floor(0.8 * 100) = 80. Its real bound, 0.8 * epochs, depends on
# ``epochs``; a box cannot say that, so a searcher may propose a peak later than any recorded run.
OPDA_ALEXNET_SPACE = {
    "epochs": IntDistribution(20, 100),
    "batch_size": CategoricalDistribution([128, 256, 512, 1024]),
    "lr": FloatDistribution(5e-3, 5e1, log=True),
    "lr_peak_epoch": IntDistribution(0, 80),
    "momentum": FloatDistribution(0.7, 1.0),
    "weight_decay": FloatDistribution(1e-6, 1e-3, log=True),
    "label_smoothing": FloatDistribution(0.0, 0.5),
}

# An integer parameter with at most this many distinct values is a set of choices (batch sizes).
_MAX_INT_CHOICES = 8


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def read_curves(path: str | Path, metric: str = "top_1", nan_epoch: bool = True) -> list[Curve]:
    """One ``Curve`` per line: params keyed by the file's names, val_acc = ``metric``, seconds per epoch.

    ``config_id`` is the line's ``iteration`` (its 1-based line number without one); params are
    every key but ``NON_PARAMS``, with the file's values (``lr_peak_epoch`` stays the epoch, not
    the proportion). Seconds per epoch are the differences of the cumulative ``time``.

    A run with ``nan_train_loss`` is ``diverged``. With ``nan_epoch`` (the default) its curve ends
    with the epoch whose loss went NaN, as the project's trainer records one: val_acc 0.0, and,
    since the file has no time for it, the run's median epoch seconds, or for a run that recorded
    no epoch the median first-epoch seconds of the file's runs with its ``batch_size``. A
    recorded epoch with a non-finite ``train_loss`` (a file that keeps the NaN epoch) is taken
    as that epoch instead, and the curve ends there.
    """
    runs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                runs.append((number, json.loads(line)))
    curves = []
    for number, run in runs:
        params = {k: v for k, v in run.items() if k not in NON_PARAMS}
        curve = Curve(int(run.get("iteration", number)), params, diverged=bool(run.get("nan_train_loss", False)),
                      planned=int(run[EPOCHS]) if EPOCHS in run else None)
        clock = 0.0
        for point in run.get("learning_curve", []):
            curve.seconds.append(float(point["time"]) - clock)
            clock = float(point["time"])
            if not _finite(point.get("train_loss", 0.0)):
                curve.val_acc.append(0.0)
                curve.diverged = True
                break
            curve.val_acc.append(float(point[metric]))
        else:
            if curve.diverged and nan_epoch:
                curve.val_acc.append(0.0)
                curve.seconds.append(statistics.median(curve.seconds) if curve.seconds else math.nan)
        curves.append(curve)
    _fill_first_epoch_seconds(curves)
    return curves


def _fill_first_epoch_seconds(curves: list[Curve]) -> None:
    # A run that diverged in its first epoch has no recorded time; epoch time depends mostly on
    # the batch size, so borrow the median first epoch of the runs that share it.
    for c in curves:
        if c.seconds and math.isnan(c.seconds[0]):
            peers = [o.seconds[0] for o in curves if o.seconds and not math.isnan(o.seconds[0])
                     and o.params.get("batch_size") == c.params.get("batch_size")]
            peers = peers or [o.seconds[0] for o in curves if o.seconds and not math.isnan(o.seconds[0])]
            c.seconds[0] = statistics.median(peers) if peers else 0.0


def _looks_log(values: list[float]) -> bool:
    """Whether positive values look uniform on a log scale rather than a linear one.

    Their median sits near the middle of the range on the scale they were sampled on; the
    ratio of the range alone cannot tell (U(0, 0.5) draws span three decades just as well).
    """
    lo, hi, mid = min(values), max(values), statistics.median(values)
    if lo <= 0 or hi <= lo:
        return False
    linear = abs((mid - lo) / (hi - lo) - 0.5)
    log = abs(math.log(mid / lo) / math.log(hi / lo) - 0.5)
    return log < linear


def infer_distributions(curves: list[Curve], known: dict | None = None) -> dict:
    """Each parameter's optuna distribution: ``known``'s where it holds every value, else the data's range.

    ``known`` defaults to ``OPDA_ALEXNET_SPACE``. From the data: strings and booleans, and
    integers with at most 8 distinct values, are categorical (sorted choices); other integers
    an ``IntDistribution`` over their range; floats a ``FloatDistribution`` over their range,
    log-scaled when they look log-uniform (``_looks_log``).
    """
    known = OPDA_ALEXNET_SPACE if known is None else known
    names: list[str] = []
    for c in curves:
        names += [k for k in c.params if k not in names]
    out = {}
    for name in names:
        values = [c.params[name] for c in curves if name in c.params]
        d = known.get(name)
        if d is not None and all(_contains(d, v) for v in values):
            out[name] = d
        elif all(isinstance(v, (str, bool)) for v in values) or (
                all(isinstance(v, int) for v in values) and len(set(values)) <= _MAX_INT_CHOICES):
            out[name] = CategoricalDistribution(sorted(set(values)))
        elif all(isinstance(v, int) for v in values):
            out[name] = IntDistribution(min(values), max(values))
        else:
            floats = [float(v) for v in values]
            out[name] = FloatDistribution(min(floats), max(floats), log=_looks_log(floats))
    return out


def _contains(d, value) -> bool:
    if isinstance(d, CategoricalDistribution):
        return value in d.choices
    if isinstance(value, (str, bool)) or (isinstance(d, IntDistribution) and value != int(value)):
        return False
    return d.low <= value <= d.high


def read_opda(path: str | Path, known: dict | None = None, **kwargs) -> tuple[list[Curve], dict]:
    """The file's curves (``read_curves``) and its space (``infer_distributions``)."""
    curves = read_curves(path, **kwargs)
    return curves, infer_distributions(curves, known)


def suggest(trial: optuna.Trial, distributions: dict) -> dict:
    """Ask the trial for each parameter of ``distributions``, in their order; returns the values."""
    out = {}
    for name, d in distributions.items():
        if isinstance(d, CategoricalDistribution):
            out[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            out[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    return out


def make_space(distributions: dict):
    """A define-by-run space that asks exactly ``distributions`` (a file's ``infer_distributions``)."""

    def space(trial: optuna.Trial) -> None:
        suggest(trial, distributions)

    return space


def space(trial: optuna.Trial) -> None:
    """opda's AlexNet tuning space, ``OPDA_ALEXNET_SPACE``: the box its README samples from."""
    suggest(trial, OPDA_ALEXNET_SPACE)

"""Anytime curves of a search: the incumbent val_acc against trial-epochs spent and wall time.

A search's epoch events are the lines of Tune's ``OUT/tune/<trial>/result.json``, one per
reported epoch. Sorted by time, the k-th event is the k-th trial-epoch the search spent. The
incumbent is the best val_acc among trials that ran every epoch: it can change only when a
trial reports its ``max_epochs``-th epoch, so a trial that ASHA stopped (PRUNED in the study)
never becomes the incumbent, however well it did early. That is the same rule as the study's
COMPLETE trials, whose value is their last epoch's val_acc.

Everything here is plain arithmetic on lists, so the tests need no Ray.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EpochEvent:
    """One epoch a trial reported."""

    time: float  # seconds since the epoch (unix time) when Tune received it
    trial: str  # Tune's trial id
    epoch: int  # training_iteration: 1 for the first epoch
    val_acc: float
    diverged: bool = False


@dataclass(frozen=True)
class CurvePoint:
    """The search's state right after one epoch event."""

    epochs: int  # trial-epochs spent so far, this event included
    seconds: float  # since the search started
    best: float | None  # the incumbent; None until a trial has run every epoch
    trial: str
    epoch: int


# ---------------------------------------------------------------------------------------------
# Reading Tune's result.json files


def event_times(rows: list[dict]) -> list[float]:
    """Times of one trial's results, finer than Tune's whole-second ``timestamp``.

    Ray fills ``timestamp`` with ``int(time.time())`` unless the trial reports its own, so two
    trials' epochs often share a second. ``time_total_s`` is the trial's own float clock: within
    a run of the trial (up to a restore, where ``iterations_since_restore`` starts again at 1)
    ``timestamp - time_total_s`` is its start, truncated down by less than a second; the largest
    one is the closest. Start + ``time_total_s`` is then never earlier than ``timestamp`` and less
    than a second off.
    """
    if any(isinstance(r.get("timestamp"), float) and not float(r["timestamp"]).is_integer() for r in rows):
        return [float(r["timestamp"]) for r in rows]  # the trial reported precise times itself
    segments: list[list[int]] = []
    for i, r in enumerate(rows):
        if not segments or r.get("iterations_since_restore") == 1:
            segments.append([])
        segments[-1].append(i)
    times = [float(r["timestamp"]) for r in rows]
    for segment in segments:
        timed = [i for i in segment if rows[i].get("time_total_s") is not None]
        if not timed:
            continue
        start = max(rows[i]["timestamp"] - rows[i]["time_total_s"] for i in timed)
        for i in timed:
            times[i] = start + rows[i]["time_total_s"]
    return times


def read_result_json(path: Path) -> list[dict]:
    """The results of one trial; a line cut off by an interrupted run is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("training_iteration") is not None and row.get("timestamp") is not None:
            rows.append(row)
    return rows


def read_events(experiment_dir: Path, metric: str = "val_acc") -> list[EpochEvent]:
    """Every epoch event of a Tune experiment folder (``OUT/tune``)."""
    events = []
    for path in sorted(Path(experiment_dir).glob("*/result.json")):
        rows = read_result_json(path)
        for row, t in zip(rows, event_times(rows)):
            value = row.get(metric)
            events.append(EpochEvent(
                time=t,
                trial=str(row.get("trial_id", path.parent.name)),
                epoch=int(row["training_iteration"]),
                val_acc=float("nan") if value is None else float(value),
                diverged=bool(row.get("diverged", False)),
            ))
    return events


# ---------------------------------------------------------------------------------------------
# Curves


def anytime_curve(events: list[EpochEvent], max_epochs: int, start: float | None = None) -> list[CurvePoint]:
    """One point per epoch event, in time order: trial-epochs so far, seconds, incumbent.

    An epoch reported twice (a trial re-run from an older checkpoint after a crash) counts
    once, at its first report, as in the study. Events at the same time are ordered by trial
    id and epoch, so the result does not depend on the order of ``events``. ``start`` (unix
    time) is the zero of ``seconds``; default: the first event's time.
    """
    seen: set[tuple[str, int]] = set()
    ordered = []
    for e in sorted(events, key=lambda e: (e.time, e.trial, e.epoch)):
        if (e.trial, e.epoch) not in seen:
            seen.add((e.trial, e.epoch))
            ordered.append(e)
    if start is None:
        start = ordered[0].time if ordered else 0.0
    curve, best = [], None
    for k, e in enumerate(ordered, start=1):
        if e.epoch >= max_epochs and not e.diverged and math.isfinite(e.val_acc):
            best = e.val_acc if best is None else max(best, e.val_acc)
        curve.append(CurvePoint(epochs=k, seconds=e.time - start, best=best, trial=e.trial, epoch=e.epoch))
    return curve


def final_best(curve: list[CurvePoint]) -> float | None:
    return curve[-1].best if curve else None


def first_reach(curve: list[CurvePoint], target: float | None) -> CurvePoint | None:
    """The first point whose incumbent is at least ``target`` (a tie counts); None: never."""
    if target is None:
        return None
    return next((p for p in curve if p.best is not None and p.best >= target), None)


def step_value(curve: list[CurvePoint], x: float, axis: str = "epochs") -> float | None:
    """The incumbent at ``x`` on the given axis (``epochs`` or ``seconds``): a step function.

    After the curve's last point the incumbent stays (the search spent nothing more).
    """
    value = None
    for p in curve:
        if getattr(p, axis) > x:
            break
        value = p.best
    return value


def band(curves: list[list[CurvePoint]], axis: str = "epochs") -> dict[str, list]:
    """Mean, sd, min and max of the incumbent across seeds, at every x where one of them steps.

    ``mean``/``sd``/``lo``/``hi`` are None at an x where some seed has no incumbent yet, so the
    mean never jumps because a seed joins it.
    """
    xs = sorted({getattr(p, axis) for curve in curves for p in curve})
    out: dict[str, list] = {"x": xs, "mean": [], "sd": [], "lo": [], "hi": []}
    for x in xs:
        values = [step_value(curve, x, axis) for curve in curves]
        complete = curves and all(v is not None for v in values)
        out["mean"].append(statistics.fmean(values) if complete else None)
        out["sd"].append(statistics.stdev(values) if complete and len(values) > 1 else None)
        out["lo"].append(min(values) if complete else None)
        out["hi"].append(max(values) if complete else None)
    return out


def mean_sd(values: list[float | None]) -> dict:
    """Mean and sample sd of the values that are not None, and how many there were."""
    present = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(present) if present else None,
        "sd": statistics.stdev(present) if len(present) > 1 else None,
        "n": len(present),
        "of": len(values),
        "values": values,
    }

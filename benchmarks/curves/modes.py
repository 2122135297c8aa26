"""The protocol's two modes: how a proposed config gets its curve.

- ``surrogate``: ``SurrogateAnswer``, the curve ``surrogate.CurveSurrogate`` predicts for the
  config itself, at the length its config plans (``formats.Recorded.points``), with the time the
  format computes for it where the format has no recorded seconds (opda's DeBERTa table);
- ``nearest``: ``NearestAnswer``, the recorded run nearest to the config, whole: its curve, its
  planned length and its time, as tabular benchmarks (NAS-Bench, LCBench) are used. A smooth,
  noise-free surrogate can be exploited by a method that follows its smoothness; a recorded
  run cannot. Optionally with noise: one Gaussian offset per trial added to its whole curve,
  its standard deviation set by ``--noise`` (``noise_of``: the surrogate's held-out error of the
  final metric, where asked). The search sees the noisy curve; the regret is that of the
  incumbent's recorded, noise-free value (``Curve.truth``).

A claim of the protocol counts only where it holds in both modes.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from benchmarks.curves.simulate import NearestCurve
from benchmarks.curves.table import Curve

MODES = ("surrogate", "nearest")


class SurrogateAnswer:
    """The surrogate's predicted curve, with the plan and, where the format computes it, the time of the config."""

    def __init__(self, model, recorded) -> None:
        self.model, self.recorded = model, recorded

    def lookup(self, params: dict) -> tuple[Curve, int, float]:
        curve, mismatch, distance = self.model.lookup(params)
        n = len(curve.val_acc)
        points = self.recorded.points(params)
        curve = replace(curve, planned=self.recorded.planned(params), resource=points[:n])
        if self.recorded.seconds is not None:
            curve.seconds = self.recorded.seconds(params)[:n]
        return curve, mismatch, distance


class NearestAnswer:
    """The nearest recorded run (``NearestCurve``), whole; with ``noise`` > 0, one N(0, noise) offset per trial."""

    def __init__(self, curves: list[Curve], distributions: dict, *, noise: float = 0.0, seed: int = 0) -> None:
        self.nearest = NearestCurve(curves, distributions)
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def lookup(self, params: dict) -> tuple[Curve, int, float]:
        curve, mismatch, distance = self.nearest.lookup(params)
        if self.noise > 0:
            # Drawn in the order the simulator asks, so one seed gives one run; a diverged run's last report keeps
            # its value, the mark of its divergence.
            offset = float(self.rng.normal(0.0, self.noise))
            acc = [min(1.0, max(0.0, a + offset)) for a in curve.val_acc]
            if curve.diverged:
                acc[-1] = curve.val_acc[-1]
            curve = replace(curve, val_acc=acc, truth=curve.val_acc)
        return curve, mismatch, distance


def answer(mode: str, bed, *, seed: int = 0, noise: float = 0.0):
    """The lookup of ``mode`` on testbed ``bed``; ``seed`` seeds the nearest mode's noise."""
    if mode == "surrogate":
        return bed.lookup
    if mode == "nearest":
        return NearestAnswer(bed.curves, bed.distributions, noise=noise, seed=seed)
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")


def noise_of(bed, folds: int = 5) -> float:
    """The surrogate's held-out error as a Gaussian's standard deviation: its k-fold mean absolute error of the final
    metric of completed runs (settings as fitted on the whole table), times sqrt(pi / 2)."""
    from benchmarks.curves.surrogate import cross_validate

    scores = cross_validate(bed.curves, bed.distributions, bed.lookup.model.settings, folds=folds,
                            points=bed.recorded.points if bed.recorded else None)
    return scores["surrogate"]["final_mae_if_not_diverged"] * math.sqrt(math.pi / 2)

"""A learning-curve surrogate: the curve a config would have, predicted from its recorded neighbours.

``NearestCurve`` replays the one recorded config nearest to a proposal; in a space as thinly
covered as opda's AlexNet table (512 configs in 7 dimensions) that is rarely the proposal's
own curve. As YAHPO Gym and HPOBench do, ``CurveSurrogate`` predicts one instead, here with a
distance-weighted k-nearest-neighbour model in numpy:

- inputs normalised to [0, 1] per parameter (log scale for log distributions), times a
  per-parameter scale; a categorical mismatch adds ``categorical_weight`` x its scale² to the
  squared distance;
- the curve: the weighted mean of the ``k`` nearest non-diverged curves, on the fraction of the
  run when the space has an ``epochs`` parameter (each config has its own length; the query's
  curve has its ``epochs``), else per epoch;
- divergence, its own outcome: the weighted share of diverged runs among the ``k_div`` nearest
  configs; above one half, the curve ends at the diverged neighbours' mean point of divergence
  with val_acc 0.0, as the trainer records a non-finite epoch;
- seconds per epoch: the neighbours' seconds of the same epoch.

``tune`` picks the settings by leave-one-out on the recorded configs (``CurveSurrogate.fit``
does both). Deterministic: ties go to the earlier recorded config and nothing is drawn at
random; a config at distance 0 from a recorded one gets that config's curve.

``validate`` cross-validates it against ``NearestCurve`` on held-out configs, tuning on each
training split only. Example::

    python -m benchmarks.curves.surrogate validate \\
        --table ../shared/data/opda-alexnet/alexnet_tuning.results.jsonl --folds 5 --json runs/surrogate-opda.json

It prints, beside the overall Spearman ρ, the ρ and error within the top quartile of the
held-out completed runs. Any table of a known format is read by its adapter (``formats.py``),
and the data's attribution is printed from the LICENSE beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import optuna

from benchmarks.curves.stats import ranks
from benchmarks.curves.table import Curve

_EXACT = 1e-12  # a distance this small is the recorded config itself


@dataclass(frozen=True)
class Settings:
    """The surrogate's knobs. ``scales``: (parameter, multiplier) pairs; a parameter not named has 1.

    The defaults are a neutral start; ``tune`` (``CurveSurrogate.fit``) picks a table's own.
    """

    k: int = 8  # neighbours averaged for the curve
    k_div: int = 8  # neighbours voting on divergence
    power: float = 1.0  # weight 1 / distance ** power (0: a plain mean)
    categorical_weight: float = 0.25  # squared distance of one categorical mismatch (a numeric one spans 0..1)
    scales: tuple = ()

    def scale(self, name: str) -> float:
        return dict(self.scales).get(name, 1.0)


class _Encoder:
    """Parameters as numeric coordinates in [0, 1] and categorical codes."""

    def __init__(self, distributions: dict) -> None:
        self.distributions = distributions
        categorical = optuna.distributions.CategoricalDistribution
        self.num = [n for n, d in distributions.items() if not isinstance(d, categorical)]
        self.cat = [n for n in distributions if n not in self.num]
        self._choices = {n: [str(c) for c in distributions[n].choices] for n in self.cat}

    def encode(self, params: dict, recorded: bool) -> tuple[np.ndarray, np.ndarray]:
        """What ``params`` lacks: a recorded config sits at 0.5 and mismatches every choice, as in
        ``NearestCurve``; a query gets NaN / -1 and is not compared on it."""
        nums, cats = [], []
        for name in self.num:
            d = self.distributions[name]
            if name not in params:
                nums.append(0.5 if recorded else math.nan)
                continue
            lo, hi, x = float(d.low), float(d.high), float(params[name])
            if d.log:
                lo, hi, x = math.log(lo), math.log(hi), math.log(x)
            nums.append((x - lo) / (hi - lo) if hi > lo else 0.0)
        for name in self.cat:
            if name not in params:
                cats.append(-2 if recorded else -1)
            else:
                v = str(params[name])
                cats.append(self._choices[name].index(v) if v in self._choices[name] else -3)
        return np.array(nums, dtype=float), np.array(cats, dtype=int)

    def matrix(self, curves: list[Curve]) -> tuple[np.ndarray, np.ndarray]:
        enc = [self.encode(c.params, recorded=True) for c in curves]
        return (np.array([e[0] for e in enc], dtype=float).reshape(len(curves), len(self.num)),
                np.array([e[1] for e in enc], dtype=int).reshape(len(curves), len(self.cat)))

    def weights(self, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
        """Per numeric and per categorical parameter, the factor of its squared difference / mismatch."""
        return (np.array([settings.scale(n) ** 2 for n in self.num]),
                np.array([settings.categorical_weight * settings.scale(n) ** 2 for n in self.cat]))


def _weights(d2: np.ndarray, power: float) -> np.ndarray:
    """Inverse-distance weights of neighbours sorted nearest first; an exact match takes all the weight."""
    d = np.sqrt(d2)
    if d[0] <= _EXACT:
        return (d <= _EXACT).astype(float)
    return d ** -power


class CurveSurrogate:
    """Predicts a config's curve from ``curves`` recorded in the space of ``distributions``.

    ``points``: a config's resource at each of its planned reports (``formats.Recorded.points``),
    when runs differ in length; curves are then averaged on the fraction of the run's resource.
    Without it, ``epochs_param``, the parameter that sets a run's length in epochs, if the space has it.
    """

    def __init__(self, curves: list[Curve], distributions: dict, settings: Settings | None = None, *,
                 epochs_param: str = "epochs", points=None) -> None:
        if all(c.diverged for c in curves):
            raise ValueError("a surrogate needs at least one curve that did not diverge")
        self.curves = curves
        self.distributions = distributions
        self.settings = settings or Settings()
        self.epochs_param = epochs_param if epochs_param in distributions else None
        self.points = points
        self._enc = _Encoder(distributions)
        self._x, self._c = self._enc.matrix(curves)
        self._wx, self._wc = self._enc.weights(self.settings)
        self._diverged = np.array([c.diverged for c in curves])
        self._ok = np.flatnonzero(~self._diverged)
        # Recorded val_acc without the diverged epoch (the trainer's 0.0), and each run's length.
        self._acc = [np.array(c.val_acc[:-1] if c.diverged else c.val_acc, dtype=float) for c in curves]
        self._sec = [np.array(c.seconds, dtype=float) for c in curves]
        plans = [self._plan(c.params) for c in curves]
        self._length = [None if p is None else float(p[-1]) for p in plans]  # a run's planned resource
        self._resource = [np.array(c.resource if c.resource is not None else range(1, len(c.val_acc) + 1), dtype=float)
                          for c in curves]

    @classmethod
    def fit(cls, curves: list[Curve], distributions: dict, **kwargs) -> CurveSurrogate:
        """A surrogate with the settings ``tune`` picks on ``curves``."""
        return cls(curves, distributions, tune(curves, distributions), **kwargs)

    def _distances(self, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per recorded config: the weighted squared distance, categorical mismatches, unweighted numeric distance."""
        x, c = self._enc.encode(params, recorded=False)
        use_x, use_c = ~np.isnan(x), c != -1
        diff2 = (self._x[:, use_x] - x[use_x]) ** 2
        miss = self._c[:, use_c] != c[use_c]
        d2 = diff2 @ self._wx[use_x] + miss @ self._wc[use_c]
        return d2, miss.sum(axis=1), np.sqrt(diff2.sum(axis=1))

    def _nearest(self, d2: np.ndarray, among: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        order = among[np.argsort(d2[among], kind="stable")[:k]]
        return order, _weights(d2[order], self.settings.power)

    def _plan(self, params: dict) -> np.ndarray | None:
        """The resource at each report a run of ``params`` plans, or None: runs are compared epoch by epoch."""
        if self.points is not None:
            return np.array(self.points(params), dtype=float)
        if self.epochs_param is not None and self.epochs_param in params:
            return np.arange(1, int(params[self.epochs_param]) + 1, dtype=float)
        return None

    def _positions(self, i: int, n: int) -> np.ndarray:
        """Where recorded curve ``i``'s first ``n`` reports fall on the prediction's axis."""
        return self._resource[i][:n] / self._length[i] if self._length[i] else np.arange(1, n + 1, dtype=float)

    def _blend(self, idx: np.ndarray, w: np.ndarray, axis: np.ndarray, covering_only: bool):
        """Weighted mean val_acc at ``axis`` and seconds per epoch, and where any neighbour covers the point.

        ``covering_only``: a neighbour counts only up to its last recorded epoch (a diverged
        run says nothing past its divergence); else a short curve holds its last value.
        """
        n = len(axis)
        acc, acc_w, sec, sec_w = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        for i, wi in zip(idx, w):
            if len(self._acc[i]):
                pos = self._positions(i, len(self._acc[i]))
                covered = axis <= pos[-1] + 1e-9 if covering_only else np.ones(n, dtype=bool)
                acc += np.where(covered, wi * np.interp(axis, pos, self._acc[i]), 0.0)
                acc_w += np.where(covered, wi, 0.0)
            if len(self._sec[i]):
                sec += wi * self._sec[i][np.minimum(np.arange(n), len(self._sec[i]) - 1)]
                sec_w += wi
        with np.errstate(invalid="ignore", divide="ignore"):
            return acc / acc_w, sec / sec_w, acc_w > 0

    def explain(self, params: dict) -> dict:
        """Everything ``predict`` knows about ``params``.

        ``curve``: the served curve; ``if_not_diverged``: the curve of a run that completes;
        ``p_diverged``; ``nearest``: the nearest recorded config's id, its categorical
        mismatches and numeric distance.
        """
        s = self.settings
        d2, mismatch, dist = self._distances(params)
        near = int(np.argsort(d2, kind="stable")[0])
        ok_idx, ok_w = self._nearest(d2, self._ok, s.k)
        plan = self._plan(params)
        by_fraction = plan is not None
        epochs = len(plan) if by_fraction else len(self.curves[ok_idx[0]].val_acc)
        axis = plan / plan[-1] if by_fraction else np.arange(1, epochs + 1, dtype=float)
        acc, sec, _ = self._blend(ok_idx, ok_w, axis, covering_only=False)
        config_id = self.curves[near].config_id
        ok = Curve(config_id, dict(params), acc.tolist(), sec.tolist())
        out = {"curve": ok, "if_not_diverged": ok, "p_diverged": 0.0,
               "nearest": (config_id, int(mismatch[near]), float(dist[near]))}

        idx, w = self._nearest(d2, np.arange(len(self.curves)), s.k_div)
        out["p_diverged"] = p = float(w[self._diverged[idx]].sum() / w.sum())
        if p <= 0.5:
            return out
        idx, w = idx[self._diverged[idx]], w[self._diverged[idx]]
        # Each diverged neighbour's point of divergence: its epoch with the non-finite loss.
        ends = np.array([self._positions(i, len(self.curves[i].val_acc))[-1] if by_fraction and self._length[i]
                         else len(self.curves[i].val_acc) for i in idx])
        point = float((w * ends).sum() / w.sum())
        # The first report at or past the mean point of divergence (on the fraction axis, the nearest one).
        stop = int(np.clip(round(point * epochs) if by_fraction else round(point), 1, epochs))
        pre, pre_sec, covered = self._blend(idx, w, axis[:stop], covering_only=True)
        val = np.where(covered, pre, acc[:stop])
        val[-1] = 0.0
        pre_sec = np.where(np.isnan(pre_sec), sec[:stop], pre_sec)
        out["curve"] = Curve(config_id, dict(params), val.tolist(), pre_sec.tolist(), diverged=True)
        return out

    def predict(self, params: dict) -> Curve:
        """The predicted curve: val_acc and seconds per epoch; if it diverges, ``diverged`` and a last epoch of 0.0.

        Its ``config_id`` is the nearest recorded config's.
        """
        return self.explain(params)["curve"]

    def lookup(self, params: dict) -> tuple[Curve, int, float]:
        """``NearestCurve.lookup``'s shape: (predicted curve, mismatches and numeric distance of the nearest config)."""
        e = self.explain(params)
        return e["curve"], e["nearest"][1], e["nearest"][2]


# --- tuning ---------------------------------------------------------------------------------

GRID_K = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
GRID_POWER = (0.0, 1.0, 2.0, 4.0)
GRID_CATEGORICAL = (0.1, 0.25, 0.5, 1.0, 4.0)
SCALE_STEPS = (0.0, 0.25, 0.5, 2.0, 4.0)  # multipliers of a parameter's scale tried by the coordinate search
SCALE_ROUNDS = 2
MIN_GAIN = 1e-3  # a scale changes only for a gain in rank correlation beyond noise-chasing


def spearman(a, b) -> float | None:
    """Spearman's rank correlation (ties share their average rank); None when either side is constant."""
    ra, rb = np.array(ranks(list(a))), np.array(ranks(list(b)))
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _loo_vote(d2: np.ndarray, values: np.ndarray, k: int, power: float) -> np.ndarray:
    """Leave-one-out weighted means of ``values`` over each row's ``k`` nearest (``d2`` rows sorted, self excluded)."""
    d = np.sqrt(d2[:, :k])
    exact = d[:, :1] <= _EXACT
    with np.errstate(divide="ignore"):
        w = np.where(exact, (d <= _EXACT).astype(float), d ** -power)
    return (w * values[:, :k]).sum(axis=1) / w.sum(axis=1)


class _LeaveOneOut:
    """The leave-one-out scores of settings on recorded curves, all of them at once in numpy."""

    def __init__(self, curves: list[Curve], distributions: dict) -> None:
        self.enc = _Encoder(distributions)
        self.x, self.c = self.enc.matrix(curves)
        self.diverged = np.array([c.diverged for c in curves])
        self.ok = np.flatnonzero(~self.diverged)
        self.final = np.array([c.val_acc[-1] for c in curves])

    def _sorted(self, settings: Settings, rows: np.ndarray, cols: np.ndarray):
        wx, wc = self.enc.weights(settings)
        d2 = np.zeros((len(rows), len(cols)))
        for j, w in enumerate(wx):
            d2 += w * (self.x[rows, None, j] - self.x[None, cols, j]) ** 2
        for j, w in enumerate(wc):
            d2 += w * (self.c[rows, None, j] != self.c[None, cols, j])
        d2[rows[:, None] == cols[None, :]] = np.inf  # leave each config out of its own prediction
        order = np.argsort(d2, axis=1, kind="stable")[:, :-1]
        return np.take_along_axis(d2, order, axis=1), cols[order]

    def curve_scores(self, settings: Settings) -> dict[tuple[int, float], float]:
        """(k, power) -> rank correlation of the predicted and real final val_acc of the completed runs."""
        d2, near = self._sorted(settings, self.ok, self.ok)
        out = {}
        for k in GRID_K:
            for power in GRID_POWER:
                pred = _loo_vote(d2, self.final[near], min(k, d2.shape[1]), power)
                rho = spearman(self.final[self.ok], pred)
                out[k, power] = -1.0 if rho is None else rho
        return out

    def divergence_accuracy(self, settings: Settings, k: int) -> float:
        everyone = np.arange(len(self.diverged))
        d2, near = self._sorted(settings, everyone, everyone)
        p = _loo_vote(d2, self.diverged[near].astype(float), min(k, d2.shape[1]), settings.power)
        return float(((p > 0.5) == self.diverged).mean())


def tune(curves: list[Curve], distributions: dict) -> Settings:
    """The settings with the best leave-one-out scores on ``curves``.

    The curve's settings maximise the rank correlation of predicted and real final val_acc of
    the completed runs: k, power and categorical weight on a grid, then each parameter's scale
    by coordinate search (k and power re-picked at each step). Then k_div maximises the
    accuracy of the divergence vote.
    """
    loo = _LeaveOneOut(curves, distributions)
    if len(loo.ok) < 3:
        return Settings()

    def best_of(s: Settings) -> tuple[float, Settings]:
        scores = loo.curve_scores(s)
        (k, power), score = max(scores.items(), key=lambda kv: kv[1])  # the first maximum: smallest k, power
        return score, replace(s, k=k, power=power)

    score, best = max((best_of(Settings(categorical_weight=cw)) for cw in GRID_CATEGORICAL), key=lambda t: t[0])
    for _ in range(SCALE_ROUNDS):
        for name in distributions:
            current = best.scale(name)
            for step in SCALE_STEPS:
                scales = tuple(sorted({**dict(best.scales), name: current * step}.items()))
                s_score, s = best_of(replace(best, scales=scales))
                if s_score > score + MIN_GAIN:
                    score, best = s_score, s
    if loo.diverged.any():
        accuracy = {k: loo.divergence_accuracy(best, k) for k in GRID_K}
        best = replace(best, k_div=max(GRID_K, key=lambda k: (accuracy[k], -k)))
    return replace(best, scales=tuple((n, v) for n, v in best.scales if v != 1.0))


# --- validation -----------------------------------------------------------------------------


def folds_of(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint held-out index sets covering 0..n-1, from a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[f::folds]) for f in range(folds)]


TOP = 0.75  # the top quartile: held-out completed runs whose real final metric is at or above this quantile


def _scores(real: list[Curve], served: list[Curve], ok: list[Curve]) -> dict:
    """One model's held-out scores: ranks and errors of its curves, and divergence as a classifier.

    ``top_quartile``: the same ranks and errors among the held-out runs that completed with a
    real final metric in the top quarter, the region that decides a search's regret (YAHPO Gym
    reports its surrogates there too): "final" is the served curve (a predicted divergence
    scores 0.0 there), "if_not_diverged" the model's curve for a run that completes.
    """
    done = [i for i, c in enumerate(real) if not c.diverged]
    truth = np.array([c.diverged for c in real])
    said = np.array([c.diverged for c in served])
    tp = int((truth & said).sum())
    final_real = np.array([real[i].val_acc[-1] for i in done])
    final_served = np.array([served[i].val_acc[-1] for i in done])
    final_ok = np.array([ok[i].val_acc[-1] for i in done])
    # Over the epochs both curves have: 1-NN's may be shorter or longer than the held-out run.
    curve_err = [float(np.mean(np.abs(np.array(ok[i].val_acc[:len(real[i].val_acc)]) -
                                      real[i].val_acc[:len(ok[i].val_acc)]))) for i in done]
    sec_err = [abs(sum(ok[i].seconds[:len(real[i].seconds)]) / sum(real[i].seconds) - 1) for i in done]
    stops = [abs(len(served[i].val_acc) - len(real[i].val_acc)) for i in np.flatnonzero(truth & said)]
    top = final_real >= np.quantile(final_real, TOP) if done else np.zeros(0, dtype=bool)
    return {
        "top_quartile": {
            "configs": int(top.sum()),
            "final_spearman": spearman(final_real[top], final_served[top]),
            "final_mae": float(np.mean(np.abs(final_real[top] - final_served[top]))) if top.any() else None,
            "final_spearman_if_not_diverged": spearman(final_real[top], final_ok[top]),
            "final_mae_if_not_diverged": float(np.mean(np.abs(final_real[top] - final_ok[top]))) if top.any() else None,
            "predicted_diverged": float(np.array([served[i].diverged for i in done])[top].mean()) if top.any() else None,
        },
        "best_spearman": spearman([max(c.val_acc, default=0.0) for c in real],
                                  [max(c.val_acc, default=0.0) for c in served]),
        "final_spearman": spearman(final_real, final_served),
        "final_mae": float(np.mean(np.abs(final_real - final_served))) if done else None,
        "final_spearman_if_not_diverged": spearman(final_real, final_ok),
        "final_mae_if_not_diverged": float(np.mean(np.abs(final_real - final_ok))) if done else None,
        "curve_mae_if_not_diverged": float(np.mean(curve_err)) if done else None,
        "seconds_rel_error_median": float(np.median(sec_err)) if done else None,
        "divergence": {
            "accuracy": float((truth == said).mean()),
            "precision": tp / int(said.sum()) if said.any() else None,
            "recall": tp / int(truth.sum()) if truth.any() else None,
            "base_rate": float(truth.mean()),
            "predicted_rate": float(said.mean()),
            "stop_epoch_mae": float(np.mean(stops)) if stops else None,
        },
    }


def cross_validate(curves: list[Curve], distributions: dict, settings: Settings | None = None, *,
                   folds: int = 5, seed: int = 0, points=None) -> dict:
    """K-fold scores of the surrogate on held-out configs, and of ``NearestCurve`` on the same folds.

    ``settings`` None: ``tune`` on each training split (the held-out configs never choose them).
    Spearman correlations pool the held-out configs of all folds: the best val_acc of every
    config, the final val_acc of those that did not diverge. "Served" curves are what a
    simulator replays (a predicted divergence ends in 0.0); "if_not_diverged" is the model's
    curve for a run that completes (for ``NearestCurve``, the nearest non-diverged config's).
    ``points``: the table's plan (``formats.Recorded.points``), as ``CurveSurrogate`` takes it.
    """
    from benchmarks.curves.simulate import NearestCurve

    n = len(curves)
    real, served, ok, nn, nn_ok, chosen = list(curves), [None] * n, [None] * n, [None] * n, [None] * n, []
    for held in folds_of(n, folds, seed):
        held_set = set(held.tolist())
        train = [c for i, c in enumerate(curves) if i not in held_set]
        fold_settings = settings or tune(train, distributions)
        chosen.append(asdict(fold_settings))
        model = CurveSurrogate(train, distributions, fold_settings, points=points)
        nearest = NearestCurve(train, distributions)
        nearest_ok = NearestCurve([c for c in train if not c.diverged], distributions)
        for i in held:
            e = model.explain(curves[i].params)
            served[i], ok[i] = e["curve"], e["if_not_diverged"]
            nn[i] = nearest.lookup(curves[i].params)[0]
            nn_ok[i] = nn[i] if not nn[i].diverged else nearest_ok.lookup(curves[i].params)[0]
    return {"configs": n, "diverged": int(sum(c.diverged for c in curves)), "folds": folds, "seed": seed,
            "settings_per_fold": chosen, "surrogate": _scores(real, served, ok), "nearest": _scores(real, nn, nn_ok)}


def load(path: str | Path):
    """A table of any format, read by its adapter (``formats.read``): its curves, space, plan and attribution."""
    from benchmarks.curves import formats

    return formats.read(path)


def _row(name: str, r: dict) -> str:
    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    d = r["divergence"]
    return (f"| {name} | {f(r['best_spearman'])} | {f(r['final_spearman'])} | {f(r['final_mae'])} | "
            f"{f(r['final_spearman_if_not_diverged'])} | {f(r['final_mae_if_not_diverged'])} | "
            f"{f(r['curve_mae_if_not_diverged'])} | {f(d['accuracy'])} | {f(d['precision'])} | {f(d['recall'])} | "
            f"{f(d['base_rate'])} |")


def _top_row(name: str, t: dict) -> str:
    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    return (f"| {name} | {f(t['final_spearman'])} | {f(t['final_mae'])} | {f(t['final_spearman_if_not_diverged'])} | "
            f"{f(t['final_mae_if_not_diverged'])} | {f(t['predicted_diverged'])} |")


def validate_cmd(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    rec = load(args.table)
    curves, distributions, source = rec.curves, rec.distributions, rec.source
    fixed = {k: v for k, v in (("k", args.k), ("k_div", args.k_div), ("power", args.power),
                               ("categorical_weight", args.categorical_weight)) if v is not None}
    settings = Settings(**fixed) if fixed or args.no_tune else None
    result = cross_validate(curves, distributions, settings, folds=args.folds, seed=args.seed, points=rec.points)
    full = settings or tune(curves, distributions)
    out = {"table": str(args.table), "source": source,
           "distributions": {k: repr(v) for k, v in distributions.items()},
           **result, "settings_on_all_configs": asdict(full), "seconds": time.perf_counter() - start}
    how = "settings fixed" if settings else "settings tuned by leave-one-out on each training split"
    print(f"{args.table}: {result['configs']} configs, {result['diverged']} diverged; {args.folds}-fold "
          f"(seed {args.seed}), {how}; data: {source}\n")
    print("| model | ρ best | ρ final | MAE final | ρ final (if not diverged) | MAE final (if not diverged) | "
          "curve MAE | divergence accuracy | precision | recall | base rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(_row("surrogate", result["surrogate"]))
    print(_row("1-NN (NearestCurve)", result["nearest"]))
    print(f"\nthe top quartile of the held-out completed runs (real final metric; "
          f"{result['surrogate']['top_quartile']['configs']} configs):\n")
    print("| model | ρ final | MAE final | ρ final (if not diverged) | MAE final (if not diverged) | "
          "predicted diverged |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_top_row("surrogate", result["surrogate"]["top_quartile"]))
    print(_top_row("1-NN (NearestCurve)", result["nearest"]["top_quartile"]))
    print(f"\nsettings on all {len(curves)} configs: {asdict(full)}\n{out['seconds']:.1f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curves.surrogate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="cross-validate the surrogate and NearestCurve on held-out configs")
    v.add_argument("--table", required=True, help="a table of any known format (formats.py): the project's CSV, "
                                                  "an opda jsonl of epochs or of steps")
    v.add_argument("--folds", type=int, default=5)
    v.add_argument("--seed", type=int, default=0, help="the folds' permutation")
    v.add_argument("--json", default=None, help="write every number here")
    v.add_argument("--no-tune", action="store_true", help="Settings()'s defaults instead of tuning on each split")
    v.add_argument("--k", type=int, default=None, help="fix k (and skip tuning); likewise the next three")
    v.add_argument("--k-div", type=int, default=None)
    v.add_argument("--power", type=float, default=None)
    v.add_argument("--categorical-weight", type=float, default=None)
    args = parser.parse_args(argv)
    return validate_cmd(args)


if __name__ == "__main__":
    sys.exit(main())

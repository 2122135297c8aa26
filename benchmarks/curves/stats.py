"""The arithmetic of the search-quality protocol: regret, ranks, reach ratios and paired tests.

Plain Python on lists, so that the tests can check each number on hand-made tables.
"""

from __future__ import annotations

import math


def normalised_regret(incumbent: float | None, best: float, worst: float) -> float:
    """(best - incumbent) / (best - worst), 1 before any incumbent; the table's best and worst final val_acc."""
    if incumbent is None:
        return 1.0
    return (best - incumbent) / (best - worst) if best > worst else 0.0


def step_at(xs: list[float], ys: list[float], grid: list[float], before: float) -> list[float]:
    """The value of the step function (xs ascending, ys after each x) at each grid point; ``before`` ahead of xs[0]."""
    out, i, value = [], 0, before
    for g in grid:
        while i < len(xs) and xs[i] <= g:
            value = ys[i]
            i += 1
        out.append(value)
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, lowest value first, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def first_reach(xs: list[float], ys: list[float], level: float) -> float | None:
    """The first x at which y <= level, or None."""
    for x, y in zip(xs, ys):
        if y <= level + 1e-12:
            return x
    return None


def sign_test(a: list[float], b: list[float]) -> dict:
    """Exact two-sided sign test of paired a vs b (ties dropped): wins are a < b (lower regret)."""
    wins = sum(x < y for x, y in zip(a, b))
    losses = sum(x > y for x, y in zip(a, b))
    n = wins + losses
    if n == 0:
        return {"wins": 0, "losses": 0, "ties": len(a), "p": 1.0}
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"wins": wins, "losses": losses, "ties": len(a) - n, "p": p}


def wilcoxon(a: list[float], b: list[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of a - b: zeros dropped, ties averaged, normal approximation
    with tie and continuity corrections (Pratt's handling is not used); ``w_plus`` sums the ranks where a > b.
    """
    d = [x - y for x, y in zip(a, b) if x != y]
    n = len(d)
    if n == 0:
        return {"n": 0, "w_plus": 0.0, "z": 0.0, "p": 1.0}
    r = ranks([abs(x) for x in d])
    w_plus = sum(ri for ri, x in zip(r, d) if x > 0)
    mean = n * (n + 1) / 4
    ties: dict[float, int] = {}
    for ri in r:
        ties[ri] = ties.get(ri, 0) + 1
    var = n * (n + 1) * (2 * n + 1) / 24 - sum(t ** 3 - t for t in ties.values()) / 48
    if var <= 0:
        return {"n": n, "w_plus": w_plus, "z": 0.0, "p": 1.0}
    diff = w_plus - mean
    z = (diff - math.copysign(0.5, diff)) / math.sqrt(var) if diff else 0.0
    p = min(1.0, math.erfc(abs(z) / math.sqrt(2)))
    return {"n": n, "w_plus": w_plus, "z": z, "p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given: the i-th smallest of m is multiplied by
    m - i + 1 (i from 1), kept non-decreasing in that order, capped at 1. Rejecting where adjusted p < alpha keeps
    the family-wise error rate of the m tests at alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out

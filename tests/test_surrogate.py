"""The learning-curve surrogate and the opda jsonl reader, on small hand-made curves (none of opda's rows)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from benchmarks.curves import opda
from benchmarks.curves.surrogate import CurveSurrogate, Settings, cross_validate, spearman, tune
from benchmarks.curves.table import Curve

OPDA_ALEXNET = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "opda-alexnet" / \
    "alexnet_tuning.results.jsonl"

SPACE = {
    "epochs": IntDistribution(10, 40),
    "lr": FloatDistribution(1e-3, 1.0, log=True),
    "noise": FloatDistribution(0.0, 1.0),
    "batch_size": CategoricalDistribution([64, 128]),
}


def _made_up(config_id: int, epochs: int, lr: float, noise: float, batch_size: int) -> Curve:
    """A run whose accuracy rises linearly in the fraction of the run to a peak set by lr alone;
    lr above 0.3 diverges at 40% of the run."""
    params = {"epochs": epochs, "lr": lr, "noise": noise, "batch_size": batch_size}
    peak = 0.9 - 0.3 * abs(math.log10(lr) + 1.5)
    seconds = [2.0 if batch_size == 64 else 1.0] * epochs
    if lr > 0.3:
        stop = max(1, round(0.4 * epochs))
        acc = [peak * e / epochs for e in range(1, stop)] + [0.0]
        return Curve(config_id, params, acc, seconds[:stop], diverged=True)
    return Curve(config_id, params, [peak * e / epochs for e in range(1, epochs + 1)], seconds)


def _table(n: int = 80, seed: int = 0) -> list[Curve]:
    rng = np.random.default_rng(seed)
    return [_made_up(i, int(rng.integers(10, 41)), float(10 ** rng.uniform(-3, 0)), float(rng.uniform()),
                     int(rng.choice([64, 128]))) for i in range(n)]


def test_a_recorded_config_gets_its_own_curve_exactly():
    curves = _table()
    model = CurveSurrogate(curves, SPACE, Settings(k=6, k_div=6, power=1.0))
    done = next(c for c in curves if not c.diverged)
    diverged = next(c for c in curves if c.diverged and len(c.val_acc) > 2)
    for c in (done, diverged):
        got, mismatch, distance = model.lookup(c.params)
        assert (got.val_acc, got.seconds, got.diverged) == (c.val_acc, c.seconds, c.diverged)
        assert (got.config_id, mismatch, distance) == (c.config_id, 0, 0.0)


def test_a_config_among_diverged_neighbours_diverges_near_their_point_of_divergence():
    # Every recorded lr above 0.3 diverged at 40% of its run.
    curves = [_made_up(i, 20, lr, 0.5, 64) for i, lr in enumerate([0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.01, 0.02, 0.03])]
    model = CurveSurrogate(curves, SPACE, Settings(k=3, k_div=5, power=1.0))
    e = model.explain({"epochs": 30, "lr": 0.65, "noise": 0.5, "batch_size": 64})
    assert e["p_diverged"] == 1.0
    curve = e["curve"]
    assert curve.diverged and len(curve.val_acc) == 12 == len(curve.seconds)  # 40% of 30 epochs
    assert curve.val_acc[-1] == 0.0 and all(v > 0 for v in curve.val_acc[:-1])
    assert curve.seconds == [2.0] * 12
    # The curve it would have had, had it not diverged, comes from the completed runs.
    assert not e["if_not_diverged"].diverged and len(e["if_not_diverged"].val_acc) == 30
    far = model.predict({"epochs": 30, "lr": 0.015, "noise": 0.5, "batch_size": 64})
    assert not far.diverged and len(far.val_acc) == 30


def test_the_curve_is_resampled_to_the_querys_epochs_on_the_fraction_of_the_run():
    # Both neighbours rise linearly to 0.6 over their runs, of 10 and 40 epochs: a 25-epoch
    # run halfway between them rises linearly to 0.6 over its 25.
    curves = [Curve(0, {"epochs": 10, "lr": 0.01}, [0.06 * e for e in range(1, 11)], [1.0] * 10),
              Curve(1, {"epochs": 40, "lr": 0.1}, [0.015 * e for e in range(1, 41)], [3.0] * 40)]
    space = {"epochs": SPACE["epochs"], "lr": SPACE["lr"]}
    curve = CurveSurrogate(curves, space, Settings(k=2, k_div=2, power=0.0)).predict({"epochs": 25, "lr": 0.03})
    assert len(curve.val_acc) == len(curve.seconds) == 25
    # Before its first epoch (a fraction 0.1), the 10-epoch run holds its first value.
    assert curve.val_acc == pytest.approx([(max(0.024 * e, 0.06) + 0.024 * e) / 2 for e in range(1, 26)])
    assert curve.val_acc[2:] == pytest.approx([0.024 * e for e in range(3, 26)])
    # Seconds go by epoch, not fraction: the 10-epoch run's last epoch stands for its later ones.
    assert curve.seconds == pytest.approx([2.0] * 25)


def test_without_an_epochs_parameter_curves_are_averaged_per_epoch():
    space = {"lr": FloatDistribution(0.01, 1.0, log=True), "optimizer": CategoricalDistribution(["sgd", "adam"])}
    curves = [Curve(0, {"lr": 0.01, "optimizer": "sgd"}, [0.1, 0.2, 0.3], [5.0, 5.0, 5.0]),
              Curve(1, {"lr": 1.0, "optimizer": "sgd"}, [0.3, 0.4, 0.5], [1.0, 1.0, 1.0]),
              Curve(2, {"lr": 0.1, "optimizer": "adam"}, [0.9, 0.9, 0.9], [9.0, 9.0, 9.0])]
    model = CurveSurrogate(curves, space, Settings(k=2, k_div=2, power=0.0, categorical_weight=4.0))
    curve, mismatch, distance = model.lookup({"lr": 0.1, "optimizer": "sgd"})
    # The two sgd runs, each half a log-range away; the adam run is a mismatch away (4 > 0.25).
    assert curve.val_acc == pytest.approx([0.2, 0.3, 0.4]) and curve.seconds == pytest.approx([3.0] * 3)
    assert (curve.config_id, mismatch, distance) == (0, 0, pytest.approx(0.5))


def test_predictions_are_deterministic_and_tuning_discounts_an_irrelevant_parameter():
    curves = _table(60)
    settings = tune(curves, SPACE)
    assert settings == tune(curves, SPACE)
    assert settings.scale("noise") < settings.scale("lr")
    query = {"epochs": 27, "lr": 0.05, "noise": 0.3, "batch_size": 128}
    a, b = CurveSurrogate(curves, SPACE, settings).predict(query), CurveSurrogate.fit(curves, SPACE).predict(query)
    assert (a.val_acc, a.seconds, a.diverged) == (b.val_acc, b.seconds, b.diverged)


def test_cross_validation_beats_the_nearest_curve_on_a_smooth_table():
    result = cross_validate(_table(80), SPACE, folds=4, seed=0)
    s, nn = result["surrogate"], result["nearest"]
    assert result["configs"] == 80 and len(result["settings_per_fold"]) == 4
    assert s["divergence"]["base_rate"] == nn["divergence"]["base_rate"] == pytest.approx(result["diverged"] / 80)
    assert s["divergence"]["accuracy"] >= 0.9
    assert s["final_spearman_if_not_diverged"] > 0.9
    assert s["final_mae_if_not_diverged"] < nn["final_mae_if_not_diverged"]
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0) and spearman([1, 1], [1, 2]) is None


def _run(iteration: int, nan: bool, epochs: int, batch_size: int, points: list[tuple[float, float, float]]) -> dict:
    """One line in opda's format; points are (seconds since the start, top_1, train_loss)."""
    return {"iteration": iteration, "nan_train_loss": nan, "epochs": epochs, "batch_size": batch_size, "lr": 0.2,
            "lr_peak_epoch": 2, "momentum": 0.9, "weight_decay": 5e-5, "label_smoothing": 0.1,
            "learning_curve": [{"time": t, "epoch": e, "top_1": a, "top_5": min(1.0, 3 * a), "train_loss": loss}
                               for e, (t, a, loss) in enumerate(points)]}


def test_the_jsonl_reader_round_trips_completed_and_diverged_runs(tmp_path):
    lines = [
        _run(1, False, 20, 256, [(100.0 + 80 * e, 0.01 * (e + 1), 5.0 - 0.1 * e) for e in range(20)]),
        _run(2, True, 20, 256, [(110.0, 0.05, 6.0), (200.0, 0.04, 6.5)]),  # its NaN epoch is not recorded
        _run(3, True, 30, 256, []),  # diverged in its first epoch
        _run(4, False, 25, 512, [(90.0, 0.02, 6.0), (170.0, 0.0, float("nan"))]),  # a file that keeps the NaN epoch
    ]
    path = tmp_path / "runs.results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))  # json writes NaN as NaN, as Python's does
    curves, distributions = opda.read_opda(path)
    assert [c.config_id for c in curves] == [1, 2, 3, 4]
    done, late, early, kept = curves
    assert done.params == {"epochs": 20, "batch_size": 256, "lr": 0.2, "lr_peak_epoch": 2, "momentum": 0.9,
                           "weight_decay": 5e-5, "label_smoothing": 0.1}
    assert done.val_acc == pytest.approx([0.01 * e for e in range(1, 21)]) and not done.diverged
    assert done.seconds == [100.0] + [80.0] * 19
    assert (late.val_acc, late.seconds, late.diverged) == ([0.05, 0.04, 0.0], [110.0, 90.0, 100.0], True)
    assert (early.val_acc, early.seconds, early.diverged) == ([0.0], [105.0], True)  # median first epoch at 256
    assert (kept.val_acc, kept.seconds, kept.diverged) == ([0.02, 0.0], [90.0, 80.0], True)
    assert opda.read_curves(path, nan_epoch=False)[1].val_acc == [0.05, 0.04]
    assert distributions == {n: opda.OPDA_ALEXNET_SPACE[n] for n in done.params}


def test_distributions_are_the_readmes_where_they_hold_else_the_datas():
    lrs = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 0.02]
    curves = [Curve(i, {"lr": lrs[i], "dropout": i / 18, "width": [64, 128, 256][i % 3], "depth": 3 + 2 * i,
                        "opt": ["sgd", "adam"][i % 2]}, [0.5], [1.0]) for i in range(10)]
    d = opda.infer_distributions(curves)
    # 100 is outside the README's 5e-3..50, and the values look log-uniform; dropout linear from 0.
    assert d["lr"] == FloatDistribution(0.01, 100.0, log=True)
    assert d["dropout"] == FloatDistribution(0.0, 0.5)
    assert d["width"] == CategoricalDistribution([64, 128, 256])  # an integer with few values: choices
    assert d["depth"] == IntDistribution(3, 21)
    assert d["opt"] == CategoricalDistribution(["adam", "sgd"])
    within = [Curve(0, {"lr": 0.01}, [0.5], [1.0]), Curve(1, {"lr": 30.0}, [0.5], [1.0])]
    assert opda.infer_distributions(within) == {"lr": opda.OPDA_ALEXNET_SPACE["lr"]}


def test_the_space_asks_exactly_its_distributions():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: opda.space(t) or 0.0, n_trials=3)
    assert all(t.distributions == opda.OPDA_ALEXNET_SPACE for t in study.trials)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: opda.make_space(SPACE)(t) or 0.0, n_trials=2)
    assert all(t.distributions == SPACE for t in study.trials)


@pytest.mark.skipif(not OPDA_ALEXNET.exists(), reason=f"opda's AlexNet data is not at {OPDA_ALEXNET}")
def test_opdas_alexnet_table_has_512_configs_147_diverged():
    # "AlexNet Hyperparameter Tuning Data © 2025 by Nicholas Lourie", CC BY-SA 4.0, read in place.
    curves, distributions = opda.read_opda(OPDA_ALEXNET)
    assert len(curves) == 512 and sorted(c.config_id for c in curves) == list(range(1, 513))
    assert sum(c.diverged for c in curves) == 147
    assert sum(c.diverged and len(c.val_acc) == 1 for c in curves) == 49  # NaN within the first epoch
    assert all(len(c.val_acc) == c.params["epochs"] for c in curves if not c.diverged)
    assert distributions == opda.OPDA_ALEXNET_SPACE


def test_validation_scores_the_top_quartile_of_held_out_runs_apart():
    from benchmarks.curves.surrogate import _scores

    # Eight completed runs, finals 0.1 .. 0.8; the model ranks the whole set right but the top two backwards, and
    # serves the best run as diverged.
    real = [Curve(i, {}, [0.1 * (i + 1)], [1.0]) for i in range(8)]
    ok = [Curve(i, {}, [0.1 * (i + 1) + (0.05 if i == 6 else -0.05 if i == 7 else 0.0)], [1.0]) for i in range(8)]
    served = [*ok[:7], Curve(7, {}, [0.0], [1.0], diverged=True)]
    s = _scores(real, served, ok)
    top = s["top_quartile"]
    assert top["configs"] == 2  # 0.7 and 0.8: at or above the 75th percentile, 0.625
    assert top["final_spearman_if_not_diverged"] == pytest.approx(-1.0)
    assert top["final_mae_if_not_diverged"] == pytest.approx(0.05)
    assert top["final_mae"] == pytest.approx((0.05 + 0.8) / 2) and top["predicted_diverged"] == 0.5
    assert s["final_spearman_if_not_diverged"] == pytest.approx(1 - 6 * 2 / (8 * 63))

"""The plain-Optuna arm runs a real study, prunes with Hyperband, retrains and tests within its budget."""

from __future__ import annotations

import json

import pytest

from benchmarks import plain_optuna


def _run(image_folder, out, *flags):
    rc = plain_optuna.main(["--data", str(image_folder), "--train-subset", "600", "--val-size", "200", "--epochs",
                            "2", "--threads", "1", "--json", str(out), *flags])
    assert rc == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_plain_optuna_searches_retrains_and_tests(image_folder, tmp_path):
    # 1,000 synthetic images (200 held out): a trial of 2 epochs takes a few seconds.
    result = _run(image_folder, tmp_path / "plain.json", "--total-seconds", "3600", "--max-trials", "3")
    assert result["trials"] == 3 and result["pruned"] <= 2
    # The study is the hand space's: one-cycle and Nesterov are fixed, so never searched.
    assert set(result["best_params"]) == {"lr", "weight_decay", "batch_size", "label_smoothing", "augment"}
    assert result["best_params"]["batch_size"] in (64, 128, 256)
    assert 0.0 <= result["test_acc"] <= 1.0 and result["data"]["sizes"]["test"] == 200


@pytest.mark.slow
def test_the_search_stops_when_only_the_retrain_still_fits(image_folder, tmp_path):
    # 1 s in all, 0.5 s of it for the retrain: the first trial runs, and no second one starts.
    result = _run(image_folder, tmp_path / "plain.json", "--total-seconds", "1", "--retrain-seconds", "0.5")
    assert result["trials"] == 1

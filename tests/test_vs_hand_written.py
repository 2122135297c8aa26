"""The equal-wall comparison gives every arm of a seed the wall time the plain script took."""

from __future__ import annotations

import json

import pytest

from benchmarks import vs_hand_written


@pytest.mark.parametrize("flags, expected", [([], 788.0), (["--no-match-plain"], 660.0)])
def test_the_search_arm_gets_the_plain_arms_measured_wall_time(tmp_path, monkeypatch, flags, expected):
    # The plain script checks its clock only between trials, so it ran 128 s past its 660 s.
    plain = {"arm": "plain_optuna", "seed": 0, "wall_seconds": 788.0, "images_per_second": 300.0,
             "test_acc": 0.69, "best_val_acc": 0.64, "trials": 5, "pruned": 2}
    (tmp_path / "plain_optuna-seed0.json").write_text(json.dumps(plain))
    given = []

    def fake_search(args, seed, root, total):
        given.append(total)
        return {"arm": "search_run", "seed": seed, "wall_seconds": total, "test_acc": 0.7, "best_val_acc": 0.65,
                "trials": 20, "pruned": 12}

    monkeypatch.setattr(vs_hand_written, "run_search_arm", fake_search)
    assert vs_hand_written.main(["--data", "x", "--total-seconds", "660", "--seeds", "0", "--out", str(tmp_path),
                                 *flags]) == 0
    assert given == [expected]
    assert json.loads((tmp_path / "search_run-seed0.json").read_text())["wall_seconds"] == expected

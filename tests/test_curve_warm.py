"""Issue 34's protocol in the curve benchmark (benchmarks/curves/warm.py): a cheap search of short runs, its trials
mapped into the real search's study by the shipped search.warm_start, and the goal's arithmetic; on a slice of opda's
AlexNet table (read from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.curves import protocol, testbed, warm
from search.warm_start import DEFAULT_FIDELITY

ALEXNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "opda-alexnet" / "alexnet_tuning.results.jsonl"


@pytest.fixture
def alexnet_slice(tmp_path):
    """opda's table ("AlexNet Hyperparameter Tuning Data © 2025 by Nicholas Lourie", CC BY-SA 4.0): its first 64
    lines, read in place, as a testbed."""
    if not ALEXNET.exists():
        pytest.skip(f"opda's AlexNet data is not at {ALEXNET}")
    path = tmp_path / "alexnet-slice.jsonl"
    path.write_text("\n".join(ALEXNET.read_text().splitlines()[:64]) + "\n")
    return testbed.load(str(path))


def test_a_cheap_search_warm_starts_the_real_one_on_a_slice_of_the_alexnet_table(alexnet_slice):
    bed = alexnet_slice
    _, planned, max_t = warm.cheap_bed(bed)
    assert (planned, max_t) == (list(range(20, 31)), 30)  # the cheap search plans 20 to 30 epochs of the 20 to 100
    runs = {r["arm"]: r for r in warm.run_setting(bed, seed=0, budget=4, workers=2, rules=["lower_rung", "as_is"],
                                                  from_full=True)}
    assert list(runs) == warm.arms(["lower_rung", "as_is"], from_full=True) == [
        "cold", "warm_lower_rung", "warm_lower_rung_counted", "warm_as_is", "warm_as_is_counted", "warm_from_full"]
    cold = runs["cold"]
    # The cheap search spends its quarter of 4 x 100 epochs; 3 of its 6 trials finished, and all 3 map. The search on
    # the whole space that warm_from_full starts from finished 1.
    assert (cold["cheap_spent"], cold["cheap_trials"], cold["cheap_finished"]) == (100, 6, 3)
    assert [r["warm_trials"] for r in runs.values()] == [0, 3, 3, 3, 3, 1]
    # The cold arm is the protocol's shipped arm, to the last point.
    ship = protocol.run_one(protocol.ARMS[protocol.SHIPPED], bed, seed=0, budget=4, workers=2)
    assert (cold["epochs"], cold["regret"]) == (ship["epochs"], ship["regret"])
    assert [r["num_samples"] for r in runs.values()] == [10, 10, 8, 10, 8, 10]  # counted: 300 epochs left
    assert [r["planned"] for r in runs.values()] == pytest.approx([61.8, 62.4, 64.0, 60.9, 57.125, 62.5])
    counted = runs["warm_as_is_counted"]
    assert counted["epochs"][0] == 101 and counted["epochs"][-1] == 400  # its curve starts after the cheap search
    assert [r["regret"][-1] for r in runs.values()] == pytest.approx(
        [0.126999, 0.118166, 0.126999, 0.118166, 0.126999, 0.101811], abs=1e-6)


def test_top_k_enqueues_the_cheap_searchs_best_configs_and_keeps_none_of_its_results(alexnet_slice):
    runs = {r["arm"]: r for r in warm.run_setting(alexnet_slice, seed=0, budget=4, workers=2, rules=["top_k", "as_is"])}
    # The cheap search's 3 finished trials: 3 results for as_is; its COMPLETE ones (within k = 4) enqueued by top_k.
    assert [runs[a]["warm_trials"] for a in ("warm_as_is", "warm_top_k", "warm_top_k_counted")] == [3, 2, 2]
    # Enqueued configs are the real search's own trials, within its --num-samples.
    assert runs["warm_top_k"]["trials"] == runs["cold"]["trials"] == runs["warm_top_k"]["num_samples"] == 10


def test_the_goal_reaches_the_cold_final_within_half_and_tests_half_against_the_cold_final():
    def run(arm, seed, points):
        return {"arm": arm, "seed": seed, "epochs": [x for x, _ in points], "regret": [y for _, y in points],
                "trials": 3, "planned": 40.0, "warm_trials": 2 * (arm != "cold"), "cheap_spent": 25.0,
                "cheap_finished": 2}

    seeds = range(8)
    runs = [run("cold", s, [(10, 0.5), (90, 0.2 + 0.01 * s)]) for s in seeds]
    runs += [run("warm_top_k", s, [(30, 0.1 + 0.01 * s)]) for s in seeds]  # lower than the cold final from 0.3
    runs += [run("warm_as_is", s, [(80, 0.1)]) for s in seeds]  # as low, from 0.8 of the budget only
    results = {"settings": {"t|surrogate|1|4": warm.summarise(runs, 100.0)}}
    warm.apply_goal(results)
    arms = results["settings"]["t|surrogate|1|4"]["arms"]
    assert arms["cold"]["final"][0] == pytest.approx(0.235)
    early, late = arms["warm_top_k"], arms["warm_as_is"]
    assert early["reach"] == pytest.approx(0.30) and early["half"][0] == pytest.approx(0.135)
    assert early["goal_test"]["sign"]["wins"] == 8 and early["met"]
    assert late["reach"] == pytest.approx(0.80) and not late["met"]
    assert late["goal_test"]["mean_diff"] == pytest.approx(1 - 0.235)  # regret 1 at half the budget
    # The other rule's arm against the default rule's, paired by seed: final regrets 0.035 apart on average.
    assert DEFAULT_FIDELITY == "top_k"
    other = late
    assert other["vs_default"]["arm"] == f"warm_{DEFAULT_FIDELITY}"
    assert abs(other["vs_default"]["final_diff"]) == pytest.approx(0.035)
    assert results["settings"]["t|surrogate|1|4"]["cheap_share"] == pytest.approx(0.25)
    assert "| t | surrogate | 1 | 4 | warm_top_k | 3 (2) | 40 | 0.30 |" in warm.markdown(results)
    assert "| t | surrogate | 1 | 4 | 0.2350 |" in warm.summary_table(results)

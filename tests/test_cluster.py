"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster): separate raylets with
their own resources, joined by the search with --address, and a worker node removed mid-search."""

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from ray.cluster_utils import Cluster

from tests._searches import ROOT, SEARCH, load_study, run_search

NODE = dict(num_cpus=1, object_store_memory=150 * 1024**2)


@pytest.fixture
def cluster():
    # The head advertises no CPU, so every trial must run on a worker node.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 150 * 1024**2})
    yield c
    c.shutdown()


def result_lines(out: Path) -> dict[str, list[dict]]:
    """Each Tune trial's reported results, from its result.json, keyed by trial id."""
    lines = {}
    for path in (out / "tune").glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            lines[rows[0]["trial_id"]] = rows
    return lines


@pytest.mark.slow
def test_search_runs_trials_on_several_nodes(cluster, image_folder, tmp_path):
    workers = {cluster.add_node(**NODE).node_id for _ in range(2)}
    cluster.wait_for_nodes()
    out = tmp_path / "smoke"
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "6",
                      "--max-epochs", "2", "--address", cluster.address, "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 6 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert set(table["node"]) <= workers and len(set(table["node"])) >= 2
    # The retrain ran as a Ray task on the cluster and shipped its files back to --out.
    assert json.loads((out / "best" / "metrics.json").read_text())["test_acc"] > 0.5


@pytest.mark.slow
def test_losing_a_worker_node_mid_search(cluster, image_folder, tmp_path):
    nodes = {n.node_id: n for n in (cluster.add_node(**NODE) for _ in range(3))}
    cluster.wait_for_nodes()
    out = tmp_path / "smoke"
    # 4 trials on 3 one-CPU nodes: one is running on the node removed, and 2 nodes finish the rest.
    argv = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "4", "--max-epochs", "5",
            "--grace-period", "5", "--address", cluster.address, "--no-retrain", "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before a node could be removed"
        for trial_id, rows in result_lines(out).items():
            # A trial with a checkpoint behind it and epochs still to go.
            if 2 <= rows[-1]["training_iteration"] < 4:
                victim = (trial_id, rows[-1]["node"], rows[-1]["training_iteration"])
                break
        time.sleep(0.5)
    assert victim is not None, "no trial got far enough"
    trial_id, node_id, epochs_then = victim
    finished_then = {t.number: t.state for t in load_study(out).trials if t.state.is_finished()}
    cluster.remove_node(nodes[node_id], allow_graceful=False)

    stdout, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout[-4000:]
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 4 and set(table["state"]) == {"COMPLETE"}  # grace period = max epochs: no pruning
    study = load_study(out)
    assert all(study.trials[n].state == s for n, s in finished_then.items())
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in study.trials}
    # The interrupted trial went on elsewhere from its checkpoint: its epochs continue, they do not restart.
    rows = result_lines(out)[trial_id]
    moved = [r for r in rows if r["node"] != node_id]
    assert moved and moved[0]["training_iteration"] > 1
    assert rows[-1]["training_iteration"] == 5
    assert [r["training_iteration"] for r in rows if r["node"] == node_id][-1] >= epochs_then

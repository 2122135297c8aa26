"""Searches whose --storage-path is an S3 bucket: a real S3 server (moto) on 127.0.0.1, a real Ray."""

import io
import json
import re
import subprocess
import sys
import time
from collections import defaultdict

import pandas as pd
import pytest
import torch
from ray.cluster_utils import Cluster

from tests._s3 import s3  # noqa: F401  (the fixture)
from tests._searches import ROOT, SEARCH, load_study, run_search

PREFIX = "searches/smoke"
NODE = dict(num_cpus=1, object_store_memory=100 * 1024**2)


def trial_files(server) -> dict[str, list[str]]:
    """The bucket's files of each trial folder under PREFIX/tune, relative to it."""
    files = defaultdict(list)
    for key in server.keys(f"{PREFIX}/tune/"):
        parts = key[len(f"{PREFIX}/tune/"):].split("/", 1)
        if len(parts) == 2 and parts[1]:
            files[parts[0]].append(parts[1])
    return files


def bucket_results(server) -> dict[str, list[dict]]:
    """Each trial's reported results, from the result.json that Tune synced to the bucket."""
    results = {}
    for trial_dir, files in trial_files(server).items():
        if "result.json" in files:
            rows = [json.loads(line) for line in server.read(f"{PREFIX}/tune/{trial_dir}/result.json").splitlines()
                    if line.strip()]
            if rows:
                results[rows[0]["trial_id"]] = rows
    return results


@pytest.mark.slow
def test_search_keeps_its_experiment_and_checkpoints_in_a_bucket(s3, image_folder, tmp_path):
    out = tmp_path / "smoke"
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "3",
                      "--max-epochs", "2", "--no-retrain", "--no-report",
                      "--storage-path", f"s3://{s3.bucket}/{PREFIX}", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 3 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert not (out / "tune").exists()  # the Ray experiment went to the bucket, not to --out
    files = trial_files(s3)
    assert len(files) == 3
    experiment = [k[len(f"{PREFIX}/tune/"):] for k in s3.keys(f"{PREFIX}/tune/")]
    assert "tuner.pkl" in experiment and any(re.fullmatch(r"experiment_state-.*\.json", k) for k in experiment)
    results = bucket_results(s3)
    for trial_id, epochs in zip(table["ray_trial_id"], table["epochs"]):
        (trial_dir,) = [d for d in files if trial_id in d]
        checkpoints = sorted(f for f in files[trial_dir] if re.fullmatch(r"checkpoint_\d{6}/checkpoint\.pt", f))
        # One checkpoint per epoch (Tune keeps the last two), each a file fit() can resume from.
        assert len(checkpoints) == min(epochs, 2), files[trial_dir]
        state = torch.load(io.BytesIO(s3.read(f"{PREFIX}/tune/{trial_dir}/{checkpoints[-1]}")),
                           map_location="cpu", weights_only=True)
        assert state["epoch"] == epochs and len(state["history"]) == epochs
        assert [r["training_iteration"] for r in results[trial_id]] == list(range(1, epochs + 1))


@pytest.fixture
def cluster(s3):
    """A head that trains nothing and two 1-CPU workers, all started with the bucket's environment."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 1024**2})
    yield c
    c.shutdown()


def latest_checkpoints(server) -> dict[str, int]:
    """Each trial folder's newest checkpoint index in the bucket (written by the trial as it reports)."""
    latest = {}
    for trial_dir, files in trial_files(server).items():
        indices = [int(m.group(1)) for f in files if (m := re.fullmatch(r"checkpoint_(\d{6})/checkpoint\.pt", f))]
        if indices:
            latest[trial_dir] = max(indices)
    return latest


@pytest.mark.slow
def test_trial_of_a_lost_node_continues_from_the_bucket(s3, cluster, image_folder, tmp_path):
    nodes = {n.node_id: n for n in (cluster.add_node(**NODE) for _ in range(2))}
    cluster.wait_for_nodes()
    out = tmp_path / "smoke"
    argv = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "2", "--max-epochs", "5",
            "--grace-period", "5", "--address", cluster.address, "--no-retrain", "--no-report",
            "--storage-path", f"s3://{s3.bucket}/{PREFIX}"]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before a node could be removed"
        # Checkpoints reach the bucket as the trial reports; result.json (which names the node)
        # follows with the driver's next sync, so take the node from it and the progress from those.
        results = bucket_results(s3)
        for trial_dir, index in latest_checkpoints(s3).items():
            rows = next((r for trial_id, r in results.items() if trial_id in trial_dir), None)
            if rows and 1 <= index <= 2:  # a checkpoint in the bucket after epoch 2 or 3 of 5
                victim = (rows[0]["trial_id"], rows[-1]["node"], index + 1)
                break
        time.sleep(0.5)
    assert victim is not None, "no trial got far enough"
    trial_id, node_id, epochs_then = victim
    cluster.remove_node(nodes[node_id], allow_graceful=False)

    stdout, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-4000:]
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2 and set(table["state"]) == {"COMPLETE"}  # grace period = max epochs: no pruning
    assert all(t.state.name == "COMPLETE" for t in load_study(out).trials)
    # The trial went on on the other node from its checkpoint in the bucket: epochs continue, not restart.
    rows = bucket_results(s3)[trial_id]
    moved = [r for r in rows if r["node"] != node_id]
    assert moved and moved[0]["training_iteration"] > 1
    # It had persisted epoch epochs_then (or a later one) before its node went.
    assert [r["training_iteration"] for r in rows if r["node"] == node_id][-1] >= epochs_then
    assert moved[0]["training_iteration"] > epochs_then
    assert rows[-1]["training_iteration"] == 5

"""search.preflight on real multi-node Ray clusters on this machine (ray.cluster_utils.Cluster).

A node that cannot see the storage is real: its raylet runs in a mount namespace of its own,
where an empty tmpfs hides the driver's folder (unshare + mount, as root).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")  # so that `pytest -m gpu` collects on a GPU machine without Ray
from ray.cluster_utils import Cluster

from search.preflight import STORAGE_HOW_TO, PreflightError, alive_nodes, check_gpus, check_reach
from tests._s3 import s3  # noqa: F401  (the fixture)

NODE = dict(num_cpus=1, object_store_memory=100 * 1024**2)
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture
def cluster():
    """A head that runs nothing, connected to this process; the test adds worker nodes."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 1024**2})
    try:
        ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def wait_until(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)
    return value


def _children(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc; psutil is not a dependency)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name in field 2 may hold spaces; the parent pid is the 2nd field after ")".
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@contextlib.contextmanager
def ray_start_node(cluster, log_path: Path, *, wrapper: tuple = (), env: dict | None = None):
    """A worker node started with ``ray start --block`` (inside ``wrapper``); yields its record.

    Stops only what it started: that process and every process below it.
    """
    before = {n["NodeID"] for n in alive_nodes()}
    cmd = [RAY, "start", "--address", cluster.address, "--num-cpus", "1",
           "--object-store-memory", str(100 * 1024**2), "--min-worker-port", "0", "--max-worker-port", "0",
           "--dashboard-agent-listen-port", "0", "--disable-usage-stats", "--block"]
    log = open(log_path, "w")
    proc = subprocess.Popen([*wrapper, *cmd], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        def new_node():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return [n for n in alive_nodes() if n["NodeID"] not in before]

        (node,) = wait_until(new_node, "the new node to join")
        yield node
    finally:
        pids = [proc.pid, *_children(proc.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def hidden_node(cluster, tmp_path):
    """A worker node whose view of ``tmp_path/"hidden"`` is an empty tmpfs; yields its record, the folder."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give a node a mount namespace of its own")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            'mount -t tmpfs tmpfs "$1"', "sh", str(hidden)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare/mount not permitted here: {probe.stderr.strip()}")
    # A private mount namespace: the tmpfs exists for that node's processes only, and goes with them.
    wrapper = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs tmpfs "$1" && shift && exec "$@"', "sh", str(hidden))
    with ray_start_node(cluster, tmp_path / "hidden-node.log", wrapper=wrapper) as node:
        yield node, hidden


@pytest.mark.slow
def test_storage_every_node_shares_passes_and_leaves_nothing(cluster, tmp_path):
    check_reach(str(tmp_path))  # one node: nothing to check, nothing written
    cluster.add_node(**NODE)
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    assert len(alive_nodes()) == 3
    store = tmp_path / "store"
    check_reach(str(store))  # one machine: every node sees the same filesystem
    assert store.is_dir() and list(store.iterdir()) == []  # its marker files are cleaned up


@pytest.mark.slow
def test_storage_a_node_cannot_see_is_refused_naming_it(cluster, hidden_node, tmp_path):
    node, hidden = hidden_node
    store = hidden / "store"
    with pytest.raises(PreflightError) as info:
        check_reach(str(store))
    message = str(info.value)
    assert "\n" not in message
    # Ray names a node on this machine by the machine's address, not 127.0.0.1.
    assert message.startswith(f"storage check failed on node {node['NodeID'][:8]} ({node['NodeManagerAddress']}): "
                              f"cannot read {store}: the file this driver wrote there is missing on that node")
    assert message.endswith(STORAGE_HOW_TO) and "--storage-path s3://bucket/prefix" in message
    assert list(store.iterdir()) == []  # the driver's marker is cleaned up after a failure too
    # The same node passes for a folder outside the tmpfs, which every node shares.
    visible = tmp_path / "visible"
    check_reach(str(visible))
    assert list(visible.iterdir()) == []


@pytest.mark.slow
def test_storage_in_a_bucket_passes_and_a_node_without_its_endpoint_is_refused(s3, cluster, tmp_path):
    cluster.add_node(**NODE)  # started with this process's environment: it reaches the bucket
    cluster.wait_for_nodes()
    uri = f"s3://{s3.bucket}/runs/smoke"
    check_reach(uri)
    assert s3.keys("runs/smoke/.preflight") == []  # its marker files are cleaned up
    # A node whose environment points elsewhere (here: a port nothing listens on), as a node
    # set up without the store's endpoint would be.
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}"}
    with ray_start_node(cluster, tmp_path / "elsewhere.log", env=env) as node:
        with pytest.raises(PreflightError) as info:
            check_reach(uri)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"storage check failed on node {node['NodeID'][:8]} ({node['NodeManagerAddress']}): "
                              f"cannot read {uri} (")
    assert "the same endpoint and credentials (AWS_ENDPOINT_URL" in message and message.endswith(STORAGE_HOW_TO)
    assert s3.keys("runs/smoke/.preflight") == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_gpu_check_names_the_node_whose_gpu_does_not_work(cluster):
    if torch.cuda.is_available():
        pytest.skip("this machine has a working GPU: a node advertising one would pass")
    assert check_gpus(0) == []  # CPU trials: nothing to check
    with pytest.raises(PreflightError, match="no node of the Ray cluster has a GPU; use --gpus-per-trial 0"):
        check_gpus(0.5)
    # A node that advertises a GPU where CUDA does not work (a missing driver, a CPU-only torch).
    gpu_node = cluster.add_node(num_gpus=1, **NODE)
    cluster.wait_for_nodes()
    with pytest.raises(PreflightError, match=r"more than any one node has \(at most 1\)"):
        check_gpus(2)
    with pytest.raises(PreflightError) as info:
        check_gpus(0.5, timeout_s=120)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"GPU preflight failed on node {gpu_node.node_id[:8]} ({gpu_node.node_ip_address}): "
                              "torch.cuda.is_available() is False")
    assert f"torch {torch.__version__}" in message and "CUDA_VISIBLE_DEVICES=0" in message
    assert message.endswith("or train on CPUs with --gpus-per-trial 0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_check_trains_a_step_on_every_gpu(tmp_path):
    ray.init(address="local", num_cpus=1, num_gpus=torch.cuda.device_count(), include_dashboard=False,
             log_to_driver=False)
    try:
        found = check_gpus(0.5)
    finally:
        ray.shutdown()
    assert len(found) == torch.cuda.device_count()
    for gpu in found:
        assert gpu["gpu"] == torch.cuda.get_device_name(0) and gpu["cuda"] == torch.version.cuda
        assert gpu["precision"] == ("bf16" if torch.cuda.get_device_capability(0) >= (8, 0) else "fp16")
        assert gpu["driver"] and gpu["capability"] and "error" not in gpu

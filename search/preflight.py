"""Checks on the Ray cluster before any trial starts: every node reaches the storage, every GPU trains.

Both run tiny Ray tasks pinned to each alive node, so that a cluster which cannot run the
search says so in one line at the start, instead of every trial failing after its retries.
The caller has already called ``ray.init``.
"""

from __future__ import annotations

import os
import uuid

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .storage import filesystem, scheme

STORAGE_HOW_TO = ("use --storage-path s3://bucket/prefix (or another URI pyarrow handles) "
                  "or a filesystem path shared by every node")


def storage_how_to(storage_path: str) -> str:
    """What to do about a storage path some node cannot use."""
    if scheme(storage_path) == "s3":
        return ("give every node the same endpoint and credentials (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                f"AWS_SECRET_ACCESS_KEY), or {STORAGE_HOW_TO}")
    return STORAGE_HOW_TO


class PreflightError(Exception):
    """The cluster cannot run the search as asked: one line, for the command line to print."""


def alive_nodes() -> list[dict]:
    """Ray's records of the nodes that are up: ``NodeID``, ``NodeManagerAddress``, ``Resources``."""
    return [n for n in ray.nodes() if n["Alive"]]


def _node_name(node: dict) -> str:
    return f"{node['NodeID'][:8]} ({node['NodeManagerAddress']})"


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{e.__class__.__name__}: {text}" if text else e.__class__.__name__


def _pinned(fn, node_id: str, **resources):
    return fn.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False), **resources)


def _gather(refs: dict, timeout_s: float) -> dict:
    """``{key: ref}`` -> ``{key: (value, None) | (None, problem)}``, waiting at most ``timeout_s``.

    A task that cannot be scheduled (a node without the resource, a node gone) would make
    ``ray.get`` wait forever; it becomes a problem instead, and is cancelled.
    """
    ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    ready = set(ready)
    results = {}
    for key, ref in refs.items():
        if ref not in ready:
            results[key] = (None, f"no answer from the check task within {timeout_s:g} s")
            continue
        try:
            results[key] = (ray.get(ref), None)
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None) or e
            results[key] = (None, f"the check task failed ({_one_line(cause)})")
    for ref in pending:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already finished or its node is gone: nothing left to stop
            pass
    return results


def _raise_first(problems: list[tuple[dict, str]], check: str, how_to: str) -> None:
    """One line for the first problem, with a count of the others."""
    if problems:
        node, problem = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PreflightError(f"{check} failed on node {_node_name(node)}: {problem}{more}; {how_to}")


# ---------------------------------------------------------------------------------------------
# Storage


def _write_text(fs, path: str, text: str) -> None:
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def _read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return f.read().decode()


@ray.remote(num_cpus=0, max_retries=0)
def _probe_path(storage_path: str, folder: str, token: str, name: str) -> str | None:
    """On one node: read the driver's marker, write one back. None, or what went wrong."""
    try:
        # Resolved here, not on the driver: the node's own credentials and mounts are the test.
        fs, _ = filesystem(storage_path)
        seen = _read_text(fs, f"{folder}/driver")
    except FileNotFoundError:
        return f"cannot read {storage_path}: the file this driver wrote there is missing on that node"
    except Exception as e:
        return f"cannot read {storage_path} ({_one_line(e)})"
    if seen != token:
        return f"sees another file at {storage_path} than the one this driver wrote"
    try:
        _write_text(fs, f"{folder}/{name}", token)
    except Exception as e:
        return f"can read {storage_path} but cannot write it ({_one_line(e)})"
    return None


def check_reach(storage_path: str, *, timeout_s: float = 60.0) -> None:
    """Raise PreflightError unless every alive node can read and write ``storage_path``.

    Ray Tune validates the storage on the driver only; a trial on another node that cannot
    see it fails at its first checkpoint ("Unable to set up cluster storage"), and so does
    every retry. A one-node cluster (the driver's own) has nothing to check, unless the driver
    is a Ray Client, whose files are on no node at all.
    """
    nodes = alive_nodes()
    if len(nodes) < 2 and not ray.util.client.ray.is_connected():
        return
    if scheme(storage_path) is None:  # the nodes must look at the driver's path, not one relative to their cwd
        storage_path = os.path.abspath(os.path.expanduser(storage_path))
    fs, root = filesystem(storage_path)
    token = uuid.uuid4().hex
    folder = f"{root.rstrip('/')}/.preflight-{token}"
    try:
        fs.create_dir(folder, recursive=True)
        _write_text(fs, f"{folder}/driver", token)
    except Exception as e:
        raise PreflightError(f"storage check: this driver cannot write {storage_path} ({_one_line(e)}); "
                             f"{storage_how_to(storage_path)}") from e
    try:
        refs = {n["NodeID"]: _pinned(_probe_path, n["NodeID"]).remote(storage_path, folder, token,
                                                                         f"node-{n['NodeID']}")
                for n in nodes}
        results = _gather(refs, timeout_s)
        problems = []
        for node in nodes:
            error, problem = results[node["NodeID"]]
            problem = problem or error
            if problem is None:
                try:
                    ok = _read_text(fs, f"{folder}/node-{node['NodeID']}") == token
                except Exception:
                    ok = False
                if not ok:
                    problem = f"writes to {storage_path} somewhere this driver cannot see"
            if problem is not None:
                problems.append((node, problem))
    finally:
        try:
            fs.delete_dir(folder)
        except Exception:  # leftovers are a few bytes in a hidden folder; not worth failing for
            pass
    _raise_first(problems, "storage check", storage_how_to(storage_path))


# ---------------------------------------------------------------------------------------------
# GPUs


def _driver_version() -> str | None:
    """The NVIDIA kernel driver's version, e.g. "550.54.15" (None when unknown)."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            words = f.readline().split()
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
        return next(w for w in words if w[:1].isdigit() and "." in w)
    except (OSError, StopIteration):
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
            return out[0] if out else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def _train_step(device, amp: bool) -> str:
    """One forward and backward step of a tiny conv net in the run's precision; returns it."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from model.device import autocast, grad_scaler, precision

    mode = precision(device, amp)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    net = net.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = grad_scaler(mode)
    x = torch.randn(16, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,), device=device)
    with autocast(device, mode):
        loss = F.cross_entropy(net(x), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize(device)
    if not torch.isfinite(loss) or not all(torch.isfinite(p).all() for p in net.parameters()):
        raise RuntimeError(f"the {mode} step gave a non-finite loss or weights")
    return mode


@ray.remote(num_cpus=0, max_retries=0)
def _probe_gpu(amp: bool) -> dict:
    """On one node, with the GPU Ray gave this task: what it is and whether it trains."""
    import torch

    info = {
        "node": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "ray_gpu_ids": [str(i) for i in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "driver": _driver_version(),
    }
    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        info["error"] = (f"torch.cuda.is_available() is False (torch {torch.__version__}, {build}; "
                         f"NVIDIA driver {info['driver'] or 'not found'}; "
                         f"CUDA_VISIBLE_DEVICES={info['cuda_visible_devices']})")
        return info
    device = torch.device("cuda", 0)  # Ray's CUDA_VISIBLE_DEVICES leaves this task its own GPU(s) only
    props = torch.cuda.get_device_properties(device)
    info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                memory_gib=round(props.total_memory / 2**30, 1), uuid=str(getattr(props, "uuid", "")) or None)
    try:
        info["precision"] = _train_step(device, amp)
    except Exception as e:
        info["error"] = (f"a forward/backward step on {props.name} (capability {props.major}.{props.minor}) "
                         f"failed: {_one_line(e)}; this torch supports {' '.join(torch.cuda.get_arch_list())}")
    return info


def check_gpus(gpus_per_trial: float, *, amp: bool = True, timeout_s: float = 180.0) -> list[dict]:
    """Train one step on every GPU of every alive GPU node; their descriptions, or PreflightError.

    Each whole GPU gets its own task (``num_gpus=1``), so every device is tried, not only the
    first of a node. A node whose GPUs are busy with other work gets no answer in time, which
    is an error too: the search would wait for them as well. Returns one dict per GPU (node,
    node_ip, gpu, capability, driver, cuda, torch, precision, ...) for search.json.
    """
    if gpus_per_trial <= 0:
        return []
    gpu_nodes = [n for n in alive_nodes() if n["Resources"].get("GPU", 0) > 0]
    if not gpu_nodes:
        raise PreflightError(f"GPU check: --gpus-per-trial {gpus_per_trial:g} asked for, but no node of the "
                             "Ray cluster has a GPU; use --gpus-per-trial 0 to train on CPUs")
    largest = max(n["Resources"]["GPU"] for n in gpu_nodes)
    if gpus_per_trial > largest:
        # Tune would wait forever: a trial runs on one node.
        raise PreflightError(f"GPU check: --gpus-per-trial {gpus_per_trial:g} is more than any one node has "
                             f"(at most {largest:g}); a trial runs on a single node")
    refs, owners = {}, {}
    for node in gpu_nodes:
        total = node["Resources"]["GPU"]
        shares = [1.0] * int(total) or [total]  # a node with a fraction of a GPU gets one task of that size
        for i, share in enumerate(shares):
            key = (node["NodeID"], i)
            refs[key] = _pinned(_probe_gpu, node["NodeID"], num_gpus=share).remote(amp)
            owners[key] = node
    results = _gather(refs, timeout_s)
    problems, found = [], []
    for key, (info, problem) in results.items():
        if problem is None and info.get("error"):
            problem = info["error"]
        if problem is not None:
            problems.append((owners[key], problem))
        else:
            found.append(info)
    _raise_first(problems, "GPU preflight", "check the NVIDIA driver and the torch build on that node, "
                 "or train on CPUs with --gpus-per-trial 0")
    return sorted(found, key=lambda d: (d["node_ip"], d["node"], d["ray_gpu_ids"]))

"""What a run writes and reads back: checkpoints and model files (``weights_only``-loadable), JSON records.

Checkpoints and models live on shared storage, where unpickling arbitrary objects would let
whoever can write there run code in every process that resumes. So every file holds only
tensors and plain containers of numbers and strings, and is read with ``weights_only=True``.
Tensors are saved from the CPU: a file loads on a machine without a GPU, and a checkpoint is
read onto the CPU first, whatever device the run uses (state dicts copy themselves onto the
parameters' device when loaded).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import RunConfig
from .device import cuda_backends

CHECKPOINT_NAME = "checkpoint.pt"
# 2: RNG states as tensors and numbers, CPU tensors only. 1 (before) pickled numpy objects.
CHECKPOINT_FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint file this version cannot (safely) resume from."""


def to_cpu(obj):
    """``obj`` with every tensor in its dicts, lists and tuples moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def tensors(obj):
    """Every tensor in a nest of dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (dict, list, tuple)):
        for v in obj.values() if isinstance(obj, dict) else obj:
            yield from tensors(v)


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file and rename: never leave a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial temporary file either
    return path


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """The model's state dict, as CPU tensors (``torch.load(path, weights_only=True)``)."""
    return atomic_save(to_cpu(model.state_dict()), path)


def write_text(path: Path, text: str) -> None:
    """``text`` written to a temporary file and renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial temporary file either


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON, written atomically (``write_text``)."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def check_writable(path: str | os.PathLike, flag: str) -> None:
    """Refuse, naming ``flag``, a folder that cannot be made or written in, before anything is written.

    Writing a probe file is the only test that also holds for root (who passes every permission
    check) on a read-only or immutable file system.
    """
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot write in {existing} ({e.strerror})") from None


def versions() -> dict:
    """The versions and CUDA settings a run's results depend on, recorded next to them.

    ``cuda_backends`` (cudnn.benchmark, TF32) is None in a process that set up no CUDA device.
    """
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda, "cuda_backends": cuda_backends()}


# ---------------------------------------------------------------------------------------------
# RNG states


def rng_state(device: torch.device) -> dict:
    """The RNG states a resumed run restores, as tensors and numbers.

    Only the CUDA generator of ``device`` is saved, not every GPU's: a checkpoint written on a
    4-GPU node resumes on a 1-GPU node. A CPU run never touches CUDA (no context on the GPUs
    of the node it shares).
    """
    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what ``rng_state`` saved; the CUDA state only on a CUDA device."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].cpu().numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    # torch wants ByteTensors on the CPU for the generator states, whatever device the run uses.
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                    epoch: int, history: list[dict], cfg: RunConfig, *,
                    scaler: torch.amp.GradScaler | None = None) -> Path:
    """Everything ``fit`` needs to continue after ``epoch`` exactly as if never interrupted."""
    device = next(model.parameters()).device
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "history": history,
        "config": cfg.to_dict(),
        "rng": rng_state(device),
    }
    return atomic_save(to_cpu(state), path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint onto the CPU, unpickling nothing but tensors and plain containers."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} holds objects a safe load refuses (a checkpoint of an older version?): "
                              f"{str(e).splitlines()[0]}; start the run afresh without it") from e
    except (RuntimeError, EOFError) as e:  # torch's zip reader on a truncated or overwritten file
        raise CheckpointError(f"{path} is damaged ({str(e).splitlines()[0].split('. ')[0]})") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); "
                              "start the run afresh without it")
    return state


def restore_checkpoint(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                       device: torch.device, scaler: torch.amp.GradScaler | None = None) -> tuple[int, list[dict]]:
    """Load ``state`` (CPU tensors) into a freshly built run on ``device``: (epoch, history)."""
    model.load_state_dict(state["model"])  # copies onto the parameters' device
    # The fused/foreach kernels are this machine's choice (a GPU checkpoint may resume on a CPU),
    # not the checkpoint's. They must be in the groups before load_state_dict: it places each
    # state tensor by the groups it loads, and AdamW's ``step`` goes onto the parameter's device
    # only for a fused group (a CPU checkpoint's unfused step would stay on the CPU, and the
    # fused CUDA kernel refuses a mix of devices).
    kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    saved = state["optimizer"]
    groups = [{**group, **own} for group, own in zip(saved["param_groups"], kernels)]
    optimizer.load_state_dict({**saved, "param_groups": groups})
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], device)
    return state["epoch"], state["history"]


def find_checkpoint(path: str | os.PathLike | None) -> Path | None:
    """``path`` itself, or the checkpoint file inside the directory ``path``; None if absent."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    return path if path.is_file() else None

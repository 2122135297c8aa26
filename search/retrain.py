"""Retrain a search's best config on train + validation and evaluate the test set once.

Example::

    python -m search.retrain runs/scratch                 # the search's --max-epochs (a searched epochs: the best's)
    python -m search.retrain runs/scratch --epochs 60
    python -m search.retrain runs/scratch --compile      # torch.compile the model (whatever the search did)

Reads ``best/config.json`` and the search's config from its study (for the data, split as
the search split it) and writes ``best/model.pt`` (a state dict of CPU tensors:
``torch.load(..., weights_only=True)`` into ``model.build_model``), ``best/metrics.json`` (with
the description of the data it trained on) and ``best/history.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from model import ResNet, build_model
from model.checkpoint import save_model, write_json
from model.config import RunConfig
from model.data import CIFAR10Data
from model.device import resolve_device
from model.sources import CIFAR10_CLASSES, DataError
from model.train import evaluate_test, fit

from .config import SearchConfig
from .constants import BEST, BEST_CONFIG, BEST_HISTORY, BEST_METRICS, BEST_MODEL
from .errors import SearchError
from .ray_start import trial_device
from .retrain_plan import replan_best
from .results import BEST_PARAMS, BEST_RUN_CONFIG, BEST_TRIAL, BEST_VAL_ACC
from .study import EPOCHS_PARAM


def load_best_model(out: str | Path) -> ResNet:
    """The retrained best model of the search in ``out`` (``best/model.pt``), on the CPU, in eval mode."""
    metrics = json.loads((Path(out) / BEST / BEST_METRICS).read_text())
    cfg = metrics["config"]
    # As many classes as the data it trained on (an image-folder tree may have any number).
    classes = (metrics.get("data") or {}).get("classes", CIFAR10_CLASSES)
    # Pretrained architectures were built with the ImageNet stem their weights need.
    model = build_model(cfg["arch"], num_classes=len(classes), stem="imagenet" if cfg.get("weights") else None)
    model.load_state_dict(torch.load(Path(out) / BEST / BEST_MODEL, map_location="cpu", weights_only=True))
    return model.eval()


def load_search_data(out: str | Path) -> CIFAR10Data:
    """The search's data, split and subset as the search did, from its saved config."""
    return SearchConfig.from_run(out).search_data()


def retrain(best: dict, data: CIFAR10Data, out: Path, epochs: int | None = None, device: str = "auto",
            threads: int = 0, compile: bool | None = None, pretrained: dict | None = None) -> dict:
    """Train ``best[BEST_RUN_CONFIG]`` on train + validation, then test it exactly once.

    ``compile`` (None: as the search did) switches ``torch.compile`` on or off. ``pretrained``
    maps architectures to state dicts the search's driver loaded (this node may lack the file).
    """
    config = dict(best[BEST_RUN_CONFIG])
    if epochs is not None:
        config["epochs"] = epochs
    if compile is not None:
        config["compile"] = compile
    config.update(device=device, threads=threads)
    cfg = RunConfig.from_dict(config)
    state = (pretrained or {}).get(cfg.arch) if cfg.weights is not None else None
    t0 = time.perf_counter()

    def say(m: dict, _checkpoint) -> None:
        # One line per epoch: the retrain takes minutes, and is no trial that the search's display shows.
        spent = time.perf_counter() - t0
        left = spent / m["epoch"] * (cfg.epochs - m["epoch"])
        print(f"  retrain epoch {m['epoch']}/{cfg.epochs}: train_loss {m['train_loss']:.4f}, "
              f"{m['images_per_second']:,.0f} images/s, ~{left / 60:.1f} min left", flush=True)

    result = fit(cfg, data, say, train_on_val=True, pretrained=state)
    seconds = time.perf_counter() - t0
    if result.status != "completed":
        raise RuntimeError(f"the retrain {result.status} after {result.epochs} epochs")
    metrics = {
        "trial": best[BEST_TRIAL],
        "search_val_acc": best[BEST_VAL_ACC],
        **evaluate_test(result.model, cfg, data),
        "epochs": result.epochs,
        "train_images": int(len(data.train_labels) + len(data.val_labels)),
        "seconds": seconds,
        "images_per_second": sum(h["images_per_second"] for h in result.history) / len(result.history),
        "device": str(resolve_device(cfg.device)),
        "precision": result.precision,
        "config": cfg.to_dict(),
        "data": data.describe(),
    }
    best_dir = out / BEST
    save_model(result.model, best_dir / BEST_MODEL)
    write_json(best_dir / BEST_HISTORY, result.history)
    write_json(best_dir / BEST_METRICS, metrics)
    return metrics


def retrain_run(out: str | Path, epochs: int | None = None, data: CIFAR10Data | None = None, cpus: float = 0,
                gpus: float = 0, use_ray: bool = False, compile: bool | None = None,
                pretrained: dict | None = None) -> dict:
    """Retrain the best config of the search in ``out``, as a Ray task when ``use_ray``."""
    out = Path(out).resolve()
    best_path = out / BEST / BEST_CONFIG
    if not best_path.exists():
        raise FileNotFoundError(f"{best_path} not found: the search in {out} has no trial that ran all epochs yet")
    best = json.loads(best_path.read_text())
    if epochs is None:
        # A space that searched the epochs chose them with the rest of the config: the retrain keeps them.
        epochs = (best.get(BEST_PARAMS) or {}).get(EPOCHS_PARAM) or SearchConfig.from_run(out).max_epochs
    data = data if data is not None else load_search_data(out)
    best = replan_best(out, best, epochs, data)  # the trials' budget rules, re-planned for the retrain's length
    device = trial_device(gpus)
    print(f"retraining trial {best[BEST_TRIAL]} on train + validation for {epochs} epochs ...", flush=True)
    if use_ray:
        import ray

        # On a cluster the driver may have no GPU: run where the trials ran.
        task = ray.remote(num_cpus=cpus or 1, num_gpus=gpus)(_retrain_and_return)
        metrics, files = ray.get(task.remote(best, data, epochs, device, int(cpus or 0), compile,
                                                   pretrained))
        for name, blob in files.items():
            (out / BEST / name).write_bytes(blob)
    else:
        metrics = retrain(best, data, out, epochs, device=device, threads=int(cpus or 0), compile=compile,
                          pretrained=pretrained)
    print(f"retrained: test_acc {metrics['test_acc']:.4f} (search val_acc {metrics['search_val_acc']:.4f}); "
          f"wrote {out / BEST}/{BEST_MODEL}, {BEST_METRICS}, {BEST_HISTORY}")
    return metrics


def _retrain_and_return(best: dict, data: CIFAR10Data, epochs: int, device: str, threads: int,
                        compile: bool | None = None, pretrained: dict | None = None):
    """Ray task body: retrain in a scratch folder on the worker and ship the files back."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / BEST).mkdir()
        metrics = retrain(best, data, Path(tmp), epochs, device=device, threads=threads, compile=compile,
                          pretrained=pretrained)
        files = {p.name: p.read_bytes() for p in (Path(tmp) / BEST).iterdir()}
    return metrics, files


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.retrain", description="Retrain a search's best config and "
                                "test it once", add_help=add_help)
    p.add_argument("run_dir", help="the search's --out folder (holding best/config.json and study.db)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the search's --max-epochs, or the best "
                   "trial's own where the space searched them)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model, or not with --no-compile (default: as the search did)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        gpus = 1 if resolve_device(args.device).type == "cuda" else 0
        retrain_run(args.run_dir, epochs=args.epochs, gpus=gpus, compile=args.compile)
    except (FileNotFoundError, SearchError, DataError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

"""Ray start-up: the cluster a search joins or starts, and the devices its trials get."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys

from . import signals
from .disk import not_a_disk_full_traceback
from .errors import SearchError


def check_address(address: str, timeout: float = 10.0) -> None:
    """Refuse Ray Client and unreachable heads in one line, before Ray's minutes of GCS retries."""
    if address.startswith("ray://"):
        raise SearchError(f"--address {address}: Ray Client is not supported (Tune's driver would run on the head, "
                          "where --out and study.db do not exist); run the search on the cluster instead: "
                          "ray job submit --address http://HEAD:8265 --working-dir . -- python -m search.run ...")
    if address == "auto":
        return  # Ray finds the local cluster itself, and says so at once if there is none
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SearchError(f"--address {address}: expected 'auto' or IP:PORT of a Ray head (port 6379 by default)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise SearchError(f"--address {address}: no Ray head answers there ({e.strerror or e}); start one with "
                          f"`ray start --head` or check the address and firewall") from None


def init_ray(address: str | None, verbose: int) -> bool:
    """Join the cluster at ``address``, or start a local Ray; True if this call started it."""
    import ray

    # Tune's new console output ignores custom reporters; the classic table shows our columns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The driver handles SIGINT itself (search/signals.py), as it does SIGTERM: one path, one line.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's own experiment snapshot is never read (the study is the state), so its warning that
    # short trials snapshot it often (3 lines each time) says nothing: 0 turns it off (Tune's own advice).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return False
    # "local": a plain ray.init() would join any cluster this machine started earlier.
    kwargs = dict(address=address or "local", log_to_driver=verbose >= 2)
    if verbose == 0:
        # Ray's start-up notes (the local instance, token authentication) and Tune's INFO lines
        # say nothing a user acts on; the progress display and the summary say what matters.
        kwargs.update(logging_level=logging.ERROR)
        logging.getLogger("ray.tune").setLevel(logging.WARNING)
        for name in ("ray.tune.execution.experiment_state", "ray.tune.execution.tune_controller"):
            logging.getLogger(name).addFilter(not_a_disk_full_traceback)
        logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(not_a_trial_that_never_reported)
    if address is None:
        kwargs.update(include_dashboard=False)
    with signals.deferred():
        try:
            ray.init(**kwargs)
        except ConnectionError as e:
            raise SearchError(f"--address {address}: cannot join the Ray cluster ({str(e).splitlines()[0]}); "
                              "start one with `ray start --head` or check the address") from None
        except SystemExit as e:
            if e.code != signal.SIGTERM:
                raise
            signals.received(signal.SIGTERM)  # ray.init's own handler took it (sys.exit(SIGTERM)): it was ours
        finally:
            # ray.init sets its own SIGTERM handler, and Ray's core worker answers SIGTERM with a crash dump.
            signals.reinstall()
    return True


def not_a_trial_that_never_reported(record: logging.LogRecord) -> bool:
    """Drops "Failed to fetch metrics for N trial(s)": trials the time budget ended before their first
    epoch have no results to fetch, and ``trials.csv`` comes from the study, not from these files."""
    return not record.getMessage().startswith("Failed to fetch metrics")


@contextlib.contextmanager
def ray_session(address: str | None, verbose: int):
    """Ray for the length of the block: joined or started here, and shut down after if this started it."""
    started = init_ray(address, verbose)
    try:
        yield
    finally:
        if started:  # a Python caller gets its process back as it was
            import ray

            ray.shutdown()


def resolve_gpus(requested: float | None, cluster_gpus: float) -> float:
    """GPUs per trial: ``requested``, or 0.5 when the cluster has GPUs and 0 when it has none."""
    if requested is None:
        if cluster_gpus == 0:
            print("note: no GPU in the Ray cluster; trials run on CPUs (--gpus-per-trial 0)", file=sys.stderr)
            return 0.0
        return 0.5
    if requested > 0 and cluster_gpus == 0:
        raise SearchError(f"--gpus-per-trial {requested} asked for, but the Ray cluster has no GPU; "
                          "use --gpus-per-trial 0 or join a GPU cluster with --address")
    if requested > cluster_gpus:
        raise SearchError(f"--gpus-per-trial {requested} is more than the cluster's {cluster_gpus:g} GPUs")
    return requested


def trial_device(gpus: float) -> str:
    """The device of a trial (and of the retrain) that Ray gives ``gpus`` GPUs: CPU trials never touch CUDA."""
    return "cuda" if gpus > 0 else "cpu"


def trial_slots(resources: dict, cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int | None) -> int:
    """How many trials run at once on ``resources`` (``ray.cluster_resources()``), at least 1."""
    slots = [resources.get("CPU", 0) // cpus_per_trial]
    if gpus_per_trial > 0:
        slots.append(resources.get("GPU", 0) // gpus_per_trial)
    if max_concurrent is not None:
        slots.append(max_concurrent)
    return max(1, int(min(slots)))

"""Two small Tune adapters: each trial's newest checkpoint recorded in the study, and a stop anyone can ask for."""

from __future__ import annotations

from ray.tune import Callback, Stopper

from ..storage import checkpoint_uri


class RecordCheckpoints(Callback):
    """Records in the study, as each is written, the newest whole checkpoint of every trial.

    Tune calls ``on_checkpoint`` once the trial's worker has uploaded the checkpoint to the
    storage path, so what the study points at is always complete; ``--resume`` continues the
    trial from it, on any node.
    """

    def __init__(self, searcher, storage_path: str) -> None:
        self.searcher, self.storage_path = searcher, storage_path

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self.searcher.record_checkpoint(trial.trial_id, checkpoint_uri(self.storage_path, checkpoint.path))


class StopSearch(Stopper):
    """Ends the Tune run at its next step once asked (a signal, a full disk), trials left RUNNING in the study.

    Tune stops its running trials without telling the searcher, so the study keeps each one as
    it was, its curve and checkpoint included, and ``--resume`` continues it.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.reason is not None

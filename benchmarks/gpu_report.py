"""What ``benchmarks.gpu_check`` has found so far, kept safe at every moment, and the time it may take.

A GPU is lent for a few minutes, and a run may be killed at any moment. So every row is
printed as soon as it is made, the JSON is rewritten after every row and every measurement,
SIGTERM and SIGINT end the check with what it has (and stop its subprocesses), and every
subprocess waits no longer than the time left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

STATUSES = ("ok", "FAILED", "NOT RUN", "skipped")  # FAILED and NOT RUN make the exit code 1


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: stop, keep what was measured."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Budget:
    """Seconds left of the whole check, and how many of them a section gets."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def share(self, fraction: float, floor: float) -> float | None:
        """``fraction`` of what is left, at least ``floor`` seconds; None if not even ``floor`` is left."""
        left = self.left()
        return None if left < floor else min(max(fraction * left, floor), left)


class Report:
    """Rows (check, status, result) and raw measurements, printed as made and saved after each."""

    def __init__(self, path: str | os.PathLike | None, header: dict):
        self.path = Path(path) if path else None
        self.header = header
        self.rows: dict[str, dict] = {}
        self.measurements: list[dict] = []
        self.sections: dict[str, dict] = {}
        self.state = "running"
        self.started = time.time()
        self._saving = False
        self._pending: int | None = None  # a signal that arrived while the file was being written

    def row(self, section: str, check: str, status: str, result: str, *, quiet: bool = False) -> None:
        """Add the row ``check``, or replace it (a median that got one more repeat).

        A quiet row is neither printed nor saved yet: the next measurement saves both together.
        """
        assert status in STATUSES, status
        self.rows[check] = {"section": section, "check": check, "status": status, "result": result}
        if not quiet:
            self.save()  # before the print: a printed row is already in the file
            print(f"   {status:8s} {check}: {result}", flush=True)

    def measure(self, section: str, line: str, **numbers) -> None:
        self.measurements.append({"section": section, **numbers})
        self.save()
        print(f"     {line}", flush=True)

    def detail(self, section: str, **details) -> None:
        self.sections.setdefault(section, {}).update(details)
        self.save()

    @property
    def failed(self) -> bool:
        return any(r["status"] in ("FAILED", "NOT RUN") for r in self.rows.values())

    def table(self) -> str:
        lines = ["| check | status | result |", "|---|---|---|"]
        return "\n".join(lines + [f"| {r['check']} | {r['status']} | {r['result']} |" for r in self.rows.values()])

    def save(self) -> None:
        if self.path is None:
            return
        body = {**self.header, "state": self.state, "elapsed_s": round(time.time() - self.started, 1),
                "rows": list(self.rows.values()), "measurements": self.measurements, "sections": self.sections}
        self._saving = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
            os.replace(tmp, self.path)  # a reader never sees half a file
        finally:
            self._saving = False
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum)

    def on_signal(self, signum, frame) -> None:
        if self._saving:
            self._pending = signum  # raised once the file is whole
        else:
            raise Interrupted(signum)

    def finish(self, state: str) -> None:
        """The last save: no signal may cut it short."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        self.state = state
        self._pending = None
        self.save()


def catch_signals(report: Report) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, report.on_signal)


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """Terminate ``proc``, then kill it if it has not exited within ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(cmd: list[str], timeout: float, cwd: Path, env: dict | None = None) -> tuple[int | None, str]:
    """Run ``cmd`` for at most ``timeout`` seconds: (exit code, or None if it timed out; its output)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1.0))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        stop(proc)
        return None, proc.communicate()[0]
    except BaseException:  # Interrupted: the child must not outlive the check
        stop(proc)
        raise


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][:300]


def tail(text: str, n: int = 3000) -> str:
    return text[-n:]

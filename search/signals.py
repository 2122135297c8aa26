"""SIGINT and SIGTERM end a search at once, in one line that says how to resume it.

Nothing needs saving when a search is interrupted: every epoch's result and every trial's newest
checkpoint are already in the study (``search/study.py``). So a signal, to the driver or to its
whole process group (a terminal's Ctrl-C, ``timeout``, SLURM at its time limit, Kubernetes),
asks the Tune run to stop at its next step (``StopSearch``), and the driver writes the results
and says how to resume. A second signal raises KeyboardInterrupt at once, as Python's own handler does.

When a signal reached the whole process group, Ray's own processes died with the driver's, and
Ray's calls then wait a minute for them before failing. The command line therefore sets
``HARD_EXIT_S``: a process still alive that long after the signal says its line and exits, code 1.
A Python caller (a notebook) keeps its process: it is not set there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

HARD_EXIT_S: float | None = None  # set by ``python -m search.run``: the most seconds a search lives after a signal

_said: list[str] = []  # the line printed for the interruption, once


def say_once(line: str) -> None:
    """Print the interruption's line on stderr, unless it was printed already (by the driver, or the hard exit)."""
    if not _said:
        _said.append(line)
        print(line, file=sys.stderr, flush=True)


def resume_line(out, why: str, detail: str = "") -> str:
    """The one line of an interrupted search: what stopped it, and the command that continues it."""
    return (f"error: the search was interrupted ({why}){detail}; the study in {out} holds every finished epoch and "
            "checkpoint: continue it with the same command and --resume")


@contextlib.contextmanager
def stop_on_signals(stop, out):
    """While the Tune run lasts, SIGINT and SIGTERM ask ``stop`` (a ``StopSearch``) to end it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    signals = (signal.SIGINT, signal.SIGTERM)

    def handler(signum, frame):
        name = signal.Signals(signum).name
        for s, old in previous.items():  # a second signal gets the handler from before: KeyboardInterrupt, now
            signal.signal(s, old)
        stop.request(name)
        if HARD_EXIT_S is not None:
            timer = threading.Timer(HARD_EXIT_S, _exit_now, args=(resume_line(out, name),))
            timer.daemon = True
            timer.start()

    previous = {s: signal.signal(s, handler) for s in signals}
    _said.clear()
    try:
        yield
    finally:
        for s, old in previous.items():
            if signal.getsignal(s) is handler:
                signal.signal(s, old)


def _exit_now(line: str) -> None:
    """The search outlived ``HARD_EXIT_S`` after its signal (Ray's processes died with it): exit, losing nothing."""
    say_once(line)
    os._exit(1)

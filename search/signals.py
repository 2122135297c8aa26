"""SIGINT and SIGTERM end a search at any moment, in one line that says what to do next.

Nothing needs saving when a search is interrupted: every epoch's result and every trial's newest
checkpoint are already in the study (``search/study.py``). So a signal, to the driver or to its
whole process group (a terminal's Ctrl-C, ``timeout``, SLURM at its time limit, Kubernetes):

- while the Tune run lasts, asks it to stop at its next step (``StopSearch``), and the driver
  writes the results and says how to resume;
- before it (loading data, starting Ray, timing the plan) and after it (the retrain, the
  report), raises KeyboardInterrupt, as Python's own handler does, and the command line prints
  the line of that phase (``phase``): run the command again, ``--resume``, or rerun the retrain.

A second signal raises KeyboardInterrupt at once.

The command line installs the handler first thing (``install``), and again once Ray has started
(``reinstall``): ``ray.init`` replaces the SIGTERM handler with its own, and Ray's core worker
then answers SIGTERM with a crash dump. It also sets ``HARD_EXIT_S``: the line is said as the
signal arrives, by a thread it wakes, and a process still alive that long after it exits, code 1.
The early line covers Ray's core worker ending the driver itself once the group's signal killed
its raylet; the exit covers a KeyboardInterrupt that a library swallows, and the case where
Ray's own processes died with the group and Ray's calls wait a minute for them. A Python caller
(a notebook) keeps its process and its own handlers, but for the Tune run, which stops cleanly on
a signal there too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable

HARD_EXIT_S: float | None = None  # set by ``python -m search.run``: the most seconds a search lives after a signal
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_said: list[str] = []  # the line printed for the interruption, once
_say_lock = threading.Lock()
_state: dict = {"installed": False, "line": None, "stop": None, "signalled": None, "pending": None, "defer": False,
                "watchdog": None}


def say_once(line: str) -> None:
    """Print the interruption's line on stderr, unless it was printed already (by the driver, or the watchdog)."""
    with _say_lock:  # the watchdog thread and the main thread may both say it
        if not _said:
            _said.append(line)
            print(line, file=sys.stderr, flush=True)


def resume_line(out, why: str, detail: str = "") -> str:
    """The one line of an interrupted search: what stopped it, and the command that continues it."""
    return (f"error: the search was interrupted ({why}){detail}; the study in {out} holds every finished epoch and "
            "checkpoint: continue it with the same command and --resume")


def restart_line(why: str) -> str:
    """The line of a search interrupted before it wrote anything to resume."""
    return f"error: the search was interrupted ({why}) before it started; nothing is lost: run the same command again"


def retrain_line(out, why: str) -> str:
    return (f"error: the retrain was interrupted ({why}); the search's results in {out} are intact: run the retrain "
            f"again with: python -m search.retrain {out}")


def report_line(out, why: str) -> str:
    return (f"error: the report was interrupted ({why}); the search's results in {out} are intact: write it again "
            f"with: python -m search.report {out}")


def interrupted_line() -> str:
    """The line for the signal that interrupted the command (as its phase had it), or a general one."""
    return _state["pending"] or ("error: interrupted; what was computed is kept: the same command with --resume "
                                 "continues a search, python -m search.retrain OUT a retrain")


def received(signum: int) -> None:
    """Take ``signum`` as if the handler had: for a signal that another handler caught first (``ray.init``'s)."""
    with deferred():
        _handler(signum, None)


def _phase_line(name: str) -> str:
    """The line of a signal ``name`` now: the enclosing phase's, or before any, the restart's."""
    return _state["line"](name) if _state["line"] else restart_line(name)


def _handler(signum, frame) -> None:
    name = signal.Signals(signum).name
    if _state["signalled"] is not None:
        raise KeyboardInterrupt  # a second signal: now
    _state["signalled"] = name
    line = _phase_line(name)
    _state["pending"] = line  # the hard exit, when HARD_EXIT_S is set, is the watchdog's (install)
    if _state["stop"] is not None:
        _state["stop"].request(name)  # the Tune run ends at its next step; the driver says the line
        return
    if not _state["defer"]:
        raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT and SIGTERM for the rest of the process (the command line's first step)."""
    for s in SIGNALS:
        signal.signal(s, _handler)
    _state["installed"] = True
    _said.clear()
    if HARD_EXIT_S is not None and _state["watchdog"] is None:
        _start_watchdog()


def _start_watchdog() -> None:
    """Start the hard exit from a thread woken by the signal itself, not by the handler.

    Python runs a handler only when the main thread runs Python: in a C call that waits (Ray's
    start-up waiting for a GCS the same signal killed does, for 30 s) it would run too late.
    Python's C-level handler writes each signal's number to the wakeup fd at once, whatever the
    main thread does; this thread reads it, says the phase's line and starts the hard exit.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            signum = os.read(read, 1)[0]
            if signum in SIGNALS:
                name = signal.Signals(signum).name
                line = _state["pending"] or _phase_line(name)
                # Said now, not at the exit: when the signal went to the process group, Ray's core worker may
                # end this process (exit 1, from C++) as soon as its raylet dies, before the driver says it.
                say_once(line)
                timer = threading.Timer(HARD_EXIT_S, _exit_now, args=(line,))
                timer.daemon = True
                timer.start()
                return

    _state["watchdog"] = threading.Thread(target=watch, name="signal-watchdog", daemon=True)
    _state["watchdog"].start()


def reinstall() -> None:
    """Take SIGINT and SIGTERM back after a library replaced their handlers (``ray.init`` does), if installed."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if signal.getsignal(s) is not _handler:
                signal.signal(s, _handler)


@contextlib.contextmanager
def phase(line: Callable[[str], str]):
    """For the block, a signal's line is ``line(signal name)``, until ``now`` changes it; restored after."""
    before, _state["line"] = _state["line"], line
    try:
        yield
    finally:
        _state["line"] = before


def now(line: Callable[[str], str]) -> None:
    """From here to the end of the enclosing ``phase``, a signal's line is ``line(signal name)``."""
    _state["line"] = line


@contextlib.contextmanager
def stop_on_signals(stop, out):
    """While the Tune run lasts, SIGINT and SIGTERM ask ``stop`` (a ``StopSearch``) to end it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    own = not _state["installed"]  # a Python caller: the handler only for the Tune run, its own restored after
    previous = {s: signal.signal(s, _handler) for s in SIGNALS} if own else {}
    if own:
        _said.clear()
        _state["signalled"] = None
    _state["stop"] = stop
    if _state["signalled"] is not None:
        stop.request(_state["signalled"])  # a signal came as the run was being set up: stop at once
    try:
        with phase(lambda name: resume_line(out, name)):
            yield
    finally:
        _state["stop"] = None
        for s, old in previous.items():
            if signal.getsignal(s) is _handler:
                signal.signal(s, old)


@contextlib.contextmanager
def deferred():
    """A signal during the block is raised as KeyboardInterrupt at its end, not inside it.

    For ``ray.init``: an exception raised while its core worker connects has crashed the
    process (a segmentation fault), where one raised after it unwinds cleanly.
    """
    before, _state["defer"] = _state["defer"], True
    try:
        yield
    finally:
        _state["defer"] = before
    if _state["signalled"] is not None and _state["stop"] is None and not before:
        raise KeyboardInterrupt


def _exit_now(line: str) -> None:
    """The search outlived ``HARD_EXIT_S`` after its signal: exit, losing nothing (the study holds it)."""
    say_once(line)
    os._exit(1)

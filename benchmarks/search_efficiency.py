"""Search efficiency: anytime curves of the shipped search against its baselines, over seeds.

Every arm is ``python -m search.run`` with the same space, data, validation split and number
of trials, plus the arm's own flags (``ARMS``); the seed changes the sampler and the trials'
seeds. The default arms split the gain of TPE + ASHA into sampler and scheduler:

- ``random_fifo``: the baseline. Optuna's RandomSampler, no early stopping: every trial runs
  ``--max-epochs``.
- ``tpe_asha``: the search as it ships: TPE (multivariate, constant liar) and ASHA stopping
  weak trials at rungs of ``--grace-period`` x ``--reduction-factor``^k epochs.
- ``random_asha`` and ``tpe_fifo``: one of the two changes each.
- ``tpe_asha_norecipe`` (not run by default, ``--arms``): the shipped search without its recipe.

``--define-arm NAME=FLAGS`` adds an arm from extra search.run flags without editing this file.
The random arms run without the space's recipe (plain random search); the TPE arms evaluate it
first, as the search ships, and ``tpe_asha_norecipe`` shows what the recipe adds.

Per arm and seed, the anytime curve (``benchmarks/anytime.py``): the incumbent (best val_acc
among trials that ran every epoch) after each trial-epoch, in time order, from Tune's
``result.json`` files. Per arm, over seeds (mean ± sd): the final incumbent; the trial-epochs
spent; the trial-epochs after which the incumbent first reached the baseline's final one
(``--baseline``, default ``random_fifo``), as a fraction of the baseline's trial-epochs (against
the same seed's baseline run, and against the mean over seeds; a seed that never reached it is
named, and left out of the mean); and the wall time.

Example (the defaults: 4 arms x 3 seeds x 20 trials, about 90 minutes on an idle 2-core CPU)::

    python -m benchmarks.search_efficiency --data ../shared/data/cifar10-jpeg.tar.gz \\
        --out runs/bench-efficiency --screenshot docs/search-efficiency-cpu.png

Writes ``OUT/<arm>/seed<S>/`` (a complete ``search.run`` folder, its ``search.log`` and
``bench_run.json``), ``OUT/results.json`` (or ``--json``) and ``OUT/anytime.html`` with
``plotly.min.js`` beside it. A run whose folder holds a finished result is reused, so an
interrupted benchmark continues where it stopped when started again; ``--force`` reruns.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import search.cli as search_cli
import spaces
from benchmarks.anytime import CurvePoint, anytime_curve, final_best, first_reach, mean_sd, read_events
from benchmarks.anytime_plot import anytime_figure, screenshot, write_figure
from model.checkpoint import versions, write_json
from model.config import DataConfig
from model.flags import DefaultsHelpFormatter, add_config_args, config_kwargs
from search.constants import EXPERIMENT

REPO = Path(__file__).resolve().parents[1]
BASELINE = "random_fifo"  # the arm whose final best is the target, unless --baseline says otherwise
# Each arm: the search.run flags it adds to the common ones. Sampler and scheduler are spelled
# out so that an arm keeps its meaning if search.run's defaults change.
ARMS = {
    # The random arms are plain random search: no recipe, so the baseline knows nothing.
    "random_fifo": ("--sampler", "random", "--scheduler", "fifo", "--no-recipe"),
    # The search as it ships: the space's recipe first, TPE with startup scaled to the budget, ASHA.
    "tpe_asha": ("--sampler", "tpe", "--scheduler", "asha"),
    "random_asha": ("--sampler", "random", "--scheduler", "asha", "--no-recipe"),
    "tpe_fifo": ("--sampler", "tpe", "--scheduler", "fifo"),
    # The shipped search less its recipe: what the recipe adds.
    "tpe_asha_norecipe": ("--sampler", "tpe", "--scheduler", "asha", "--no-recipe"),
    "random_fifo_recipe": ("--sampler", "random", "--scheduler", "fifo"),
}
DEFAULT_ARMS = ("random_fifo", "tpe_asha", "random_asha", "tpe_fifo")
# Narrowing applied when --choices is not given: one architecture keeps a trial's cost fixed,
# so trial-epochs measure compute and the arms differ only in how they pick the rest.
DEFAULT_CHOICES = {"scratch": ["arch=resnet20"]}
# Names to report numbers under, by data file name.
DATA_LABELS = {"cifar10-jpeg.tar.gz": "CIFAR-10 (JPEG-75 copy)"}
RUN_INFO = "bench_run.json"  # written into a run's folder when its search.run finished
LOG = "search.log"
# Flags that may differ between a stored run and a new command without changing the result.
IGNORED_FLAGS = {"--out", "--verbose"}


class BenchmarkError(Exception):
    """Bad input for the benchmark: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------
# Command lines


def run_dir(root: Path, arm: str, seed: int) -> Path:
    return root / arm / f"seed{seed}"


def common_flags(args: argparse.Namespace) -> list[str]:
    """The search.run flags every arm and seed share."""
    flags = [
        "--space", args.space, "--data", args.data, "--val-size", str(args.val_size),
        "--num-samples", str(args.num_samples), "--max-epochs", str(args.max_epochs),
        "--grace-period", str(args.grace_period), "--reduction-factor", f"{args.reduction_factor:g}",
        "--cpus-per-trial", f"{args.cpus_per_trial:g}", "--split-seed", str(args.split_seed), "--no-retrain",
        "--no-report",
    ]
    if args.train_subset is not None:
        flags += ["--train-subset", str(args.train_subset)]
    if args.download:
        flags.append("--download")
    if args.gpus_per_trial is not None:
        flags += ["--gpus-per-trial", f"{args.gpus_per_trial:g}"]
    if args.max_concurrent is not None:
        flags += ["--max-concurrent", str(args.max_concurrent)]
    for item in args.choices:
        flags += ["--choices", item]
    return flags + shlex.split(args.search_flags)


def search_argv(arm: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The ``search.run`` command line of one arm and seed; the arm's flags come last and win."""
    out = run_dir(Path(args.out), arm, seed)
    return [*common_flags(args), "--seed", str(seed), "--out", str(out), "--verbose", str(args.verbose),
            *args.arm_flags[arm]]


def comparable(argv: list[str]) -> list[str]:
    """``argv`` without the flags (and their values) in IGNORED_FLAGS."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in IGNORED_FLAGS:
            skip = True
        else:
            kept.append(item)
    return kept


def check_argv(arm: str, argv: list[str]) -> None:
    """Parse ``argv`` with search.run's own parser, so a flag it lacks fails before any run."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            search_cli.get_args_parser().parse_args(argv)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        raise BenchmarkError(f"arm {arm}: search.run refuses its flags: {message[-1] if message else argv}") from None


# ---------------------------------------------------------------------------------------------
# Running


def finished_info(out: Path) -> dict | None:
    """The run's bench_run.json when search.run finished in ``out``, else None."""
    info, summary = out / RUN_INFO, out / "search.json"
    if not (info.is_file() and summary.is_file()):
        return None
    if json.loads(summary.read_text()).get("finished") is None:
        return None
    return json.loads(info.read_text())


def run_search(arm: str, seed: int, argv: list[str], out: Path) -> dict:
    """Run ``python -m search.run argv`` in a process of its own, output to OUT/…/search.log.

    A process per run gives every search a fresh Ray and interpreter, as a user would have;
    its wall time includes their start-up, the same for every arm.
    """
    if out.exists():
        shutil.rmtree(out)  # an unfinished run: started again from scratch, so its wall time is whole
    out.mkdir(parents=True)
    started = time.time()
    with open(out / LOG, "w") as log:
        proc = subprocess.Popen([sys.executable, "-u", "-m", "search.run", *argv], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached search.run too: give Tune and Ray the time to stop cleanly.
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    wall = time.time() - started
    if code != 0:
        tail = "\n".join((out / LOG).read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{arm} seed {seed}: search.run exited with code {code} after {wall / 60:.1f} min; "
                           f"the end of {out / LOG}:\n{tail}")
    summary = out / "search.json"
    if not summary.is_file() or json.loads(summary.read_text()).get("finished") is None:
        raise RuntimeError(f"{arm} seed {seed}: search.run exited without finishing {summary}; see {out / LOG}")
    info = {"arm": arm, "seed": seed, "argv": argv, "started_unix": started, "wall_seconds": wall}
    write_json(out / RUN_INFO, info)
    return info


# ---------------------------------------------------------------------------------------------
# Reading back


def load_run(arm: str, seed: int, out: Path, info: dict, max_epochs: int) -> tuple[dict, list[CurvePoint]]:
    """One finished run: its anytime curve and what the study says, to check one against the other."""
    events = read_events(out / EXPERIMENT)
    curve = anytime_curve(events, max_epochs, start=info["started_unix"])
    summary = json.loads((out / "search.json").read_text())
    complete = {e.trial for e in events if e.epoch >= max_epochs and not e.diverged and math.isfinite(e.val_acc)}
    run = {
        "arm": arm,
        "seed": seed,
        "out": str(out),
        "trials": len({e.trial for e in events}),
        "complete": len(complete),
        "trial_epochs": curve[-1].epochs if curve else 0,
        "final_best": final_best(curve),
        "first_incumbent_epochs": next((p.epochs for p in curve if p.best is not None), None),
        "search_wall_seconds": summary.get("wall_seconds"),
        "total_wall_seconds": info["wall_seconds"],
        "study": {k: summary.get(k) for k in ("completed", "pruned", "failed", "trial_epochs", "best_val_acc")},
    }
    study_best = summary.get("best_val_acc")
    run["consistent_with_study"] = (summary.get("trial_epochs") == run["trial_epochs"]
                                    and (study_best is None) == (run["final_best"] is None)
                                    and (study_best is None or math.isclose(study_best, run["final_best"])))
    return run, curve


def reach(curve: list[CurvePoint], target: float | None, baseline_epochs: float | None,
          baseline_wall: float | None) -> dict:
    """When ``curve`` first reached ``target``, in trial-epochs and seconds, and as fractions."""
    point = first_reach(curve, target)
    return {
        "target": target,
        "reached": point is not None if target is not None else None,
        "epochs": point.epochs if point else None,
        "epoch_ratio": point.epochs / baseline_epochs if point and baseline_epochs else None,
        "seconds": point.seconds if point else None,
        "wall_ratio": point.seconds / baseline_wall if point and baseline_wall else None,
    }


def summarize(runs: dict[str, dict[int, dict]], curves: dict[str, dict[int, list[CurvePoint]]],
              baseline: str = BASELINE) -> dict:
    """Per run: epochs to reach the baseline's best; per arm: mean ± sd over seeds."""
    base = runs.get(baseline, {})
    base_best = mean_sd([r["final_best"] for r in base.values()])
    base_epochs = mean_sd([r["trial_epochs"] for r in base.values()])
    base_wall = mean_sd([r["total_wall_seconds"] for r in base.values()])
    for arm, by_seed in runs.items():
        for seed, run in by_seed.items():
            same = base.get(seed) or {}
            run["reach_same_seed"] = reach(curves[arm][seed], same.get("final_best"), same.get("trial_epochs"),
                                           same.get("total_wall_seconds"))
            run["reach_mean"] = reach(curves[arm][seed], base_best["mean"], base_epochs["mean"], base_wall["mean"])
    arms = {}
    for arm, by_seed in runs.items():
        rs = [by_seed[s] for s in sorted(by_seed)]
        arms[arm] = {
            "seeds": sorted(by_seed),
            "final_best": mean_sd([r["final_best"] for r in rs]),
            "trial_epochs": mean_sd([r["trial_epochs"] for r in rs]),
            "complete_trials": mean_sd([r["complete"] for r in rs]),
            "total_wall_seconds": mean_sd([r["total_wall_seconds"] for r in rs]),
            "search_wall_seconds": mean_sd([r["search_wall_seconds"] for r in rs]),
            # Fractions over the seeds that reached the target; a seed that never did is listed
            # in never_reached and counts in neither mean nor sd.
            "epoch_ratio_same_seed": mean_sd([r["reach_same_seed"]["epoch_ratio"] for r in rs]),
            "wall_ratio_same_seed": mean_sd([r["reach_same_seed"]["wall_ratio"] for r in rs]),
            "never_reached_same_seed": [r["seed"] for r in rs if r["reach_same_seed"]["reached"] is False],
            "epoch_ratio_vs_mean": mean_sd([r["reach_mean"]["epoch_ratio"] for r in rs]),
            "never_reached_vs_mean": [r["seed"] for r in rs if r["reach_mean"]["reached"] is False],
        }
    return {"baseline": baseline, "baseline_final_best": base_best, "baseline_trial_epochs": base_epochs,
            "arms": arms}


# ---------------------------------------------------------------------------------------------
# Printing


def pm(stat: dict, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    """``mean ± sd`` of a mean_sd dict; ``-`` when nothing was measured."""
    if stat["mean"] is None:
        return "-"
    text = format(stat["mean"] * scale, spec)
    if stat["sd"] is not None:
        text += " ± " + format(stat["sd"] * scale, spec)
    return text + suffix


def ratio_cell(stat: dict, never: list[int]) -> str:
    if stat["of"] and stat["n"] == 0:
        return f"never ({stat['of']} seed{'s' if stat['of'] > 1 else ''})"
    text = pm(stat, ".2f", suffix="×")
    if never:
        text += f" (never in {len(never)} of {stat['of']} seeds: {', '.join(map(str, never))})"
    return text


def markdown_table(summary: dict) -> str:
    lines = [
        f"| arm | seeds | final best val_acc | trial-epochs | epochs to reach {summary['baseline']}'s best, same seed "
        f"(÷ its epochs) | … its mean best (÷ mean epochs) | wall to reach, same seed (÷ its wall) | total wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, s in summary["arms"].items():
        lines.append(
            f"| {arm} | {','.join(map(str, s['seeds']))} | {pm(s['final_best'], '.4f')} | "
            f"{pm(s['trial_epochs'], '.1f')} | "
            f"{ratio_cell(s['epoch_ratio_same_seed'], s['never_reached_same_seed'])} | "
            f"{ratio_cell(s['epoch_ratio_vs_mean'], s['never_reached_vs_mean'])} | "
            f"{ratio_cell(s['wall_ratio_same_seed'], s['never_reached_same_seed'])} | "
            f"{pm(s['total_wall_seconds'], '.1f', 1 / 60, ' min')} |")
    return "\n".join(lines)


def data_label(data: str) -> str:
    return DATA_LABELS.get(Path(data).name, data)


def settings_line(args: argparse.Namespace) -> str:
    narrowed = f" ({'; '.join(args.choices)})" if args.choices else ""
    subset = f"{args.train_subset} training images" if args.train_subset else "all training images"
    return (f"{data_label(args.data)}, space {args.space}{narrowed}, {subset}, {args.val_size} validation images, "
            f"{args.num_samples} trials x {args.max_epochs} epochs, ASHA grace {args.grace_period} "
            f"R {args.reduction_factor:g}, seeds {','.join(map(str, args.seeds))}")


# ---------------------------------------------------------------------------------------------
# CLI


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency", description=__doc__.split("\n\n")[0],
                                add_help=add_help, formatter_class=DefaultsHelpFormatter)
    # The defaults fit 4 arms x 3 seeds into about 90 minutes on a 2-core CPU, two 1-thread
    # trials at once. Measured on one core: a resnet20 epoch (~2.9 ms per training image,
    # ~1.5 s per 1000 validation images) takes 3.9 s on 1000 + 1000 images; 4.7 s assumed with
    # two trials and Tune's driver sharing the machine. A fifo arm spends 24 x 9 = 216
    # trial-epochs, an ASHA arm ~43% (93; async ASHA with rungs at 1, 3, 9 epochs, simulated);
    # each trial adds ~4 s of start-up, each search ~25 s (Python, Ray). Per seed:
    # 2 x ((216 x 4.7 + 24 x 4) / 2 + 25) + 2 x ((93 x 4.7 + 24 x 4) / 2 + 25) s ~ 29 min.
    p.add_argument("--space", default="scratch",
                   help=f"search space: {', '.join(spaces.list_spaces())}, or a user space (file.py:fn)")
    add_config_args(p, DataConfig, defaults={"val_size": 1000, "train_subset": 1000})
    p.add_argument("--choices", action="append", default=None, metavar="NAME=V1,V2",
                   help="passed on to search.run (repeatable); None: "
                        + "; ".join(f"{k}: {' '.join(v)}" for k, v in DEFAULT_CHOICES.items()))
    p.add_argument("--num-samples", type=int, default=20, help="trials per arm and seed")
    p.add_argument("--max-epochs", type=int, default=9, help="epochs of a trial that is never stopped")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial may be stopped")
    p.add_argument("--reduction-factor", type=float, default=3, help="ASHA: keep the top 1/R at each rung")
    p.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs per trial (1: two trials at once on 2 cores)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs per trial (default: search.run's)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most K trials at once")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in parse_list(s)], default="0,1,2",
                   help="comma-separated; seed S is search.run --seed S: the sampler's and the trials' seeds")
    p.add_argument("--split-seed", type=int, default=0,
                   help="search.run --split-seed: the validation split, the same for every arm and seed")
    p.add_argument("--arms", type=parse_list, default=None,
                   help=f"comma-separated, from {', '.join(ARMS)} and --define-arm's "
                        f"(None: {','.join(DEFAULT_ARMS)} and the defined ones)")
    p.add_argument("--baseline", default=BASELINE,
                   help="the arm whose final best val_acc the others must reach, and whose trial-epochs they are "
                        "measured in")
    p.add_argument("--define-arm", action="append", default=[], metavar="NAME=FLAGS",
                   help="a new arm: its search.run flags on top of the common ones, e.g. "
                        "'tpe_asha_nsu5=--sampler tpe --scheduler asha --n-startup-trials 5' (repeatable)")
    p.add_argument("--search-flags", default="", metavar="FLAGS",
                   help="more search.run flags for every arm, e.g. --search-flags='--max-failures 1'")
    p.add_argument("--out", default="runs/bench-efficiency", help="folder of the runs and results")
    p.add_argument("--force", action="store_true", help="rerun arm+seed runs that already finished in OUT")
    p.add_argument("--no-run", action="store_true", help="run nothing: summarize the finished runs in OUT")
    p.add_argument("--dry-run", action="store_true", help="print the search.run commands and which would be reused")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Tune's output level, in search.log")
    p.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    p.add_argument("--html", default=None, help="anytime-curve figure (default: OUT/anytime.html)")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="also render the figure to this PNG with headless Chromium")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on other flags; check everything before any run starts."""
    try:
        spaces.get_space(args.space)
    except ValueError as e:
        raise BenchmarkError(f"--space: {e}") from None
    if args.choices is None:
        args.choices = DEFAULT_CHOICES.get(args.space, [])
    args.data = str(Path(args.data).expanduser().resolve()) if not args.download else args.data
    args.out = str(Path(args.out).expanduser().resolve())
    if not args.seeds:
        raise BenchmarkError("--seeds: give at least one seed, e.g. --seeds 0,1,2")
    arm_flags = {name: list(flags) for name, flags in ARMS.items()}
    defined = []
    for item in args.define_arm:
        name, sep, flags = item.partition("=")
        if not sep or not name.strip():
            raise BenchmarkError(f"--define-arm {item!r}: expected NAME=FLAGS")
        arm_flags[name.strip()] = shlex.split(flags)
        defined.append(name.strip())
    args.arm_flags = arm_flags
    if args.arms is None:
        args.arms = [*DEFAULT_ARMS, *[d for d in defined if d not in DEFAULT_ARMS]]
    unknown = [a for a in [*args.arms, args.baseline] if a not in arm_flags]
    if unknown:
        raise BenchmarkError(f"--arms: unknown {', '.join(unknown)}; the arms are {', '.join(arm_flags)}")
    return args


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("\ninterrupted: start the same command again to continue (finished runs are reused)", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    try:
        args = resolve_args(args)
        plan = plan_runs(args)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    root = Path(args.out)
    print(f"{settings_line(args)}\narms: {', '.join(args.arms)}; out: {root}")
    to_run = [(arm, seed, argv) for arm, seed, argv, reuse in plan if not reuse]
    if len(to_run) < len(plan) and not args.force:
        print(f"reusing {len(plan) - len(to_run)} finished run(s) in {root} (--force runs them again)")
    if args.dry_run or args.no_run:
        for arm, seed, argv, reuse in plan:
            state = "reuse" if reuse else ("skip (--no-run)" if args.no_run else "run")
            print(f"  [{state}] {arm} seed {seed}: python -m search.run {shlex.join(argv)}")
        if args.dry_run:
            return 0
        to_run = []
    failures = []
    if to_run:
        # Decode the data into the cache once, so the first run's wall time does not pay for it.
        try:
            DataConfig(**config_kwargs(args, DataConfig)).load_data(seed=args.split_seed)
        except ValueError as e:  # DataError: one line that says what to do
            print(f"error: {e}", file=sys.stderr)
            return 2
    walls: dict[str, list[float]] = {}
    for i, (arm, seed, argv) in enumerate(to_run, start=1):
        out = run_dir(root, arm, seed)
        print(f"[{i}/{len(to_run)}] {arm} seed {seed}: running (log: {out / LOG})", flush=True)
        try:
            info = run_search(arm, seed, argv, out)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            failures.append(f"{arm} seed {seed}")
            continue
        run, _ = load_run(arm, seed, out, info, args.max_epochs)
        print(f"[{i}/{len(to_run)}] {arm} seed {seed}: {run['trials']} trials ({run['complete']} ran every epoch), "
              f"{run['trial_epochs']} trial-epochs, best val_acc {fmt(run['final_best'], '.4f')}, "
              f"{info['wall_seconds'] / 60:.1f} min{remaining(walls, arm, info['wall_seconds'], to_run[i:])}",
              flush=True)
    results = collect(args, root)
    if failures:
        print(f"error: {len(failures)} run(s) failed: {', '.join(failures)}; start the same command again to "
              "retry them (finished runs are reused)", file=sys.stderr)
        return 1
    return 0 if results else 1


def remaining(walls: dict[str, list[float]], arm: str, wall: float, left: list) -> str:
    """``; about M min left``: each run still to go takes as long as its arm's runs so far."""
    walls.setdefault(arm, []).append(wall)
    if not left:
        return ""
    everything = [w for ws in walls.values() for w in ws]
    seconds = sum(statistics.fmean(walls.get(a) or everything) for a, *_ in left)
    return f"; about {seconds / 60:.0f} min left for {len(left)} run(s)"


def plan_runs(args: argparse.Namespace) -> list[tuple[str, int, list[str], bool]]:
    """(arm, seed, argv, reuse) for every run, in seed-major order; refuses a stale finished run.

    Seed-major: an interrupted benchmark leaves whole seeds, every arm of which can be compared.
    """
    plan = []
    for seed in args.seeds:
        for arm in args.arms:
            argv = search_argv(arm, seed, args)
            check_argv(arm, argv)
            info = finished_info(run_dir(Path(args.out), arm, seed))
            reuse = info is not None and not args.force
            if reuse and comparable(info["argv"]) != comparable(argv):
                raise BenchmarkError(
                    f"{run_dir(Path(args.out), arm, seed)} was run with other settings "
                    f"(python -m search.run {shlex.join(info['argv'])}); pass --force to run it again, or "
                    "choose another --out")
            plan.append((arm, seed, argv, reuse))
    return plan


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def collect(args: argparse.Namespace, root: Path) -> dict | None:
    """Read back every finished run of the chosen arms and seeds; print and write the results."""
    runs: dict[str, dict[int, dict]] = {}
    curves: dict[str, dict[int, list[CurvePoint]]] = {}
    arms = [*args.arms, *([args.baseline] if args.baseline not in args.arms else [])]  # the target needs it
    missing = []
    for arm in arms:
        for seed in args.seeds:
            out = run_dir(root, arm, seed)
            info = finished_info(out)
            if info is None:
                missing.append(f"{arm} seed {seed}")
                continue
            run, curve = load_run(arm, seed, out, info, args.max_epochs)
            if not run["consistent_with_study"]:
                print(f"warning: {arm} seed {seed}: the curve ({run['trial_epochs']} trial-epochs, best "
                      f"{fmt(run['final_best'], '.4f')}) disagrees with {out / 'search.json'} ({run['study']})",
                      file=sys.stderr)
            runs.setdefault(arm, {})[seed] = run
            curves.setdefault(arm, {})[seed] = curve
    if missing:
        print(f"note: no finished run for {', '.join(missing)}", file=sys.stderr)
    if not runs:
        print(f"error: no finished run in {root}", file=sys.stderr)
        return None
    summary = summarize(runs, curves, args.baseline)
    for arm, by_seed in runs.items():
        for seed, run in by_seed.items():
            run["curve"] = [[p.epochs, round(p.seconds, 2), p.best] for p in curves[arm][seed]]
    print(f"\n{settings_line(args)}\n\n{markdown_table(summary)}\n")
    target = summary["baseline_final_best"]["mean"]
    html = write_figure(
        anytime_figure(curves, title=f"Incumbent val_acc over the search: mean over seeds, band min-max"
                                     f"<br><sup>{settings_line(args)}</sup>", target=target,
                       target_label=f"{args.baseline}'s mean final best"),
        Path(args.html or root / "anytime.html"))
    print(f"wrote {html}")
    if args.screenshot:
        try:
            print(f"wrote {screenshot(html, Path(args.screenshot))}")
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
    results = {
        "data_label": data_label(args.data),
        "settings": settings_line(args),
        "args": {k: v for k, v in vars(args).items() if k != "arm_flags"},
        "arm_flags": {arm: args.arm_flags[arm] for arm in runs},
        "versions": versions(),
        "summary": summary,
        "runs": runs,
    }
    json_path = Path(args.json or root / "results.json")
    write_json(json_path, results)
    print(f"wrote {json_path}")
    return results


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

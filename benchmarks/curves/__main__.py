"""``python -m benchmarks.curves record|simulate``: record learning curves once, replay searches on them.

``simulate`` runs every arm for every seed, budget and worker count on the recorded table
(``protocol.py``) and writes ``OUT/results.json``, ``OUT/<budget>-w<W>.html`` (the figure, with
plotly.min.js beside it) and a Markdown table per setting on stdout.

Example::

    python -m benchmarks.curves simulate --table benchmarks/curves/scratch-resnet20.csv \\
        --seeds 20 --budgets 30 150 --workers 2 8 --out runs/curves-sim
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from benchmarks.curves import protocol, record
from benchmarks.curves.table import read_table


def load_space(table, space_name: str, train_images: int | None = None):
    """The recorded space as each arm kind searches it, and its distributions for the nearest-curve lookup.

    Returns ``({"budget": (space, recipes), "full": (space, recipes)}, distributions)``, both made
    by the search's own ``plan_space`` from a SearchConfig with the table's architectures as
    ``--choices``: "budget" is the shipped search (the budget plan for the table's epochs and
    training images narrows the space and gives the recipes), "full" is ``--full-space``.
    """
    import spaces
    from search.config import SearchConfig
    from search.driver import plan_space
    from spaces.asks import inspect_space

    fn = spaces.get_space(space_name)
    info = inspect_space(fn, space_name)
    archs = sorted({r["arch"] for r in table.rows})
    max_t = max(r["epoch"] for r in table.rows)
    images = train_images or table.train_images()
    kinds = {}
    for kind, full in (("budget", False), ("full", True)):
        config = SearchConfig(space=space_name, choices={"arch": archs}, max_epochs=max_t, full_space=full)
        space, _, recipes, _ = plan_space(config, fn, info, None, images)
        kinds[kind] = (space, recipes)
    return kinds, inspect_space(kinds["full"][0], space_name).distributions


@functools.lru_cache(maxsize=None)
def _setting(table_path: str, space_name: str, max_t: int, train_images: int | None):
    """The table's full curves and its spaces, read once per process."""
    table = read_table(table_path)
    curves = [c for c in table.curves() if len(c.val_acc) == max_t or c.diverged]
    return (curves, *load_space(table, space_name, train_images))


def _run(spec, table_path, space_name, max_t, train_images):
    arm, seed, budget, workers = spec
    curves, kinds, distributions = _setting(str(table_path), space_name, max_t, train_images)
    return protocol.run_one(protocol.arm_from_text(arm), curves, kinds, distributions, seed=seed,
                            budget=budget, max_t=max_t, workers=workers)


def _direction(mean_diff: float) -> str:
    """+: lower regret than the baseline (better), −: higher, =: the same."""
    return "+" if mean_diff < 0 else "−" if mean_diff > 0 else "="


def markdown(summary: dict) -> str:
    lines = ["| arm | trials | final regret (mean ± s.e.) | final rank | reaches random_fifo's final at | "
             "p (Wilcoxon / sign) at 25% | 50% | 100% |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, r in summary["arms"].items():
        reach = f"{r['reach_ratio']:.2f}×" if r.get("reach_ratio") is not None else "never"
        tests = " | ".join(
            f"{t['wilcoxon']['p']:.3g} / {t['sign']['p']:.3g} ({_direction(t['mean_diff'])})"
            for t in r.get("tests", {}).values())
        lines.append(f"| {arm} | {r['trials']:.0f} | {r['final_regret']:.4f} ± {r['final_regret_se']:.4f} | "
                     f"{r['final_rank']:.2f} | {reach} | {tests} |")
    return "\n".join(lines)


def simulate_cmd(args: argparse.Namespace) -> int:
    from benchmarks.anytime_plot import write_figure
    from benchmarks.curves.figure import protocol_figure

    table = read_table(args.table)
    max_t = max(r["epoch"] for r in table.rows)
    specs = [(a, s, b, w) for b in args.budgets for w in args.workers for a in args.arms
             for s in range(args.first_seed, args.first_seed + args.seeds)]
    for a in args.arms:
        protocol.arm_from_text(a)  # bad arm names fail before anything runs
    start = time.perf_counter()
    fn = partial(_run, table_path=args.table, space_name=args.space, max_t=max_t, train_images=args.train_images)
    _, kinds, _ = _setting(str(args.table), args.space, max_t, args.train_images)  # cached: --jobs 1 reuses it
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(fn, specs))
    else:
        runs = [fn(s) for s in specs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"table": str(args.table), "table_header": table.header, "configs": len(table.curves()),
               "max_t": max_t, "budget_recipes": kinds["budget"][1], "seconds": time.perf_counter() - start, "settings": {}}
    for b in args.budgets:
        for w in args.workers:
            key = f"budget{b}-w{w}"
            summary = protocol.summarise([r for r in runs if r["budget"] == b and r["workers"] == w], b, max_t)
            results["settings"][key] = summary
            fig = protocol_figure(summary, f"{key}: {len(table.curves())} recorded configs, {args.seeds} seeds "
                                           "(CIFAR-10 JPEG-75 copy)")
            write_figure(fig, out / f"{key}.html")
            print(f"\n### {key} ({b} full evaluations = {b * max_t} trial-epochs, W = {w}, {args.seeds} seeds)\n")
            print(markdown(summary))
            print(f"\nnearest recorded config: {json.dumps(summary['nearest'])}")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.runs_json:
        Path(args.runs_json).write_text(json.dumps(runs))
    print(f"\n{len(runs)} searches in {results['seconds']:.0f} s -> {out}/results.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    record.add_args(sub.add_parser("record", help="train configs of a space and save their curves"))
    sim = sub.add_parser("simulate", help="replay searches on a recorded table")
    sim.add_argument("--table", default="benchmarks/curves/scratch-resnet20.csv")
    sim.add_argument("--space", default="scratch")
    sim.add_argument("--arms", nargs="+", default=protocol.DEFAULT_ARMS,
                     help=f"arm names ({', '.join(protocol.ARMS)}) or NAME:field=value,...")
    sim.add_argument("--seeds", type=int, default=20)
    sim.add_argument("--first-seed", type=int, default=0,
                     help="seeds first_seed .. first_seed + seeds - 1 (fresh seeds check a choice made on others)")
    sim.add_argument("--budgets", type=int, nargs="+", default=[30, 150], help="full evaluations (x max_t epochs)")
    sim.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    sim.add_argument("--train-images", type=int, default=None,
                     help="training images per epoch for the budget plan (default: the table header's train_subset)")
    sim.add_argument("--jobs", type=int, default=1, help="simulations in parallel processes")
    sim.add_argument("--out", default="runs/curves-sim")
    sim.add_argument("--runs-json", default=None, help="also write every run's trace here")
    args = parser.parse_args(argv)
    if args.command == "record":
        return record.record(args)
    return simulate_cmd(args)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks.curves record|simulate|report``: record learning curves once, replay searches on them.

``simulate`` runs every arm for every seed, budget and worker count on each table (the project's
CSV, or an opda-format ``.jsonl``: ``testbed.py``), with the protocol of ``protocol.py``, and
writes ``OUT/results.json`` (every summary), ``OUT/report.md`` (the tables), and
``OUT/<table>-budget<B>-w<W>.html`` (the figure of each setting, with plotly.min.js beside it) and
``OUT/overview.html`` (every table and W at the largest budget; ``--png`` renders it).
``--variants`` (the shipped search with one default changed) run only at ``--variant-budgets``
and ``--variant-workers``. ``report OUT/results.json`` prints the summary tables again;
``merge`` summarises the runs of several ``--runs-json`` files as one run of them all.

Example: the issue-29 protocol, as benchmarks/README.md reports it (its defaults: both tables, 30
seeds, budgets 20 and 100 full trials, W = 4 and 16, the 5 arms and the 10 one-change arms)::

    nice -n 15 python -m benchmarks.curves simulate --jobs 2 --out runs/curves-29 \
        --runs-json runs/curves-29/runs.json --png docs/search-quality-curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.curves import protocol, record, testbed

CIFAR_TABLE = "benchmarks/curves/scratch-resnet20.csv"
OPDA_TABLE = "../shared/data/opda-alexnet/alexnet_tuning.results.jsonl"


def _run(spec: tuple, space_name: str, train_images: int | None) -> dict:
    table, arm, seed, budget, workers = spec
    bed = testbed.load(table, space_name, train_images)
    run = protocol.run_one(protocol.arm_from_text(arm), bed, seed=seed, budget=budget, workers=workers)
    return {"table": table, **run, "arm": arm.partition(":")[0]}


def _cost(spec: tuple) -> float:
    """A rough order of the work, longest first, so that the pool's last minutes are not one long run."""
    table, arm, _, budget, workers = spec
    return budget * (20 if arm.startswith("optuna") else 1) * (5 if table.endswith(".jsonl") else 1) + workers


def _p(t: dict) -> str:
    """Wilcoxon p (sign p), and + when the arm's regret is lower on average (better), − when higher."""
    sign = "+" if t["mean_diff"] < 0 else "−" if t["mean_diff"] > 0 else "="
    return f"{t['wilcoxon']['p']:.2g} / {t['sign']['p']:.2g} ({sign})"


def _x(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}×"


def markdown(summary: dict) -> str:
    """One setting's table: each arm's final regret, reach, speed-ups and paired tests."""
    base = protocol.BASELINE
    lines = [f"| arm | trials | trial-epochs spent | final regret (mean ± s.e.) | reaches {base}'s final at "
             "| speed-up (trial-epochs) | speed-up (time) | p vs random_fifo (Wilcoxon / sign) "
             "| p vs random_asha | p vs tpe_asha |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, r in summary["arms"].items():
        reach = f"{r['reach_ratio']:.2f} of the budget" if r.get("reach_ratio") is not None else "never"
        vs = r.get("vs", {})
        lines.append(
            f"| {arm} | {r['trials']:.0f} | {r['epochs_spent']:.0f} | {_cell(r)} | {reach} "
            f"| {_x(r.get('speedup_epochs'))} | {_x(r.get('speedup_seconds'))} "
            f"| {_p(r['tests']['1.0']) if arm != base and 'tests' in r else '–'} "
            f"| {_p(vs[protocol.SECOND_BASELINE]) if protocol.SECOND_BASELINE in vs else '–'} "
            f"| {_p(vs[protocol.SHIPPED]) if protocol.SHIPPED in vs else '–'} |")
    return "\n".join(lines)


def goal(summary: dict) -> dict:
    """Issue 29's goal for one setting: the shipped arm reaches random_fifo's final regret within a third of the
    budget, and ends lower than random_fifo and random_asha, Wilcoxon p < 0.05 each."""
    r = summary["arms"].get(protocol.SHIPPED)
    if r is None or protocol.BASELINE not in summary["arms"]:
        return {}
    vs_fifo, vs_asha = r["tests"]["1.0"], r["vs"].get(protocol.SECOND_BASELINE)
    within = r["reach_ratio"] is not None and r["reach_ratio"] <= 1 / 3
    out = {"reach_ratio": r["reach_ratio"], "reach_within_a_third": within,
           "better_than_random_fifo": vs_fifo["mean_diff"] < 0 and vs_fifo["wilcoxon"]["p"] < 0.05,
           "p_vs_random_fifo": vs_fifo["wilcoxon"]["p"]}
    if vs_asha:
        out.update(better_than_random_asha=vs_asha["mean_diff"] < 0 and vs_asha["wilcoxon"]["p"] < 0.05,
                   p_vs_random_asha=vs_asha["wilcoxon"]["p"])
    out["met"] = all(v for k, v in out.items() if k in ("reach_within_a_third", "better_than_random_fifo",
                                                         "better_than_random_asha"))
    return out


def _cell(r: dict) -> str:
    return f"{r['final_regret']:.4f} ± {r['final_regret_se']:.4f}"


def summary_tables(results: dict) -> str:
    """The README's tables from ``results.json``: per table and budget the arms at each W; the goal; the variants."""
    out = []
    for name, entry in results["tables"].items():
        settings = entry["settings"]
        budgets = sorted({int(k.split("-")[0][6:]) for k in settings})
        workers = sorted({int(k.split("-w")[1]) for k in settings})
        for b in budgets:
            head = " | ".join(f"W = {w}: final regret | speed-up (epochs / time) | p vs random_fifo" for w in workers)
            out += [f"**{name}, budget {b} × {entry['max_t']} = {b * entry['max_t']:,} trial-epochs** "
                    f"({len(results['seeds'])} seeds; p: Wilcoxon / sign, + lower regret than random_fifo, "
                    "− higher)\n",
                    f"| arm | {head} |", "|---|" + "---:|---:|---:|" * len(workers)]
            arms = [a for a in protocol.DEFAULT_ARMS if a in settings[f"budget{b}-w{workers[0]}"]["arms"]]
            for a in arms:
                cells = []
                for w in workers:
                    r = settings[f"budget{b}-w{w}"]["arms"][a]
                    speed = f"{_x(r.get('speedup_epochs'))} / {_x(r.get('speedup_seconds'))}"
                    p = _p(r["tests"]["1.0"]) if a != protocol.BASELINE and "tests" in r else "–"
                    cells.append(f"{_cell(r)} | {speed} | {p}")
                out.append(f"| {a} | {' | '.join(cells)} |")
            out.append("")
    out += ["**The goal** (the shipped tpe_asha: reaches random_fifo's final mean regret within a third of the "
            "budget; lower final regret than random_fifo and than random_asha, Wilcoxon p < 0.05)\n",
            "| table | budget | W | reaches at (fraction of the budget) | p vs random_fifo | p vs random_asha | met |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for name, entry in results["tables"].items():
        for key, summary in entry["settings"].items():
            r = summary["arms"].get(protocol.SHIPPED)
            if not r or protocol.BASELINE not in summary["arms"]:
                continue
            b, w = key.split("-w")
            reach = "never" if r["reach_ratio"] is None else f"{r['reach_ratio']:.2f}"
            met = _goal_met(summary)
            vs_asha = r["vs"].get(protocol.SECOND_BASELINE)
            out.append(f"| {name} | {b[6:]} | {w} | {reach} | {_p(r['tests']['1.0'])} | "
                       f"{_p(vs_asha) if vs_asha else '–'} | {'yes' if met else 'no'} |")
    out.append("")
    for name, entry in results["tables"].items():
        others = protocol.VARIANTS + protocol.DECOMPOSITION
        keys = [k for k, sm in entry["settings"].items() if any(v in sm["arms"] for v in others)]
        if not keys:
            continue
        out += [f"**{name}: one default changed** (final regret; p: Wilcoxon against the shipped tpe_asha, "
                "+ lower regret than it, − higher)\n",
                "| arm | " + " | ".join(k.replace("budget", "budget ").replace("-w", ", W = ") for k in keys) + " |",
                "|---|" + "---:|" * len(keys)]
        for a in [protocol.SHIPPED] + protocol.VARIANTS + protocol.DECOMPOSITION:
            cells = []
            for k in keys:
                r = entry["settings"][k]["arms"].get(a)
                if r is None:
                    cells.append("not run")
                elif a == protocol.SHIPPED:
                    cells.append(_cell(r))
                else:
                    t = r["vs"][protocol.SHIPPED]
                    sign = "+" if t["mean_diff"] < 0 else "−" if t["mean_diff"] > 0 else "="
                    cells.append(f"{_cell(r)}, p = {t['wilcoxon']['p']:.2g} ({sign})")
            out.append(f"| {a} | {' | '.join(cells)} |")
        out.append("")
    return "\n".join(out)


def _goal_met(summary: dict) -> bool:
    """``goal`` for a summary that may predate it in results.json."""
    return (summary.get("goal") or goal(summary)).get("met", False)


def report_cmd(args: argparse.Namespace) -> int:
    print(summary_tables(json.loads(Path(args.results).read_text())))
    return 0


def simulate_cmd(args: argparse.Namespace) -> int:
    for a in args.arms + args.variants:
        protocol.arm_from_text(a)  # bad arm names fail before anything runs
    for t in args.tables:
        if not Path(t).exists():
            raise SystemExit(f"no table at {t}" + (" (opda's AlexNet data: ../shared/data/opda-alexnet/, see its "
                                                   "SOURCE.md)" if t.endswith(".jsonl") else ""))
    start = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    specs = [(t, a, s, b, w) for t in args.tables for b in args.budgets for w in args.workers for a in args.arms
             for s in seeds]
    skipped = []
    for t in args.tables:
        bed = testbed.load(t, args.space, args.train_images)
        for b in args.variant_budgets or args.budgets:
            for a in args.variants:
                n = protocol.num_trials(protocol.arm_from_text(a), b, bed.max_t, bed.planned_choices())
                if args.variant_max_trials is not None and n > args.variant_max_trials:
                    skipped.append(f"{a} on {Path(t).stem} at budget {b}: {n} trials")
                    continue
                specs += [(t, a, s, b, w) for w in args.variant_workers or args.workers for s in seeds]
    if skipped:
        print(f"not run (more than --variant-max-trials {args.variant_max_trials}): {'; '.join(skipped)}", flush=True)
    specs.sort(key=_cost, reverse=True)
    print(f"{len(specs)} searches on {len(args.tables)} tables, {args.jobs} processes", flush=True)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(_run, specs, [args.space] * len(specs), [args.train_images] * len(specs)))
    else:
        runs = [_run(s, args.space, args.train_images) for s in specs]
    seconds = time.perf_counter() - start
    if args.runs_json:
        Path(args.runs_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.runs_json).write_text(json.dumps(runs))
    write_outputs(runs, args, seconds=seconds, skipped=skipped)
    print(f"\n{len(runs)} searches in {seconds:.0f} s -> {args.out}/results.json, {args.out}/report.md")
    return 0


def write_outputs(runs: list[dict], args: argparse.Namespace, *, seconds: float | None = None,
                  skipped: list[str] = ()) -> dict:
    """OUT/results.json, OUT/report.md and the figures of ``runs``, summarised per table, budget and W."""
    from benchmarks.anytime_plot import screenshot, write_figure
    from benchmarks.curves.figure import overview_figure, protocol_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = sorted({r["seed"] for r in runs})
    # In the order of --tables where given, then in the order the runs name them.
    tables = list(dict.fromkeys([t for t in (getattr(args, "tables", None) or []) if any(r["table"] == t for r in runs)]
                                + [r["table"] for r in runs]))
    budgets = sorted({r["budget"] for r in runs})
    main_arms = [a for a in protocol.DEFAULT_ARMS if any(r["arm"] == a for r in runs)]
    results = {"command": " ".join(sys.argv), "seeds": seeds, "seconds": seconds, "skipped": list(skipped),
               "tables": {}}
    report = []
    overview: dict[str, dict[int, dict]] = {}
    for t in tables:
        bed = testbed.load(t, args.space, args.train_images)
        name = Path(t).stem
        entry = results["tables"][name] = {**bed.describe(), "settings": {}}
        report.append(f"## {name}\n\n{bed.source}: {len(bed.curves)} configs, one full trial = {bed.max_t} epochs; "
                      f"regret normalised by the final val_acc {entry['best_final']:.4f} (best) and "
                      f"{entry['worst_final']:.4f} (worst) of the recorded runs that ran all their epochs.\n")
        for b in budgets:
            for w in sorted({r["workers"] for r in runs}):
                mine = [r for r in runs if r["table"] == t and r["budget"] == b and r["workers"] == w]
                if not mine:
                    continue
                key = f"budget{b}-w{w}"
                summary = protocol.summarise(mine, b, bed.max_t)
                summary["goal"] = goal(summary)
                entry["settings"][key] = summary
                if b == budgets[-1]:
                    overview.setdefault(name, {})[w] = summary
                fig = protocol_figure(summary, f"{name}, budget {b} × {bed.max_t} epochs, W = {w}, {len(seeds)} seeds")
                write_figure(fig, out / f"{name}-{key}.html")
                report.append(f"### {name}: budget {b} full trials = {b * bed.max_t} trial-epochs, W = {w}, "
                              f"{len(seeds)} seeds\n\n{markdown(summary)}\n\ngoal: {json.dumps(summary['goal'])}\n")
    if skipped:
        report.append(f"Not run (more than --variant-max-trials): {'; '.join(skipped)}.\n")
    fig = overview_figure(overview, main_arms,
                          f"Normalised regret, mean ± s.e. over {len(seeds)} seeds, budget {budgets[-1]} full trials "
                          "(opda rows: AlexNet data © 2025 Nicholas Lourie, CC BY-SA 4.0)")
    html = write_figure(fig, out / "overview.html")
    if args.png:
        screenshot(html, Path(args.png), size=(fig.layout.width, fig.layout.height))
    report.append(summary_tables(results))
    text = "\n".join(report)
    print(text)
    (out / "report.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(results))
    return results


def merge_cmd(args: argparse.Namespace) -> int:
    """Runs of several ``simulate --runs-json`` files as one: a run twice (same table, arm, seed, budget, W) must
    be the same run, since a simulation is deterministic."""
    runs: dict[tuple, dict] = {}
    for path in args.runs:
        for r in json.loads(Path(path).read_text()):
            key = (r["table"], r["arm"], r["seed"], r["budget"], r["workers"])
            if key in runs and runs[key] != r:
                raise SystemExit(f"{path}: {key} differs from the same run in an earlier file")
            runs[key] = r
    if args.runs_json:
        Path(args.runs_json).write_text(json.dumps(list(runs.values())))
    write_outputs(list(runs.values()), args)
    print(f"\n{len(runs)} searches from {len(args.runs)} files -> {args.out}/results.json, {args.out}/report.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    record.add_args(sub.add_parser("record", help="train configs of a space and save their curves"))
    sim = sub.add_parser("simulate", help="replay searches on recorded tables")
    sim.add_argument("--tables", nargs="+", default=[CIFAR_TABLE, OPDA_TABLE],
                     help="the project's learning-curve CSVs or opda-format .jsonl files (default: both tables of "
                          "issue 29)")
    sim.add_argument("--space", default="scratch", help="the project's space a CSV table was recorded from")
    sim.add_argument("--arms", nargs="+", default=protocol.DEFAULT_ARMS,
                     help=f"arm names ({', '.join(protocol.ARMS)}) or NAME:field=value,... "
                          f"(default: {' '.join(protocol.DEFAULT_ARMS)})")
    sim.add_argument("--variants", nargs="*", default=protocol.VARIANTS + protocol.DECOMPOSITION,
                     help="more arms, run only at --variant-budgets and --variant-workers (default: the shipped "
                          "search with one default or flag changed, and random search on the budget plan's space; "
                          "none: --variants with no name)")
    sim.add_argument("--seeds", type=int, default=30)
    sim.add_argument("--first-seed", type=int, default=0,
                     help="seeds first_seed .. first_seed + seeds - 1 (fresh seeds check a choice made on others)")
    sim.add_argument("--budgets", type=int, nargs="+", default=[20, 100], help="full trials (x max_t epochs)")
    sim.add_argument("--workers", type=int, nargs="+", default=[4, 16], help="trials at once (W)")
    sim.add_argument("--variant-budgets", type=int, nargs="*", default=None, help="default: --budgets")
    sim.add_argument("--variant-workers", type=int, nargs="*", default=None, help="default: --workers")
    sim.add_argument("--variant-max-trials", type=int, default=None,
                     help="skip a variant at a budget where it asks for more trials than this (TPE's ask time grows "
                          "with the trials: grace 1 on a 100-epoch table asks thousands); default: run all")
    sim.add_argument("--png", default=None, help="also render OUT/overview.html (the largest budget) to this PNG "
                                                 "with headless Chromium")
    sim.add_argument("--train-images", type=int, default=None,
                     help="training images per epoch for a CSV table's budget plan (default: its header's "
                          "train_subset)")
    sim.add_argument("--jobs", type=int, default=1, help="simulations in parallel processes (default 1)")
    sim.add_argument("--out", default="runs/curves-sim")
    sim.add_argument("--runs-json", default=None, help="also write every run's trace here")
    rep = sub.add_parser("report", help="the README's tables from a simulate run's results.json")
    rep.add_argument("results", help="OUT/results.json of simulate")
    mer = sub.add_parser("merge", help="summarise the runs of several simulate --runs-json files as one simulate")
    mer.add_argument("runs", nargs="+", help="--runs-json files of simulate")
    mer.add_argument("--out", required=True)
    mer.add_argument("--tables", nargs="*", default=[CIFAR_TABLE, OPDA_TABLE],
                     help="the order of the tables in the report (others follow in the order of the runs)")
    mer.add_argument("--png", default=None, help="as simulate's")
    mer.add_argument("--runs-json", default=None, help="write the merged runs here")
    mer.add_argument("--space", default="scratch")
    mer.add_argument("--train-images", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record.record(args)
    if args.command == "report":
        return report_cmd(args)
    if args.command == "merge":
        return merge_cmd(args)
    return simulate_cmd(args)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks.curves record|simulate|report|merge|warmstart``: record curves once, replay searches on them.

``simulate`` runs every arm for every seed, budget, worker count and mode on each table (any
format ``formats.py`` knows, told by content: the project's CSV, opda's epoch or step ``.jsonl``),
with the protocol of ``protocol.py``, in each ``--mode`` (``modes.py``: the surrogate's curve, or
the nearest recorded run), and writes ``OUT/results.json`` (every summary), ``OUT/report.md`` (the tables), and
``OUT/<table>-budget<B>-w<W>.html`` (the figure of each setting, with plotly.min.js beside it) and
``OUT/overview.html`` (every table and W at the largest budget; ``--png`` renders it).
``--variants`` (the shipped search with one default changed) run only at ``--variant-budgets``,
``--variant-workers`` and ``--variant-modes``. The goal table tests the shipped arm against each
of ``protocol.GOAL_BASELINES`` and corrects the p-values of the whole family (every table,
budget, W and mode, against each baseline) by Holm's step-down method. ``report OUT/results.json`` prints the summary tables again;
``merge`` summarises the runs of several ``--runs-json`` files as one run of them all.

Example: the issue-33 protocol (its defaults: the three tables, 30 seeds, budgets 20 and 100 full
trials, W = 4 and 16, both modes, the 6 arms; the 11 one-change arms in the surrogate mode)::

    nice -n 15 python -m benchmarks.curves simulate --jobs 2 --out runs/curves-33 \
        --runs-json runs/curves-33/runs.json --png docs/search-quality-curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.curves import bound, formats, modes, protocol, record, stats, testbed, warm

CIFAR_TABLE = "benchmarks/curves/scratch-resnet20.csv"
OPDA_TABLE = "../shared/data/opda-alexnet/alexnet_tuning.results.jsonl"
DEBERTA_TABLE = "../shared/data/opda-deberta/deberta-base_tuning.results.jsonl"
GOAL_SPEEDUP = 3.0  # issue 33: random_fifo's reach over the shipped arm's, in trial-epochs and in time
ALPHA = 0.05


def _run(spec: tuple, space_name: str, train_images: int | None, noise: dict) -> dict:
    table, arm, seed, budget, workers, mode = spec
    bed = testbed.load(table, space_name, train_images)
    run = protocol.run_one(protocol.arm_from_text(arm), bed, seed=seed, budget=budget, workers=workers, mode=mode,
                           noise=noise.get(table, 0.0) if mode == "nearest" else 0.0)
    return {"table": table, **run, "arm": arm.partition(":")[0]}


def _cost(spec: tuple) -> float:
    """A rough order of the work, longest first, so that the pool's last minutes are not one long run."""
    table, arm, _, budget, workers, _ = spec
    return budget * (20 if arm.startswith("optuna") else 1) * (5 if table.endswith(".jsonl") else 1) + workers


def _mode(run_or_summary: dict) -> str:
    """A run's or summary's mode; those of issue 29 predate the modes and are the surrogate's."""
    return run_or_summary.get("mode", "surrogate")


def _setting(key: str, summary: dict) -> tuple[str, int, int]:
    """(mode, budget, W) of a summary, also of a results.json whose keys are ``budget<B>-w<W>``."""
    return _mode(summary), int(summary["budget"]), int(summary.get("workers") or key.split("-w")[-1])


def _p(t: dict) -> str:
    """Wilcoxon p (sign p), and + when the arm's regret is lower on average (better), − when higher."""
    sign = "+" if t["mean_diff"] < 0 else "−" if t["mean_diff"] > 0 else "="
    return f"{t['wilcoxon']['p']:.2g} / {t['sign']['p']:.2g} ({sign})"


def _x(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}×"


def markdown(summary: dict) -> str:
    """One setting's table: each arm's final regret, reach, speed-ups and paired tests."""
    base = protocol.BASELINE
    others = [*protocol.GOAL_BASELINES[1:], protocol.SHIPPED]
    lines = [f"| arm | trials | trial-epochs spent | final regret (mean ± s.e.) | reaches {base}'s final at "
             "| speed-up (trial-epochs) | speed-up (time) | p vs random_fifo (Wilcoxon / sign) | "
             + " | ".join(f"p vs {b}" for b in others) + " |",
             "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(others)]
    for arm, r in summary["arms"].items():
        reach = f"{r['reach_ratio']:.2f} of the budget" if r.get("reach_ratio") is not None else "never"
        vs = r.get("vs", {})
        lines.append(
            f"| {arm} | {r['trials']:.0f} | {r['epochs_spent']:.0f} | {_cell(r)} | {reach} "
            f"| {_x(r.get('speedup_epochs'))} | {_x(r.get('speedup_seconds'))} "
            f"| {_p(r['tests']['1.0']) if arm != base and 'tests' in r else '–'} | "
            + " | ".join(_p(vs[b]) if b in vs else "–" for b in others) + " |")
    return "\n".join(lines)


def goal(summary: dict) -> dict:
    """Issue 33's goal for one setting, before the correction: the shipped arm's speed-ups over random_fifo (its reach
    over the shipped arm's, in trial-epochs and in time), and its paired tests against each goal baseline.

    ``apply_holm`` adds the Holm-adjusted p-values and ``met``: both speed-ups at least ``GOAL_SPEEDUP``, and
    a lower mean final regret than every baseline with adjusted p < ``ALPHA``.
    """
    r = summary["arms"].get(protocol.SHIPPED)
    if r is None or protocol.BASELINE not in summary["arms"]:
        return {}
    tests = {protocol.BASELINE: r["tests"]["1.0"], **{b: t for b, t in r["vs"].items() if b != protocol.SHIPPED}}
    return {"reach_ratio": r["reach_ratio"], "speedup_epochs": r.get("speedup_epochs"),
            "speedup_seconds": r.get("speedup_seconds"),
            "baselines": {b: {"p": tests[b]["wilcoxon"]["p"], "mean_diff": tests[b]["mean_diff"]}
                          for b in protocol.GOAL_BASELINES if b in tests}}


def apply_holm(results: dict) -> int:
    """Holm's correction over the family of tests that the goal claims: every table, budget, W and mode of
    ``results``, against each baseline. Fills each goal's ``holm_p`` and ``met``; returns the family's size."""
    family = [(g, b) for entry in results["tables"].values() for sm in entry["settings"].values()
              for g in [sm.get("goal") or {}] for b in g.get("baselines", {})]
    adjusted = stats.holm([g["baselines"][b]["p"] for g, b in family])
    for (g, b), p in zip(family, adjusted):
        g["baselines"][b]["holm_p"] = p
    for entry in results["tables"].values():
        for sm in entry["settings"].values():
            g = sm.get("goal")
            if not g:
                continue
            fast = all((g.get(k) or 0) >= GOAL_SPEEDUP for k in ("speedup_epochs", "speedup_seconds"))
            lower = all(t["mean_diff"] < 0 and t["holm_p"] < ALPHA for t in g["baselines"].values())
            g["met"] = fast and lower and set(g["baselines"]) == set(protocol.GOAL_BASELINES)
    results["holm_family"] = len(family)
    return len(family)


def _allowed(a: dict | None) -> str:
    """``bound.best_allowed``'s speed-ups and the first wave's share of the budget, or why there are none."""
    if a is None:
        return "no recorded run that good"
    return (f"{_x(a['max_speedup_seconds'])}; {a['first_wave_share']:.0%}, "
            f"{_x(a['max_speedup_epochs'])}")


def _cell(r: dict) -> str:
    return f"{r['final_regret']:.4f} ± {r['final_regret_se']:.4f}"


def _by_setting(entry: dict) -> dict:
    """{(mode, budget, W): summary} of one table's settings."""
    return {_setting(k, sm): sm for k, sm in entry["settings"].items()}


def summary_tables(results: dict) -> str:
    """The README's tables from ``results.json``: per table, mode and budget the arms at each W; the goal with
    Holm-adjusted p; the variants."""
    out = []
    for name, entry in results["tables"].items():
        settings = _by_setting(entry)
        for mode in [m for m in modes.MODES if any(k[0] == m for k in settings)]:
            budgets = sorted({b for m, b, _ in settings if m == mode})
            workers = sorted({w for m, _, w in settings if m == mode})
            for b in budgets:
                if (mode, b, workers[0]) not in settings:
                    continue
                head = " | ".join(f"W = {w}: final regret | speed-up (epochs / time) | p vs random_fifo"
                                  for w in workers)
                out += [f"**{name}, {mode} mode, budget {b} full trials** ({len(results['seeds'])} seeds; p: "
                        "Wilcoxon / sign, + lower regret than random_fifo, − higher)\n",
                        f"| arm | {head} |", "|---|" + "---:|---:|---:|" * len(workers)]
                arms = [a for a in protocol.DEFAULT_ARMS if a in settings[mode, b, workers[0]]["arms"]]
                for a in arms:
                    cells = []
                    for w in workers:
                        r = settings.get((mode, b, w), {"arms": {}})["arms"].get(a)
                        if r is None:
                            cells.append("not run | | ")
                            continue
                        speed = f"{_x(r.get('speedup_epochs'))} / {_x(r.get('speedup_seconds'))}"
                        p = _p(r["tests"]["1.0"]) if a != protocol.BASELINE and "tests" in r else "–"
                        cells.append(f"{_cell(r)} | {speed} | {p}")
                    out.append(f"| {a} | {' | '.join(cells)} |")
                out.append("")
    family = results.get("holm_family")
    out += [f"**The goal** (the shipped {protocol.SHIPPED}: random_fifo's reach over its own ≥ {GOAL_SPEEDUP:g}× in "
            f"trial-epochs and in time; a lower final regret than each baseline, Wilcoxon p Holm-adjusted over the "
            f"family of {family or 'its'} tests (every table, budget, W and mode, against each baseline) < {ALPHA}; "
            "at most in time: random_fifo's reach over the quickest recorded run as good as its final; first wave: "
            "W × the cheapest such run, as a share of the budget, and the trial-epoch speed-up it leaves if every "
            "worker trained at that run's speed (bound.py))\n",
            "| table | mode | budget | W | speed-up (epochs / time) | at most in time; first wave, its speed-up | "
            + " | ".join(f"Holm p vs {b}" for b in protocol.GOAL_BASELINES) + " | met |",
            "|---|---|---:|---:|---:|---:|" + "---:|" * len(protocol.GOAL_BASELINES) + "---|"]
    for name, entry in results["tables"].items():
        for (mode, b, w), summary in sorted(_by_setting(entry).items()):
            g = summary.get("goal") or {}
            if "baselines" not in g:
                continue
            cells = []
            for base in protocol.GOAL_BASELINES:
                t = g["baselines"].get(base)
                sign = "" if t is None else "+" if t["mean_diff"] < 0 else "−" if t["mean_diff"] > 0 else "="
                cells.append("not run" if t is None else f"{t.get('holm_p', t['p']):.2g} ({sign})")
            speed = f"{_x(g.get('speedup_epochs'))} / {_x(g.get('speedup_seconds'))}"
            out.append(f"| {name} | {mode} | {b} | {w} | {speed} | {_allowed(g.get('best_allowed'))} | "
                       f"{' | '.join(cells)} | "
                       f"{'yes' if g.get('met') else 'no'} |")
    out.append("")
    for name, entry in results["tables"].items():
        others = protocol.VARIANTS + protocol.DECOMPOSITION
        keys = [k for k, sm in sorted(_by_setting(entry).items()) if any(v in sm["arms"] for v in others)]
        if not keys:
            continue
        settings = _by_setting(entry)
        out += [f"**{name}: one default changed** (final regret; p: Wilcoxon against the shipped {protocol.SHIPPED}, "
                "+ lower regret than it, − higher)\n",
                "| arm | " + " | ".join(f"{m}, budget {b}, W = {w}" for m, b, w in keys) + " |",
                "|---|" + "---:|" * len(keys)]
        for a in [protocol.SHIPPED] + protocol.VARIANTS + protocol.DECOMPOSITION:
            cells = []
            for k in keys:
                r = settings[k]["arms"].get(a)
                if r is None:
                    cells.append("not run")
                elif a == protocol.SHIPPED or protocol.SHIPPED not in r["vs"]:
                    cells.append(_cell(r))  # a run of the variants alone: `merge` it with the shipped arm's runs
                else:
                    t = r["vs"][protocol.SHIPPED]
                    sign = "+" if t["mean_diff"] < 0 else "−" if t["mean_diff"] > 0 else "="
                    cells.append(f"{_cell(r)}, p = {t['wilcoxon']['p']:.2g} ({sign})")
            out.append(f"| {a} | {' | '.join(cells)} |")
        out.append("")
    return "\n".join(out)


def report_cmd(args: argparse.Namespace) -> int:
    print(summary_tables(json.loads(Path(args.results).read_text())))
    return 0


def simulate_cmd(args: argparse.Namespace) -> int:
    for a in args.arms + args.variants:
        protocol.arm_from_text(a)  # bad arm names fail before anything runs
    for t in args.tables:
        if not Path(t).exists():
            raise SystemExit(f"no table at {t}" + (" (opda's data: ../shared/data/opda-*/, see its SOURCE.md)"
                                                   if t.endswith(".jsonl") else ""))
        formats.detect(t)  # a file of no known format fails before anything runs
    start = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    specs = [(t, a, s, b, w, m) for t in args.tables for b in args.budgets for w in args.workers for a in args.arms
             for s in seeds for m in args.mode]
    skipped = []
    noise = {}
    for t in args.tables:
        bed = testbed.load(t, args.space, args.train_images)
        if "nearest" in args.mode and args.noise != "0":
            noise[t] = modes.noise_of(bed) if args.noise == "auto" else float(args.noise)
            print(f"nearest mode on {Path(t).stem}: noise sd {noise[t]:.4f}", flush=True)
        for b in args.variant_budgets or args.budgets:
            for a in args.variants:
                n = protocol.num_trials(protocol.arm_from_text(a), b, bed.max_t, bed.planned_choices())
                if args.variant_max_trials is not None and n > args.variant_max_trials:
                    skipped.append(f"{a} on {Path(t).stem} at budget {b}: {n} trials")
                    continue
                specs += [(t, a, s, b, w, m) for w in args.variant_workers or args.workers for s in seeds
                          for m in args.variant_modes or args.mode]
    if skipped:
        print(f"not run (more than --variant-max-trials {args.variant_max_trials}): {'; '.join(skipped)}", flush=True)
    specs.sort(key=_cost, reverse=True)
    print(f"{len(specs)} searches on {len(args.tables)} tables, {args.jobs} processes", flush=True)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(_run, specs, [args.space] * len(specs), [args.train_images] * len(specs),
                                 [noise] * len(specs)))
    else:
        runs = [_run(s, args.space, args.train_images, noise) for s in specs]
    seconds = time.perf_counter() - start
    if args.runs_json:
        Path(args.runs_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.runs_json).write_text(json.dumps(runs))
    write_outputs(runs, args, seconds=seconds, skipped=skipped, noise=noise)
    print(f"\n{len(runs)} searches in {seconds:.0f} s -> {args.out}/results.json, {args.out}/report.md")
    return 0


def write_outputs(runs: list[dict], args: argparse.Namespace, *, seconds: float | None = None,
                  skipped: list[str] = (), noise: dict | None = None) -> dict:
    """OUT/results.json, OUT/report.md and the figures of ``runs``, summarised per table, mode, budget and W."""
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
               "noise": {Path(t).stem: v for t, v in (noise or {}).items()}, "tables": {}}
    report = []
    overview: dict[str, dict[int, dict]] = {}
    sources = []
    for t in tables:
        bed = testbed.load(t, args.space, args.train_images)
        name = Path(t).stem
        sources.append(f"{name}: {bed.source}")
        entry = results["tables"][name] = {**bed.describe(), "settings": {}}
        unit = f"{bed.full:g} reports of {bed.unit}" if bed.unit != "epoch" else f"{bed.max_t} epochs"
        report.append(f"## {name}\n\n{bed.source}: {len(bed.curves)} configs, one full trial = {unit}; "
                      f"regret normalised by the final metric {entry['best_final']:.4f} (best) and "
                      f"{entry['worst_final']:.4f} (worst) of the recorded runs that ran all their planned reports "
                      "without diverging.\n")
        for mode in modes.MODES:
            for b in budgets:
                for w in sorted({r["workers"] for r in runs}):
                    mine = [r for r in runs if r["table"] == t and r["budget"] == b and r["workers"] == w
                            and _mode(r) == mode]
                    if not mine:
                        continue
                    key = f"{mode}-budget{b}-w{w}"
                    summary = protocol.summarise(mine, b, bed.full)
                    summary.update(mode=mode, workers=w)
                    summary["goal"] = goal(summary)
                    base = summary["arms"].get(protocol.BASELINE)
                    if summary["goal"] and base:
                        summary["goal"]["best_allowed"] = bound.best_allowed(
                            bed, base["final_regret"], w, base["reach_baseline_final_at"], base["reach_seconds"],
                            b * bed.full)
                    entry["settings"][key] = summary
                    if b == budgets[-1]:
                        overview.setdefault(f"{name} ({mode})", {})[w] = summary
                    fig = protocol_figure(summary, f"{name}, {mode} mode, budget {b} × {bed.full:g} {bed.unit}, "
                                                   f"W = {w}, {len(seeds)} seeds")
                    write_figure(fig, out / f"{name}-{key}.html")
                    report.append(f"### {name}, {mode} mode: budget {b} full trials = {b * bed.full:g} reports, "
                                  f"W = {w}, {len(seeds)} seeds\n\n{markdown(summary)}\n")
    apply_holm(results)
    if skipped:
        report.append(f"Not run (more than --variant-max-trials): {'; '.join(skipped)}.\n")
    fig = overview_figure(overview, main_arms,
                          f"Normalised regret, mean ± s.e. over {len(seeds)} seeds, budget {budgets[-1]} full trials")
    report.append("Data: " + "; ".join(sources) + ".\n")
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
    """Runs of several ``simulate --runs-json`` files as one: a run twice (same table, arm, seed, budget, W, mode)
    must be the same run, since a simulation is deterministic."""
    runs: dict[tuple, dict] = {}
    for path in args.runs:
        for r in json.loads(Path(path).read_text()):
            key = (r["table"], r["arm"], r["seed"], r["budget"], r["workers"], _mode(r))
            if key in runs and runs[key] != r:
                raise SystemExit(f"{path}: {key} differs from the same run in an earlier file")
            runs[key] = r
    if args.runs_json:
        Path(args.runs_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.runs_json).write_text(json.dumps(list(runs.values())))
    write_outputs(list(runs.values()), args)
    print(f"\n{len(runs)} searches from {len(args.runs)} files -> {args.out}/results.json, {args.out}/report.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    record.add_args(sub.add_parser("record", help="train configs of a space and save their curves"))
    warm.add_args(sub.add_parser("warmstart", help="issue 34: a warm start from a cheaper search against a cold "
                                 "start (warm.py)"), [OPDA_TABLE, DEBERTA_TABLE])
    sim = sub.add_parser("simulate", help="replay searches on recorded tables")
    sim.add_argument("--tables", nargs="+", default=[CIFAR_TABLE, OPDA_TABLE, DEBERTA_TABLE],
                     help="tables of any known format, told by content (formats.py): the project's learning-curve "
                          "CSVs, opda's .jsonl of epochs (AlexNet) or of steps (DeBERTa) (default: those three)")
    sim.add_argument("--mode", nargs="+", choices=modes.MODES, default=list(modes.MODES),
                     help="how a proposal gets its curve: the surrogate's prediction, or the nearest recorded run "
                          "(default: both)")
    sim.add_argument("--noise", default="0",
                     help="nearest mode: the sd of a Gaussian offset added to each trial's curve; 'auto': the "
                          "surrogate's 5-fold held-out error of the final metric on each table (default 0)")
    sim.add_argument("--variant-modes", nargs="*", choices=modes.MODES, default=["surrogate"],
                     help="the modes the --variants run in (default: surrogate only, to keep the protocol's time)")
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
    mer.add_argument("--tables", nargs="*", default=[CIFAR_TABLE, OPDA_TABLE, DEBERTA_TABLE],
                     help="the order of the tables in the report (others follow in the order of the runs)")
    mer.add_argument("--png", default=None, help="as simulate's")
    mer.add_argument("--runs-json", default=None, help="write the merged runs here")
    mer.add_argument("--space", default="scratch")
    mer.add_argument("--train-images", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record.record(args)
    if args.command == "warmstart":
        return warm.main(args)
    if args.command == "report":
        return report_cmd(args)
    if args.command == "merge":
        return merge_cmd(args)
    return simulate_cmd(args)


if __name__ == "__main__":
    sys.exit(main())

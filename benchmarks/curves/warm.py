"""Issue 34: a warm start from a cheaper search, replayed on a recorded table.

``python -m benchmarks.curves warmstart``. Per table, seed, budget, W and mode, a **cheap search**
runs first: the shipped search (``protocol.SHIPPED``) on the table's space with short runs only
(``SHORT``: opda's AlexNet runs of at most 30 epochs, DeBERTa's of 1 epoch), for at most a quarter
of the budget (``CHEAP_SHARE``, in the table's resource). Its finished trials go into the real
search's study through the shipped mapping (``search.warm_start.map_trials`` and
``WarmStart.add_to``, as ``--warm-start`` adds them), and the real search runs as shipped on the
whole space. The arms (``arms``):

- ``cold``: the shipped search alone, the whole budget (``protocol.run_one``'s ``tpe_asha``);
- ``warm_<rule>``, per fidelity rule of ``search.warm_start.FIDELITY`` (``--rules``): warm-started, the
  whole budget (the cheap search's cost not counted);
- ``warm_<rule>_counted``: the same, its budget (and ``--num-samples``) less what the cheap search spent;
  its curve starts where the cheap search ended, at regret 1 (warm trials are never the best config);
- ``warm_from_full`` (``--from-full``): warm-started from a search as costly as the cheap one on the whole
  space, at the real search's fidelity: a warm start without short runs, to tell the two apart.

Issue 34's goal, per setting: a warm arm's mean regret curve reaches the cold arm's final mean
regret within half the budget, and per seed its regret at half the budget is lower than the cold
arm's final regret (paired Wilcoxon, p < 0.05; Holm over every setting is printed beside it). Each
other rule's arms are tested against the default rule's (``default_arm``), paired by seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from benchmarks.curves import modes, opda, opda_steps, protocol, stats, testbed
from benchmarks.curves.simulate import simulate
from search.sampler import n_startup_trials
from search.warm_start import DEFAULT_FIDELITY, FIDELITY, WarmStart, apply_fidelity, map_trials

CHEAP_SHARE = 0.25  # the cheap search's budget: at most this share of the cold search's, in the table's resource
# The cheap search's short runs, per format: (the parameter that sets a run's length, its largest value there).
SHORT = {"opda-epochs": (opda.EPOCHS, 30), "opda-steps": (opda_steps.EPOCHS, 1)}
HALF = protocol.GRID_POINTS // 2 - 1  # the grid point at half the budget
ALPHA = 0.05


def arms(rules: list[str], from_full: bool = False) -> list[str]:
    """The arms of a run: cold, then warm_<rule> and warm_<rule>_counted for each rule (and warm_from_full)."""
    return ["cold"] + [f"warm_{r}{c}" for r in dict.fromkeys(rules) for c in ("", "_counted")] + [
        "warm_from_full"] * from_full


def default_arm(arm: str) -> str:
    """The arm of the default fidelity rule that ``arm`` is compared with: counted with counted."""
    return f"warm_{DEFAULT_FIDELITY}" + ("_counted" if arm.endswith("_counted") else "")


def cheap_bed(bed: testbed.Testbed) -> tuple[object, list[int], int]:
    """The cheap search's space (the table's, its run length capped by ``SHORT``), its planned reports, its max_t."""
    fmt = bed.recorded.format if bed.recorded else "csv"
    if fmt not in SHORT:
        raise ValueError(f"{bed.path}: no short runs in a {fmt} table (its recorded curves are one schedule); "
                         f"formats with short runs: {', '.join(SHORT)}")
    name, longest = SHORT[fmt]
    d = bed.distributions[name]
    short = dict(bed.distributions, **{name: IntDistribution(d.low, min(longest, d.high))})
    planned = dataclasses.replace(bed, distributions=short).planned_choices()
    return opda.make_space(short), planned, max(planned)


def run_search(bed: testbed.Testbed, space, max_t: int, *, seed: int, resource: float, num_samples: int,
               workers: int, mode: str, noise: float, warm: tuple[list, list] | None = None):
    """The shipped search on ``space`` for ``resource`` (the table's unit), ``warm`` added to its study first: the
    trials for TPE and the configs to run first, as ``apply_fidelity`` returns them.

    Returns (the simulation's result, the study)."""
    arm = protocol.ARMS[protocol.SHIPPED]
    storage = optuna.storages.InMemoryStorage()
    searcher, scheduler = protocol.build_search(arm, space, [], seed, num_samples, max_t, storage=storage,
                                                check_suggestion=bed.check_suggestion)
    if warm:
        # As search.driver adds them.
        WarmStart(source="cheap search", trials=warm[0], enqueued=warm[1]).add_to(searcher.study, room=num_samples)
    result = simulate(searcher, scheduler, modes.answer(mode, bed, seed=seed, noise=noise), num_samples=num_samples,
                      max_t=max_t, workers=workers, budget_epochs=resource, epochs_param=bed.epochs_param)
    return result, searcher.study


def _trace(result, bed, offset: float = 0.0) -> dict:
    """The regret trace where it changes (and its last point), in the resource spent, ``offset`` added."""
    best, worst = bed.finals()
    points = [(e + offset, t, stats.normalised_regret(inc, best, worst)) for e, t, inc in result.trace]
    kept = [p for i, p in enumerate(points) if i == 0 or p[2] != points[i - 1][2]]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return {"epochs": [p[0] for p in kept], "seconds": [p[1] for p in kept], "regret": [p[2] for p in kept],
            "trials": len(result.trials), "planned": sum(t.planned for t in result.trials) / len(result.trials)}


def run_setting(bed: testbed.Testbed, *, seed: int, budget: int, workers: int, mode: str = "surrogate",
                noise: float = 0.0, rules: list[str] = (DEFAULT_FIDELITY,), from_full: bool = False) -> list[dict]:
    """Every arm of one seed: the cheap search once, then the cold and the warm real searches.

    ``from_full``: also ``warm_from_full``, warm-started from an earlier search as costly as the cheap
    one on the whole space (the real search's own fidelity): what a warm start gives without short runs.
    """
    ship = protocol.ARMS[protocol.SHIPPED]
    total = budget * bed.full
    real_space = bed.spaces["budget"][0]
    planned = bed.planned_choices()
    cheap_space, cheap_planned, cheap_max_t = cheap_bed(bed)
    run_length = SHORT[bed.recorded.format][0]
    cheap_resource = CHEAP_SHARE * total
    cheap_n = protocol.num_trials(ship, cheap_resource / cheap_max_t, cheap_max_t, cheap_planned)
    # Another seed than the real search's: its trial N must not draw what the real search's trial N draws.
    cheap, cheap_study = run_search(bed, cheap_space, cheap_max_t, seed=seed + 1000, resource=cheap_resource,
                                    num_samples=cheap_n, workers=workers, mode=mode, noise=noise)
    cheap_spent = cheap.trace[-1][0] if cheap.trace else 0.0
    finished = cheap_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    head = {"table": bed.path, "mode": mode, "seed": seed, "budget": budget, "workers": workers,
            "cheap_spent": cheap_spent, "cheap_trials": len(cheap.trials), "cheap_finished": len(finished)}
    n = protocol.num_trials(ship, budget, bed.max_t, planned)
    left = total - cheap_spent
    n_left = protocol.num_trials(ship, left / bed.full, bed.max_t, planned)
    always = frozenset(bed.distributions)  # the table's box asks every parameter
    cold, _ = run_search(bed, real_space, bed.max_t, seed=seed, resource=total, num_samples=n,
                         workers=workers, mode=mode, noise=noise)
    runs = [{**head, "arm": "cold", "num_samples": n, "warm_trials": 0, **_trace(cold, bed)}]
    earlier = [(rule, f"warm_{rule}", finished, False) for rule in dict.fromkeys(rules)]
    if from_full:
        full_n = protocol.num_trials(ship, cheap_resource / bed.full, bed.max_t, planned)
        _, full_study = run_search(bed, real_space, bed.max_t, seed=seed + 2000, resource=cheap_resource,
                                   num_samples=full_n, workers=workers, mode=mode, noise=noise)
        earlier.append((DEFAULT_FIDELITY, "warm_from_full",
                        full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)), True))
    for rule, name, trials, same in earlier:
        mapped = map_trials(trials, real_space, source="earlier search", always=always)
        variants = [(name, total, n, 0.0)] + [(f"{name}_counted", left, n_left, cheap_spent)] * (not same)
        for arm, resource, samples, offset in variants:
            warm = apply_fidelity(mapped, rule, same_fidelity=same, k=n_startup_trials(samples), run_length=run_length)
            result, _ = run_search(bed, real_space, bed.max_t, seed=seed, resource=resource, num_samples=samples,
                                   workers=workers, mode=mode, noise=noise, warm=warm)
            runs.append({**head, "arm": arm, "num_samples": samples, "warm_trials": len(warm[0]) + len(warm[1]),
                         "fidelity": rule, **_trace(result, bed, offset)})
    return runs


def summarise(runs: list[dict], total: float) -> dict:
    """One setting's arms over seeds: final and half-budget regret, reach of the cold final, and the goal's tests."""
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    names = [a for a in dict.fromkeys(r["arm"] for r in runs)]
    grid = [total * (i + 1) / protocol.GRID_POINTS for i in range(protocol.GRID_POINTS)]
    curves = {a: [stats.step_at(by[a, s]["epochs"], by[a, s]["regret"], grid, 1.0) for s in seeds] for a in names}
    mean = {a: [stats.mean_se([c[g] for c in curves[a]])[0] for g in range(len(grid))] for a in names}
    cold_final = [c[-1] for c in curves["cold"]]
    level = mean["cold"][-1]
    out = {"seeds": seeds, "total": total,
           "cheap_share": stats.mean_se([by["cold", s]["cheap_spent"] / total for s in seeds])[0],
           "cheap_finished": stats.mean_se([by["cold", s]["cheap_finished"] for s in seeds])[0], "arms": {}}
    for a in names:
        final = [c[-1] for c in curves[a]]
        half = [c[HALF] for c in curves[a]]
        reach = stats.first_reach(grid, mean[a], level)
        row = {"final": stats.mean_se(final), "half": stats.mean_se(half), "final_per_seed": final,
               "half_per_seed": half, "reach": reach / total if reach is not None else None,
               "trials": stats.mean_se([by[a, s]["trials"] for s in seeds])[0],
               "spent": stats.mean_se([by[a, s]["epochs"][-1] / total for s in seeds])[0],
               # the reports its trials planned, on average: how long the runs it chose were
               "planned": stats.mean_se([by[a, s].get("planned", float("nan")) for s in seeds])[0],
               "warm_trials": stats.mean_se([by[a, s]["warm_trials"] for s in seeds])[0]}
        if a != "cold":
            row["goal_test"] = {"wilcoxon": stats.wilcoxon(half, cold_final), "sign": stats.sign_test(half, cold_final),
                                "mean_diff": stats.mean_se([x - y for x, y in zip(half, cold_final)])[0]}
            row["vs_cold_final"] = stats.wilcoxon(final, cold_final)
            ref = default_arm(a)
            if ref in curves and ref != a and a != "warm_from_full":
                row["vs_default"] = {
                    "arm": ref, "final": stats.wilcoxon(final, [c[-1] for c in curves[ref]]),
                    "half": stats.wilcoxon(half, [c[HALF] for c in curves[ref]]),
                    "final_diff": stats.mean_se([x - c[-1] for x, c in zip(final, curves[ref])])[0]}
        out["arms"][a] = row
    return out


def apply_goal(results: dict) -> None:
    """Holm over every setting's goal test of each warm arm; ``met``: reach within half and adjusted p < ALPHA."""
    for arm in {a for sm in results["settings"].values() for a in sm["arms"] if a != "cold"}:
        rows = [sm["arms"][arm] for sm in results["settings"].values() if arm in sm["arms"]]
        for row, p in zip(rows, stats.holm([r["goal_test"]["wilcoxon"]["p"] for r in rows])):
            row["goal_test"]["holm_p"] = p
            lower = row["goal_test"]["mean_diff"] < 0
            row["met_raw"] = row["reach"] is not None and row["reach"] <= 0.5 and lower and (
                row["goal_test"]["wilcoxon"]["p"] < ALPHA)
            row["met"] = row["met_raw"] and p < ALPHA
        if "vs_default" in rows[0]:  # another fidelity rule against the default, over every setting
            for row, p in zip(rows, stats.holm([r["vs_default"]["final"]["p"] for r in rows])):
                row["vs_default"]["holm_p"] = p


def _sign(diff: float) -> str:
    return "+" if diff < 0 else "−" if diff > 0 else "="


def markdown(results: dict) -> str:
    """The goal table (every setting and arm) and the fidelity rules' table."""
    lines = ["| table | mode | budget | W | arm | trials (warm) | planned | spent | final regret | regret at half "
             "| reaches cold's final at | p: half vs cold final (Wilcoxon / sign; Holm) | goal |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    rules = []
    for key, sm in results["settings"].items():
        table, mode, budget, workers = key.split("|")
        for a, r in sm["arms"].items():
            reach = "never" if r["reach"] is None else f"{r['reach']:.2f}"
            trials = f"{r['trials']:.0f}" + (f" ({r['warm_trials']:.0f})" if r["warm_trials"] else "")
            if a == "cold":
                p = f"cheap search: {sm['cheap_share']:.3f} of the budget, {sm['cheap_finished']:.0f} finished"
                goal = ""
            else:
                t = r["goal_test"]
                p = (f"{t['wilcoxon']['p']:.2g} / {t['sign']['p']:.2g} ({_sign(t['mean_diff'])}); "
                     f"{t['holm_p']:.2g}")
                goal = "met" if r["met"] else "met before Holm" if r["met_raw"] else "no"
            lines.append(f"| {Path(table).stem} | {mode} | {budget} | {workers} | {a} | {trials} "
                         f"| {r['planned']:.0f} | {r['spent']:.2f} | {r['final'][0]:.4f} ± {r['final'][1]:.4f} "
                         f"| {r['half'][0]:.4f} | {reach} | {p} | {goal} |")
            if "vs_default" in r:
                v = r["vs_default"]
                rules.append(f"| {Path(table).stem} | {mode} | {budget} | {workers} | {a} | {v['arm']} "
                             f"| {r['final'][0]:.4f} | {sm['arms'][v['arm']]['final'][0]:.4f} "
                             f"| {v['final']['p']:.2g} ({_sign(v['final_diff'])}) | {v['holm_p']:.2g} "
                             f"| {v['half']['p']:.2g} |")
    out = "\n".join(lines)
    if rules:
        out += (f"\n\n**Against the default rule** ({DEFAULT_FIDELITY}; final regret of the arm and of the default "
                "rule's arm; Wilcoxon paired by seed, + the arm lower; Holm over every setting)\n\n"
                "| table | mode | budget | W | arm | against | arm: final | against: final | p final | Holm p final "
                "| p at half |\n|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|\n" + "\n".join(rules))
    return out


def summary_table(results: dict) -> str:
    """One row per setting: the cold arm, the default rule's two warm arms, the other rules and warm_from_full."""
    ship, counted = f"warm_{DEFAULT_FIDELITY}", f"warm_{DEFAULT_FIDELITY}_counted"
    others = sorted({a for sm in results["settings"].values() for a in sm["arms"]
                     if a.startswith("warm_") and not a.endswith("_counted") and a not in (ship, "warm_from_full")})
    others += ["warm_from_full"] * any("warm_from_full" in sm["arms"] for sm in results["settings"].values())
    lines = [f"| table | mode | budget | W | cold: final regret | {ship}: final / at half / reaches at / p (Holm) "
             f"| {counted}: final / reaches at / p (Holm) | "
             + " | ".join(f"{a}: final (p vs {ship})" if a != "warm_from_full" else
                          f"{a}: final / reaches at (p final vs cold final)" for a in others)
             + " | goal met |", "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(others) + "---|"]

    def reach(r):
        return "never" if r["reach"] is None else f"{r['reach']:.2f}"

    def p(r):
        t = r["goal_test"]
        return f"{t['wilcoxon']['p']:.2g} ({_sign(t['mean_diff'])}; {t['holm_p']:.2g})"

    for key, sm in results["settings"].items():
        table, mode, budget, workers = key.split("|")
        arms_ = sm["arms"]
        cells = [f"{arms_['cold']['final'][0]:.4f}"]
        for a, half in ((ship, True), (counted, False)):
            r = arms_.get(a)
            cells.append("not run" if r is None else f"{r['final'][0]:.4f} / " + (
                f"{r['half'][0]:.4f} / " if half else "") + f"{reach(r)} / {p(r)}")
        for a in others:
            r = arms_.get(a)
            v = (r or {}).get("vs_default")
            if r is None:
                cells.append("not run")
            elif a == "warm_from_full":
                diff = r["final"][0] - arms_["cold"]["final"][0]
                cells.append(f"{r['final'][0]:.4f} / {reach(r)} ({r['vs_cold_final']['p']:.2g}, {_sign(diff)})")
            else:
                cells.append(f"{r['final'][0]:.4f} (p = {v['final']['p']:.2g}, {_sign(v['final_diff'])})")
        met = [a for a in (ship, counted) if arms_.get(a, {}).get("met")]
        lines.append(f"| {Path(table).stem.split('_')[0]} | {mode} | {budget} | {workers} | {' | '.join(cells)} "
                     f"| {', '.join(met) or 'no'} |")
    return "\n".join(lines)


def _task(spec: tuple, rules: list[str], noise: dict) -> list[dict]:
    table, seed, budget, workers, mode, from_full = spec
    bed = testbed.load(table)
    return run_setting(bed, seed=seed, budget=budget, workers=workers, mode=mode,
                       noise=noise.get(table, 0.0) if mode == "nearest" else 0.0, rules=rules, from_full=from_full)


def main(args: argparse.Namespace) -> int:
    if args.merge:
        return write(sum((json.loads(Path(p).read_text()) for p in args.merge), []), Path(args.out), None)
    start = time.perf_counter()
    for r in args.rules:
        if r not in FIDELITY:
            raise SystemExit(f"unknown fidelity rule {r!r}; rules: {', '.join(FIDELITY)}")
    noise = {}
    for t in args.tables:
        bed = testbed.load(t)
        try:
            cheap_bed(bed)  # a table without short runs fails before anything runs
        except ValueError as e:
            raise SystemExit(str(e)) from None
        if "nearest" in args.mode and args.noise != "0":
            noise[t] = modes.noise_of(bed) if args.noise == "auto" else float(args.noise)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    specs = [(t, s, b, w, m, args.from_full) for t in args.tables for b in args.budgets for w in args.workers
             for m in args.mode for s in seeds]
    specs.sort(key=lambda s: s[2] * (5 if "deberta" in s[0] else 1), reverse=True)
    print(f"{len(specs)} settings x {len(arms(args.rules, args.from_full))} arms and a cheap search each, "
          f"{args.jobs} processes", flush=True)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            batches = list(pool.map(_task, specs, [args.rules] * len(specs), [noise] * len(specs)))
    else:
        batches = [_task(s, args.rules, noise) for s in specs]
    runs = [r for batch in batches for r in batch]
    return write(runs, Path(args.out), time.perf_counter() - start)


def write(runs: list[dict], out: Path, seconds: float | None) -> int:
    """OUT/runs.json, OUT/results.json and OUT/report.md of ``runs``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps(runs))
    results = report(runs)
    results["seconds"] = seconds
    text = summary_table(results) + "\n\n" + markdown(results)
    (out / "results.json").write_text(json.dumps(results))
    (out / "report.md").write_text(text + "\n")
    print(text)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    print(f"\n{len(runs)} real searches (and a cheap search per seed and setting){took} -> {out}/report.md")
    return 0


def report(runs: list[dict]) -> dict:
    """Every setting's summary (keyed ``table|mode|budget|W``) and the goal with Holm's correction."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(f"{r['table']}|{r['mode']}|{r['budget']}|{r['workers']}", []).append(r)
    results = {"settings": {}}
    for key, group in groups.items():
        bed = testbed.load(group[0]["table"])
        results["settings"][key] = summarise(group, group[0]["budget"] * bed.full)
    apply_goal(results)
    return results


def add_args(parser: argparse.ArgumentParser, tables: list[str]) -> None:
    parser.add_argument("--tables", nargs="+", default=tables,
                        help="tables with short runs (opda's AlexNet and DeBERTa; default: both)")
    parser.add_argument("--mode", nargs="+", choices=modes.MODES, default=["surrogate"],
                        help="how a proposal gets its curve (default: surrogate)")
    parser.add_argument("--noise", default="0", help="nearest mode: as simulate's --noise (default 0)")
    parser.add_argument("--rules", nargs="+", default=list(FIDELITY),
                        help=f"fidelity rules to compare (default: all: {', '.join(FIDELITY)})")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per setting (default 30)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 100],
                        help="the cold budget in full trials (default 20 100)")
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16], help="trials at once, W (default 4 16)")
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--out", default="runs/curves-34", help="where runs.json, results.json and report.md go "
                        "(default runs/curves-34)")
    parser.add_argument("--from-full", action="store_true",
                        help="also warm_from_full: warm-started from a search as costly on the whole space "
                             "(default off)")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="summarise OUT/runs.json files of earlier runs as one, running nothing")

"""Judge every claim of a paper from per-seed results: the only place verdicts are decided.

    python -m workflow.judge --paper catalogue/x.yaml --scale smoke --out verdicts.json

Each claim kind (workflow/claims.py) turns the measurements into comparisons: intervals (per-seed
values, their mean and a 95% t interval) tested against the claim's boundary.
  reproduced      every comparison's whole interval satisfies the claim
  not_reproduced  the whole interval contradicts it
  inconclusive    an interval straddles the boundary, or the evidence cannot decide (below)
  not_run         a job it needs failed, diverged or is missing, or the claim can only be tested at
                  another scale or on another device (`only_at`); the reason is recorded
What makes a verdict evidence; a verdict that fails one of these is inconclusive, with the reason:
  budget    training shorter than the catalogue's budget (its experiment's min_steps, else its
            train.steps before any scale override), or whose loss was still falling, is under
            budget. It may support a comparison only where more training could only strengthen it:
            the winning side of an ordering or a ratio, a threshold on the metric's better side. A
            value, a trend, a metric with no better side, or any contradiction is never decided on
            it. A metric training does not move (a generation speed) is exempt.
  seeds     one seed decides nothing.
  trends    a series that stays at a floor or a ceiling shows no trend.
  chance    a verdict resting on a model at chance ("learned nothing": the better end of its
            interval within the metric's band of the input-blind predictor's score) is decided only
            through reproduced controls.
  controls  a claim that names controls (`requires`) is decided only when every one is reproduced;
            its metric recorded as NaN (a quantity a model that learned nothing does not give) is
            inconclusive, not "not run", where a control failed.
A claim that is ours (`ours`) is judged the same way and counted apart from the paper's claims.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

from . import schema as S
from .catalogue import find_value, fmt_value, load_paper, metrics_of
from .claims import CONTRADICTED, SATISFIED, UNCERTAIN, at_chance, fmt_interval, kind_of, spearman  # noqa: F401 (spearman: re-exported)
from .steps import git_info, now, write_json
from .results import Measurements, NotRun, Undefined, collect, interval

VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_run")
BLOCKED = "under_budget"           # a comparison that under-budget training may not decide


def paper_value(c) -> str:
    """How the report shows what the paper claims."""
    return kind_of(c).paper_text(c)


def c_paper(c) -> float | None:
    """The paper's own number for the claim, where it gives one."""
    return getattr(c, "paper", None)


def difference(c, measured: dict) -> float | None:
    """Ours minus the paper's number, where the paper gives one and ours is one mean."""
    paper = c_paper(c)
    if paper is None or not isinstance(measured, dict) or "mean" not in measured:
        return None
    return measured["mean"] - paper


def _combine(states: list[str], allow: int = 0) -> str:
    bad = sum(s != SATISFIED for s in states)
    contra = sum(s == CONTRADICTED for s in states)
    if bad <= allow:
        return "reproduced"
    if contra > allow:
        return "not_reproduced"
    return "inconclusive"


def _budget_state(comp, trained: bool) -> tuple[str, list]:
    """The comparison's state once the budget rule is applied, and its under-budget records."""
    under = [r for r in comp.records if not r.converged] if trained else []
    if not under or comp.state == UNCERTAIN:
        return comp.state, under
    if comp.state == SATISFIED and not comp.neutral and all(any(r is f for f in comp.favoured) for r in under):
        return SATISFIED, under          # more training could only strengthen it: it stands, flagged
    return BLOCKED, under


def _who(records: list) -> str:
    """'lstm (trained 100 of the 2,000 steps its claims need)' for each distinct model and reason."""
    seen: dict[tuple, None] = {}
    for r in records:
        seen[(r.model, r.budget_note)] = None
    return "; ".join(f"{m} ({why})" if why else m for m, why in seen)


def _failed_controls(c, decided: dict[str, dict]) -> dict[str, str]:
    """{control id: "control X not reproduced (its verdict)"} for each control of the claim that is
    not reproduced (or not judged)."""
    out = {}
    for rid in c.requires:
        got = decided.get(rid, {}).get("verdict", "not judged")
        if got != "reproduced":
            out[rid] = f"control {rid} not reproduced ({got.replace('_', ' ')})"
    return out


def judge_claim(c, ms: Measurements, decided: dict[str, dict] | None = None) -> dict:
    """The verdict record of one claim; `decided` holds the verdicts of the claims judged before it
    (its controls among them)."""
    decided = decided or {}
    m = c.measure
    out = {"id": c.id, "kind": c.kind, "text": c.text, "source": c.source, "note": c.note_for(ms.scale),
           "paper_value": paper_value(c), "experiment": m.experiment, "metric": m.metric,
           "at": {k: v for k, v in m.at.items()}, "origin": "ours" if c.ours else "paper", "ours": c.ours,
           "our_bound": c.our_bound, "requires": list(c.requires)}
    lim = c.only_at
    if lim is not None and ms.scale not in lim.scales:
        where = " and ".join(lim.scales) + (f" on {lim.device}" if lim.device else "")
        why = f"not run at the {ms.scale} scale: judged only at {where}: {lim.reason}"
        out.update(verdict="not_run", reason=why, under_budget=False, n_seeds=0, jobs=[], flags=["only_at"],
                   reasons=[why])
        return out
    fact = ms.fact(m.experiment, m.metric)
    try:
        ev = kind_of(c).evidence(c, ms, fact)
    except NotRun as e:
        # a metric the job recorded as NaN, where a control failed, is explained by that control (a
        # probe of a model that holds no label has no "fewest neurons that carry it"): inconclusive,
        # as any claim whose controls failed; without a failed control nothing explains it: not run
        missing = _failed_controls(c, decided)
        if isinstance(e, Undefined) and missing:
            reasons = [str(e)] + list(missing.values())
            out.update(verdict="inconclusive", reason="; ".join(reasons), under_budget=False, n_seeds=0,
                       jobs=[], flags=["control"], reasons=reasons)
            return out
        out.update(verdict="not_run", reason=str(e), under_budget=False, n_seeds=0, jobs=[],
                   flags=[], reasons=[str(e)])
        return out
    records = {id(r): r for comp in ev.comparisons + ev.required for r in comp.records}.values()
    jobs = sorted({r.job_dir for r in records})
    if lim is not None and lim.device:
        off = sorted({r.device or "a device the results do not record" for r in records if r.device != lim.device})
        if off:
            why = f"measured on {', '.join(off)}, not {lim.device}: {lim.reason}"
            out.update(verdict="not_run", reason=why, under_budget=False, n_seeds=ev.n, jobs=jobs,
                       flags=["only_at"], reasons=[why], measured=ev.measured, measured_text=ev.measured_text)
            return out
    trained = bool(fact.get("trained", True))
    reasons: list[str] = []
    flags: list[str] = []
    # 1. budget: each comparison, then all together
    states, blocked_by, under_all = [], [], []
    for comp in ev.comparisons + ev.required:
        st, under = _budget_state(comp, trained)
        states.append(st)
        under_all += under
        if st == BLOCKED:
            blocked_by += under
    n_main = len(ev.comparisons)
    main = [UNCERTAIN if st == BLOCKED else st for st in states[:n_main]]
    req = [UNCERTAIN if st == BLOCKED else st for st in states[n_main:]]
    verdict = _combine(main, ev.allow)
    if verdict == "reproduced" and req:
        verdict = _combine(req)
    elif verdict == "inconclusive" and any(s == CONTRADICTED for s in req):
        verdict = "not_reproduced"
    if under_all:
        flags.append("under_budget")
    if blocked_by and verdict != "not_reproduced":
        verdict = "inconclusive"
        reasons.append(f"under budget: {_who(blocked_by)}; more training could change this verdict")
    elif under_all and verdict == "reproduced":
        reasons.append(f"under budget: {_who(under_all)}; more training could only strengthen this verdict")
    elif under_all:
        reasons.append(f"under budget: {_who(under_all)}")
    decisive = verdict in ("reproduced", "not_reproduced")
    # 2. seeds
    if ev.n == 1:
        flags.append("one_seed")
        reasons.append("one seed: the interval has zero width")
        verdict = "inconclusive" if decisive else verdict
    # 3. a flat series at a floor or ceiling
    if ev.flat:
        reasons.append(f"no trend: {ev.flat}")
        verdict = "inconclusive" if verdict in ("reproduced", "not_reproduced") else verdict
    # 4. controls, and models at chance
    missing = _failed_controls(c, decided)
    for why in missing.values():
        flags.append("control")
        reasons.append(why)
    idle = [p for p in ev.points if at_chance(p, fact)]
    if idle:
        flags.append("chance")
        what = ", ".join(f"{p.label} at {fmt_interval(p.iv, fact.get('lo'), fact.get('hi'))} against chance "
                         f"{p.chance:.4g}" for p in idle)
        if not c.requires:
            reasons.append(f"learned nothing: {what}, and the claim names no control that shows the setup can succeed")
        elif not missing:
            reasons.append(f"at chance ({what}), decided through its reproduced controls")
        else:
            reasons.append(f"learned nothing: {what}")
    if (missing or (idle and not c.requires)) and verdict in ("reproduced", "not_reproduced"):
        verdict = "inconclusive"
    if c.our_bound:
        flags.append("our_bound")
    sel = ms.paper.experiment(m.experiment, ms.scale).select_best
    if sel is not None:
        mine = {mid for _, mid in kind_of(c).models(c)}          # this claim's models, not the experiment's
        chosen = sorted({(k[1], k[2], json.dumps(at, sort_keys=True)) for k, at in ms.selected.items()
                         if k[0] == m.experiment and k[1] in mine})
        out["selection"] = {
            "text": f"each seed of each model read at its best {', '.join(sel.over)} by {sel.by}, selected on the "
                    f"evaluation metric as the paper reports",
            "chosen": [{"model": mod, "seed": seed, **json.loads(at)} for mod, seed, at in chosen]}
    out.update(measured=ev.measured, measured_text=ev.measured_text, plot=ev.plot, paper=c_paper(c),
               difference=difference(c, ev.measured), verdict=verdict, reason="; ".join(reasons),
               reasons=reasons, flags=sorted(set(flags)), under_budget=bool(under_all), n_seeds=ev.n,
               chance=[{"model": p.label, "chance": p.chance, "mean": p.iv["mean"]} for p in ev.points
                       if p.chance is not None],
               better=fact.get("better"), range=[fact.get("lo"), fact.get("hi")], jobs=jobs)
    return out


def judge_claims(claims: list, ms: Measurements) -> list[dict]:
    """Every claim, controls before the claims that name them; the records in catalogue order."""
    by_id = {c.id: c for c in claims}
    done: dict[str, dict] = {}

    def visit(c, stack=()):
        if c.id in done:
            return
        for rid in c.requires:
            if rid in by_id and rid not in stack:
                visit(by_id[rid], (*stack, c.id))
        done[c.id] = judge_claim(c, ms, done)

    for c in claims:
        visit(c)
    return [done[c.id] for c in claims]


def judge_table(t: S.Table, ms: Measurements) -> dict:
    exp = ms.paper.experiment(t.experiment, ms.scale)
    axes = ms.axes(t.experiment).for_metric(t.metric)

    def labels(axis):
        return [m.id for m in exp.models] if axis == "model" else list(axes[axis])

    rows, cols = labels(t.rows), labels(t.columns)
    cells = []
    for r in rows:
        row = []
        for col in cols:
            free = {k: v for k, v in ((t.rows, r), (t.columns, col)) if k != "model"}
            model = r if t.rows == "model" else col if t.columns == "model" else None
            paper_v = None
            pr = find_value(list(t.paper), r)
            if pr is not None:
                pc = find_value(list(t.paper[pr]), col)
                paper_v = t.paper[pr][pc] if pc is not None else None
            cell = {"paper": paper_v}
            try:
                if model is None:
                    raise NotRun("a table needs 'model' as rows or columns")
                vals = ms.values(t.experiment, model, ms.full_point(t.experiment, t.at, free, metric=t.metric), t.metric)
                cell.update(interval([v for _, v, _ in vals]))
                cell["converged"] = all(rec.converged for _, _, rec in vals)
            except NotRun as e:
                cell["not_run"] = str(e)
            row.append(cell)
        cells.append(row)
    return {"id": t.id, "title": t.title, "source": t.source, "metric": t.metric, "experiment": t.experiment,
            "rows_axis": t.rows, "columns_axis": t.columns,
            "rows": [fmt_value(x) for x in rows], "columns": [fmt_value(x) for x in cols], "cells": cells}


def series(ms: Measurements) -> list[dict]:
    """Every metric along every axis with more than one value, per model (for figures)."""
    out = []
    for exp in ms.paper.experiments(ms.scale).values():
        for metric in metrics_of(exp):
            axes = ms.axes(exp.id).for_metric(metric)
            for axis, values in axes.items():
                if len(values) < 2:
                    continue
                others = {k: v for k, v in axes.items() if k != axis}
                for combo in itertools.product(*others.values()):
                    fixed = dict(zip(others, combo))
                    lines = []
                    for model in exp.models:
                        pts = []
                        for x in values:
                            try:
                                vals = ms.values(exp.id, model.id, {**fixed, axis: x}, metric)
                            except NotRun:
                                continue
                            pts.append({"x": x, "seeds": [v for _, v, _ in vals], **interval([v for _, v, _ in vals])})
                        if pts:
                            lines.append({"model": model.id, "points": pts})
                    if lines:
                        out.append({"experiment": exp.id, "axis": axis, "fixed": fixed, "metric": metric, "lines": lines})
    return out


def points(ms: Measurements) -> list[dict]:
    """Every evaluated (experiment, model, point, metric) with its interval over seeds: what the
    cross-paper view compares across papers at equal settings (probe stats are left out)."""
    probes = {p.id for e in ms.paper.experiments(ms.scale).values() for p in e.probes}   # "<probe id>.<stat>"
    groups: dict[tuple, list] = {}
    for r in ms.records:
        for metric, v in r.metrics.items():
            if metric.split(".", 1)[0] in probes or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            groups.setdefault((r.experiment, r.model, json.dumps(r.point, sort_keys=True), metric), []).append(
                (r.seed, v, r.converged))
    out = []
    for (exp, model, point, metric), vals in sorted(groups.items()):
        seeds = {}
        for seed, v, conv in vals:
            seeds.setdefault(seed, (v, conv))
        iv = interval([v for v, _ in seeds.values()])
        out.append({"experiment": exp, "model": model, "at": json.loads(point), "metric": metric, **iv,
                    "converged": all(c for _, c in seeds.values())})
    return out


def summarize_provenance(records: list[dict]) -> dict:
    """What the jobs behind a report ran on: every distinct value, so mixed runs show."""

    def distinct(key):
        return sorted({str(r.get(key)) for r in records})

    packages: dict[str, set] = {}
    for r in records:
        for name, version in (r.get("packages") or {}).items():
            packages.setdefault(name, set()).add(version)
    starts = [r["start"] for r in records if r.get("start")]
    ends = [r["end"] for r in records if r.get("end")]
    return {"jobs": len(records), "git_sha": distinct("git_sha"), "git_dirty": distinct("git_dirty"),
            "host": distinct("host"), "device": distinct("device"), "python": distinct("python"),
            "packages": {k: sorted(v) for k, v in sorted(packages.items())},
            "first_start": min(starts) if starts else None, "last_end": max(ends) if ends else None}


def judge_paper(paper_path: Path, scale: str, root: Path = Path(".")) -> dict:
    """The verdicts of a paper at one scale, from its result files only (no MLflow: the report joins
    each claim's jobs with their run ids)."""
    lp = load_paper(paper_path, registry_checks=False)   # the run validated the catalogue when it started
    ms = collect(lp, scale, root)
    claims = judge_claims(lp.spec.claims, ms)
    # the paper's score counts the paper's claims; claims that are ours are counted apart
    counts = {v: sum(c["verdict"] == v and c["origin"] == "paper" for c in claims) for v in VERDICTS}
    counts_ours = {v: sum(c["verdict"] == v and c["origin"] == "ours" for c in claims) for v in VERDICTS}
    jobs_summary = {"total": len(ms.jobs), "failed": sorted(set(ms.problems.values())),
                    "copied": len(ms.copied)}   # fits copied from a job of the same config (rules/train.smk)
    return {
        "paper": lp.spec.paper.model_dump(),
        "scale": scale,
        "date": now(),
        **git_info(),
        "counts": counts,
        "counts_ours": counts_ours,
        "claims": claims,
        "tables": [judge_table(t, ms) for t in lp.spec.tables],
        "series": series(ms),
        "curves": ms.curves,
        "points": points(ms),
        "jobs": jobs_summary,
        "experiments": {e.id: {"seeds": e.seeds, "train": e.train.model_dump(), "sweep": e.sweep,
                               "eval_sweep": e.evaluate.sweep, "task": {"name": e.task.name, **e.task.params},
                               "models": [{"id": m.id, "arch": m.arch, **m.params} for m in e.models]}
                        for e in lp.experiments(scale).values()},
        "provenance": summarize_provenance(ms.provenance),
        "compute_s": ms.compute_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.judge", description="judge a paper's claims at one scale")
    p.add_argument("--paper", required=True, type=Path, help="catalogue file")
    p.add_argument("--scale", required=True, choices=S.SCALES)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    result = judge_paper(args.paper, args.scale, Path("."))
    write_json(args.out, result)
    c = result["counts"]
    print(f"{result['paper']['id']} ({args.scale}): " + ", ".join(f"{v.replace('_', ' ')} {c[v]}" for v in VERDICTS),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

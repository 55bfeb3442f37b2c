"""Judge every claim of a paper from per-seed results: the only place verdicts are decided.

    python -m workflow.judge --paper catalogue/x.yaml --scale smoke --runs runs.json --out verdicts.json

Rules (DESIGN.md): for each claim, the per-seed values, their mean and a 95% t interval.
  reproduced      the whole interval satisfies the claim
  not_reproduced  the whole interval contradicts it
  inconclusive    the interval straddles the boundary
  not_run         a job it needs failed, diverged or is missing (the reason is recorded)
A claim resting on a job whose loss was still falling (or that trained fewer steps than the
experiment's train.min_steps, the budget its catalogue entry says the claims need) is flagged under_budget, and a
contradiction on such a job becomes inconclusive (under budget), never not_reproduced.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from . import schema as S
from .catalogue import find_value, fmt_value, load_paper, metrics_of
from .jobs import git_info, now, write_json
from .results import Measurements, NotRun, collect, interval

VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_run")
SATISFIED, CONTRADICTED, UNCERTAIN = "satisfied", "contradicted", "uncertain"


def compare(iv: dict, op: str, bound: float) -> str:
    """Does the whole interval satisfy `x op bound`, contradict it, or straddle it?"""
    lo, hi = iv["lo"], iv["hi"]
    if op == ">=":
        return SATISFIED if lo >= bound else CONTRADICTED if hi < bound else UNCERTAIN
    if op == ">":
        return SATISFIED if lo > bound else CONTRADICTED if hi <= bound else UNCERTAIN
    if op == "<=":
        return SATISFIED if hi <= bound else CONTRADICTED if lo > bound else UNCERTAIN
    if op == "<":
        return SATISFIED if hi < bound else CONTRADICTED if lo >= bound else UNCERTAIN
    raise ValueError(op)


def within(iv: dict, lo: float, hi: float) -> str:
    if iv["lo"] >= lo and iv["hi"] <= hi:
        return SATISFIED
    if iv["hi"] < lo or iv["lo"] > hi:
        return CONTRADICTED
    return UNCERTAIN


def _paired(a: list, b: list, fn) -> list[float]:
    """Per-seed combination of two measurements of the same seeds."""
    bd = {seed: v for seed, v, _ in b}
    return [fn(v, bd[seed]) for seed, v, _ in a if seed in bd]


def _strict_op(margin: float) -> tuple[str, float]:
    """'a exceeds b by at least margin': strictly greater when the margin is zero."""
    return (">=", margin) if margin > 0 else (">", 0.0)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def fmt_interval(iv: dict) -> str:
    if iv["n"] == 1:
        return f"{_fmt(iv['mean'])} (1 seed)"
    return f"{_fmt(iv['mean'])} [{_fmt(iv['lo'])}, {_fmt(iv['hi'])}]"


def paper_value(c) -> str:
    """How the report shows what the paper claims."""
    if c.kind == "value":
        tol = f"± {_fmt(c.tolerance)}" if c.tolerance is not None else f"± {_fmt(100 * c.rel_tolerance)}%"
        return f"{_fmt(c.paper)} {tol}"
    if c.kind == "threshold":
        return f"{c.op} {_fmt(c.value)}" + (f" (paper: {_fmt(c.paper)})" if c.paper is not None else "")
    if c.kind == "ordering":
        return " > ".join(c.order) + (f" (by ≥ {_fmt(c.margin)})" if c.margin else "")
    if c.kind == "trend":
        if c.statistic == "spearman":
            sign = "≥ " if c.direction in ("increasing", "non_decreasing") else "≤ -"
            return f"{c.direction.replace('_', '-')} along {c.along} (Spearman ρ {sign}{_fmt(c.min_correlation)})"
        extra = f", up to {c.allow_violations} exception{'s' * (c.allow_violations != 1)}" if c.allow_violations else ""
        return f"{c.direction.replace('_', '-')} along {c.along}{extra}"
    if c.kind == "ratio":
        return f"{c.numerator}/{c.denominator} {c.op} {_fmt(c.value)}" + (f" (paper: {_fmt(c.paper)})" if c.paper is not None else "")
    raise ValueError(c.kind)


class _Done(Exception):
    """A verdict reached early inside judge_claim."""

    def __init__(self, verdict: str):
        self.verdict = verdict


def spearman(xs: list, ys: list[float]) -> float:
    """Spearman rank correlation with average ranks for ties; 0 when a series is constant."""

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(list(xs)), ranks(list(ys))
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def _combine(states: list[str], allow: int = 0) -> str:
    bad = sum(s != SATISFIED for s in states)
    contra = sum(s == CONTRADICTED for s in states)
    if bad <= allow:
        return "reproduced"
    if contra > allow:
        return "not_reproduced"
    return "inconclusive"


def judge_claim(c, ms: Measurements) -> dict:
    """The verdict record of one claim."""
    m = c.measure
    out = {"id": c.id, "kind": c.kind, "text": c.text, "source": c.source, "note": c.note, "paper_value": paper_value(c),
           "experiment": m.experiment, "metric": m.metric, "at": {k: v for k, v in m.at.items()}}
    used: list = []
    try:
        if c.kind in ("value", "threshold"):
            vals = ms.values(m.experiment, m.model, ms.full_point(m.experiment, m.at, metric=m.metric), m.metric)
            used += vals
            iv = interval([v for _, v, _ in vals])
            state = within(iv, *c.bounds()) if c.kind == "value" else compare(iv, c.op, c.value)
            verdict = _combine([state])
            out["measured"] = iv
            out["measured_text"] = fmt_interval(iv)
        elif c.kind == "ordering":
            point = ms.full_point(m.experiment, m.at, metric=m.metric)
            series = {mid: ms.values(m.experiment, mid, point, m.metric) for mid in c.order}
            for v in series.values():
                used += v
            op, bound = _strict_op(c.margin)
            states, pairs = [], []
            for a, b in zip(c.order, c.order[1:]):
                iv = interval(_paired(series[a], series[b], lambda x, y: x - y))
                states.append(compare(iv, op, bound))
                pairs.append({"pair": f"{a} - {b}", **iv})
            verdict = _combine(states)
            means = {mid: interval([v for _, v, _ in s]) for mid, s in series.items()}
            out["measured"] = {"models": means, "differences": pairs}
            out["measured_text"] = "; ".join(f"{p['pair']} = {fmt_interval(p)}" for p in pairs)
        elif c.kind == "trend":
            axis_values = list(ms.axes(m.experiment).for_metric(m.metric)[c.along])
            # numbers run in increasing order; names (a categorical axis such as a data split) in the
            # order the catalogue lists them in its sweep, which is then the claim's order
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in axis_values):
                axis_values.sort()
            series = []
            for x in axis_values:
                pt = ms.full_point(m.experiment, m.at, {c.along: x}, metric=m.metric)
                vals = ms.values(m.experiment, m.model, pt, m.metric)
                used += vals
                series.append((x, vals))
            if len(series) < 2:
                raise NotRun(f"axis {c.along} has fewer than two values at the {ms.scale} scale")
            up = c.direction in ("increasing", "non_decreasing")
            strict = c.direction in ("increasing", "decreasing")
            means = " → ".join(_fmt(interval([v for _, v, _ in vals])["mean"]) for _, vals in series)
            out["measured"] = {"series": [{"at": x, **interval([v for _, v, _ in vals])} for x, vals in series]}
            if c.statistic == "spearman":
                xs = [x for x, _ in series]
                per_seed = [dict((seed, v) for seed, v, _ in vals) for _, vals in series]
                seeds = sorted(set.intersection(*(set(d) for d in per_seed)))
                rhos = [spearman(xs, [d[s] for d in per_seed]) for s in seeds]
                iv = interval(rhos)
                verdict = _combine([compare(iv, ">=", c.min_correlation) if up else compare(iv, "<=", -c.min_correlation)])
                out["measured"]["spearman"] = {**iv, "per_seed": rhos}
                out["measured_text"] = f"{means} (Spearman ρ {fmt_interval(iv)})"
                raise _Done(verdict)
            states, steps = [], []
            for (x0, a), (x1, b) in zip(series, series[1:]):
                diff = interval(_paired(b, a, (lambda y, x: y - x) if up else (lambda y, x: x - y)))
                if strict:
                    op, bound = _strict_op(c.margin)
                else:
                    op, bound = ">=", -c.margin
                states.append(compare(diff, op, bound))
                steps.append({"from": x0, "to": x1, "state": states[-1], **diff})
            verdict = _combine(states, c.allow_violations)
            out["measured"]["steps"] = steps
            ok = sum(s == SATISFIED for s in states)
            out["measured_text"] = f"{means} ({ok}/{len(states)} steps {c.direction.replace('_', '-')})"
        elif c.kind == "ratio":
            point = ms.full_point(m.experiment, m.at, metric=m.metric)
            num = ms.values(m.experiment, c.numerator, point, m.metric)
            den = ms.values(m.experiment, c.denominator, point, m.metric)
            used += num + den
            if any(v == 0 for _, v, _ in den):
                raise NotRun(f"{m.metric} of {c.denominator} is zero; the ratio is undefined")
            iv = interval(_paired(num, den, lambda x, y: x / y))
            verdict = _combine([compare(iv, c.op, c.value)])
            out["measured"] = iv
            out["measured_text"] = fmt_interval(iv)
        else:  # pragma: no cover - the schema admits no other kind
            raise ValueError(c.kind)
    except NotRun as e:
        out.update(verdict="not_run", reason=str(e), under_budget=False, n_seeds=0, runs=[], jobs=[])
        return out
    except _Done as d:
        verdict = d.verdict
    records = {id(r): r for _, _, r in used}.values()
    under = any(not r.converged for r in records)
    reason = ""
    if under and verdict == "not_reproduced":
        verdict, reason = "inconclusive", "under budget: the contradiction rests on training whose loss was still falling, or shorter than the experiment's min_steps"
    elif under:
        reason = "under budget: some training was still improving at the end, or shorter than the experiment's min_steps"
    meas = out["measured"]
    parts = meas.get("differences") or meas.get("steps") or ([meas["spearman"]] if "spearman" in meas else [])
    n = meas["n"] if "n" in meas else min((iv["n"] for iv in parts), default=0)
    if n == 1:
        reason = (reason + "; " if reason else "") + "one seed: the interval has zero width"
    jobs = sorted({r.job_dir for r in records})
    out.update(verdict=verdict, reason=reason, under_budget=under, n_seeds=n, jobs=jobs,
               runs=[ms.runs[j] for j in jobs if j in ms.runs])
    return out


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


def judge_paper(paper_path: Path, scale: str, root: Path = Path("."), runs_file: Path | None = None) -> dict:
    lp = load_paper(paper_path, registry_checks=False)   # the run validated the catalogue when it started
    ms = collect(lp, scale, root, runs_file)
    claims = [judge_claim(c, ms) for c in lp.spec.claims]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}
    jobs_summary = {"total": len(ms.jobs), "failed": sorted(set(ms.problems.values()))}
    return {
        "paper": lp.spec.paper.model_dump(),
        "scale": scale,
        "date": now(),
        **git_info(),
        "counts": counts,
        "claims": claims,
        "tables": [judge_table(t, ms) for t in lp.spec.tables],
        "series": series(ms),
        "jobs": jobs_summary,
        "experiments": {e.id: {"seeds": e.seeds, "train": e.train.model_dump(), "sweep": e.sweep,
                               "eval_sweep": e.evaluate.sweep, "task": {"name": e.task.name, **e.task.params},
                               "models": [{"id": m.id, "arch": m.arch, **m.params} for m in e.models]}
                        for e in lp.experiments(scale).values()},
        "runs": ms.runs,
        "provenance": summarize_provenance(ms.provenance),
        "compute_s": ms.compute_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.judge", description="judge a paper's claims at one scale")
    p.add_argument("--paper", required=True, type=Path, help="catalogue file")
    p.add_argument("--scale", required=True, choices=S.SCALES)
    p.add_argument("--runs", type=Path, default=None, help="runs.json from the tracking step (MLflow run ids)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    result = judge_paper(args.paper, args.scale, Path("."), args.runs)
    write_json(args.out, result)
    c = result["counts"]
    print(f"{result['paper']['id']} ({args.scale}): " + ", ".join(f"{v.replace('_', ' ')} {c[v]}" for v in VERDICTS),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

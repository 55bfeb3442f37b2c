"""Read the result files of one paper at one scale into measurements the judge and the
report can address by (experiment, model, point, metric)."""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalogue.model import Axes, axes_of, find_value, fmt_value, point_name

if TYPE_CHECKING:   # the loaded catalogue only as a type: results read the job model, not the loader
    from .catalogue.load import LoadedPaper

CONFIDENCE = 0.95


class NotRun(Exception):
    """A measurement that cannot be made; str() says why."""


class Undefined(NotRun):
    """The job ran and recorded its metrics, but this one is not a finite number: a quantity the
    trained model does not give (a sparse probe's k_at_90 when no neuron tells anything about the
    label), or a run that went wrong. The judge decides which through the claim's controls."""


def interval(values: list[float]) -> dict:
    """Mean and two-sided 95% t interval of the mean. One value gives a zero-width interval."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1, "sd": 0.0}
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n, "sd": sd}


@dataclass
class Record:
    """One seed of one trained model, evaluated at one point of the full axes."""

    experiment: str
    model: str
    seed: int
    point: dict[str, Any]        # train sweep point + evaluation point
    metrics: dict[str, float | None]
    job_dir: str
    converged: bool                      # within budget: trained its budget's steps, and converged
    chance: dict[str, float] = field(default_factory=dict)   # the input-blind predictor's score per metric
    budget_note: str = ""                # why not within budget ("" when it is)
    device: str | None = None            # the device kind it was evaluated on (cpu, cuda); None: not recorded


@dataclass
class Measurements:
    paper: LoadedPaper
    scale: str
    records: list[Record] = field(default_factory=list)
    problems: dict[tuple, str] = field(default_factory=dict)   # (exp, model, point_name, seed) -> why no record
    jobs: list = field(default_factory=list)
    compute_s: float = 0.0                                     # training + evaluation, summed over jobs
    provenance: list = field(default_factory=list)             # each finished train job's provenance
    copied: dict = field(default_factory=dict)                 # job folder -> the folder whose fit it copies
    facts: dict = field(default_factory=dict)                  # (experiment, metric) -> the metric's facts
    selected: dict = field(default_factory=dict)               # select_best: (exp, model, seed, point) -> the best point
    curves: list = field(default_factory=list)                 # each trained job's loss against step (for the report)

    def axes(self, exp_id: str) -> Axes:
        return axes_of(self.paper.experiment(exp_id, self.scale))

    def full_point(self, exp_id: str, at: dict, free: dict | None = None, metric: str | None = None) -> dict:
        """The point on every axis of `metric`, from `at`, the free axes' values, and single-valued axes."""
        axes = self.axes(exp_id).for_metric(metric)
        free = free or {}
        point = {}
        for key, values in axes.items():
            if key in free:
                point[key] = free[key]
            elif key in at:
                v = find_value(values, at[key])
                if v is None:
                    raise NotRun(f"{key}={fmt_value(at[key])} is not in the {self.scale} scale's sweep ({values})")
                point[key] = v
            elif len(values) == 1:
                point[key] = values[0]
            else:
                raise NotRun(f"axis {key} has several values at the {self.scale} scale and the claim does not fix it")
        return point

    def values(self, exp_id: str, model: str, point: dict, metric: str) -> list[tuple[int, float, Record]]:
        """(seed, value, record) for every seed of the experiment; NotRun if any is missing. With
        `select_best`, each seed's value is read at the point of its axes where `by` is best."""
        exp = self.paper.experiment(exp_id, self.scale)
        sel = exp.select_best
        if sel is None:
            return self._values(exp, model, point, metric)
        better = self.fact(exp_id, sel.by)["better"]
        free = {k: v for k, v in point.items() if k in self.axes(exp_id).for_metric(sel.by)}
        by_point = self.full_point(exp_id, free, metric=sel.by)
        best: dict[int, tuple] = {}
        for combo in itertools.product(*(exp.sweep[k] for k in sel.over)):
            at = dict(zip(sel.over, combo))
            scores = self._values(exp, model, {**by_point, **at}, sel.by)
            vals = {seed: (v, r) for seed, v, r in self._values(exp, model, {**point, **at}, metric)}
            for seed, score, _ in scores:
                old = best.get(seed)
                if old is None or (score > old[0] if better != "lower" else score < old[0]):
                    best[seed] = (score, at, *vals[seed])
        out = []
        for seed in sorted(best):
            score, at, v, rec = best[seed]
            self.selected[(exp_id, model, seed, json.dumps(point, sort_keys=True))] = at
            out.append((seed, v, rec))
        return out

    def _values(self, exp, model: str, point: dict, metric: str) -> list[tuple[int, float, Record]]:
        exp_id = exp.id
        train_keys = set(exp.sweep)
        train_point = {k: v for k, v in point.items() if k in train_keys}

        pname = point_name({k: train_point[k] for k in exp.sweep})
        out = []
        for seed in range(exp.seeds):
            key = (exp_id, model, pname, seed)
            if key in self.problems:
                raise NotRun(self.problems[key])
            rec = self._index.get((exp_id, model, _freeze(point), seed))
            if rec is None:
                raise NotRun(f"no result for {model} at {pname} seed {seed}")
            v = rec.metrics.get(metric)
            if v is None or not math.isfinite(v):
                raise Undefined(f"{metric} is not a finite number for {model} at {pname} seed {seed}")
            out.append((seed, v, rec))
        return out

    def fact(self, exp_id: str, metric: str) -> dict:
        """The metric's facts as its result files give them; without them, no better side (so the
        budget rules decide nothing on under-budget training) and no range."""
        return self.facts.get((exp_id, metric)) or {"better": "none", "lo": None, "hi": None, "trained": True,
                                                    "band": 0.0}

    def index(self) -> None:
        """Records of one job at one point are merged (an evaluation and probes may share a point)."""
        self._index = {}
        for r in self.records:
            key = (r.experiment, r.model, _freeze(r.point), r.seed)
            if key in self._index:
                old = self._index[key]
                self._index[key] = Record(old.experiment, old.model, old.seed, old.point,
                                          {**old.metrics, **r.metrics}, old.job_dir, old.converged,
                                          {**old.chance, **r.chance}, old.budget_note)
            else:
                self._index[key] = r


def _freeze(point: dict) -> tuple:
    return tuple(sorted((k, json.dumps(v)) for k, v in point.items()))


def budget(paper: LoadedPaper, exp_id: str, scale: str) -> int:
    """The steps an experiment's claims need: its `train.min_steps`, else its `train.steps`, as the
    catalogue writes them before any scale override. A scale may raise the budget (its own
    min_steps), never lower it."""
    spec = next(e for e in paper.spec.experiments if e.id == exp_id)
    need = spec.train.min_steps or spec.train.steps
    scaled = paper.experiment(exp_id, scale).train.min_steps
    return max(need, scaled or 0)


def budget_note(tr: dict, job, need: int) -> str:
    """Why a job's training is under budget, or "" when it is not: fewer steps than the budget
    (whatever its loss did: a loss on a plateau looks converged long before it falls), or a loss
    still falling at the end. A pretrained model that trains no steps is never under budget."""
    if tr.get("pretrained"):
        return ""
    steps = job.config["train"]["steps"]
    if steps < need:
        return f"trained {steps:,} of the {need:,} steps its claims need"
    if not tr.get("converged"):
        return "its loss was still falling at the end"
    return ""


CURVE_POINTS = 60


def curve(tr: dict, job, need: int, why: str) -> dict:
    """A job's loss against step, thinned to at most CURVE_POINTS points (the last one kept), with
    the budget its claims need and why it is under it (`budget_note`; "" when it is not)."""
    h = tr.get("history") or {}
    steps, loss = list(h.get("step") or []), list(h.get("loss") or [])
    if len(steps) > CURVE_POINTS:
        keep = sorted({round(i * (len(steps) - 1) / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)})
        steps, loss = [steps[i] for i in keep], [loss[i] for i in keep]
    return {"experiment": job.experiment, "model": job.model, "point": job.point_name, "seed": job.seed,
            "status": tr.get("status"), "steps": steps, "loss": loss, "budget": need,
            "under_budget": why if tr.get("status") == "ok" else ""}


def collect(paper: LoadedPaper, scale: str, root: Path = Path(".")) -> Measurements:
    """Read every job's train.json and eval.json (and probe.json) for `paper` at `scale`."""
    ms = Measurements(paper, scale)
    ms.jobs = paper.jobs(scale)
    needs = {e: budget(paper, e, scale) for e in paper.experiments(scale)}
    for job in ms.jobs:
        d = root / job.dir
        key = (job.experiment, job.model, job.point_name, job.seed)
        try:
            tr = json.loads((d / "train.json").read_text())
            ev = json.loads((d / "eval.json").read_text())
        except FileNotFoundError as e:
            ms.problems[key] = f"missing result file {Path(e.filename).relative_to(root) if root in Path(e.filename).parents else e.filename}"
            continue
        except (OSError, ValueError) as e:
            ms.problems[key] = f"unreadable result in {job.dir}: {e}"
            continue
        ms.compute_s += float(tr.get("compute_s") or 0) + float(ev.get("compute_s") or 0)
        if tr.get("copy_of"):
            ms.copied[job.dir] = tr["copy_of"]
        why = budget_note(tr, job, needs[job.experiment])
        ms.curves.append(curve(tr, job, needs[job.experiment], why))
        if tr.get("provenance"):
            ms.provenance.append(tr["provenance"])
        if tr.get("status") != "ok":
            at = f" at step {tr['diverged_at']}" if tr.get("diverged_at") else ""
            err = f": {tr['error']}" if tr.get("error") else ""
            ms.problems[key] = f"training {tr.get('status')}{at} ({job.model}, {job.point_name}, seed {job.seed}){err}"
            continue
        if ev.get("status") != "ok":
            ms.problems[key] = f"evaluation {ev.get('status')}: {ev.get('reason', '')} ({job.model}, {job.point_name}, seed {job.seed})"
            continue
        for metric, fact in (ev.get("metric_facts") or {}).items():
            ms.facts.setdefault((job.experiment, metric), fact)
        for pt in ev["points"]:
            ms.records.append(Record(job.experiment, job.model, job.seed, {**job.point, **pt["at"]},
                                     pt["metrics"], job.dir, not why, pt.get("chance") or {}, why, ev.get("device")))
        if job.probe_config:
            try:
                pr = json.loads((d / "probe.json").read_text())
            except FileNotFoundError:
                ms.problems[key] = f"missing result file {job.dir}/probe.json"
                continue
            except (OSError, ValueError) as e:
                ms.problems[key] = f"unreadable result in {job.dir}/probe.json: {e}"
                continue
            ms.compute_s += float(pr.get("compute_s") or 0)
            if pr.get("status") != "ok":
                ms.problems[key] = f"probing {pr.get('status')}: {pr.get('reason', '')} ({job.model}, {job.point_name}, seed {job.seed})"
                continue
            for res in pr["probes"].values():
                for metric, fact in (res.get("metric_facts") or {}).items():
                    ms.facts.setdefault((job.experiment, metric), fact)
                for pt in res["points"]:
                    ms.records.append(Record(job.experiment, job.model, job.seed, {**job.point, **pt["at"]},
                                             pt["metrics"], job.dir, not why, pt.get("chance") or {}, why,
                                             pr.get("device")))
    ms.index()
    return ms

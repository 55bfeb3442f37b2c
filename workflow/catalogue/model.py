"""The job model: axes and points, values as the catalogue writes them, a job's config and its hash."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .. import schema as S


def _values_equal(a: Any, b: Any) -> bool:
    # a table's paper values may be keyed by "0.9" (quoted, or from JSON) for the axis value 0.9
    if isinstance(a, str) and isinstance(b, (int, float)) and not isinstance(b, bool):
        a, b = b, a
    if isinstance(b, str) and isinstance(a, (int, float)) and not isinstance(a, bool):
        try:
            b = float(b)
        except ValueError:
            return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def find_value(values: list, v: Any) -> Any | None:
    """The member of `values` equal to `v` (numbers compared as floats), or None."""
    for x in values:
        if _values_equal(x, v):
            return x
    return None


@dataclass
class Axes:
    """The axes of an experiment at one scale: train sweep keys, eval sweep keys, and the probe
    axes of each probe metric ("<probe id>.<stat>" -> {"probe.layer": [...], ...})."""

    train: dict[str, list]
    evaluate: dict[str, list]
    probe: dict[str, dict[str, list]] = field(default_factory=dict)

    @property
    def all(self) -> dict[str, list]:
        """Train and evaluation axes: those of the task's metrics."""
        return {**self.train, **self.evaluate}

    def for_metric(self, metric: str | None) -> dict[str, list]:
        """The axes a value of `metric` is addressed on: a probe metric has the train axes and
        its probe's axes; a task metric the train and evaluation axes."""
        if metric in self.probe:
            return {**self.train, **self.probe[metric]}
        return self.all

    @property
    def metrics(self) -> list[str]:
        return list(self.probe)


def probe_layers(exp: S.Experiment, probe: S.ProbeSpec) -> list[int] | None:
    """The probe's layers: its list, or 1 .. n_layer when every model gives the same n_layer."""
    if probe.layers != "all":
        return list(probe.layers)
    ns = {m.params.get("n_layer") for m in exp.models}
    if len(ns) != 1 or None in ns or not isinstance(next(iter(ns)), int):
        return None
    return list(range(1, next(iter(ns)) + 1))


def probe_metrics(exp: S.Experiment) -> dict[str, dict[str, list]]:
    """Every probe metric of the experiment with its probe axes ({} for unknown kinds)."""
    from modules.probes.kinds import KINDS, axis_values

    out: dict[str, dict[str, list]] = {}
    for p in exp.probes:
        if p.kind not in KINDS:
            continue
        layers = probe_layers(exp, p) or []
        try:
            axes = axis_values(p.kind, p.params, layers)
        except KeyError:
            axes = {}
        for stat, dims in KINDS[p.kind].metrics.items():
            out[f"{p.id}.{stat}"] = {f"probe.{d}": axes.get(f"probe.{d}", []) for d in dims}
    return out


def axes_of(exp: S.Experiment) -> Axes:
    """The axes claims and tables address: a `select_best` axis is resolved per seed, not addressed."""
    hidden = set(exp.select_best.over) if exp.select_best else set()
    return Axes(train={k: v for k, v in exp.sweep.items() if k not in hidden}, evaluate=dict(exp.evaluate.sweep),
                probe=probe_metrics(exp))


def metrics_of(exp: S.Experiment) -> list[str]:
    """The metrics a claim or table can address: the evaluated ones and every probe metric."""
    return [*exp.evaluate.metrics, *probe_metrics(exp)]


def probe_settings(exp: S.Experiment) -> dict:
    """What a probe job needs beyond its trained model: changing it never retrains."""
    probes = [{"id": p.id, "kind": p.kind, "target": p.target, "layers": probe_layers(exp, p) or [],
               "positions": p.positions, "params": dict(p.params)} for p in exp.probes]
    return {"probes": probes, "layers": sorted({l for p in probes for l in p["layers"]})}


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def point_name(point: dict[str, Any]) -> str:
    """The path-safe name of a sweep point: 'task.sparsity=0.9,model.hidden=5' or 'default'."""
    if not point:
        return "default"
    return ",".join(f"{k}={fmt_value(v)}" for k, v in point.items())


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Job:
    paper: str
    scale: str
    experiment: str
    model: str
    point: dict[str, Any]
    seed: int
    config: dict[str, Any] = field(repr=False)         # the train job's resolved config
    eval_config: dict[str, Any] = field(repr=False, default_factory=dict)
    probe_config: dict[str, Any] = field(repr=False, default_factory=dict)   # {"probes": [...]} or {}

    # computed once: the Snakefile asks for them for every job, several times, while building the DAG
    @cached_property
    def point_name(self) -> str:
        return point_name(self.point)

    @property
    def key(self) -> tuple:
        return (self.scale, self.paper, self.experiment, self.model, self.point_name, self.seed)

    @cached_property
    def dir(self) -> str:
        return f"results/{self.scale}/{self.paper}/{self.experiment}/{self.model}/{self.point_name}/seed{self.seed}"

    @cached_property
    def config_json(self) -> str:
        """The resolved config as the train rule's param: two jobs train the same fit when these match."""
        return json.dumps(self.config, sort_keys=True)


def shared_fits(jobs) -> dict[str, str]:
    """Fits that two or more jobs would train alike: the folder of each job whose resolved config
    (task, model, train settings and seed) is the same as another's -> the folder that trains it,
    the first of them in sorted order. That one trains; the others copy its record and model
    (rules/train.smk, copy_fit). The same config gives the same fit to the bit on a CPU, so a copy
    is what the job would have computed; the choice of the first never depends on which papers a
    run selects, so a finished run's copies stay current when another run selects fewer."""
    first: dict[str, str] = {}
    copies: dict[str, str] = {}
    for job in sorted(jobs, key=lambda j: j.dir):
        src = first.setdefault(job.config_json, job.dir)
        if src != job.dir:
            copies[job.dir] = src
    return copies


def job_config(exp: S.Experiment, model: S.ModelSpec, point: dict, seed: int) -> dict:
    """The resolved config of one train job: everything that determines its result, nothing else."""
    task = {"name": exp.task.name, **exp.task.params}
    params = dict(model.params)
    train = exp.train.model_dump()
    train.pop("min_steps", None)        # read by the judge; it does not change what training does
    if model.train is not None:         # the model's own optimization settings
        train.update(model.train.overrides())
    for key, v in point.items():
        section, name = key.split(".", 1)
        {"task": task, "model": params, "train": train}[section][name] = v
    return {"task": task, "model": {"arch": model.arch, **params}, "train": train, "seed": seed}


def eval_settings(exp: S.Experiment) -> dict:
    """What an evaluate job needs beyond its trained model: changing it never retrains."""
    return {"metrics": list(exp.evaluate.metrics), "sweep": {k: list(v) for k, v in exp.evaluate.sweep.items()}}


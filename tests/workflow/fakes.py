"""A small catalogue and planted result files, for testing the judge and the report
without training anything."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from workflow.catalogue import load_paper

BASE = {
    "paper": {"id": "fake", "title": "A <b>fake</b> paper", "year": 2020},
    "experiments": [{
        "id": "exp",
        "task": {"name": "superposition", "n_features": 6},
        "models": [{"id": "a", "arch": "toy_autoencoder", "hidden": 2},
                   {"id": "b", "arch": "toy_autoencoder", "hidden": 2, "activation": "none"}],
        "sweep": {"task.sparsity": [0.0, 0.5, 0.9]},
        "train": {"steps": 10, "batch_size": 8, "lr": 0.01},
        "evaluate": {"metrics": ["loss", "features_represented"]},
        "seeds": 3,
    }],
    "scales": {"smoke": {"seeds": 1, "sweep": {"task.sparsity": [0.0, 0.9]}}},
    "claims": [{"id": "c", "text": "t", "source": "Figure 1", "kind": "value",
                "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.0}},
                "paper": 1.0, "tolerance": 0.1}],
    "tables": [{"id": "t", "title": "T", "experiment": "exp", "metric": "loss", "rows": "model",
                "columns": "task.sparsity", "source": "Table 1", "paper": {"a": {0.0: 1.0}}}],
}


def make_paper(tmp: Path, **changes):
    doc = json.loads(json.dumps(BASE))
    doc.update(changes)
    path = tmp / "catalogue" / "fake.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_paper(path)


def plant(tmp: Path, lp, scale: str, values, converged=True, skip=(), diverged=(), facts=None, chance=None,
          device=None):
    """Write train.json/eval.json for every job; values(model, point, seed) -> {metric: v}.
    converged: a bool or job -> bool; facts: {metric: facts} over the task's own (metric_facts of
    eval.json); chance: {metric: level} at every point; device: the device eval.json records (a str, or
    job -> str; None records none, as result files from before devices were recorded)."""
    from modules.tasks import get_task_class

    task_facts = {}
    for exp in lp.spec.experiments:
        task_facts[exp.id] = {**get_task_class(exp.task.name).facts(), **(facts or {})}
    for job in lp.jobs(scale):
        if (job.model, job.seed) in skip:
            continue
        d = tmp / job.dir
        d.mkdir(parents=True, exist_ok=True)
        status = "diverged" if (job.model, job.seed) in diverged else "ok"
        conv = converged(job) if callable(converged) else converged
        (d / "train.json").write_text(json.dumps({"status": status, "diverged_at": 7 if status != "ok" else None,
                                                  "converged": conv, "config": job.config, "compute_s": 0.1,
                                                  "history": {"step": [2, 4, 6, 8, 10],
                                                              "loss": [1.0 / k + 0.01 * job.seed for k in range(1, 6)]}}))
        if status == "ok":
            ev = {"status": "ok", "metric_facts": task_facts[job.experiment],
                  "points": [{"at": {}, "metrics": values(job.model, job.point, job.seed), "chance": chance or {}}]}
            dev = device(job) if callable(device) else device
            if dev is not None:
                ev["device"] = dev
        else:
            ev = {"status": "not_run", "reason": "training diverged at step 7", "points": []}
        (d / "eval.json").write_text(json.dumps(ev))

"""The job model (workflow/catalogue/model.py): one job per model, sweep point and seed, its
directory, point name and config."""
from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path

import pytest

from workflow import catalogue as C
from workflow import schema as S
from workflow.catalogue import load_paper

from .helpers import EXP, EXP_ID, I_VALUE, M0, M1, PAPER, base, write


def expected_jobs(exp: S.Experiment) -> int:
    return len(exp.models) * exp.seeds * math.prod(len(v) for v in exp.sweep.values())


PATH_SAFE = re.compile(r"^[A-Za-z0-9_.,=+\-]+$")


@pytest.mark.parametrize("scale", S.SCALES)
def test_jobs_count_is_models_times_points_times_seeds(catalogue, scale):
    lp = catalogue[PAPER]
    exps = lp.experiments(scale)
    want = sum(expected_jobs(e) for e in exps.values())
    jobs = lp.jobs(scale)
    assert len(jobs) == want == lp.n_jobs(scale)
    for exp in exps.values():
        assert sum(j.experiment == exp.id for j in jobs) == expected_jobs(exp)


@pytest.mark.parametrize("scale", S.SCALES)
def test_job_dirs_and_point_names(catalogue, scale):
    lp = catalogue[PAPER]
    jobs = lp.jobs(scale)
    assert len({j.dir for j in jobs}) == len(jobs), "two jobs share a directory"
    assert len({j.key for j in jobs}) == len(jobs), "two jobs share a key"
    for j in jobs:
        parts = Path(j.dir).parts
        assert parts[:3] == ("results", scale, lp.id), j.dir
        assert parts[3:] == (j.experiment, j.model, j.point_name, f"seed{j.seed}"), j.dir
        assert ".." not in parts and "." not in parts
        assert os.path.normpath(j.dir) == j.dir
        assert PATH_SAFE.match(j.point_name), j.point_name
    for exp in lp.experiments(scale).values():
        names = {j.point_name for j in jobs if j.experiment == exp.id}
        assert len(names) == math.prod(len(v) for v in exp.sweep.values()), "point names are not unique"


def _strip(cfg: dict, point: dict, drop_model: bool = False) -> dict:
    """The config less what the sweep point and the seed set."""
    c = copy.deepcopy(cfg)
    c.pop("seed")
    for key in point:
        section, name = key.split(".", 1)
        c[section].pop(name, None)
    if drop_model:
        c.pop("model")
    return c


@pytest.mark.parametrize("scale", S.SCALES)
def test_job_configs_differ_only_where_sweep_and_seed_say(catalogue, scale):
    lp = catalogue[PAPER]
    jobs = lp.jobs(scale)
    for exp in lp.experiments(scale).values():
        ejobs = [j for j in jobs if j.experiment == exp.id]
        models = {m.id: m for m in exp.models}
        for j in ejobs:
            assert j.config["seed"] == j.seed
            assert 0 <= j.seed < exp.seeds
            assert j.config["train"]["steps"] == exp.train.steps
            assert j.config["model"]["arch"] == models[j.model].arch
            for key, v in j.point.items():
                section, name = key.split(".", 1)
                assert j.config[section][name] == v
                assert C.find_value(exp.sweep[key], v) is not None
            assert j.eval_config == {"metrics": list(exp.evaluate.metrics),
                                     "sweep": {k: list(v) for k, v in exp.evaluate.sweep.items()}}
        # same model: equal once the point and seed are taken out
        for mid in models:
            stripped = [_strip(j.config, j.point) for j in ejobs if j.model == mid]
            assert all(s == stripped[0] for s in stripped)
            m = models[mid]
            assert stripped[0]["model"] == {"arch": m.arch, **{k: v for k, v in m.params.items() if f"model.{k}" not in exp.sweep}}
            assert stripped[0]["task"] == {"name": exp.task.name, **{k: v for k, v in exp.task.params.items() if f"task.{k}" not in exp.sweep}}
        # across models: equal once the model is taken out too
        stripped = [_strip(j.config, j.point, drop_model=True) for j in ejobs]
        assert all(s == stripped[0] for s in stripped)
        assert len({C.config_hash(j.config) for j in ejobs}) == len(ejobs)


def multi_axis_paper() -> dict:
    """The toy entry with three training axes, one claim and no tables."""
    d = base()
    exp = d["experiments"][0]
    exp["sweep"] = {"task.sparsity": [0.0, 0.9], "model.hidden": [2, 5], "train.lr": [1.0e-3, 1.0e-5]}
    exp["seeds"] = 2
    claim = copy.deepcopy(d["claims"][I_VALUE])
    claim["measure"]["at"] = {"task.sparsity": 0.9, "model.hidden": 5, "train.lr": 1.0e-3}
    d["claims"] = [claim]
    d["tables"] = []
    d["scales"] = {}
    return d


def test_jobs_with_several_axes(tmp_path):
    lp = load_paper(write(tmp_path, multi_axis_paper()))
    jobs = lp.jobs("small")
    exp = lp.experiment(EXP_ID, "small")
    assert len(jobs) == expected_jobs(exp) == 2 * 8 * 2
    names = {j.point_name for j in jobs}
    assert len(names) == 8
    assert all(PATH_SAFE.match(n) for n in names), names
    assert "task.sparsity=0.9,model.hidden=5,train.lr=1e-05" in names
    for j in jobs:
        assert j.config["model"]["hidden"] == j.point["model.hidden"]
        assert j.config["train"]["lr"] == j.point["train.lr"]
        assert j.config["task"]["sparsity"] == j.point["task.sparsity"]
    for mid in (M0, M1):
        stripped = [_strip(j.config, j.point) for j in jobs if j.model == mid]
        assert all(s == stripped[0] for s in stripped)


def test_no_sweep_gives_the_default_point(tmp_path):
    d = base()
    d["experiments"][0]["sweep"] = {}
    for c in d["claims"]:
        c["measure"]["at"] = {}
    d["claims"] = [c for c in d["claims"] if c["kind"] != "trend"]
    d["tables"] = []
    d["scales"] = {}
    lp = load_paper(write(tmp_path, d))
    jobs = lp.jobs("small")
    assert len(jobs) == len(EXP["models"]) * EXP["seeds"]
    assert {j.point_name for j in jobs} == {"default"}

"""Tests of workflow.catalogue: loading, validation messages, scale overrides, job expansion,
the `check` CLI and the generated JSON Schema.

Every bad-input test writes a small catalogue file into tmp_path, named <paper id>.yaml, made
by changing one thing in the real entry catalogue/toy_superposition.yaml; it then asserts that
load_paper raises CatalogueError and that the message names the file, the key path and the bad
value (or the allowed values). Nothing here trains a model.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the project is not installed; it is imported from its root
    sys.path.insert(0, str(ROOT))

from workflow import catalogue as C  # noqa: E402
from workflow import schema as S  # noqa: E402
from workflow.catalogue import CatalogueError, load_catalogue, load_paper  # noqa: E402

TOY = ROOT / "catalogue" / "toy_superposition.yaml"
SCHEMA_FILE = ROOT / "schemas" / "catalogue.schema.json"
REGENERATE = "python -m workflow.catalogue schema > schemas/catalogue.schema.json"

BASE: dict = yaml.safe_load(TOY.read_text())
PAPER = BASE["paper"]["id"]
EXP = BASE["experiments"][0]
EXP_ID = EXP["id"]
M0, M1 = EXP["models"][0]["id"], EXP["models"][1]["id"]
AXIS = next(iter(EXP["sweep"]))                      # the multi-valued training axis (task.sparsity)
AXIS_VALUES = EXP["sweep"][AXIS]
METRICS = EXP["evaluate"]["metrics"]


def _claim_index(kind: str) -> int:
    return next(i for i, c in enumerate(BASE["claims"]) if c["kind"] == kind)


I_VALUE = _claim_index("value")
I_THRESHOLD = _claim_index("threshold")
I_ORDERING = _claim_index("ordering")
I_TREND = _claim_index("trend")
I_RATIO = _claim_index("ratio")
TABLE = BASE["tables"][0]
TABLE_ROW = next(iter(TABLE["paper"]))               # a model id with paper values


def test_base_entry_has_what_these_tests_modify():
    """The tests below change the toy entry; this says which of its features they rely on."""
    assert PAPER == TOY.stem
    assert len(EXP["models"]) >= 2
    assert len(AXIS_VALUES) >= 2 and AXIS.startswith("task.")
    assert "at" in BASE["claims"][I_VALUE]["measure"]
    assert "tolerance" in BASE["claims"][I_VALUE]
    assert TABLE["rows"] == "model" and TABLE["columns"] == AXIS and TABLE["paper"]
    assert BASE["claims"][I_TREND]["along"] == AXIS
    assert len({c["id"] for c in BASE["claims"]}) >= 2


# ----------------------------------------------------------------------------- helpers

def base() -> dict:
    return copy.deepcopy(BASE)


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write(tmp_path: Path, data: dict | None = None, *, text: str | bytes | None = None, name: str = PAPER) -> Path:
    path = tmp_path / f"{name}.yaml"
    if text is None:
        text = dump(base() if data is None else data)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(CatalogueError) as info:
        load_paper(path)
    msg = str(info.value)
    assert msg == "\n".join(info.value.problems)
    return msg


def assert_mentions(msg: str, path: Path, *parts: str) -> None:
    assert str(path) in msg, f"the message does not name the file {path}:\n{msg}"
    for part in parts:
        assert part in msg, f"{part!r} is not in the message:\n{msg}"


def setv(*keys_and_value) -> Callable[[dict], None]:
    """A change that sets data[k1][k2]... = value."""
    *keys, value = keys_and_value

    def change(d: dict) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = copy.deepcopy(value)

    return change


def delete(*keys) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return change


def both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        for c in changes:
            c(d)

    return change


def append(*keys_and_value) -> Callable[[dict], None]:
    *keys, value = keys_and_value

    def change(d: dict) -> None:
        for k in keys:
            d = d[k]
        d.append(copy.deepcopy(value))

    return change


def _dup_experiment(d: dict) -> None:
    d["experiments"].append(copy.deepcopy(d["experiments"][0]))


# ------------------------------------------------------------- 1. the real catalogue

@pytest.fixture(scope="module")
def catalogue() -> dict[str, C.LoadedPaper]:
    """load_catalogue() with no arguments, run from the project root (catalogue/ may be cwd-relative)."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return load_catalogue()
    finally:
        os.chdir(cwd)


def expected_jobs(exp: S.Experiment) -> int:
    return len(exp.models) * exp.seeds * math.prod(len(v) for v in exp.sweep.values())


PATH_SAFE = re.compile(r"^[A-Za-z0-9_.,=+\-]+$")


def test_real_catalogue_loads(catalogue):
    assert PAPER in catalogue
    for pid, lp in catalogue.items():
        assert lp.id == pid == lp.path.stem
    assert (ROOT / catalogue[PAPER].path).resolve() == TOY
    lp = catalogue[PAPER]
    assert [e.id for e in lp.spec.experiments] == [e["id"] for e in BASE["experiments"]]
    assert [c.id for c in lp.spec.claims] == [c["id"] for c in BASE["claims"]]


def test_load_paper_accepts_str_path():
    assert load_paper(str(TOY)).id == PAPER


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


# ------------------------------------------------------------- 2. scale overrides

def test_smoke_overrides_are_applied(catalogue):
    lp = catalogue[PAPER]
    smoke = BASE["scales"]["smoke"]
    exp = lp.experiment(EXP_ID, "smoke")
    assert exp.train.steps == smoke["train.steps"] != EXP["train"]["steps"]
    assert exp.seeds == smoke["seeds"]
    assert exp.sweep == smoke["sweep"]
    # what smoke does not override keeps the entry's value
    assert exp.train.batch_size == EXP["train"]["batch_size"]
    assert exp.train.lr == EXP["train"]["lr"]
    assert [m.id for m in exp.models] == [M0, M1]
    # the spec itself is not changed by resolving a scale
    assert lp.spec.experiments[0].train.steps == EXP["train"]["steps"]
    assert lp.spec.experiments[0].sweep == EXP["sweep"]


@pytest.mark.parametrize("scale", S.SCALES)
def test_each_scale_applies_its_overrides_or_keeps_the_entry(catalogue, scale):
    lp = catalogue[PAPER]
    ov = BASE["scales"].get(scale, {})
    exp = lp.experiment(EXP_ID, scale)
    assert exp.train.steps == ov.get("train.steps", EXP["train"]["steps"])
    assert exp.seeds == ov.get("seeds", EXP["seeds"])
    assert exp.sweep == {**EXP["sweep"], **ov.get("sweep", {})}


def test_small_is_the_default_scale(catalogue):
    lp = catalogue[PAPER]
    assert lp.experiment(EXP_ID) == lp.experiment(EXP_ID, "small")
    assert lp.experiments() == lp.experiments("small")
    assert [j.key for j in lp.jobs()] == [j.key for j in lp.jobs("small")]
    assert {j.scale for j in lp.jobs()} == {"small"}
    assert lp.n_jobs() == lp.n_jobs("small")


def test_scale_without_overrides_is_the_entry(tmp_path):
    d = base()
    d["scales"] = {}
    lp = load_paper(write(tmp_path, d))
    for scale in S.SCALES:
        exp = lp.experiment(EXP_ID, scale)
        assert exp.train.steps == EXP["train"]["steps"]
        assert exp.seeds == EXP["seeds"]
        assert exp.sweep == EXP["sweep"]


def test_per_experiment_override_wins_over_the_scale_wide_one(tmp_path):
    d = base()
    d["scales"]["smoke"]["experiments"] = {EXP_ID: {"train.steps": 7, "seeds": 1, "task.importance_decay": 0.9}}
    lp = load_paper(write(tmp_path, d))
    exp = lp.experiment(EXP_ID, "smoke")
    assert (exp.train.steps, exp.seeds, exp.task.params["importance_decay"]) == (7, 1, 0.9)
    assert lp.experiment(EXP_ID, "small").train.steps == BASE["scales"]["small"]["train.steps"]
    assert all(j.config["train"]["steps"] == 7 for j in lp.jobs("smoke"))


def test_evaluate_sweep_override(tmp_path):
    d = base()
    exp = d["experiments"][0]
    exp["sweep"] = {}
    exp["evaluate"]["sweep"] = {AXIS: AXIS_VALUES}
    d["scales"] = {"smoke": {"evaluate.sweep": {AXIS: AXIS_VALUES[:2]}, "evaluate.metrics": METRICS[:1]}}
    lp = load_paper(write(tmp_path, d))
    smoke = lp.experiment(EXP_ID, "smoke")
    assert smoke.evaluate.sweep == {AXIS: AXIS_VALUES[:2]}
    assert smoke.evaluate.metrics == METRICS[:1]
    jobs = lp.jobs("smoke")
    assert len(jobs) == len(EXP["models"]) * EXP["seeds"]
    assert all(j.eval_config["sweep"] == {AXIS: AXIS_VALUES[:2]} for j in jobs)


def test_unknown_scale_is_refused(catalogue):
    with pytest.raises(CatalogueError) as info:
        catalogue[PAPER].jobs("huge")
    assert_mentions(str(info.value), catalogue[PAPER].path, "'huge'", "smoke, small, full")


SCALE_ERRORS = [
    pytest.param(setv("scales", "smoke", "train.stepz", 10),
                 ["scales.smoke.train.stepz", "'stepz'", "steps"], id="train.stepz"),
    pytest.param(setv("scales", "smoke", "sweep", {"task.nope": [1]}),
                 ["scales.smoke.sweep.task.nope", "not an axis", AXIS], id="sweep-task.nope"),
    pytest.param(setv("scales", "smoke", "evaluate.sweep", {"task.nope": [1]}),
                 ["scales.smoke.evaluate.sweep.task.nope", "not an axis"], id="evaluate.sweep-task.nope"),
    pytest.param(setv("scales", "smoke", "experiments", {"nope": {"seeds": 1}}),
                 ["scales.smoke.experiments.nope", "not an experiment", EXP_ID], id="experiments-nope-seeds"),
    pytest.param(setv("scales", "smoke", "experiments.nope.seeds", 1),
                 ["scales.smoke.experiments.nope", "not an experiment"], id="experiments.nope.seeds-dotted"),
    pytest.param(setv("scales", "smoke", "experiments", {EXP_ID: {"train.stepz": 1}}),
                 [f"scales.smoke.experiments.{EXP_ID}.train.stepz", "'stepz'", "steps"], id="experiments-id-train.stepz"),
    pytest.param(setv("scales", "smoke", "experiments", {EXP_ID: 3}),
                 [f"scales.smoke.experiments.{EXP_ID}", "mapping"], id="experiments-id-not-mapping"),
    pytest.param(setv("scales", "smoke", "model.hidden", 3),
                 ["scales.smoke.model.hidden", "overridable"], id="model.hidden"),
    pytest.param(setv("scales", "smoke", "task.name", "other"),
                 ["scales.smoke.task.name", "task"], id="task.name"),
    pytest.param(setv("scales", "smoke", "seeds.x", 1),
                 ["scales.smoke.seeds.x"], id="seeds.x"),
    pytest.param(setv("scales", "smoke", "train", 1),
                 ["scales.smoke.train", "train.steps"], id="train-no-subkey"),
    pytest.param(setv("scales", "smoke", "seeds", 0),
                 ["scales.smoke", "experiments[0].seeds", "(got 0)"], id="seeds-0"),
    pytest.param(setv("scales", "small", "train.steps", "many"),
                 ["scales.small", "experiments[0].train.steps", "'many'", "integer"], id="train.steps-str"),
    pytest.param(setv("scales", "full", "train.lr", -1.0),
                 ["scales.full", "experiments[0].train.lr", "-1.0"], id="train.lr-negative"),
    pytest.param(setv("scales", "smoke", "sweep", {AXIS: [1.5]}),
                 ["scales.smoke", f"sweep.{AXIS}", "1.5"], id="sweep-value-invalid"),
    pytest.param(setv("scales", "smoke", "sweep", {AXIS: 0.5}),
                 ["scales.smoke", f"sweep.{AXIS}", "0.5", "list"], id="sweep-not-a-list"),
    pytest.param(setv("scales", "smoke", "sweep", [1]),
                 ["scales.smoke.sweep", "mapping"], id="sweep-not-a-mapping"),
    pytest.param(setv("scales", "smoke", "task.nope", 1),
                 ["scales.smoke", "task.nope", "unknown key"], id="task.nope"),
    pytest.param(setv("scales", "huge", {"seeds": 1}),
                 ["scales.huge", "'huge'", "'smoke'"], id="unknown-scale-name"),
]


@pytest.mark.parametrize("change, expect", SCALE_ERRORS)
def test_bad_scale_override(tmp_path, change, expect):
    d = base()
    change(d)
    path = write(tmp_path, d)
    assert_mentions(error_of(path), path, *expect)


def test_dotted_per_experiment_override_as_documented(tmp_path):
    d = base()
    d["scales"]["smoke"][f"experiments.{EXP_ID}.seeds"] = 1
    lp = load_paper(write(tmp_path, d))
    assert lp.experiment(EXP_ID, "smoke").seeds == 1


# ------------------------------------------------------------- 3. bad input

def _dup_claim_id(d):
    d["claims"][1]["id"] = d["claims"][0]["id"]


C0 = BASE["claims"][0]["id"]
N_METRICS = len(METRICS)
TABLE_COL = next(iter(TABLE["paper"][TABLE_ROW]))

BAD = [
    # ---- unknown keys
    pytest.param(setv("extras", 1), ["extras: unknown key", "experiments", "claims"], id="unknown-top-level-key"),
    pytest.param(setv("paper", "doi", "x"), ["paper.doi: unknown key", "title"], id="unknown-key-paper"),
    pytest.param(setv("experiments", 0, "repeats", 2), ["experiments[0].repeats", "unknown key", "seeds"],
                 id="unknown-key-experiment"),
    pytest.param(setv("experiments", 0, "train", "stepz", 2), ["experiments[0].train.stepz", "unknown key", "steps"],
                 id="unknown-key-train"),
    pytest.param(setv("experiments", 0, "evaluate", "metric", "loss"), ["experiments[0].evaluate.metric", "metrics"],
                 id="unknown-key-evaluate"),
    pytest.param(setv("claims", I_VALUE, "tolerence", 1), [f"claims[{I_VALUE}].tolerence", "unknown key", "tolerance"],
                 id="unknown-key-claim"),
    pytest.param(setv("claims", I_TREND, "directon", "x"), [f"claims[{I_TREND}].directon", "unknown key"],
                 id="unknown-key-trend-claim"),
    pytest.param(setv("claims", I_TREND, "directon", "x"), [f"claims[{I_TREND}].directon", "direction", "along"],
                 id="unknown-key-trend-claim-allowed-keys"),
    pytest.param(setv("claims", I_THRESHOLD, "oper", ">"), [f"claims[{I_THRESHOLD}].oper", "op", "value"],
                 id="unknown-key-threshold-claim-allowed-keys"),
    pytest.param(setv("claims", I_VALUE, "measure", "models", M0),
                 [f"claims[{I_VALUE}].measure.models", "unknown key", "model", "metric"], id="unknown-key-measure"),
    pytest.param(setv("tables", 0, "rowz", "model"), ["tables[0].rowz", "unknown key", "rows"], id="unknown-key-table"),
    pytest.param(setv("experiments", 0, "task", "n_feature", 20), ["experiments[0].task.n_feature", "n_features"],
                 id="unknown-task-param"),
    # ---- registries: arch, task, hyperparameters, metrics
    pytest.param(setv("experiments", 0, "models", 1, "arch", "transformerr"),
                 ["experiments[0].models[1].arch", "'transformerr'", "toy_autoencoder"], id="unknown-arch"),
    pytest.param(setv("experiments", 0, "task", "name", "superposiiton"),
                 ["experiments[0].task.name", "'superposiiton'", "superposition"], id="unknown-task"),
    pytest.param(setv("experiments", 0, "models", 0, "hiddn", 5),
                 ["experiments[0].models[0].hiddn", "unknown key", "hidden"], id="unknown-hyperparameter"),
    pytest.param(setv("experiments", 0, "models", 0, "hidden", "five"),
                 ["experiments[0].models[0].hidden", "'five'", "integer"], id="hyperparameter-wrong-type"),
    pytest.param(setv("experiments", 0, "models", 0, "hidden", 0),
                 ["experiments[0].models[0].hidden", "0", "at least 1"], id="hyperparameter-out-of-range"),
    pytest.param(setv("experiments", 0, "models", 0, "activation", "gelu"),
                 ["experiments[0].models[0].activation", "'gelu'", "relu"], id="hyperparameter-bad-choice"),
    pytest.param(setv("experiments", 0, "task", "importance_decay", "high"),
                 ["experiments[0].task.importance_decay", "'high'", "number"], id="task-param-wrong-type"),
    pytest.param(append("experiments", 0, "evaluate", "metrics", "accuracy"),
                 [f"experiments[0].evaluate.metrics[{N_METRICS}]", "'accuracy'", METRICS[0]], id="unknown-metric"),
    pytest.param(setv("experiments", 0, "sweep", AXIS, [0.5, 1.5]),
                 [f"experiments[0].sweep.{AXIS}", "1.5"], id="sweep-value-invalid-for-task"),
    pytest.param(setv("experiments", 0, "sweep", "Task.sparsity", [0.5]),
                 ["experiments[0].sweep.Task.sparsity", "'Task.sparsity'"], id="sweep-key-malformed"),
    pytest.param(setv("experiments", 0, "sweep", "train.stepz", [1]),
                 ["experiments[0].sweep.train.stepz", "steps"], id="sweep-unknown-train-key"),
    pytest.param(setv("experiments", 0, "sweep", AXIS, []),
                 [f"experiments[0].sweep.{AXIS}", "at least 1"], id="sweep-empty-list"),
    pytest.param(setv("experiments", 0, "evaluate", "sweep", {"task.n_features": [5, 10]}),
                 ["experiments[0].evaluate.sweep.task.n_features", "'n_features'", "task.sparsity"],
                 id="evaluate-sweep-not-an-eval-axis"),
    pytest.param(setv("experiments", 0, "probes", [{"id": "p", "kind": "linear"}]),
                 ["experiments[0].probes", "probe"], id="probes-not-available"),
    # ---- claims: references
    pytest.param(setv("claims", I_VALUE, "measure", "experiment", "nope"),
                 [f"claims[{I_VALUE}].measure.experiment", "'nope'", EXP_ID], id="claim-missing-experiment"),
    pytest.param(setv("claims", I_VALUE, "measure", "model", "gelu"),
                 [f"claims[{I_VALUE}]", "'gelu'", f"{M0}, {M1}"], id="claim-missing-model-detected"),
    pytest.param(setv("claims", I_VALUE, "measure", "model", "gelu"),
                 [f"claims[{I_VALUE}].measure.model", "'gelu'", M0],
                 id="claim-missing-model-key-path"),
    pytest.param(setv("claims", I_ORDERING, "order", [M0, "gelu"]),
                 [f"claims[{I_ORDERING}].order[1]", "'gelu'", M0],
                 id="ordering-missing-model-key-path"),
    pytest.param(setv("claims", I_RATIO, "denominator", "gelu"),
                 [f"claims[{I_RATIO}]", "'gelu'", M0], id="ratio-missing-model"),
    pytest.param(delete("claims", I_VALUE, "measure", "model"),
                 [f"claims[{I_VALUE}].measure.model", "required", M0], id="value-claim-without-model"),
    pytest.param(setv("claims", I_ORDERING, "measure", "model", M0),
                 [f"claims[{I_ORDERING}].measure.model", "order"], id="ordering-claim-with-model"),
    pytest.param(setv("claims", I_ORDERING, "order", [M0, M0]),
                 [f"claims[{I_ORDERING}].order", "twice"], id="ordering-names-model-twice"),
    pytest.param(setv("claims", I_VALUE, "measure", "metric", "accuracy"),
                 [f"claims[{I_VALUE}].measure.metric", "'accuracy'", METRICS[0]], id="claim-metric-not-evaluated"),
    pytest.param(setv("claims", I_VALUE, "measure", "at", {AXIS: 0.5}),
                 [f"claims[{I_VALUE}].measure.at.{AXIS}", "0.5", str(AXIS_VALUES[-1])], id="claim-at-missing-sweep-value"),
    pytest.param(setv("claims", I_VALUE, "measure", "at", {AXIS: AXIS_VALUES[-1], "task.nope": 1}),
                 [f"claims[{I_VALUE}].measure.at.task.nope", "not an axis", AXIS], id="claim-at-not-an-axis"),
    pytest.param(setv("claims", I_VALUE, "measure", "at", {}),
                 [f"claims[{I_VALUE}].measure.at", AXIS, "several values"], id="claim-leaves-axis-unfixed"),
    pytest.param(setv("claims", I_TREND, "measure", "at", {AXIS: AXIS_VALUES[0]}),
                 [f"claims[{I_TREND}].measure.at.{AXIS}", "ranged over"], id="trend-fixes-its-own-axis"),
    pytest.param(setv("claims", I_TREND, "along", "task.nope"),
                 [f"claims[{I_TREND}].along", "'task.nope'", AXIS], id="trend-along-missing-axis"),
    pytest.param(setv("claims", I_TREND, "along", "train.lr"),
                 [f"claims[{I_TREND}].along", "'train.lr'", AXIS], id="trend-along-non-swept-param"),
    # ---- claims: values
    pytest.param(setv("claims", I_VALUE, "paper", "five"),
                 [f"claims[{I_VALUE}].paper", "'five'", "number"], id="paper-value-not-numeric"),
    pytest.param(setv("claims", I_VALUE, "paper", float("nan")),
                 [f"claims[{I_VALUE}].paper", "nan", "finite"], id="paper-value-nan"),
    pytest.param(setv("claims", I_VALUE, "paper", float("inf")),
                 [f"claims[{I_VALUE}].paper", "inf", "finite"], id="paper-value-inf"),
    pytest.param(setv("claims", I_THRESHOLD, "value", float("nan")),
                 [f"claims[{I_THRESHOLD}].value", "nan", "finite"], id="threshold-value-nan"),
    pytest.param(setv("claims", I_VALUE, "tolerance", -1),
                 [f"claims[{I_VALUE}].tolerance", "-1", "greater than or equal to 0"], id="negative-tolerance"),
    pytest.param(setv("claims", I_VALUE, "tolerance", float("nan")),
                 [f"claims[{I_VALUE}].tolerance", "nan"], id="nan-tolerance"),
    pytest.param(setv("claims", I_VALUE, "rel_tolerance", 0.1),
                 [f"claims[{I_VALUE}]", "tolerance", "rel_tolerance", "exactly one"], id="both-tolerances"),
    pytest.param(delete("claims", I_VALUE, "tolerance"),
                 [f"claims[{I_VALUE}]", "tolerance", "exactly one"], id="no-tolerance"),
    pytest.param(setv("claims", I_THRESHOLD, "op", "=>"),
                 [f"claims[{I_THRESHOLD}].op", "'=>'", "'>='"], id="threshold-bad-op"),
    pytest.param(setv("claims", I_TREND, "direction", "up"),
                 [f"claims[{I_TREND}].direction", "'up'", "'increasing'"], id="trend-bad-direction"),
    pytest.param(setv("claims", I_VALUE, "kind", "valu"),
                 [f"claims[{I_VALUE}].kind", "'valu'", ", ".join(S.CLAIM_KINDS)], id="unknown-claim-kind"),
    pytest.param(delete("claims", I_VALUE, "kind"),
                 [f"claims[{I_VALUE}].kind", "required", ", ".join(S.CLAIM_KINDS)], id="missing-claim-kind"),
    pytest.param(delete("claims", I_VALUE, "text"),
                 [f"claims[{I_VALUE}].text", "required"], id="missing-claim-text"),
    pytest.param(setv("claims", []), ["claims", "at least 1"], id="no-claims"),
    # ---- duplicates
    pytest.param(_dup_claim_id, ["claims[1].id", f"'{C0}'", "duplicate"], id="duplicate-claim-ids"),
    pytest.param(setv("experiments", 0, "models", 1, "id", M0),
                 ["experiments[0].models[1].id", f"'{M0}'", "duplicate"], id="duplicate-model-ids"),
    pytest.param(_dup_experiment, ["experiments[1].id", f"'{EXP_ID}'", "duplicate"], id="duplicate-experiment-ids"),
    pytest.param(append("tables", TABLE), [f"tables[{len(BASE['tables'])}].id", f"'{TABLE['id']}'", "duplicate"], id="duplicate-table-ids"),
    pytest.param(append("experiments", 0, "evaluate", "metrics", METRICS[0]),
                 ["experiments[0].evaluate.metrics", "twice"], id="duplicate-metric"),
    pytest.param(setv("experiments", 0, "sweep", AXIS, [AXIS_VALUES[0], *AXIS_VALUES]),
                 [f"experiments[0].sweep.{AXIS}", "twice"], id="duplicate-sweep-value"),
    pytest.param(setv("experiments", 0, "sweep", AXIS, [0, *AXIS_VALUES]),
                 [f"experiments[0].sweep.{AXIS}", "twice"],
                 id="duplicate-sweep-value-int-and-float"),
    # ---- numbers out of range
    pytest.param(setv("experiments", 0, "train", "steps", 0), ["experiments[0].train.steps", "(got 0)"], id="steps-zero"),
    pytest.param(setv("experiments", 0, "train", "steps", -5), ["experiments[0].train.steps", "(got -5)"], id="steps-negative"),
    pytest.param(setv("experiments", 0, "train", "steps", 10.5),
                 ["experiments[0].train.steps", "10.5", "integer"], id="steps-float"),
    pytest.param(setv("experiments", 0, "seeds", 0), ["experiments[0].seeds", "(got 0)"], id="seeds-zero"),
    pytest.param(setv("experiments", 0, "seeds", -2), ["experiments[0].seeds", "(got -2)"], id="seeds-negative"),
    pytest.param(setv("experiments", 0, "seeds", True), ["experiments[0].seeds", "True", "integer"], id="seeds-bool"),
    pytest.param(setv("experiments", 0, "train", "lr", 0), ["experiments[0].train.lr", "(got 0)"], id="lr-zero"),
    pytest.param(setv("experiments", 0, "train", "lr", -1.0e-3), ["experiments[0].train.lr", "(got -0.001)"], id="lr-negative"),
    pytest.param(setv("experiments", 0, "train", "lr", float("inf")), ["experiments[0].train.lr", "inf"], id="lr-inf"),
    pytest.param(setv("experiments", 0, "train", "batch_size", 0),
                 ["experiments[0].train.batch_size", "(got 0)"], id="batch-size-zero"),
    pytest.param(setv("experiments", 0, "train", "optimizer", "adam_w"),
                 ["experiments[0].train.optimizer", "'adam_w'", "'adamw'"], id="unknown-optimizer"),
    pytest.param(setv("paper", "year", "2022"), ["paper.year", "'2022'", "integer"], id="year-string"),
    # ---- tables
    pytest.param(setv("tables", 0, "rows", "task.nope"),
                 ["tables[0].rows", "'task.nope'", AXIS], id="table-rows-not-an-axis"),
    pytest.param(setv("tables", 0, "columns", "train.lr"),
                 ["tables[0].columns", "'train.lr'", AXIS], id="table-columns-not-an-axis"),
    pytest.param(setv("tables", 0, "columns", "model"),
                 ["tables[0].columns", "same as rows"], id="table-rows-equal-columns"),
    pytest.param(setv("tables", 0, "paper", "gelu", {TABLE_COL: 1}),
                 ["tables[0].paper.gelu", "not a row", M0], id="table-paper-missing-row"),
    pytest.param(setv("tables", 0, "paper", TABLE_ROW, 0.5, 1),
                 [f"tables[0].paper.{TABLE_ROW}.0.5", "not a column", str(AXIS_VALUES[-1])], id="table-paper-missing-column"),
    pytest.param(setv("tables", 0, "paper", TABLE_ROW, TABLE_COL, "five"),
                 [f"tables[0].paper.{TABLE_ROW}", "'five'", "number"], id="table-paper-value-not-numeric"),
    pytest.param(setv("tables", 0, "metric", "accuracy"),
                 ["tables[0].metric", "'accuracy'", METRICS[0]], id="table-metric-not-evaluated"),
    pytest.param(setv("tables", 0, "experiment", "nope"),
                 ["tables[0].experiment", "'nope'", EXP_ID], id="table-missing-experiment"),
    pytest.param(delete("tables", 0, "source"),
                 ["tables[0].source", "required"], id="table-paper-values-without-source"),
]


@pytest.mark.parametrize("change, expect", BAD)
def test_bad_entry(tmp_path, change, expect):
    d = base()
    change(d)
    path = write(tmp_path, d)
    assert_mentions(error_of(path), path, *expect)


BAD_IDS = ["../x", "A B", "Upper", "a/b", "", "_x", "x" * 65]
ID_PLACES = {
    "paper": ("paper", "id"),
    "experiment": ("experiments", 0, "id"),
    "model": ("experiments", 0, "models", 0, "id"),
    "claim": ("claims", 0, "id"),
    "table": ("tables", 0, "id"),
}


@pytest.mark.parametrize("bad", BAD_IDS, ids=["dotdot-slash", "space", "upper", "slash", "empty", "underscore-first", "too-long"])
@pytest.mark.parametrize("place", ID_PLACES)
def test_id_not_path_safe(tmp_path, place, bad):
    keys = ID_PLACES[place]
    d = base()
    setv(*keys, bad)(d)
    path = write(tmp_path, d)
    msg = error_of(path)
    assert_mentions(msg, path, C.fmt_path(keys), repr(bad)[:40])


def test_paper_id_differs_from_file_name(tmp_path):
    path = write(tmp_path, base(), name="other_name")
    assert_mentions(error_of(path), path, "paper.id", f"'{PAPER}'", "file name", f"{PAPER}.yaml")


def test_duplicate_paper_id_across_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    pa, pb = write(a, base()), write(b, base())
    with pytest.raises(CatalogueError) as info:
        load_catalogue([pa, pb])
    assert_mentions(str(info.value), pb, "paper.id", f"'{PAPER}'", str(pa))


def test_load_catalogue_reports_every_bad_file(tmp_path):
    d = base()
    d["paper"]["id"] = "second"
    d["experiments"][0]["models"][1]["arch"] = "nope_arch"
    good = write(tmp_path, base())
    bad1 = write(tmp_path, text="paper: [\n", name="first")
    bad2 = write(tmp_path, d, name="second")
    with pytest.raises(CatalogueError) as info:
        load_catalogue([good, bad1, bad2])
    msg = str(info.value)
    assert_mentions(msg, bad1, "invalid YAML")
    assert_mentions(msg, bad2, "experiments[0].models[1].arch", "'nope_arch'")
    assert len(info.value.problems) == 2


# ---- YAML-level problems: there is no key path yet, so the message gives the line instead

LATIN1 = "paper:\n  title: café\n".encode("latin-1")
RAW = [
    pytest.param("paper: [unclosed\nexperiments: {\n", ["invalid YAML", "line 2"], id="invalid-yaml"),
    pytest.param("paper:\n\tid: x\n", ["invalid YAML", "line 2"], id="tab-indent"),
    pytest.param("", ["empty"], id="empty-file"),
    pytest.param("# only a comment\n\n", ["empty"], id="only-comments"),
    pytest.param("---\n", ["empty"], id="only-document-marker"),
    pytest.param(LATIN1, ["UTF-8", f"byte {LATIN1.index(0xE9)}"], id="non-utf8-latin1"),
    pytest.param(b"\xff\xfe\x00p\x00a", ["UTF-8"], id="non-utf8-utf16-bom"),
    pytest.param("- paper\n- claims\n", ["mapping", "list"], id="top-level-list"),
    pytest.param("just a string\n", ["mapping", "str"], id="top-level-scalar"),
    pytest.param("a: 1\n---\nb: 2\n", ["line 2"], id="two-documents"),
]


@pytest.mark.parametrize("text, expect", RAW)
def test_bad_yaml(tmp_path, text, expect):
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, *expect)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert_mentions(error_of(path), path, "no such file")


def test_file_too_large(tmp_path):
    path = write(tmp_path, text=dump(base()) + "#" * (C.MAX_FILE_BYTES + 1) + "\n")
    assert_mentions(error_of(path), path, str(C.MAX_FILE_BYTES))


def test_duplicate_top_level_key(tmp_path):
    text = dump(base()) + "paper: {id: again}\n"
    line = text.count("\n")
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, "duplicate key 'paper'", f"line {line}")


def test_duplicate_nested_key(tmp_path):
    text = dump(base())
    steps = f"    steps: {EXP['train']['steps']}\n"
    assert steps in text
    line = text[: text.index(steps)].count("\n") + 2
    path = write(tmp_path, text=text.replace(steps, steps + "    steps: 5\n", 1))
    # the message gives the key and its line, not the full key path experiments[0].train.steps
    assert_mentions(error_of(path), path, "duplicate key 'steps'", f"line {line}")


def test_duplicate_key_in_flow_mapping(tmp_path):
    d = base()
    d["experiments"][0]["models"][0] = "MODEL"
    text = dump(d).replace("MODEL", "{id: a, arch: toy_autoencoder, hidden: 5, hidden: 6}")
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, "duplicate key 'hidden'")


@pytest.mark.parametrize("tag", [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
    '!!python/name:os.system',
    '!!python/object/apply:os.system ["echo hi"]',
], ids=["os.system-touch", "subprocess.call", "Popen-new", "python-name", "os.system-echo"])
def test_python_tags_are_refused_and_not_executed(tmp_path, capfd, tag):
    marker = tmp_path / "executed"
    d = base()
    d["paper"]["title"] = "TITLE"
    text = dump(d).replace("TITLE", tag.format(marker=marker))
    path = write(tmp_path, text=text)
    msg = error_of(path)
    assert_mentions(msg, path, "python/", "tag", "line 3")
    assert not marker.exists(), "the YAML tag ran a command"
    out, _ = capfd.readouterr()
    assert "hi" not in out.split(), "the YAML tag ran `echo hi`"


def _laughs(levels: int, width: int, key: str = "x") -> list[str]:
    lines = [f"{key}0: &{key}0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{key}{i}: &{key}{i} [" + ", ".join([f"*{key}{i - 1}"] * width) + "]")
    return lines


def test_alias_bomb_over_the_cap_is_refused_quickly(tmp_path):
    levels = C.MAX_ALIASES // 10 + 2                 # (levels - 1) * 10 aliases > MAX_ALIASES
    path = write(tmp_path, text="\n".join(_laughs(levels, 10)) + "\n")
    t = time.perf_counter()
    msg = error_of(path)
    assert time.perf_counter() - t < 2
    assert_mentions(msg, path, f"more than {C.MAX_ALIASES} YAML aliases", f"line {C.MAX_ALIASES // 10 + 2}")
    assert len(msg) < 1000


def test_billion_laughs_under_the_cap_is_refused_quickly(tmp_path):
    """The classic bomb: 9 levels of 10 (80 aliases, 10**9 strings if expanded), as unknown top-level keys."""
    path = write(tmp_path, text="\n".join(_laughs(9, 10)) + "\n")
    t = time.perf_counter()
    msg = error_of(path)
    assert time.perf_counter() - t < 2
    assert_mentions(msg, path, "alias")
    assert len(msg) < 5000


def test_aliases_below_the_cap_are_fine(tmp_path):
    d = base()
    d["claims"][0]["measure"]["at"] = "AT"
    text = dump(d).replace(f"{AXIS}:\n", f"{AXIS}: &values\n", 1).replace("AT", "{%s: 0.999}" % AXIS)
    assert "&values" in text
    lp = load_paper(write(tmp_path, text=text))
    assert lp.id == PAPER


def test_alias_bomb_below_the_cap_gives_a_short_message(tmp_path):
    d = base()
    d["paper"]["title"] = "TITLE"
    text = "\n".join(_laughs(6, 9)) + "\n" + dump(d).replace("TITLE", "*x5")
    path = write(tmp_path, text=text)
    msg = error_of(path)
    assert_mentions(msg, path, "alias")
    assert len(msg) < 20_000, f"the message is {len(msg)} characters long"


@pytest.mark.skipif(C._FastLoader is None, reason="PyYAML here is built without libyaml")
def test_the_libyaml_loader_gives_the_same_data_and_the_same_refusals():
    """Catalogues parse with libyaml; it must agree with the pure-Python loader on every shipped
    file, and itself refuse duplicate keys and one alias past the cap (the fallback then words it)."""
    for path in sorted((ROOT / "catalogue").glob("*.yaml")):
        text = path.read_text()
        assert yaml.load(text, Loader=C._FastLoader) == yaml.load(text, Loader=C._Loader), path
    def flat(n):  # one anchor, n aliases of it
        return "a: &a {k: [1, 2]}\nl: [" + ", ".join(["*a"] * n) + "]\n"
    assert yaml.load(flat(C.MAX_ALIASES), Loader=C._FastLoader) == yaml.load(flat(C.MAX_ALIASES), Loader=C._Loader)
    over = flat(C.MAX_ALIASES + 1)
    for bad in (over, "a: 1\nb: 2\na: 3\n"):
        with pytest.raises(yaml.YAMLError):
            yaml.load(bad, Loader=C._FastLoader)
        with pytest.raises(yaml.YAMLError):
            yaml.load(bad, Loader=C._Loader)


def test_long_bad_values_are_shortened_in_messages(tmp_path):
    d = base()
    d["paper"]["year"] = "x" * 10_000
    path = write(tmp_path, d)
    msg = error_of(path)
    assert_mentions(msg, path, "paper.year")
    assert len(msg) < 1000


# ------------------------------------------------------------- 4. the CLI

def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "workflow.catalogue", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def good_check() -> subprocess.CompletedProcess:
    return cli("check", str(TOY))


def test_cli_check_good_file(good_check):
    assert good_check.returncode == 0, good_check.stderr
    assert "Traceback" not in good_check.stderr
    assert "valid" in good_check.stdout


def test_cli_check_prints_the_paper_id(good_check):
    assert good_check.returncode == 0
    assert PAPER in good_check.stdout, good_check.stdout


def test_cli_check_bad_files(tmp_path):
    d = base()
    d["experiments"][0]["models"][1]["arch"] = "nope_arch"
    bad1 = write(tmp_path, text="paper: [\n", name="broken")
    (tmp_path / "sub").mkdir()
    bad2 = write(tmp_path / "sub", d)
    r = cli("check", str(bad1), str(bad2))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, bad1, "invalid YAML")
    assert_mentions(r.stderr, bad2, "experiments[0].models[1].arch", "'nope_arch'", "toy_autoencoder")
    assert "valid" not in r.stdout


def test_cli_check_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    r = cli("check", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, path, "no such file")


def test_cli_check_value_that_looks_like_markup(tmp_path):
    d = base()
    d["paper"]["year"] = "[/]"
    path = write(tmp_path, d)
    assert_mentions(error_of(path), path, "paper.year", "'[/]'")
    r = cli("check", str(path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    assert_mentions(r.stderr, path, "paper.year", "'[/]'")


def test_cli_check_prints_messages_verbatim(tmp_path):
    d = base()
    d["experiments"][0]["sweep"] = {"Task.sparsity": [0.5]}
    path = write(tmp_path, d)
    with pytest.raises(CatalogueError) as info:
        load_paper(path)
    r = cli("check", str(path), columns=500)
    assert r.returncode == 1
    for p in info.value.problems:
        assert p in r.stderr, f"{p!r} is not printed as is:\n{r.stderr}"


# ------------------------------------------------------------- 5. the JSON Schema

def test_json_schema_file_is_up_to_date():
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE} is missing; generate it with: {REGENERATE}"
    on_disk = json.loads(SCHEMA_FILE.read_text())
    current = json.loads(json.dumps(C.json_schema()))
    assert on_disk == current, (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with workflow/schema.py; regenerate it with: {REGENERATE}"
    )


def test_json_schema_accepts_the_real_entry_and_rejects_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    sch = C.json_schema()
    jsonschema.Draft202012Validator.check_schema(sch)
    jsonschema.validate(BASE, sch)
    d = base()
    d["experiments"][0]["repeats"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, sch)


def test_validation_cache_skips_only_what_passed(tmp_path):
    """A cache hit skips the registry checks (no torch import); any edit re-runs them."""
    import subprocess

    cat = tmp_path / "catalogue"
    cat.mkdir()
    shutil.copy(TOY, cat / TOY.name)
    cache = tmp_path / "validated"
    code = ("import sys; from pathlib import Path; from workflow.catalogue import load_catalogue; "
            f"load_catalogue(sorted(Path({str(cat)!r}).glob('*.yaml')), cache=Path({str(cache)!r})); "
            "print('torch' in sys.modules)")
    run = lambda: subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.stdout.strip() == "True" and cache.exists()
    assert run().stdout.strip() == "False"                                  # cached: no torch
    (cat / TOY.name).write_text((cat / TOY.name).read_text().replace("arch: toy_autoencoder", "arch: mamba3", 1))
    bad = run()
    assert bad.returncode != 0 and "mamba3" in bad.stderr                    # edited: checked again


def test_load_paper_without_registry_checks_imports_no_torch():
    """registry_checks=False (the per-paper track and judge steps) skips the registry checks at
    every scale too: the steps of a run whose Snakefile validated the catalogue import no torch."""
    import subprocess

    code = ("import sys; from workflow.catalogue import load_paper; "
            f"lp = load_paper({str(TOY)!r}, registry_checks=False); "
            "n = sum(len(lp.jobs(s)) for s in ('smoke', 'small', 'full')); "
            "print(n > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def _bad_arch(text: str) -> str:
    return text.replace("arch: toy_autoencoder", "arch: mamba3", 1)


def test_deferred_checks_pass_and_fill_the_cache(tmp_path):
    """A catalogue the cache does not vouch for: papers at once, registry checks in the background;
    once they pass the cache vouches, and the next load defers nothing."""
    cat = tmp_path / "catalogue"
    cat.mkdir()
    shutil.copy(TOY, cat / TOY.name)
    cache = tmp_path / "validated"
    papers, pending = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert list(papers) == [PAPER] and pending is not None
    assert pending.problems() == [] and pending.problems() == []          # waits once, then remembers
    assert cache.exists()
    papers2, pending2 = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert pending2 is None and list(papers2) == [PAPER]


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "spawn"])
def test_deferred_checks_find_registry_problems(tmp_path, fork):
    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    cache = tmp_path / "validated"
    papers, deferred = C.load_catalogue_deferred([cat / TOY.name], cache=cache)
    assert list(papers) == [PAPER]                                        # the quick checks pass
    assert deferred.problems() and not cache.exists()                    # the registry's do not
    pending = C.PendingChecks([cat / TOY.name], cache, "k", fork=fork)
    (msg,) = pending.problems()
    assert msg.startswith(f"{cat / TOY.name}: experiments[0].models[0].arch: 'mamba3' is not a known architecture")
    assert not cache.exists()


def test_deferred_checks_list_every_problem_when_a_quick_check_fails(tmp_path):
    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / "a.yaml").write_text(_bad_arch(TOY.read_text()).replace(f"id: {PAPER}", "id: a", 1))
    (cat / "b.yaml").write_text(TOY.read_text().replace(f"id: {PAPER}", "id: wrong", 1))
    with pytest.raises(CatalogueError) as info:
        C.load_catalogue_deferred(sorted(cat.glob("*.yaml")), cache=tmp_path / "validated")
    msg = str(info.value)
    assert "'mamba3' is not a known architecture" in msg and "differs from the file name" in msg


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "spawn"])
def test_deferred_checks_run_here_when_the_checker_dies(tmp_path, monkeypatch, fork):
    import subprocess

    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    if fork:
        monkeypatch.setattr(C.load, "_answer", lambda *a: os._exit(3))       # the forked checker dies
    else:
        real = subprocess.Popen
        monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: real([sys.executable, "-c", "raise SystemExit(3)"], **kw))
    pending = C.PendingChecks([cat / TOY.name], tmp_path / "validated", "k", fork=fork)
    (msg,) = pending.problems()
    assert "'mamba3' is not a known architecture" in msg


def test_a_checker_stopped_by_ctrl_c_is_not_redone_at_exit(tmp_path, monkeypatch):
    """At exit, a checker that an interrupt stopped is not redone (the run is ending; the cache stays
    empty, so the next run checks); before the first job it is (onstart must not run jobs unchecked)."""
    import signal

    cat = tmp_path / "catalogue"
    cat.mkdir()
    (cat / TOY.name).write_text(_bad_arch(TOY.read_text()))
    cache = tmp_path / "validated"
    monkeypatch.setattr(C.load, "_answer", lambda *a: os.kill(os.getpid(), signal.SIGINT) or os._exit(9))
    ending = C.PendingChecks([cat / TOY.name], cache, "k", fork=True)
    assert ending.problems(ending=True) == [] and not cache.exists()
    starting = C.PendingChecks([cat / TOY.name], cache, "k", fork=True)
    (msg,) = starting.problems()
    assert "'mamba3' is not a known architecture" in msg


def test_scale_overrides_probe_positions(tmp_path):
    """probes.positions at a scale sets every probe's positions; other probe keys cannot be overridden."""
    import yaml as _yaml

    from workflow.catalogue import CatalogueError, load_paper

    doc = {"paper": {"id": "pp", "title": "t", "year": 2024},
           "experiments": [{"id": "e", "task": {"name": "python_source", "seq_len": 16},
                            "models": [{"id": "m", "arch": "transformer", "n_layer": 1, "n_head": 1, "d_model": 8}],
                            "train": {"steps": 10, "batch_size": 2, "lr": 0.01}, "evaluate": {"metrics": ["loss"]},
                            "probes": [{"id": "a", "kind": "geometry"}, {"id": "b", "kind": "linear", "target": "indent"}]}],
           "scales": {"smoke": {"probes.positions": 500}},
           "claims": [{"id": "c", "text": "t", "source": "s", "kind": "threshold", "op": "<", "value": 9,
                       "measure": {"experiment": "e", "model": "m", "metric": "loss"}}]}
    path = tmp_path / "pp.yaml"
    path.write_text(_yaml.safe_dump(doc))
    lp = load_paper(path)
    assert [p["positions"] for p in lp.jobs("smoke")[0].probe_config["probes"]] == [500, 500]
    assert [p["positions"] for p in lp.jobs("small")[0].probe_config["probes"]] == [20000, 20000]
    doc["scales"]["smoke"] = {"probes.kind": "sparse"}
    path.write_text(_yaml.safe_dump(doc))
    with pytest.raises(CatalogueError) as e:
        load_paper(path).jobs("smoke")
    assert "only probes.positions can be overridden" in str(e.value.problems)

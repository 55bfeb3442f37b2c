"""Per-scale overrides (workflow/catalogue/scales.py): applied, checked, and refused with the key path."""
from __future__ import annotations

import pytest

from workflow import schema as S
from workflow.catalogue import CatalogueError, load_paper

from .helpers import (
    AXIS,
    AXIS_VALUES,
    BASE,
    EXP,
    EXP_ID,
    M0,
    M1,
    METRICS,
    PAPER,
    assert_mentions,
    assert_refused,
    base,
    setv,
    write,
)


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
    assert_refused(tmp_path, change, *expect)


def test_dotted_per_experiment_override_as_documented(tmp_path):
    d = base()
    d["scales"]["smoke"][f"experiments.{EXP_ID}.seeds"] = 1
    lp = load_paper(write(tmp_path, d))
    assert lp.experiment(EXP_ID, "smoke").seeds == 1


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

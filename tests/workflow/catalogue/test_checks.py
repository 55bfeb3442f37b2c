"""Bad entries, one change to the real entry each: the registry checks and the references between
claims, tables and experiments (workflow/catalogue/checks.py), and with them the schema's own
refusals as they are worded (workflow/catalogue/messages.py), in the one table BAD."""
from __future__ import annotations

import copy

import pytest

from workflow import schema as S

from .helpers import (
    AXIS,
    AXIS_VALUES,
    BASE,
    EXP,
    EXP_ID,
    I_ORDERING,
    I_RATIO,
    I_THRESHOLD,
    I_TREND,
    I_VALUE,
    M0,
    M1,
    METRICS,
    PAPER,
    TABLE,
    TABLE_ROW,
    TOY,
    append,
    assert_refused,
    delete,
    setv,
)


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


def _dup_experiment(d: dict) -> None:
    d["experiments"].append(copy.deepcopy(d["experiments"][0]))


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
    pytest.param(append("experiments", 0, "evaluate", "metrics", "recurrence_gap"),
                 [f"experiments[0].evaluate.metrics[{N_METRICS}]", "'recurrence_gap'", "recurrent form", M0],
                 id="model-metric-without-a-recurrence"),
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
    # ---- model evaluation axes
    pytest.param(setv("experiments", 0, "evaluate", "sweep", {"model.perturb_state": [0.0, 0.1]}),
                 ["experiments[0].evaluate.sweep.model.perturb_state", "cannot vary 'perturb_state'", M0],
                 id="model-axis-not-offered-by-the-arch"),
    pytest.param(setv("experiments", 0, "evaluate", "sweep", {"model.dropout": [0.0]}),
                 ["experiments[0].evaluate.sweep.model.dropout", "not a model evaluation axis", "model.perturb_state"],
                 id="model-axis-unknown"),
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
    assert_refused(tmp_path, change, *expect)


def test_evaluation_axes_are_checked_together(tmp_path):
    """Each value alone builds a task; the combination does not (a query gap that a shorter evaluated
    sequence has no room for): the check names the key, the value and the point."""
    import yaml

    from .helpers import ROOT, assert_mentions, error_of, write

    d = yaml.safe_load((ROOT / "catalogue" / "ssm_recency.yaml").read_text())
    d["experiments"][0]["evaluate"]["sweep"] = {"task.seq_len": [32, 64], "task.query_gap": [0, 28]}
    path = write(tmp_path, d, name="ssm_recency")
    assert_mentions(error_of(path), path, "experiments[0].evaluate.sweep.task.query_gap", "28",
                    "task.seq_len=32", "no room")

"""Every claim kind x every verdict, from planted per-seed values."""
from __future__ import annotations

import json
import math

import pytest

from workflow import schema as S
from workflow.judge import judge_claim, judge_table
from workflow.results import collect, interval

from .fakes import BASE, make_paper, plant

MEASURE = {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.0}}
BOTH = {"experiment": "exp", "metric": "loss", "at": {"task.sparsity": 0.9}}


def claim(kind, **kw):
    base = {"id": "c", "text": "t", "source": "Figure 1", "kind": kind}
    cls = {"value": S.ValueClaim, "threshold": S.ThresholdClaim, "ordering": S.OrderingClaim,
           "trend": S.TrendClaim, "ratio": S.RatioClaim}[kind]
    return cls.model_validate({**base, **kw})


def judged(tmp_path, c, values, scale="small", **plant_kw):
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, scale, values, **plant_kw)
    return judge_claim(c, collect(lp, scale, tmp_path))


def by_seed(per_seed):
    """values(model, point, seed) from {model: [v_seed0, v_seed1, ...]} (any point)."""
    return lambda model, point, seed: {"loss": per_seed[model][seed], "features_represented": 1.0}


def test_interval_is_a_t_interval():
    iv = interval([1.0, 2.0, 3.0])
    assert iv["mean"] == 2.0 and iv["n"] == 3
    # t(0.975, 2) = 4.303; sd = 1; half = 4.303 / sqrt(3)
    assert math.isclose(iv["hi"] - 2.0, 4.302653 / math.sqrt(3), rel_tol=1e-5)
    one = interval([5.0])
    assert one["lo"] == one["hi"] == 5.0


@pytest.mark.parametrize("seeds,expected", [
    ([1.0, 1.02, 0.98], "reproduced"),
    ([2.0, 2.1, 1.9], "not_reproduced"),
    ([0.7, 1.3, 1.0], "inconclusive"),
])
def test_value(tmp_path, seeds, expected):
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": seeds, "b": seeds}))
    assert out["verdict"] == expected
    assert out["n_seeds"] == 3
    assert math.isclose(out["measured"]["mean"], sum(seeds) / 3)


def test_value_relative_tolerance(tmp_path):
    c = claim("value", measure=MEASURE, paper=10.0, rel_tolerance=0.1)
    assert judged(tmp_path, c, by_seed({"a": [10.5, 10.4, 10.6], "b": [0, 0, 0]}))["verdict"] == "reproduced"
    c = claim("value", measure=MEASURE, paper=10.0, rel_tolerance=0.01)
    assert judged(tmp_path, c, by_seed({"a": [10.5, 10.4, 10.6], "b": [0, 0, 0]}))["verdict"] == "not_reproduced"


@pytest.mark.parametrize("op,bound,seeds,expected", [
    (">=", 5, [6.0, 6.5, 7.0], "reproduced"),
    (">=", 5, [3.0, 3.2, 3.1], "not_reproduced"),
    (">=", 5, [4.0, 6.0, 5.0], "inconclusive"),
    ("<", 1, [0.5, 0.5, 0.5], "reproduced"),
    ("<", 1, [1.0, 1.0, 1.0], "not_reproduced"),  # equal to a strict bound contradicts it
    (">", 5, [5.0, 5.0, 5.0], "not_reproduced"),
    ("<=", 1, [1.0, 1.0, 1.0], "reproduced"),
])
def test_threshold(tmp_path, op, bound, seeds, expected):
    c = claim("threshold", measure=MEASURE, op=op, value=bound)
    assert judged(tmp_path, c, by_seed({"a": seeds, "b": seeds}))["verdict"] == expected


@pytest.mark.parametrize("a,b,margin,expected", [
    ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], 1.0, "reproduced"),      # paired differences are all 4
    ([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], 0.0, "not_reproduced"),
    ([2.0, 1.0, 3.0], [1.0, 2.0, 2.5], 0.0, "inconclusive"),
    ([3.0, 3.0, 3.0], [3.0, 3.0, 3.0], 0.0, "not_reproduced"),  # a tie is not "greater"
])
def test_ordering(tmp_path, a, b, margin, expected):
    c = claim("ordering", measure=BOTH, order=["a", "b"], margin=margin)
    out = judged(tmp_path, c, by_seed({"a": a, "b": b}))
    assert out["verdict"] == expected
    assert out["measured"]["differences"][0]["pair"] == "a - b"


def trend_values(series):
    """loss of model a = series[point index] + seed noise."""
    xs = [0.0, 0.5, 0.9]
    return lambda model, point, seed: {
        "loss": series[xs.index(point["task.sparsity"])][seed], "features_represented": 0.0}


@pytest.mark.parametrize("direction,series,allow,expected", [
    ("increasing", [[1, 1.1, 0.9], [2, 2.1, 1.9], [3, 3.1, 2.9]], 0, "reproduced"),
    ("increasing", [[3, 3.1, 2.9], [2, 2.1, 1.9], [1, 1.1, 0.9]], 0, "not_reproduced"),
    ("decreasing", [[3, 3.1, 2.9], [2, 2.1, 1.9], [1, 1.1, 0.9]], 0, "reproduced"),
    ("increasing", [[1, 1, 1], [3, 3, 3], [2, 2, 2]], 0, "not_reproduced"),
    ("increasing", [[1, 1, 1], [3, 3, 3], [2, 2, 2]], 1, "reproduced"),
    ("increasing", [[1, 1, 1], [1, 3, 2], [4, 4, 4]], 0, "inconclusive"),
    ("non_decreasing", [[1, 1, 1], [1, 1, 1], [2, 2, 2]], 0, "reproduced"),
    ("increasing", [[1, 1, 1], [1, 1, 1], [2, 2, 2]], 0, "not_reproduced"),
])
def test_trend(tmp_path, direction, series, allow, expected):
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="task.sparsity",
              direction=direction, allow_violations=allow)
    out = judged(tmp_path, c, trend_values(series))
    assert out["verdict"] == expected
    assert [s["at"] for s in out["measured"]["series"]] == [0.0, 0.5, 0.9]


@pytest.mark.parametrize("direction,expected", [("increasing", "reproduced"), ("decreasing", "not_reproduced")])
def test_trend_along_names_follows_the_listed_order(tmp_path, direction, expected):
    """A categorical axis (e.g. data splits) runs in the order its sweep lists, not alphabetically."""
    exp = json.loads(json.dumps(BASE["experiments"][0]))
    exp["models"] = exp["models"][:1]
    exp["sweep"] = {"model.activation": ["relu", "none"]}          # alphabetically: none, relu
    lp = make_paper(tmp_path, experiments=[exp], scales={}, tables=[], claims=[BASE["claims"][0] | {
        "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"model.activation": "relu"}}}])
    loss = {"relu": 1.0, "none": 2.0}
    plant(tmp_path, lp, "small", lambda model, point, seed: {"loss": loss[point["model.activation"]] + 0.01 * seed,
                                                          "features_represented": 0.0})
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="model.activation",
              direction=direction)
    out = judge_claim(c, collect(lp, "small", tmp_path))
    assert [s["at"] for s in out["measured"]["series"]] == ["relu", "none"]
    assert out["verdict"] == expected


@pytest.mark.parametrize("a,b,op,value,expected", [
    ([4.0, 4.2, 3.8], [2.0, 2.1, 1.9], ">=", 1.5, "reproduced"),
    ([2.0, 2.1, 1.9], [2.0, 2.1, 1.9], ">=", 1.5, "not_reproduced"),
    ([3.0, 1.0, 5.0], [2.0, 1.0, 2.0], ">=", 1.5, "inconclusive"),
])
def test_ratio(tmp_path, a, b, op, value, expected):
    c = claim("ratio", measure=BOTH, numerator="a", denominator="b", op=op, value=value)
    assert judged(tmp_path, c, by_seed({"a": a, "b": b}))["verdict"] == expected


def test_ratio_with_zero_denominator_is_not_run(tmp_path):
    c = claim("ratio", measure=BOTH, numerator="a", denominator="b", op=">=", value=1)
    out = judged(tmp_path, c, by_seed({"a": [1, 1, 1], "b": [0, 1, 1]}))
    assert out["verdict"] == "not_run" and "zero" in out["reason"]


def test_one_seed_gives_zero_width_and_decides_nothing(tmp_path):
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": [1.05], "b": [1.0]}), scale="smoke")
    assert out["verdict"] == "inconclusive"
    assert out["measured"]["lo"] == out["measured"]["hi"]
    assert "one seed" in out["reason"] and "one_seed" in out["flags"]


def test_missing_job_is_not_run_with_the_file(tmp_path):
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": [1, 1, 1], "b": [1, 1, 1]}), skip={("a", 1)})
    assert out["verdict"] == "not_run"
    assert "missing result file" in out["reason"] and "seed1" in out["reason"]


def test_diverged_job_is_not_run_with_the_step(tmp_path):
    c = claim("ordering", measure=BOTH, order=["a", "b"])
    out = judged(tmp_path, c, by_seed({"a": [2, 2, 2], "b": [1, 1, 1]}), diverged={("b", 2)})
    assert out["verdict"] == "not_run"
    assert "diverged at step 7" in out["reason"]


def test_nan_metric_is_not_run(tmp_path):
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, lambda m, p, s: {"loss": None, "features_represented": 1.0})
    assert out["verdict"] == "not_run" and "not a finite number" in out["reason"]


def test_under_budget_contradiction_is_inconclusive(tmp_path):
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": [2.0, 2.1, 1.9], "b": [0, 0, 0]}),
                 converged=lambda job: job.seed != 0)
    assert out["verdict"] == "inconclusive"
    assert out["under_budget"] is True and "under budget" in out["reason"]


def test_under_budget_agreement_on_a_value_is_not_decided(tmp_path):
    """More training may move a value either way: under budget, even a match decides nothing."""
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": [1.0, 1.0, 1.0], "b": [0, 0, 0]}), converged=False)
    assert out["verdict"] == "inconclusive" and out["under_budget"] is True
    assert "still falling" in out["reason"]


def test_point_missing_at_this_scale_is_not_run(tmp_path):
    # smoke's sweep has no 0.5
    c = claim("value", measure={**MEASURE, "at": {"task.sparsity": 0.5}}, paper=1.0, tolerance=0.1)
    out = judged(tmp_path, c, by_seed({"a": [1.0], "b": [1.0]}), scale="smoke")
    assert out["verdict"] == "not_run" and "not in the smoke scale's sweep" in out["reason"]


def test_table_sets_paper_beside_measured(tmp_path):
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", lambda m, p, s: {"loss": {"a": 1.0, "b": 2.0}[m] + p["task.sparsity"],
                                                   "features_represented": 1.0})
    t = judge_table(lp.spec.tables[0], collect(lp, "small", tmp_path))
    assert t["rows"] == ["a", "b"] and t["columns"] == ["0.0", "0.5", "0.9"]
    assert t["cells"][0][0]["paper"] == 1.0 and t["cells"][0][0]["mean"] == 1.0
    assert t["cells"][1][2]["paper"] is None and math.isclose(t["cells"][1][2]["mean"], 2.9)


@pytest.mark.parametrize("direction,series,expected", [
    # noisy but monotone in every seed: the steps test is inconclusive, the rank test is not
    ("increasing", [[1, 1.5, 1.1], [1.1, 3, 1.2], [3, 3.1, 2.9]], "reproduced"),
    ("increasing", [[3, 3.1, 2.9], [2, 2.1, 1.9], [1, 1.1, 0.9]], "not_reproduced"),
    ("decreasing", [[3, 3.1, 2.9], [2, 2.1, 1.9], [1, 1.1, 0.9]], "reproduced"),
    ("increasing", [[1, 3, 1], [2, 2, 2], [3, 1, 3]], "inconclusive"),
])
def test_trend_spearman(tmp_path, direction, series, expected):
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="task.sparsity",
              direction=direction, statistic="spearman", min_correlation=0.9)
    out = judged(tmp_path, c, trend_values(series))
    assert out["verdict"] == expected
    assert len(out["measured"]["spearman"]["per_seed"]) == 3


def test_spearman_handles_ties():
    from workflow.judge import spearman

    assert spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    assert spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(0.894427, rel=1e-5)


def test_min_steps_marks_a_short_budget_under_budget(tmp_path):
    """A contradiction on training shorter than the experiment's min_steps is inconclusive (under
    budget), even when the loss had flattened; min_steps is not part of a job's config."""
    import json as _json

    from .fakes import BASE

    doc = _json.loads(_json.dumps(BASE))
    doc["experiments"][0]["train"]["min_steps"] = 100
    lp = make_paper(tmp_path, experiments=doc["experiments"])
    assert "min_steps" not in lp.jobs("small")[0].config["train"]
    plant(tmp_path, lp, "small", by_seed({"a": [5.0, 5.1, 4.9], "b": [1, 1, 1]}), converged=True)
    out = judge_claim(claim("value", measure=MEASURE, paper=1.0, tolerance=0.1), collect(lp, "small", tmp_path))
    assert out["verdict"] == "inconclusive" and out["under_budget"]
    assert "trained 10 of the 100 steps its claims need" in out["reason"]
    doc["experiments"][0]["train"]["min_steps"] = 10                 # the jobs train 10 steps: enough
    lp = make_paper(tmp_path, experiments=doc["experiments"])
    out = judge_claim(claim("value", measure=MEASURE, paper=1.0, tolerance=0.1), collect(lp, "small", tmp_path))
    assert out["verdict"] == "not_reproduced" and not out["under_budget"]


@pytest.mark.parametrize("control,expected", [("not_reproduced", "inconclusive"), ("inconclusive", "inconclusive"),
                                              ("reproduced", "not_run")])
def test_nan_metric_with_a_failed_control_is_inconclusive(tmp_path, control, expected):
    """A NaN the job recorded (a sparse probe's k_at_90 of a layer that tells nothing about the label)
    is explained by a failed control: inconclusive, naming both; with the control reproduced nothing
    explains it, and it stays not run."""
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1, requires=["ctl"])
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", lambda m, p, s: {"loss": None, "features_represented": 1.0})
    out = judge_claim(c, collect(lp, "small", tmp_path), {"ctl": {"verdict": control}})
    assert out["verdict"] == expected
    assert "not a finite number" in out["reason"]
    assert ("control ctl not reproduced" in out["reason"]) == (expected == "inconclusive")
    assert ("control" in out["flags"]) == (expected == "inconclusive")


def test_missing_job_with_a_failed_control_stays_not_run(tmp_path):
    """A job that is missing is not explained by a control: it is not run, whatever the controls say."""
    c = claim("value", measure=MEASURE, paper=1.0, tolerance=0.1, requires=["ctl"])
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", by_seed({"a": [1, 1, 1], "b": [1, 1, 1]}), skip={("a", 1)})
    out = judge_claim(c, collect(lp, "small", tmp_path), {"ctl": {"verdict": "not_reproduced"}})
    assert out["verdict"] == "not_run" and "missing result file" in out["reason"]

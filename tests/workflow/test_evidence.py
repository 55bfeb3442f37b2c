"""The rules that make a verdict evidence: budget by the metric's better side, controls, chance,
flat trends, seeds, intervals clipped to a metric's range, claims that are ours. Planted results."""
from __future__ import annotations

import json

import pytest

from workflow import schema as S
from workflow.catalogue import CatalogueError
from workflow.judge import judge_claim, judge_claims, judge_paper
from workflow.results import collect

from .fakes import BASE, make_paper, plant

ONE = {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.0}}
BOTH = {"experiment": "exp", "metric": "loss", "at": {"task.sparsity": 0.0}}
HIGHER = {"better": "higher", "lo": 0.0, "hi": 1.0, "trained": True, "band": 0.02}
LOWER = {"better": "lower", "lo": 0.0, "hi": None, "trained": True, "band": 0.02}
NONE = {"better": "none", "lo": None, "hi": None, "trained": True, "band": 0.0}
SPEED = {"better": "higher", "lo": 0.0, "hi": None, "trained": False, "band": 0.0}
FACTS = {"higher": HIGHER, "lower": LOWER, "none": NONE, "untrained": SPEED}


def claim(kind, **kw):
    cls = {"value": S.ValueClaim, "threshold": S.ThresholdClaim, "ordering": S.OrderingClaim,
           "trend": S.TrendClaim, "ratio": S.RatioClaim}[kind]
    return cls.model_validate({"id": kw.pop("id", "c"), "text": "t", "source": "Figure 1", "kind": kind, **kw})


def values_of(per_model, series=None):
    """loss of each model: per_model[model] per seed (the same at every point), or series[point][seed]."""
    xs = [0.0, 0.5, 0.9]

    def f(model, point, seed):
        if series is not None:
            return {"loss": series[xs.index(point["task.sparsity"])][seed], "features_represented": 0.0}
        return {"loss": per_model[model][seed], "features_represented": 0.0}
    return f


def judged(tmp_path, c, values, better="higher", under=(), chance=None):
    """Judge one claim; models in `under` trained with a loss still falling."""
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", values, converged=lambda job: job.model not in under,
          facts={"loss": FACTS[better]}, chance=chance)
    return judge_claim(c, collect(lp, "small", tmp_path))


GOOD = [0.9, 0.91, 0.92]
BAD = [0.3, 0.31, 0.32]


# ----------------------------------------------------------------------- budget x kind x side

@pytest.mark.parametrize("better,op,bound,vals,under,expected", [
    # a bound on the better side: a pass stands under budget (flagged), a failure is not decided
    ("higher", ">=", 0.8, GOOD, ("a",), "reproduced"),
    ("higher", ">=", 0.8, BAD, ("a",), "inconclusive"),
    ("higher", ">=", 0.8, BAD, (), "not_reproduced"),
    ("lower", "<=", 0.5, BAD, ("a",), "reproduced"),
    ("lower", "<=", 0.5, GOOD, ("a",), "inconclusive"),
    # a bound on the worse side says the model fails: more training could undo a pass
    ("higher", "<=", 0.5, BAD, ("a",), "inconclusive"),
    ("higher", "<=", 0.5, BAD, (), "reproduced"),
    ("lower", ">=", 0.8, GOOD, ("a",), "inconclusive"),
    # no better side: nothing is decided under budget
    ("none", ">=", 0.8, GOOD, ("a",), "inconclusive"),
    ("none", ">=", 0.8, GOOD, (), "reproduced"),
    # training does not move a speed: exempt from the budget rules
    ("untrained", "<=", 0.5, BAD, ("a",), "reproduced"),
    ("untrained", ">=", 0.8, BAD, ("a",), "not_reproduced"),
])
def test_threshold_budget(tmp_path, better, op, bound, vals, under, expected):
    out = judged(tmp_path, claim("threshold", measure=ONE, op=op, value=bound),
                 values_of({"a": vals, "b": vals}), better, under)
    assert out["verdict"] == expected
    if under and better != "untrained":
        assert out["under_budget"] and "under budget" in out["reason"]
        assert "a (its loss was still falling at the end)" in out["reason"]
    if better == "untrained":
        assert not out["under_budget"]


@pytest.mark.parametrize("better,a,b,under,expected", [
    # a > b; higher is better: a is the winner
    ("higher", GOOD, BAD, ("a",), "reproduced"),          # the winner under budget: only strengthens
    ("higher", GOOD, BAD, ("b",), "inconclusive"),        # the loser could still catch up
    ("higher", GOOD, BAD, ("a", "b"), "inconclusive"),
    ("higher", BAD, GOOD, ("a",), "inconclusive"),        # a contradiction on under-budget training
    ("higher", BAD, GOOD, (), "not_reproduced"),
    # lower is better: a > b says a is the worse model
    ("lower", GOOD, BAD, ("a",), "inconclusive"),
    ("lower", GOOD, BAD, ("b",), "reproduced"),
    ("none", GOOD, BAD, ("a",), "inconclusive"),
    ("none", GOOD, BAD, (), "reproduced"),
])
def test_ordering_budget(tmp_path, better, a, b, under, expected):
    out = judged(tmp_path, claim("ordering", measure=BOTH, order=["a", "b"], no_control="test"),
                 values_of({"a": a, "b": b}), better, under)
    assert out["verdict"] == expected


@pytest.mark.parametrize("better,op,value,a,b,under,expected", [
    # a / b >= 2: a is claimed the larger; with higher better, a is the winner
    ("higher", ">=", 2.0, GOOD, BAD, ("a",), "reproduced"),
    ("higher", ">=", 2.0, GOOD, BAD, ("b",), "inconclusive"),
    # a / b <= 0.5: a is claimed the smaller, the worse one when higher is better
    ("higher", "<=", 0.5, BAD, GOOD, ("a",), "inconclusive"),
    ("higher", "<=", 0.5, BAD, GOOD, ("b",), "reproduced"),
    ("lower", "<=", 0.5, BAD, GOOD, ("a",), "reproduced"),
    ("lower", "<=", 0.5, BAD, GOOD, ("b",), "inconclusive"),
    ("higher", ">=", 2.0, BAD, GOOD, ("a",), "inconclusive"),   # a contradiction under budget
    ("higher", ">=", 2.0, BAD, GOOD, (), "not_reproduced"),
])
def test_ratio_budget(tmp_path, better, op, value, a, b, under, expected):
    out = judged(tmp_path, claim("ratio", measure=BOTH, numerator="a", denominator="b", op=op, value=value,
                                 no_control="test"),
                 values_of({"a": a, "b": b}), better, under)
    assert out["verdict"] == expected


@pytest.mark.parametrize("series,under,expected", [
    ([[0.1, 0.11, 0.12], [0.5, 0.51, 0.52], [0.8, 0.81, 0.82]], ("a",), "inconclusive"),
    ([[0.8, 0.81, 0.82], [0.5, 0.51, 0.52], [0.1, 0.11, 0.12]], ("a",), "inconclusive"),
    ([[0.1, 0.11, 0.12], [0.5, 0.51, 0.52], [0.8, 0.81, 0.82]], (), "reproduced"),
    ([[0.8, 0.81, 0.82], [0.5, 0.51, 0.52], [0.1, 0.11, 0.12]], (), "not_reproduced"),
])
@pytest.mark.parametrize("better", ["higher", "lower", "none"])
def test_trend_is_never_decided_under_budget(tmp_path, series, under, expected, better):
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="task.sparsity",
              direction="increasing", no_control="test")
    assert judged(tmp_path, c, values_of(None, series), better, under)["verdict"] == expected


@pytest.mark.parametrize("better", ["higher", "lower", "none"])
@pytest.mark.parametrize("vals,expected", [([1.0, 1.01, 0.99], "reproduced"), ([2.0, 2.01, 1.99], "not_reproduced")])
def test_value_is_never_decided_under_budget(tmp_path, better, vals, expected):
    c = claim("value", measure=ONE, paper=1.0, tolerance=0.1)
    assert judged(tmp_path, c, values_of({"a": vals, "b": vals}), better, ("a",))["verdict"] == "inconclusive"
    assert judged(tmp_path, c, values_of({"a": vals, "b": vals}), better, ())["verdict"] == expected


def test_a_scale_shorter_than_the_catalogue_is_under_budget_however_flat_its_loss(tmp_path):
    """The budget is the experiment's train.steps as written; smoke's overrides train fewer."""
    doc = json.loads(json.dumps(BASE))
    doc["scales"] = {"smoke": {"train.steps": 3, "seeds": 3}}
    lp = make_paper(tmp_path, scales=doc["scales"])
    plant(tmp_path, lp, "smoke", values_of({"a": BAD, "b": GOOD}), converged=True, facts={"loss": HIGHER})
    ms = collect(lp, "smoke", tmp_path)
    out = judge_claim(claim("threshold", measure=ONE, op="<=", value=0.5, no_control="test"), ms)
    assert out["verdict"] == "inconclusive"
    assert "trained 3 of the 10 steps its claims need" in out["reason"]
    # a scale that raises its own min_steps raises the budget; it never lowers it
    doc["scales"] = {"full": {"train.steps": 20, "train.min_steps": 30}}
    lp = make_paper(tmp_path, scales=doc["scales"])
    plant(tmp_path, lp, "full", values_of({"a": BAD, "b": GOOD}), converged=True, facts={"loss": HIGHER})
    out = judge_claim(claim("threshold", measure=ONE, op="<=", value=0.5, no_control="t"), collect(lp, "full", tmp_path))
    assert "trained 20 of the 30 steps" in out["reason"]


def test_a_pretrained_model_is_not_under_budget(tmp_path):
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", values_of({"a": BAD, "b": BAD}), converged=False, facts={"loss": HIGHER})
    for job in lp.jobs("small"):
        tr = json.loads((tmp_path / job.dir / "train.json").read_text())
        (tmp_path / job.dir / "train.json").write_text(json.dumps({**tr, "pretrained": True}))
    out = judge_claim(claim("threshold", measure=ONE, op="<=", value=0.5, no_control="t"), collect(lp, "small", tmp_path))
    assert out["verdict"] == "reproduced" and not out["under_budget"]


# ------------------------------------------------------------------------- chance and controls

AT_CHANCE = [0.0, 0.005, 0.01]


def test_a_model_at_chance_decides_nothing_without_a_control(tmp_path):
    """'b fails': b learned nothing, and nothing shows the setup can succeed."""
    c = claim("threshold", measure=ONE, op="<=", value=0.1, no_control="test")
    out = judged(tmp_path, c, values_of({"a": AT_CHANCE, "b": GOOD}), chance={"loss": 0.0})
    assert out["verdict"] == "inconclusive"
    assert "learned nothing" in out["reason"] and "chance" in out["flags"]
    # the same numbers well above chance are a finding
    out = judged(tmp_path, c, values_of({"a": AT_CHANCE, "b": GOOD}), chance={"loss": -0.5})
    assert out["verdict"] == "reproduced"


def test_controls_decide_a_claim_that_rests_on_a_model_at_chance(tmp_path):
    control = claim("threshold", id="b_learns", measure={**ONE, "model": "b"}, op=">=", value=0.8)
    fails = claim("threshold", id="a_fails", measure=ONE, op="<=", value=0.1, requires=["b_learns"])
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", values_of({"a": AT_CHANCE, "b": GOOD}), facts={"loss": HIGHER}, chance={"loss": 0.0})
    ms = collect(lp, "small", tmp_path)
    got = {r["id"]: r for r in judge_claims([fails, control], ms)}   # controls are judged first
    assert got["b_learns"]["verdict"] == "reproduced"
    assert got["a_fails"]["verdict"] == "reproduced"
    assert "decided through its reproduced controls" in got["a_fails"]["reason"]
    # the control fails: the claim that rests on it is not decided
    plant(tmp_path, lp, "small", values_of({"a": AT_CHANCE, "b": BAD}), facts={"loss": HIGHER}, chance={"loss": 0.0})
    got = {r["id"]: r for r in judge_claims([fails, control], collect(lp, "small", tmp_path))}
    assert got["b_learns"]["verdict"] == "not_reproduced"
    assert got["a_fails"]["verdict"] == "inconclusive"
    assert "control b_learns not reproduced (not reproduced)" in got["a_fails"]["reason"]


def test_a_control_gates_even_a_claim_on_models_that_learned(tmp_path):
    control = claim("threshold", id="ctl", measure={**ONE, "model": "b"}, op=">=", value=0.95)
    c = claim("ordering", id="o", measure=BOTH, order=["a", "b"], requires=["ctl"])
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "small", values_of({"a": GOOD, "b": BAD}), facts={"loss": HIGHER})
    got = {r["id"]: r for r in judge_claims([c, control], collect(lp, "small", tmp_path))}
    assert got["o"]["verdict"] == "inconclusive" and "control" in got["o"]["flags"]


# --------------------------------------------------------------------------------- trends

@pytest.mark.parametrize("series,reason", [
    ([[0.0, 0.0, 0.0]] * 3, "the floor"),              # the scan / repeat-after-me case: 0 -> 0 -> 0
    ([[1.0, 1.0, 1.0]] * 3, "the ceiling"),
    ([[0.25, 0.251, 0.252]] * 3, "chance"),
])
def test_a_flat_series_at_a_floor_or_ceiling_is_no_trend(tmp_path, series, reason):
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="task.sparsity",
              direction="non_increasing", no_control="test")
    out = judged(tmp_path, c, values_of(None, series), chance={"loss": 0.25})
    assert out["verdict"] == "inconclusive" and f"no trend: the series stays at {reason}" in out["reason"]


def test_a_non_strict_trend_needs_a_real_change(tmp_path):
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="task.sparsity",
              direction="non_increasing", no_control="test")
    flat = [[0.5, 0.51, 0.49]] * 3                      # flat in the middle of the range
    assert judged(tmp_path, c, values_of(None, flat))["verdict"] == "not_reproduced"
    drop = [[0.5, 0.51, 0.49], [0.5, 0.51, 0.49], [0.2, 0.21, 0.19]]
    assert judged(tmp_path, c, values_of(None, drop))["verdict"] == "reproduced"


def test_spearman_on_a_categorical_axis_ranks_by_the_listed_order(tmp_path):
    """spearman(['simple', 'length', 'add_jump'], [0.97, 0.17, 0.002]) is -1 in the listed order, not +1
    (alphabetical); here with the two names of an activation, listed against the alphabet."""
    from workflow.claims import TrendKind

    exp = json.loads(json.dumps(BASE["experiments"][0]))
    exp["models"] = exp["models"][:1]
    exp["sweep"] = {"model.activation": ["relu", "none"]}
    lp = make_paper(tmp_path, experiments=[exp], scales={}, tables=[], claims=[BASE["claims"][0] | {
        "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"model.activation": "relu"}}}])
    vals = {"relu": 0.97, "none": 0.17}                     # alphabetically none < relu: rho would be +1
    plant(tmp_path, lp, "small", lambda m, p, s: {"loss": vals[p["model.activation"]] + 0.001 * s,
                                                 "features_represented": 0.0}, facts={"loss": HIGHER})
    c = claim("trend", measure={"experiment": "exp", "model": "a", "metric": "loss"}, along="model.activation",
              direction="decreasing", statistic="spearman", min_correlation=0.9, no_control="test")
    out = judge_claim(c, collect(lp, "small", tmp_path))
    assert out["measured"]["spearman"]["per_seed"] == [-1.0, -1.0, -1.0]
    assert out["verdict"] == "reproduced"
    assert TrendKind.name == "trend"


# ------------------------------------------------------------------- intervals and display

def test_intervals_are_shown_clipped_to_the_metric_range_and_identical_seeds_say_so(tmp_path):
    from workflow.claims import fmt_interval

    iv = {"mean": 0.9, "lo": 0.6, "hi": 1.2, "n": 2, "sd": 0.1}
    assert fmt_interval(iv, 0.0, 1.0) == "0.9 [0.6, 1]"
    assert fmt_interval({"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 3, "sd": 0.0}) == "1 [1, 1] (seeds identical)"
    out = judged(tmp_path, claim("threshold", measure=ONE, op=">=", value=0.5),
                 values_of({"a": [0.7, 0.99, 0.95], "b": GOOD}))
    assert out["measured"]["hi"] > 1.0                  # the raw interval is kept in verdicts.json
    assert out["measured_text"].endswith(", 1]")


# ------------------------------------------------------------------------ origin and notes

def test_claims_that_are_ours_are_counted_apart(tmp_path):
    doc = json.loads(json.dumps(BASE))
    doc["claims"] = [
        {**doc["claims"][0], "id": "papers"},
        {**doc["claims"][0], "id": "mine", "ours": "the paper never trains model a at this sparsity"},
        {**doc["claims"][0], "id": "bound", "our_bound": "the paper gives no tolerance",
         "note": {"small": "a small-scale finding", "full": "a full-scale finding"}},
    ]
    lp = make_paper(tmp_path, claims=doc["claims"])
    plant(tmp_path, lp, "small", values_of({"a": [1.0, 1.01, 0.99], "b": GOOD}), facts={"loss": LOWER})
    out = judge_paper(lp.path, "small", tmp_path)
    assert out["counts"]["reproduced"] == 2 and out["counts_ours"]["reproduced"] == 1
    got = {c["id"]: c for c in out["claims"]}
    assert got["mine"]["origin"] == "ours" and got["bound"]["origin"] == "paper"
    assert "our_bound" in got["bound"]["flags"]
    assert got["bound"]["note"] == "a small-scale finding"
    assert lp.spec.claims[2].note_for("smoke") is None


# ---------------------------------------------------------- claims testable only at one scale or device

FULL_GPU = {"scales": ["full"], "device": "cuda", "reason": "a speed of GPU kernels"}


def test_a_claim_only_at_full_is_not_run_elsewhere_and_its_experiment_is_not_trained(tmp_path):
    only = {**BASE["claims"][0], "id": "speed", "only_at": {"scales": ["full"], "reason": "a paper-sized model"}}
    lp = make_paper(tmp_path, claims=[only], tables=[])
    assert lp.jobs("small") == [] and lp.n_jobs("smoke") == 0 and lp.n_jobs("full") == len(lp.jobs("full")) == 18
    out = judge_paper(lp.path, "small", tmp_path)
    (got,) = out["claims"]
    assert got["verdict"] == "not_run" and got["flags"] == ["only_at"]
    assert got["reason"] == "not run at the small scale: judged only at full: a paper-sized model"
    assert out["counts"]["not_run"] == 1
    # a claim that runs here, or a table, keeps the experiment trained
    lp = make_paper(tmp_path, claims=[only, {**BASE["claims"][0], "id": "other"}], tables=[])
    assert lp.n_jobs("small") == 18
    assert make_paper(tmp_path, claims=[only]).n_jobs("small") == 18
    # at full it is judged as any claim
    lp = make_paper(tmp_path, claims=[only], tables=[])
    plant(tmp_path, lp, "full", values_of({"a": [1.0, 1.01, 0.99], "b": GOOD}), facts={"loss": LOWER})
    assert judge_paper(lp.path, "full", tmp_path)["claims"][0]["verdict"] == "reproduced"


@pytest.mark.parametrize("device,expected,why", [
    ("cuda", "reproduced", None),
    ("cpu", "not_run", "measured on cpu, not cuda: a speed of GPU kernels"),
    (None, "not_run", "measured on a device the results do not record, not cuda: a speed of GPU kernels"),
    (lambda job: "cpu" if job.seed == 2 else "cuda", "not_run", "measured on cpu, not cuda"),
])
def test_a_claim_about_one_device_is_judged_only_on_its_results(tmp_path, device, expected, why):
    c = claim("ratio", measure=BOTH, numerator="a", denominator="b", op=">=", value=2.0, only_at=FULL_GPU)
    lp = make_paper(tmp_path)
    plant(tmp_path, lp, "full", values_of({"a": [3.0, 3.1, 2.9], "b": [1.0, 1.02, 0.98]}),
          facts={"loss": SPEED}, device=device)
    out = judge_claim(c, collect(lp, "full", tmp_path))
    assert out["verdict"] == expected
    if why:
        assert out["reason"].startswith(why) and out["flags"] == ["only_at"] and out["jobs"]
        assert out["measured_text"]           # what was measured stays visible beside the verdict


def test_only_at_must_limit_something():
    with pytest.raises(ValueError, match="limits nothing"):
        claim("threshold", measure=ONE, op=">=", value=1.0, only_at={"reason": "x"})
    with pytest.raises(ValueError, match="lists a scale twice"):
        claim("threshold", measure=ONE, op=">=", value=1.0, only_at={"scales": ["full", "full"], "reason": "x"})
    with pytest.raises(ValueError, match="reason"):
        claim("threshold", measure=ONE, op=">=", value=1.0, only_at={"scales": ["full"]})


# ----------------------------------------------------------------------- catalogue checks

def _load(tmp_path, claims):
    return make_paper(tmp_path, claims=claims)


def test_a_claim_that_something_fails_needs_a_control_or_a_reason(tmp_path):
    fails = {"id": "b_fails", "text": "t", "source": "Figure 1", "kind": "threshold",
             "measure": {"experiment": "exp", "model": "b", "metric": "loss", "at": {"task.sparsity": 0.0}},
             "op": ">=", "value": 1.0}           # superposition loss: lower is better, so >= says b fails
    with pytest.raises(CatalogueError) as e:
        _load(tmp_path, [fails])
    assert "claims[0] (b_fails): says that something fails" in str(e.value) and "no_control" in str(e.value)
    _load(tmp_path, [{**fails, "no_control": "the paper presupposes nothing"}])
    learns = {**fails, "id": "a_learns", "op": "<=", "measure": {**fails["measure"], "model": "a"}}
    _load(tmp_path, [learns, {**fails, "requires": ["a_learns"]}])


@pytest.mark.parametrize("requires,message", [
    (["nope"], "'nope' is not a claim of this paper"),
    (["x"], "is the claim itself"),
])
def test_requires_names_other_claims_of_the_paper(tmp_path, requires, message):
    c = {**BASE["claims"][0], "id": "x", "requires": requires}
    with pytest.raises(CatalogueError) as e:
        _load(tmp_path, [c])
    assert message in str(e.value)


def test_controls_may_not_form_a_cycle(tmp_path):
    a = {**BASE["claims"][0], "id": "x", "requires": ["y"]}
    b = {**BASE["claims"][0], "id": "y", "requires": ["x"]}
    with pytest.raises(CatalogueError) as e:
        _load(tmp_path, [a, b])
    assert "controls form a cycle (x -> y -> x)" in str(e.value)


def test_a_model_may_carry_its_own_learning_rate(tmp_path):
    exp = json.loads(json.dumps(BASE["experiments"][0]))
    exp["models"][1]["train"] = {"lr": 0.5, "warmup_steps": 2}
    lp = make_paper(tmp_path, experiments=[exp])
    cfgs = {j.model: j.config["train"] for j in lp.jobs("small")}
    assert cfgs["b"]["lr"] == 0.5 and cfgs["b"]["warmup_steps"] == 2
    assert cfgs["a"]["lr"] == 0.01 and "train" not in lp.jobs("small")[0].config["model"]
    exp["models"][1]["train"] = {"steps": 5}
    with pytest.raises(CatalogueError) as e:
        make_paper(tmp_path, experiments=[exp])
    assert "steps" in str(e.value)


def test_select_best_reads_each_seed_at_its_best_learning_rate(tmp_path):
    """Papers that tune the learning rate report the best run of the sweep: per seed and model."""
    exp = json.loads(json.dumps(BASE["experiments"][0]))
    exp["sweep"] = {"task.sparsity": [0.0, 0.9], "train.lr": [0.01, 0.1]}
    exp["select_best"] = {"over": ["train.lr"], "by": "loss"}
    claims = [{**BASE["claims"][0], "measure": {**BASE["claims"][0]["measure"]}}]
    lp = make_paper(tmp_path, experiments=[exp], scales={}, tables=[], claims=claims)
    # loss: seed 0 is best at lr 0.1, seed 1 and 2 at lr 0.01; features_represented tells which was read
    best = {0: 0.1, 1: 0.01, 2: 0.01}
    plant(tmp_path, lp, "small", lambda m, p, s: {
        "loss": 1.0 if p["train.lr"] == best[s] else 3.0, "features_represented": p["train.lr"]})
    ms = collect(lp, "small", tmp_path)
    assert "train.lr" not in ms.axes("exp").all                       # claims do not address it
    vals = ms.values("exp", "a", {"task.sparsity": 0.0}, "features_represented")
    assert [v for _, v, _ in vals] == [0.1, 0.01, 0.01]
    out = judge_claim(claim("value", measure=ONE, paper=1.0, tolerance=0.1), ms)
    assert out["verdict"] == "reproduced" and "best train.lr by loss" in out["selection"]["text"]
    # a claim may not fix the selected axis; select_best names sweep axes and evaluated metrics
    bad = {**claims[0], "measure": {**claims[0]["measure"], "at": {"task.sparsity": 0.0, "train.lr": 0.1}}}
    with pytest.raises(CatalogueError):
        make_paper(tmp_path, experiments=[exp], scales={}, tables=[], claims=[bad])
    exp["select_best"] = {"over": ["train.momentum"], "by": "accuracy"}
    with pytest.raises(CatalogueError) as e:
        make_paper(tmp_path, experiments=[exp], scales={}, tables=[], claims=claims)
    assert "select_best.over[0]: 'train.momentum' is not an axis" in str(e.value)
    assert "select_best.by: 'accuracy' is not an evaluate metric" in str(e.value)

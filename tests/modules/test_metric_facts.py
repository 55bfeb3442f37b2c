"""Every metric a task or a probe returns declares its facts (better side, range, trained, band),
and every chance level is a score inside that range, computed from the task as configured."""
from __future__ import annotations

import math

import pytest
import torch

from modules.metrics import Metric
from modules.probes.kinds import KINDS, add_chance, facts_of
from modules.tasks import TASKS, build_task, get_task_class

SMALL = {"mqar": {"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4}, "python_source": {"seq_len": 32},
         "wordpiece_text": {"seq_len": 32}, "tabular_classification": {"source": "digits"}}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_metric_has_facts_and_a_chance_in_range(name):
    cls = get_task_class(name)
    assert set(cls.metric_facts) == set(cls.metrics), f"{name}: facts for {sorted(cls.metric_facts)}, metrics {cls.metrics}"
    for m, f in cls.metric_facts.items():
        assert isinstance(f, Metric) and f.better in ("higher", "lower", "none"), (name, m)
    task = build_task(name, SMALL.get(name, {}))
    chance = task.chance()
    assert set(chance) <= set(cls.metrics), (name, chance)
    for m, v in chance.items():
        f = cls.metric_facts[m]
        assert math.isfinite(v), (name, m)
        assert (f.lo is None or v >= f.lo - 1e-9) and (f.hi is None or v <= f.hi + 1e-9), (name, m, v)
    assert task.chance() == chance                      # the same level for every seed of every model


def test_chance_levels_of_tasks_with_a_known_answer():
    mqar = build_task("mqar", SMALL["mqar"]).chance()
    assert mqar["accuracy"] == pytest.approx(1 / 4 + 3 / 4 / 32)          # the one-query shortcut, 0.27
    assert build_task("adding", {}).chance() == pytest.approx({"mse": 1 / 6, "accuracy": 0.0784})
    s = build_task("sort_set", {"n": 5}).chance()
    assert s["pointer_accuracy"] == pytest.approx(0.2) and s["accuracy"] == pytest.approx(1 / 120)
    assert build_task("icl_regression", {"dim": 4, "noise_std": 0.5}).chance()["mse"] == pytest.approx(1 + 0.25 / 4)
    digits = build_task("seq_digits", {}).chance()
    assert 0.09 < digits["accuracy"] < 0.12 and digits["loss"] == pytest.approx(math.log(10), abs=0.01)


def test_position_majority_is_the_best_input_blind_predictor():
    """Parity's answer is a fair coin at every position: blind, nothing beats one half (up to sampling)."""
    c = build_task("parity", {}).chance()
    assert abs(c["accuracy"] - 0.5) < 0.06 and abs(c["loss"] - math.log(2)) < 0.02
    # a model that outputs the same logits whatever it reads scores at most that level
    task = build_task("copy", {})
    b = task.eval_batch(torch.Generator().manual_seed(0), 256)
    scored = b["y"] != -100
    top = torch.mode(b["y"][scored]).values
    blind = ((b["y"] == top) & scored).sum() / scored.sum()
    assert blind <= task.chance()["accuracy"] + 0.02


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_probe_stat_has_facts_and_its_chance_names_a_stat(kind):
    k = KINDS[kind]
    assert set(facts_of(kind)) == set(k.metrics)
    for stat, ref in k.chance.items():
        assert stat in k.metrics
        assert isinstance(ref, float) or ref in k.metrics, (kind, stat, ref)


def test_add_chance_reads_the_baseline_at_the_point_or_without_the_layer():
    pts = [{"at": {"probe.layer": 1}, "metrics": {"score": 0.7, "control": 0.5, "selectivity": 0.2}},
           {"at": {}, "metrics": {"baseline": 0.4, "best_layer": 1, "best_score": 0.7, "gain": 0.3}}]
    add_chance("linear", pts)
    assert pts[0]["chance"] == {"score": 0.4, "selectivity": 0.0}
    assert pts[1]["chance"] == {"best_score": 0.4, "gain": 0.0}

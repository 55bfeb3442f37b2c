"""Piecewise-stationary categorical sources (Genewein et al. 2023): seeded sequences in range whose
change points come at the asked hazard; reference predictors that match hand-computed values and
brute-force enumerations (KT, the Bayes change-point mixture, PTW); Bayes <= PTW <= KT on switching
data and Bayes = KT on stationary data; an oracle that outputs the Bayes predictive scores regret
~0, the uniform predictor scores chance; probe labels; config errors; a tiny LSTM through the
engine, evaluated on switching and stationary data."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.ps_categorical import PSCategoricalTask, sample_gamma
from modules.tasks.sequence import IGNORE
from modules.tasks.switching_refs import (
    bayes_switching_predict,
    kt_predict,
    log_loss,
    ptw_predict,
)


def task(**over) -> PSCategoricalTask:
    return build_config(PSCategoricalTask, {"seq_len": 64, "eval_size": 64, **over})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def probs(*rows) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.float64)


class BayesOracle(torch.nn.Module):
    """Logits = log of the Bayes predictive, read from x alone (x_t = s_{t-1}; BOS first)."""

    def __init__(self, t: PSCategoricalTask):
        super().__init__()
        self.t = t

    def forward(self, x):
        s = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], 1)        # the last symbol is never read
        return bayes_switching_predict(s, self.t.n_symbols, self.t.alpha, self.t.switch_prob).log().float()


class Uniform(torch.nn.Module):
    def __init__(self, K: int):
        super().__init__()
        self.K = K

    def forward(self, x):
        return torch.zeros(*x.shape, self.K)


# ---- brute force: the marginal probability of a sequence, by enumeration -----------------------

def kt_marginal(x: list[int], K: int, a: float) -> float:
    n, p = [0] * K, 1.0
    for i, c in enumerate(x):
        p *= (n[c] + a) / (i + K * a)
        n[c] += 1
    return p


def ptw_marginal(x: list[int], d: int, K: int, a: float) -> float:
    if not x:
        return 1.0
    if d == 0:
        return kt_marginal(x, K, a)
    h = 2 ** (d - 1)
    return 0.5 * kt_marginal(x, K, a) + 0.5 * ptw_marginal(x[:h], d - 1, K, a) * ptw_marginal(x[h:], d - 1, K, a)


def switching_marginal(x: list[int], K: int, a: float, hz: float) -> float:
    """Sum over every pattern of change points before s_1 .. s_{n-1}."""
    total = 0.0
    for pattern in itertools.product([0, 1], repeat=max(len(x) - 1, 0)):
        p, cuts = 1.0, [0]
        for i, sw in enumerate(pattern):
            p *= hz if sw else 1 - hz
            if sw:
                cuts.append(i + 1)
        cuts.append(len(x))
        for u, v in itertools.pairwise(cuts):
            p *= kt_marginal(x[u:v], K, a)
        total += p
    return total


def predictive(marginal, x: list[int], K: int) -> torch.Tensor:
    return torch.tensor([[marginal(x[:t] + [c]) / marginal(x[:t]) for c in range(K)] for t in range(len(x))],
                        dtype=torch.float64)


# ---- data -------------------------------------------------------------------------------------

def test_seeded_in_range_and_laid_out():
    t = task(n_symbols=3)
    a, b, c = t.batch(gen(5), 16), t.batch(gen(5), 16), t.batch(gen(6), 16)
    assert a.keys() == {"x", "y"} and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])
    x, y = a["x"], a["y"]
    assert x.shape == y.shape == (16, 64) and x.dtype == y.dtype == torch.long
    assert (x[:, 0] == t.BOS).all() and torch.equal(x[:, 1:], y[:, :-1])
    assert 0 <= y.min() and y.max() < 3 and x.max() < t.spec()["vocab_size"]
    assert t.spec() == {"vocab_size": 4, "d_output": 3}
    d = t.draw(gen(5), 16)
    assert torch.equal(d["x"], a["x"])                                    # batch() is draw() without the latents
    assert torch.allclose(d["theta"].sum(-1), torch.ones(16, 64, dtype=torch.float64))


def test_change_points_come_at_the_hazard_and_theta_is_dirichlet():
    d = task(switch_prob=0.05, seq_len=101).draw(gen(1), 400)
    start = d["start"]
    switched = start[:, 1:] != start[:, :-1]                              # a new segment at t
    assert abs(switched.float().mean().item() - 0.05) < 0.006
    same = ~switched                                                      # theta is constant within a segment
    assert torch.equal(d["theta"][:, 1:][same], d["theta"][:, :-1][same])
    assert (start[:, 0] == 0).all() and (start <= torch.arange(101)).all()
    th = task(seq_len=2, alpha=0.5).draw(gen(2), 20000)["theta"][:, 0, 0]
    assert abs(th.mean().item() - 0.5) < 0.01 and abs(th.var().item() - 0.125) < 0.006     # Beta(1/2, 1/2)
    g = sample_gamma(gen(3), 2.5, (40000,)).exp()
    assert abs(g.mean().item() - 2.5) < 0.05 and abs(g.var().item() - 2.5) < 0.1


def test_switch_prob_zero_is_stationary_and_bayes_equals_kt_there():
    t = task(switch_prob=0.0, n_symbols=3, alpha=0.7)
    d = t.draw(gen(0), 32)
    assert (d["start"] == 0).all() and (d["theta"] == d["theta"][:, :1]).all()
    kt = kt_predict(d["s"], 3, 0.7)
    assert torch.allclose(bayes_switching_predict(d["s"], 3, 0.7, 0.0), kt, atol=1e-12, rtol=0)


# ---- the references ---------------------------------------------------------------------------

def test_kt_by_hand():
    s = torch.tensor([[0, 0, 1]])
    # (n_c + 1/2) / (t + 1): 1/2 | after 0: 3/4 | after 0 0: 5/6 for 0, 1/6 for 1
    assert torch.allclose(kt_predict(s, 2, 0.5), probs([1 / 2, 1 / 2], [3 / 4, 1 / 4], [5 / 6, 1 / 6]))
    nats = log_loss(kt_predict(s, 2, 0.5), s)
    assert torch.allclose(nats, torch.tensor([[math.log(2), math.log(4 / 3), math.log(6)]], dtype=torch.float64))


def test_bayes_switching_by_hand():
    """h = 1/2 on 0 0 1. t=1: (1-h) 3/4 + h 1/2 = 5/8. The start posterior after 0 0 is
    (3/8, 1/4) -> (3/5, 2/5); t=2: prior (3/10, 1/5, 1/2) on starts 0, 1, 2 with KT predictions
    5/6, 3/4, 1/2 for a 0: 1/4 + 3/20 + 1/4 = 13/20."""
    s = torch.tensor([[0, 0, 1]])
    p = bayes_switching_predict(s, 2, 0.5, 0.5)
    assert torch.allclose(p, probs([1 / 2, 1 / 2], [5 / 8, 3 / 8], [13 / 20, 7 / 20]), atol=1e-12)
    assert torch.allclose(bayes_switching_predict(s, 2, 0.5, 1.0), torch.full((1, 3, 2), 0.5, dtype=torch.float64))
    _, runs = bayes_switching_predict(s, 2, 0.5, 0.5, return_run_length=True)
    assert torch.allclose(runs, torch.tensor([[0.0, 0.5, 0.5 * (3 / 5 * 2 + 2 / 5 * 1)]], dtype=torch.float64))


def test_ptw_by_hand():
    """Depth 1 on 0 1: PTW(0 1) = 1/2 KT(0 1) + 1/2 KT(0) KT(1) = 1/16 + 1/8 = 3/16, over PTW(0) = 1/2.
    Depth 2 on 0 0 1: PTW_2(0 0) = 1/2 * 3/8 + 1/2 PTW_1(0 0) = 3/16 + 5/32 = 11/32 -> 11/16 for the
    second 0; PTW_2(0 0 1) = 1/2 KT(0 0 1) + 1/2 PTW_1(0 0) KT(1) = 1/32 + 5/64 = 7/64 -> 7/22."""
    assert torch.allclose(ptw_predict(torch.tensor([[0, 1]]), 2, depth=1), probs([1 / 2, 1 / 2], [5 / 8, 3 / 8]))
    assert torch.allclose(ptw_predict(torch.tensor([[0, 0, 1]]), 2, depth=2),
                          probs([1 / 2, 1 / 2], [11 / 16, 5 / 16], [15 / 22, 7 / 22]))
    with pytest.raises(ValueError):
        ptw_predict(torch.tensor([[0, 0, 1]]), 2, depth=1)                # 3 symbols need depth 2


@pytest.mark.parametrize("K,alpha", [(2, 0.5), (3, 0.8)])
def test_references_match_brute_force_enumeration(K, alpha):
    x = torch.randint(0, K, (3, 7), generator=gen(K))
    bayes = bayes_switching_predict(x, K, alpha, 0.3)
    ptw = ptw_predict(x, K, depth=3, alpha=alpha)
    for b, row in enumerate(x.tolist()):
        assert torch.allclose(bayes[b], predictive(lambda z: switching_marginal(z, K, alpha, 0.3), row, K), atol=1e-12)
        assert torch.allclose(ptw[b], predictive(lambda z: ptw_marginal(z, 3, K, alpha), row, K), atol=1e-12)
    for p in (bayes, ptw, kt_predict(x, K, alpha)):
        assert torch.allclose(p.sum(-1), torch.ones(3, 7, dtype=torch.float64))


def test_bayes_beats_ptw_beats_kt_on_switching_data_and_ptw_nearly_matches_kt_on_stationary():
    sw = task(seq_len=128, switch_prob=0.03)
    s = sw.draw(gen(0), 256)["s"]
    loss = {k: log_loss(p, s).mean().item() for k, p in sw.reference_probs(s).items()}
    assert loss["bayes"] < loss["ptw"] < loss["kt"] - 0.05, loss
    st = task(seq_len=128, switch_prob=0.0)
    s = st.draw(gen(0), 256)["s"]
    loss = {k: log_loss(p, s).mean().item() for k, p in st.reference_probs(s).items()}
    assert loss["bayes"] == pytest.approx(loss["kt"], abs=1e-12)
    assert 0 < loss["ptw"] - loss["kt"] < math.log(2) / 128 + 1e-9      # PTW >= KT / 2: at most ln 2 per sequence


# ---- evaluate and chance ------------------------------------------------------------------------

def test_oracle_has_no_regret_and_uniform_is_at_chance():
    t = task(seq_len=96, switch_prob=0.03, eval_size=96)
    m = t.evaluate(BayesOracle(t), gen(0))
    assert set(m) == set(t.metrics)
    assert abs(m["regret"]) < 1e-6 and m["loss"] == pytest.approx(m["bayes_loss"], abs=1e-6)
    assert m["regret_vs_kt"] < -0.03 and m["bayes_loss"] < m["ptw_loss"] < m["kt_loss"]
    assert t.evaluate(Uniform(2), gen(0))["kt_loss"] == m["kt_loss"]       # the same data for every model
    t = task(seq_len=64, switch_prob=0.03, eval_size=512)                  # chance: measured on 1024 other sequences
    u = t.evaluate(Uniform(2), gen(0))
    chance = t.chance()
    assert u["loss"] == pytest.approx(math.log(2), abs=1e-6) and chance["loss"] == pytest.approx(math.log(2))
    assert u["regret"] == pytest.approx(chance["regret"], abs=0.03) and chance["regret"] > 0.1
    assert u["regret_vs_kt"] == pytest.approx(chance["regret_vs_kt"], abs=0.03)
    facts = PSCategoricalTask.facts()
    assert facts["regret"]["better"] == "lower" and facts["loss"]["better"] == "lower"
    assert all(facts[f"{r}_loss"]["trained"] is False and facts[f"{r}_loss"]["better"] == "none"
               for r in ("kt", "ptw", "bayes"))


def test_eval_axes_move_the_source_not_the_vocabulary():
    t = task()
    assert t.eval_axes == ("switch_prob", "seq_len", "alpha")
    st = task(switch_prob=0.0)
    m = st.evaluate(BayesOracle(st), gen(0))
    assert m["bayes_loss"] == pytest.approx(m["kt_loss"], abs=1e-12) and abs(m["regret_vs_kt"]) < 1e-6
    long = task(seq_len=300)
    assert long.spec() == t.spec() and long.batch(gen(0), 2)["x"].shape == (2, 300)


# ---- probes -------------------------------------------------------------------------------------

def test_probe_labels():
    t = task(seq_len=50, switch_prob=0.05)
    data = t.probe_data(gen(0), 1000)
    x, lab = data["x"], data["labels"]
    assert x.shape == (20, 50) and set(lab) == set(t.probe_labels) == set(data["label_kinds"])
    assert all(v.shape == x.shape for v in lab.values()) and data["vocab_size"] == 3
    since = lab["since_switch"]
    assert (since[:, 0] == 0).all() and (since[:, 1] == 1).all()
    step = since[:, 1:] - since[:, :-1]
    assert ((step == 1) | (since[:, 1:] == 1)).all() and (since[:, 2:] == 1).sum() > 10    # resets after switches
    assert (lab["source_argmax"][:, 0] == IGNORE).all() and lab["source_argmax"][:, 1:].ge(0).all()
    assert (lab["bayes_p_max"] >= 0.5 - 1e-12).all() and (lab["bayes_p_max"] <= 1).all()
    assert torch.equal(lab["target"][:, :-1], x[:, 1:])
    st = task(seq_len=50, switch_prob=0.0).probe_data(gen(0), 100)["labels"]
    assert torch.equal(st["since_switch"], torch.arange(50.0, dtype=torch.float64).expand(2, 50))


@pytest.mark.parametrize("params,key", [
    ({"n_symbols": 1}, "n_symbols"),
    ({"switch_prob": 1.5}, "switch_prob"),
    ({"alpha": 0.0}, "alpha"),
    ({"seq_len": 0}, "seq_len"),
    ({"seq_len": 64, "ptw_depth": 5}, "ptw_depth"),
    ({"eval_size": 0}, "eval_size"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_config(PSCategoricalTask, params)
    assert e.value.key == key


# ---- engine -------------------------------------------------------------------------------------

def test_engine_trains_an_lstm_and_evaluates_it_on_switching_and_stationary_data(tmp_path, monkeypatch):
    import modules.tasks as registry
    from workflow.evaluate import evaluate, metric_facts
    from workflow.train import train

    monkeypatch.setitem(registry.TASKS, "ps_categorical", "modules.tasks.ps_categorical:PSCategoricalTask")
    cfg = {"task": {"name": "ps_categorical", "seq_len": 32, "switch_prob": 0.05, "eval_size": 32},
           "model": {"arch": "lstm", "d_model": 16},
           "train": {"steps": 30, "batch_size": 16, "lr": 1e-2}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    metrics = list(PSCategoricalTask.metrics)
    points = evaluate(cfg, {"metrics": metrics, "sweep": {"task.switch_prob": [0.05, 0.0]}}, tmp_path / "model.pt")
    assert [p["at"]["task.switch_prob"] for p in points] == [0.05, 0.0]
    for p in points:
        m = p["metrics"]
        assert all(math.isfinite(m[k]) for k in metrics)
        assert m["regret"] == pytest.approx(m["loss"] - m["bayes_loss"], abs=1e-9)
        assert m["loss"] < math.log(2) + 0.1 and set(p["chance"]) == {"loss", "regret", "regret_vs_kt"}
    assert points[1]["metrics"]["bayes_loss"] == pytest.approx(points[1]["metrics"]["kt_loss"], abs=1e-12)
    assert metric_facts(cfg)["bayes_loss"]["trained"] is False

"""Contrastive Predictive Coding (modules/models/cpc.py) on the sticky-Markov sequences
(modules/tasks/cpc_sequences.py): seeded data, a causal context, the InfoNCE loss against a hand
computation, oracle and constant scorers at 1 and at chance, the frozen random-encoder baseline,
the linear state classifier at its extremes, and a run through the engine's train and evaluate."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modules.config import ConfigError, build_config
from modules.models.cpc import CPC, CPCConfig
from modules.tasks.cpc_sequences import (
    CPCSequencesTask,
    infonce,
    infonce_logits,
    infonce_terms,
    state_probe,
)

SMALL = {"n_states": 4, "d_input": 6, "seq_len": 16, "max_offset": 3, "candidates": 4, "eval_size": 32,
         "probe_steps": 30}


def task(**over) -> CPCSequencesTask:
    return build_config(CPCSequencesTask, {**SMALL, **over})


def model(t: CPCSequencesTask, seed: int = 0, **over) -> CPC:
    torch.manual_seed(seed)
    return CPC(build_config(CPCConfig, {**t.spec(), "d_z": 8, "d_context": 8, **over}))


class Stub(nn.Module):
    """A 'model' with given z, c and predictions (B, T, K, D), whatever x it reads."""

    def __init__(self, z, c, preds):
        super().__init__()
        self.z, self.c, self.preds = z, c, preds

    def forward(self, x):
        return self.z[: x.shape[0]], self.c[: x.shape[0]]

    def predict(self, c):
        return self.preds[: c.shape[0]]


# ---- data ----------------------------------------------------------------------------------

def test_batches_and_world_are_seeded():
    t = task()
    a, b = t.batch(torch.Generator().manual_seed(3), 8), t.batch(torch.Generator().manual_seed(3), 8)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["state"], b["state"])
    assert a["x"].shape == (8, 16, 6) and a["state"].shape == (8, 16)
    assert not torch.equal(a["x"], t.batch(torch.Generator().manual_seed(4), 8)["x"])
    assert torch.equal(task().world()["mu"], t.world()["mu"])                      # the world: data_seed
    assert not torch.equal(task(data_seed=1).world()["mu"], t.world()["mu"])
    m1, m2 = model(t), model(t)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_the_chain_is_sticky_with_uniform_states():
    t = task(n_states=5, seq_len=200, switch_prob=0.1)
    s = t.states(torch.Generator().manual_seed(0), 200)
    assert abs((s[:, 1:] != s[:, :-1]).float().mean().item() - 0.1) < 0.01
    share = torch.bincount(s.flatten(), minlength=5).float() / s.numel()
    assert (share - 0.2).abs().max() < 0.02 and int(s.min()) == 0 and int(s.max()) == 4
    assert t.chance()["state_accuracy"] == pytest.approx(0.2)


def test_token_mode_and_the_engines_linear_probe():
    from modules.probes.kinds import run_probe

    t = task(vocab_size=7, noise=0.5)
    assert t.spec() == {"vocab_size": 7, "max_offset": 3}
    m = model(t).eval()
    data = t.probe_data(torch.Generator().manual_seed(0), 400)
    assert data["x"].dtype == torch.long and int(data["x"].max()) < 7
    with torch.no_grad():
        _, hs = m(data["x"], return_hidden=True)
    assert len(hs) == 3 and hs[-1].shape == (*data["x"].shape, 8)                   # 2 encoder layers, then c
    points, _ = run_probe("linear", hs, data, [1, 2, 3], "state", {"max_iter": 20}, 0)
    assert all(math.isfinite(v) for p in points for v in p["metrics"].values())


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        task(offset=4)                                                              # beyond max_offset
    with pytest.raises(ConfigError):
        task(eval_size=30)                                                          # not whole groups
    with pytest.raises(ConfigError):
        task(seq_len=3)                                                             # no target at k = 3
    with pytest.raises(ConfigError):
        build_config(CPCConfig, {"d_input": 4, "vocab_size": 5})


# ---- model ---------------------------------------------------------------------------------

def test_context_is_causal():
    t = task()
    m = model(t).eval()
    x = t.batch(torch.Generator().manual_seed(0), 4)["x"]
    x2 = x.clone()
    x2[:, 9:] = torch.randn(4, 7, 6)
    with torch.no_grad():
        (z, c), (z2, c2) = m(x), m(x2)
    assert torch.equal(z[:, :9], z2[:, :9]) and torch.allclose(c[:, :9], c2[:, :9], atol=0, rtol=0)
    assert not torch.allclose(c[:, 9:], c2[:, 9:])
    assert m.predict(c).shape == (4, 16, 3, 8)


def test_random_encoder_stays_at_its_init():
    from modules.optim import make_optimizer

    t = task()
    m = model(t, train_encoder=False)
    frozen = {n: p.detach().clone() for n, p in m.named_parameters() if not n.startswith("W")}
    W0 = m.W.detach().clone()
    opt = make_optimizer(m.parameters(), "adamw", 1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        loss = t.loss(m, t.batch(gen, 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in m.named_parameters() if n in frozen)
    assert not torch.equal(m.W, W0)
    trained = model(t)                                                              # same seed, same init
    assert all(torch.equal(p, frozen[n]) for n, p in trained.named_parameters() if n in frozen)


# ---- InfoNCE -------------------------------------------------------------------------------

def test_infonce_against_a_hand_computation():
    """2 sequences, 3 steps, d = 2, k = 1, both sequences in one group. Query (b, t) scores
    p[b, t] . z[j, t + 1] for j = 0, 1; its positive is j = b:
        (0, 0): p (1, 0)  vs (0, 1) -> 0 [+], (1, -1) -> 1       loss log(1 + e),    wrong
        (0, 1): p (0, 1)  vs (1, 1) -> 1 [+], (2, 0)  -> 0       loss log(1 + 1/e),  right
        (1, 0): p (1, 1)  vs (0, 1) -> 1,     (1, -1) -> 0 [+]   loss log(1 + e),    wrong
        (1, 1): p (0, -1) vs (1, 1) -> -1,    (2, 0)  -> 0 [+]   loss log(1 + 1/e),  right"""
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [1.0, -1.0], [2.0, 0.0]]])
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], [[1.0, 1.0], [0.0, -1.0], [9.0, 9.0]]])
    want = (math.log(1 + math.e) + math.log(1 + 1 / math.e)) / 2
    nll, right, n = infonce(infonce_logits(z, p, 1, 2))
    assert float(nll) / n == pytest.approx(want) and int(right) == 2 and n == 4
    nll, right, n = infonce_terms(z, p[:, :, None], 2, 1)                           # the batched form
    assert float(nll[0]) / float(n[0]) == pytest.approx(want) and int(right[0]) == 2
    t = task(seq_len=3, max_offset=1, candidates=2, eval_size=4)
    assert float(t.loss(Stub(z, z, p[:, :, None]), {"x": torch.zeros(2, 3, 6)})) == pytest.approx(want)


def test_batched_infonce_equals_the_plain_form_with_a_smaller_last_group():
    g = torch.Generator().manual_seed(0)
    z, p = torch.randn(11, 9, 5, generator=g), torch.randn(11, 9, 3, 5, generator=g)
    nll, right, n = infonce_terms(z, p, 4, 3)                                       # groups of 4, 4, 3
    for k in (1, 2, 3):
        l2, r2, n2 = infonce(infonce_logits(z, p[:, :, k - 1], k, 4))
        assert float(nll[k - 1]) == pytest.approx(float(l2), rel=1e-5)
        assert int(right[k - 1]) == int(r2) and int(n[k - 1]) == n2 == 11 * (9 - k)


def test_oracle_scorer_is_perfect_and_constant_scorer_is_at_chance():
    g = torch.Generator().manual_seed(0)
    B, T, K, D, G = 32, 12, 3, 16, 8
    z = torch.nn.functional.normalize(torch.randn(B, T, D, generator=g), dim=-1)
    oracle = torch.zeros(B, T, K, D)
    for k in range(1, K + 1):
        oracle[:, : T - k, k - 1] = 5 * z[:, k:]                                    # predicts z_{t+k} exactly
    nll, right, n = infonce_terms(z, oracle, G, K)
    assert torch.equal(right, n)
    nll, right, n = infonce_terms(z, torch.zeros(B, T, K, D), G, K)
    assert (right.double() / n.double()).tolist() == [1 / G] * K                    # ties: the first candidate
    assert torch.allclose(nll / n, torch.full((K,), math.log(G)), rtol=1e-6)


def test_evaluate_of_a_blind_model_is_at_chance():
    """A model whose z, c and predictions are zero: InfoNCE accuracy exactly 1/candidates, loss
    log(candidates), and a state classifier on its constant c at the majority level."""
    t = task(eval_size=64, seq_len=32)
    zeros = Stub(torch.zeros(64, 32, 8), torch.zeros(64, 32, 8), torch.zeros(64, 32, 3, 8))
    out = t.evaluate(zeros, torch.Generator().manual_seed(0))
    ch = t.chance()
    assert out["infonce_accuracy"] == pytest.approx(ch["infonce_accuracy"]) == pytest.approx(0.25)
    assert out["loss"] == pytest.approx(ch["loss"], rel=1e-6)
    assert abs(out["state_accuracy"] - ch["state_accuracy"]) < 0.1
    assert out["frame_state_accuracy"] > out["state_accuracy"]                      # frames carry the state


# ---- the state classifier ------------------------------------------------------------------

def test_state_probe_reads_an_oracle_and_not_a_constant():
    t = task(seq_len=32)
    s = t.states(torch.Generator().manual_seed(0), 64)
    s_tr, s_te = s[:32].flatten(), s[32:].flatten()
    onehot = torch.nn.functional.one_hot(s, 4).float()
    r = state_probe(onehot[:32].flatten(0, 1), s_tr, onehot[32:].flatten(0, 1), s_te, 4, max_iter=50)
    assert r["accuracy"] > 0.99
    const = torch.ones(64 * 32, 3)
    r = state_probe(const[: 32 * 32], s_tr, const[32 * 32:], s_te, 4, max_iter=50)
    top = int(torch.bincount(s_tr, minlength=4).argmax())
    assert r["accuracy"] == pytest.approx(float((s_te == top).float().mean())) == pytest.approx(r["majority"])
    assert abs(r["accuracy"] - t.chance()["state_accuracy"]) < 0.15


# ---- the engine ----------------------------------------------------------------------------

def test_train_and_evaluate_through_the_engine(tmp_path, monkeypatch):
    from modules import models, tasks
    from workflow.evaluate import evaluate
    from workflow.train import train

    monkeypatch.setitem(tasks.TASKS, "cpc_sequences", "modules.tasks.cpc_sequences:CPCSequencesTask")
    monkeypatch.setitem(models.ARCHS, "cpc", "modules.models.cpc:CPC:CPCConfig")
    metrics = ["loss", "infonce_accuracy", "state_accuracy", "frame_state_accuracy", "forward_tokens_per_s"]
    results = {}
    for frozen in (False, True):
        out = tmp_path / str(frozen)
        out.mkdir()
        cfg = {"task": {"name": "cpc_sequences", **SMALL},
               "model": {"arch": "cpc", "d_z": 8, "d_context": 8, "train_encoder": not frozen},
               "train": {"steps": 15, "batch_size": 8, "lr": 3e-3}, "seed": 0}
        rec = train(cfg, out, log=lambda s: None)
        assert rec["status"] == "ok" and math.isfinite(rec["final_loss"])
        pts = evaluate(cfg, {"metrics": metrics, "sweep": {"task.offset": [1, 3]}}, out / "model.pt")
        assert [p["at"] for p in pts] == [{"task.offset": 1}, {"task.offset": 3}]
        for p in pts:
            assert all(v is not None and math.isfinite(v) for v in p["metrics"].values()), p
            assert p["chance"]["infonce_accuracy"] == pytest.approx(0.25)
            assert p["chance"]["state_accuracy"] == pytest.approx(0.25)
        assert pts[0]["metrics"]["state_accuracy"] == pts[1]["metrics"]["state_accuracy"]   # offset-free
        results[frozen] = pts
    assert results[False][0]["metrics"] != results[True][0]["metrics"]

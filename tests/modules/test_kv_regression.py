"""Key-value regression: seeded prompts whose keys correlate as asked, reference memories that match
their closed forms (least squares exact for N <= d, the Hebbian memory exact only for orthonormal
keys, the delta rule exact for the last pair it wrote), an oracle that reads least squares off the
prompt and scores ~0, the zero predictor at chance, config errors that name the key, and a tiny run
through the engine."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.kv_regression import REFERENCES, KVRegressionTask


def task(**over) -> KVRegressionTask:
    return build_config(KVRegressionTask, {"d_key": 8, "d_value": 4, "n_pairs": 6, "eval_size": 256, **over})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Zero(torch.nn.Module):
    def __init__(self, dv: int):
        super().__init__()
        self.dv = dv

    def forward(self, x):
        return torch.zeros(*x.shape[:2], self.dv)


class LeastSquaresOracle(torch.nn.Module):
    """Reads the pairs off the prompt and answers each query by least squares: a causal reader (a
    query token sees only the pairs, which all come before it)."""

    def __init__(self, t: KVRegressionTask):
        super().__init__()
        self.t = t

    def forward(self, x):
        N, d, dv = self.t.n_pairs, self.t.d_key, self.t.d_value
        k, v, q = x[:, :N, :d], x[:, :N, d:d + dv], x[:, N:, :d]
        out = torch.zeros(*x.shape[:2], dv)
        out[:, N:] = KVRegressionTask.references(k, v, q)["ls"].float()
        return out


def test_spec_and_layout():
    t = task()
    assert t.spec() == {"d_input": 13, "d_output": 4}
    b = t.batch(gen(), 5)
    assert b["inputs"].shape == (5, 12, 13) and b["target"].shape == (5, 6, 4)
    x = b["inputs"]
    assert torch.equal(x[:, :6, :8], b["keys"]) and torch.equal(x[:, :6, 8:12], b["values"])
    assert (x[:, :6, -1] == 0).all() and (x[:, 6:, -1] == 1).all() and (x[:, 6:, 8:12] == 0).all()
    # every stored key is asked once, with its own value as the target
    for i in range(5):
        for j in range(6):
            hit = (b["keys"][i] == b["queries"][i, j]).all(-1).nonzero()
            assert len(hit) == 1 and torch.equal(b["values"][i, hit[0, 0]], b["target"][i, j])


def test_batches_are_seeded_and_rho_moves_only_the_keys():
    a, b, c = task().batch(gen(3), 8), task().batch(gen(3), 8), task().batch(gen(4), 8)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["keys"], c["keys"])
    r = task(rho=0.5).batch(gen(3), 8)
    assert torch.equal(r["values"], a["values"]) and not torch.equal(r["keys"], a["keys"])


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_keys_of_a_prompt_have_cosine_about_rho(rho):
    t = task(d_key=64, n_pairs=8, rho=rho)
    k = t.batch(gen(), 400)["keys"]
    cos = k @ k.transpose(1, 2)                                           # unit keys: cosines
    off = cos[:, ~torch.eye(8, dtype=torch.bool)]
    assert off.mean().item() == pytest.approx(rho, abs=0.03)
    assert torch.allclose(k.norm(dim=-1), torch.ones(400, 8), atol=1e-5)


def test_key_norm_spread_scales_norms_within_its_range():
    k = task(key_norm_spread=1.0).batch(gen(), 200)["keys"]
    n = k.norm(dim=-1)
    assert n.min() >= math.exp(-1) - 1e-5 and n.max() <= math.e + 1e-5 and n.std() > 0.3


def test_least_squares_recalls_n_le_d_pairs_exactly_and_the_hebbian_memory_does_not():
    b = task(rho=0.5).batch(gen(), 32)
    ref = KVRegressionTask.references(b["keys"], b["values"], b["queries"])
    t = b["target"].double()
    assert ((ref["ls"] - t) ** 2).mean() < 1e-20
    assert ((ref["hebbian"] - t) ** 2).mean() > 0.1


def test_with_orthonormal_keys_every_memory_is_exact():
    q = torch.linalg.qr(torch.randn(3, 8, 8, dtype=torch.float64))[0][:, :, :5].transpose(1, 2)   # (3, 5, 8)
    v = torch.randn(3, 5, 4, dtype=torch.float64)
    for name, p in KVRegressionTask.references(q, v, q).items():
        assert torch.allclose(p, v, atol=1e-10), name


def test_the_delta_rule_recalls_the_last_pair_it_wrote():
    b = task(rho=0.9, key_norm_spread=0.5).batch(gen(), 16)
    k, v = b["keys"], b["values"]
    p = KVRegressionTask.references(k, v, k[:, -1:])["delta"]
    assert torch.allclose(p[:, 0], v[:, -1].double(), atol=1e-8)


def test_the_hebbian_memory_degrades_with_key_correlation():
    errs = [task(rho=r, eval_size=512).evaluate(Zero(4), gen())["hebbian_mse"] for r in (0.0, 0.5, 0.9)]
    assert errs[0] < errs[1] < errs[2]


def test_oracle_scores_zero_and_the_zero_predictor_is_at_chance():
    t = task(rho=0.5)
    m = t.evaluate(LeastSquaresOracle(t), gen())
    assert m["mse"] < 1e-10 and m["mse"] == pytest.approx(m["ls_mse"], abs=1e-10)
    z = t.evaluate(Zero(4), gen())
    assert z["mse"] == pytest.approx(t.chance()["mse"], abs=0.1)
    assert set(z) == set(KVRegressionTask.metrics) == {"mse", *(f"{r}_mse" for r in REFERENCES)}


def test_loss_is_the_error_at_the_queries_only():
    t = task()
    b = t.batch(gen(), 4)

    class PairsWrong(LeastSquaresOracle):
        def forward(self, x):
            out = super().forward(x)
            out[:, :t.n_pairs] = 100.0                                  # not scored
            return out

    assert t.loss(PairsWrong(t), b).item() < 1e-10


@pytest.mark.parametrize("params,key", [
    ({"rho": 1.0}, "rho"),
    ({"rho": -0.1}, "rho"),
    ({"n_pairs": 0}, "n_pairs"),
    ({"d_key": 2.5}, "d_key"),
    ({"key_norm_spread": -1}, "key_norm_spread"),
    ({"n_pair": 3}, "n_pair"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        task(**params)
    assert e.value.key == key


def test_engine_trains_and_evaluates(tmp_path):
    """Thirty steps of a tiny DeltaNet through workflow.train and workflow.evaluate, over the rho axis."""
    from workflow.evaluate import evaluate
    from workflow.train import train

    cfg = {"task": {"name": "kv_regression", "d_key": 8, "d_value": 4, "n_pairs": 4, "eval_size": 64},
           "model": {"arch": "deltanet", "n_layer": 1, "n_head": 2, "d_model": 16},
           "train": {"steps": 30, "batch_size": 16, "lr": 3e-3}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and len(rec["history"]["loss"]) == 30
    points = evaluate(cfg, {"metrics": list(KVRegressionTask.metrics), "sweep": {"task.rho": [0.0, 0.9]}},
                      tmp_path / "model.pt")
    assert [p["at"]["task.rho"] for p in points] == [0.0, 0.9]
    lo, hi = (p["metrics"] for p in points)
    assert lo["ls_mse"] < 1e-10 and hi["hebbian_mse"] > lo["hebbian_mse"]
    assert all(math.isfinite(v) for m in (lo, hi) for v in m.values())

"""In-context linear regression: seeded prompts in Garg et al.'s layout, reference predictors that
match their closed forms, an oracle that runs least squares on the prompt and scores ~0 error and
~0 SPD to OLS, config errors that name the key, and a tiny run through the engine."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.icl_regression import BASELINES, ICLRegressionTask




def task(**over) -> ICLRegressionTask:
    return build_config(ICLRegressionTask, {"dim": 4, "eval_size": 512, **over})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- models that read only the prompt ------------------------------------------------------------

class Zero(torch.nn.Module):
    def forward(self, z):
        return torch.zeros(*z.shape[:2], 1)


class Oracle(torch.nn.Module):
    """At x token i: the minimum-norm least-squares fit of the i pairs before it (or one-step GD
    with step eta_k, when `gd` is a task), read from the prompt alone."""

    def __init__(self, gd: ICLRegressionTask | None = None):
        super().__init__()
        self.gd = gd

    def forward(self, z):
        x, y = z[:, 0::2, 1:].double(), z[:, 1::2, 0].double()                      # (B, n, d), (B, n)
        B, n, _ = x.shape
        out = torch.zeros(B, 2 * n, 1, dtype=torch.float64)
        for i in range(1, n):
            X, Y = x[:, :i], y[:, :i]
            if self.gd is None:
                w = (torch.linalg.pinv(X) @ Y[..., None])[..., 0]
            else:
                w = self.gd.gd_step(i) / i * torch.einsum("bkd,bk->bd", X, Y)
            out[:, 2 * i, 0] = (w * x[:, i]).sum(-1)
        return out.float()


# ---- data -----------------------------------------------------------------------------------------

def test_spec_defaults_and_shapes():
    t = task()
    assert t.spec() == {"d_input": 5, "d_output": 1}
    assert t.n_points == 9 and task(dim=8).n_points == 17            # 2d + 1: k runs up to 2d
    b = t.batch(gen(), 6)
    assert b["inputs"].shape == (6, 18, 5) and b["x"].shape == (6, 9, 4)
    assert b["y"].shape == (6, 9) and b["w"].shape == (6, 4)
    assert b["inputs"].dtype == torch.float32
    z = b["inputs"]
    assert torch.equal(z[:, 0::2, 0], torch.zeros(6, 9)) and torch.equal(z[:, 0::2, 1:], b["x"])
    assert torch.equal(z[:, 1::2, 0], b["y"]) and torch.equal(z[:, 1::2, 1:], torch.zeros(6, 9, 4))
    assert torch.allclose(b["y"], torch.einsum("bnd,bd->bn", b["x"], b["w"]))   # noiseless


def test_batches_are_seeded():
    t = task()
    a, b, c = t.batch(gen(3), 8), t.batch(gen(3), 8), t.batch(gen(4), 8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])


def test_noise_level_changes_only_the_labels():
    a, b = task().batch(gen(1), 2000), task(noise_std=0.5).batch(gen(1), 2000)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["w"], b["w"])
    assert (b["y"] - a["y"]).std().item() == pytest.approx(0.5, rel=0.05)


def test_loss_scale():
    t = task()
    b = t.batch(gen(), 4096)
    assert t.loss(Zero(), b).item() == pytest.approx(1.0, abs=0.05)          # E y^2 / d = 1
    assert task(loss_per_dim=False).loss(Zero(), b).item() == pytest.approx(4.0, rel=0.05)


# ---- reference predictors ------------------------------------------------------------------------

def test_every_predictor_says_zero_without_examples():
    t = task()
    b = t.batch(gen(), 16)
    preds = t.baselines(b["x"], b["y"], 0)
    assert set(preds) == set(BASELINES)
    assert all(torch.equal(p, torch.zeros(16, dtype=torch.float64)) for p in preds.values())


def test_least_squares_is_exact_from_d_examples_without_noise():
    t = task()
    b = t.batch(gen(), 64)
    for k in (4, 6, 8):
        p = t.baselines(b["x"], b["y"], k)
        assert torch.allclose(p["ols"], b["y"][:, k].double(), atol=1e-6)
        gap = (p["ridge"] - b["y"][:, k].double()).abs()                     # lambda = 1e-8
        assert gap.mean() < 1e-5 and gap.max() < 1e-3                       # X^T X can be ill-conditioned at k = d
    p = t.baselines(b["x"], b["y"], 2)        # k < d: an interpolant, not w
    X = b["x"][:, :2].double()
    w = (torch.linalg.pinv(X) @ b["y"][:, :2].double()[..., None])[..., 0]
    assert torch.allclose(torch.einsum("bkd,bd->bk", X, w), b["y"][:, :2].double(), atol=1e-6)


def test_ridge_tends_to_least_squares():
    b = task(noise_std=0.5).batch(gen(), 256)
    gaps = []
    for lam in (1.0, 1e-2, 1e-4, 1e-8):
        p = task(noise_std=0.5, ridge_lambda=lam).baselines(b["x"], b["y"], 5)
        gaps.append((p["ridge"] - p["ols"]).abs().median().item())   # ~lambda; ill-conditioned prompts lag
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-6 and gaps[0] > 0.1
    assert task(noise_std=0.5).lam == 0.25 and task().lam == 1e-8 and task(ridge_lambda=0.1).lam == 0.1


def test_knn_averages_the_nearest_labels():
    t = task(dim=2, knn_k=2)
    x = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [0.0, 9.0], [0.5, 0.0]]])   # query: x_5
    y = torch.tensor([[1.0, 100.0, 3.0, 200.0, 0.0]])
    assert t.baselines(x, y, 4)["knn"].item() == pytest.approx(2.0)      # neighbours 0 and 2
    assert t.baselines(x, y, 1)["knn"].item() == pytest.approx(1.0)      # fewer than knn_k: all of them
    avg = t.baselines(x, y, 4)["avg"].item()                             # w = X^T Y / 4 = (1003/4, 450)
    assert avg == pytest.approx(0.5 * 1003 / 4)


def test_gd_is_one_step_from_zero():
    t = task(gd_lr=0.3)
    b = t.batch(gen(), 8)
    X, Y, q = b["x"][:, :3].double(), b["y"][:, :3].double(), b["x"][:, 3].double()
    w = torch.zeros(8, 4, dtype=torch.float64, requires_grad=True)
    loss = (0.5 * ((torch.einsum("bkd,bd->bk", X, w) - Y) ** 2).mean(1)).sum()
    (g,) = torch.autograd.grad(loss, w)
    expect = ((-0.3 * g) * q).sum(-1)
    assert torch.allclose(t.baselines(b["x"], b["y"], 3)["gd"], expect, atol=1e-10)
    assert task().gd_step(4) == pytest.approx(4 / 9) and task(noise_std=1.0).gd_step(4) == pytest.approx(0.4)


def test_predictor_errors_match_their_closed_forms():
    """Noiseless, x and w ~ N(0, I): ols (d-k)+/d, best one-step gd (d+1)/(d+k+1), averaging (d+1)/k."""
    t = task(eval_size=4096)
    c = t.curves(Zero(), gen())
    d = t.dim
    for j, k in enumerate(c["k"].long().tolist()):
        assert c["ols_mse"][j].item() == pytest.approx(max(d - k, 0) / d, abs=0.05)
        assert c["gd_mse"][j].item() == pytest.approx((d + 1) / (d + k + 1), abs=0.06)
        if k:
            assert c["avg_mse"][j].item() == pytest.approx((d + 1) / k, rel=0.1)
        assert c["mse"][j].item() == pytest.approx(1.0, abs=0.1)         # predicting 0
    past_d = c["k"] >= d
    assert c["ols_mse"][past_d].max() < 1e-10
    assert c["knn_mse"][past_d].min() > 0.3 and c["avg_mse"][past_d].min() > 0.3
    assert torch.all(c["gd_mse"][past_d] > 0.3)


# ---- metrics ----------------------------------------------------------------------------------------

def test_least_squares_oracle_scores_zero():
    t = task()
    m = t.evaluate(Oracle(), gen())
    assert list(m) == list(t.metrics) and all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert m["mse"] == pytest.approx(m["ols_mse"], abs=1e-5)
    assert m["spd_ols"] < 1e-8 and m["spd_ridge"] < 1e-4
    assert m["spd_gd"] > 0.1 and m["spd_knn"] > 0.1
    assert m["spd_ratio_ols_gd"] < 1e-6 and m["spd_ratio_ols_knn"] < 1e-6
    for k in (4, 8):
        mk = task(k=k).evaluate(Oracle(), gen())
        assert mk["mse"] < 1e-8 and mk["ols_mse"] < 1e-10 and mk["spd_ols"] < 1e-8


def test_gd_oracle_is_closest_to_gd():
    t = task()
    m = t.evaluate(Oracle(gd=t), gen())
    assert m["spd_gd"] < 1e-8 and m["mse"] == pytest.approx(m["gd_mse"], abs=1e-5)
    assert m["spd_ratio_ols_gd"] > 100


def test_with_noise_a_ridge_predictor_is_closer_to_ridge():
    """Least squares overfits the noise near k = d; a ridge-predicting model shows it in the ratio."""
    t = task(noise_std=0.5, k=4)

    class Ridge(torch.nn.Module):
        def forward(self, z):
            x, y = z[:, 0::2, 1:], z[:, 1::2, 0]
            out = torch.zeros(*z.shape[:2], 1)
            out[:, 8, 0] = t.baselines(x, y, 4)["ridge"].float()
            return out

    m = t.evaluate(Ridge(), gen())
    assert m["spd_ridge"] < 1e-8 and m["spd_ratio_ridge_ols"] < 1e-6
    assert m["ridge_mse"] < m["ols_mse"]                                  # ridge is the Bayes predictor


def test_eval_axis_k_reads_the_curve_on_the_same_prompts():
    t = task()
    c = t.curves(Oracle(), gen())
    for k in (0, 2, 8):
        m = task(k=k).evaluate(Oracle(), gen())
        for name in ("mse", "ols_mse", "knn_mse", "spd_gd"):
            assert m[name] == pytest.approx(c[name][k].item(), rel=1e-9, abs=1e-12)
    m0 = task(k=0).evaluate(Zero(), gen())
    assert len({m0[f"{b}_mse"] for b in BASELINES}) == 1                   # every predictor says 0
    assert math.isnan(m0["spd_ratio_ols_gd"])                              # 0 / 0: the engine stores None
    full = t.evaluate(Oracle(), gen())
    assert full["mse"] == pytest.approx(c["mse"].mean().item(), rel=1e-9)


@pytest.mark.parametrize("params, key", [
    ({"dim": 0}, "dim"),
    ({"n_points": 0}, "n_points"),
    ({"noise_std": -0.1}, "noise_std"),
    ({"eval_size": 0}, "eval_size"),
    ({"ridge_lambda": 0.0}, "ridge_lambda"),
    ({"knn_k": 0}, "knn_k"),
    ({"gd_lr": -1.0}, "gd_lr"),
    ({"k": 9}, "k"),                       # n_points = 2d + 1 = 9: k runs 0..8
    ({"k": -1}, "k"),
    ({"k": 5, "n_points": 5}, "k"),
    ({"dim": 2.5}, "dim"),
    ({"loss_per_dim": "yes"}, "loss_per_dim"),
    ({"n_point": 3}, "n_point"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        task(**params)
    assert e.value.key == key


# ---- the engine ---------------------------------------------------------------------------------------

def test_engine_trains_and_evaluates(tmp_path, monkeypatch):
    """Twenty steps of a tiny transformer through workflow.train and workflow.evaluate."""
    import modules.tasks
    from workflow.evaluate import evaluate
    from workflow.train import train

    monkeypatch.setitem(modules.tasks.TASKS, "icl_regression", "modules.tasks.icl_regression:ICLRegressionTask")
    cfg = {"task": {"name": "icl_regression", "dim": 3, "eval_size": 64},
           "model": {"arch": "transformer", "n_layer": 1, "n_head": 2, "d_model": 16, "pos": "learned"},
           "train": {"steps": 20, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and len(rec["history"]["loss"]) == 20
    assert all(0 < v < 10 for v in rec["history"]["loss"])
    metrics = list(ICLRegressionTask.metrics)
    points = evaluate(cfg, {"metrics": metrics, "sweep": {"task.k": [0, 3, 6]}}, tmp_path / "model.pt")
    assert [p["at"]["task.k"] for p in points] == [0, 3, 6]
    at0, at3, at6 = (p["metrics"] for p in points)
    assert at0["ols_mse"] == at0["knn_mse"] and at0["spd_ratio_ols_gd"] == 1.0   # the same 0 predictions
    assert at6["ols_mse"] < 1e-10 and at6["knn_mse"] > 0.05
    for m in (at3, at6):
        assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    noisy = evaluate(cfg, {"metrics": metrics, "sweep": {"task.noise_std": [0.0, 0.5]}}, tmp_path / "model.pt")
    assert noisy[1]["metrics"]["ols_mse"] > noisy[0]["metrics"]["ols_mse"]

"""The superposition task and the toy autoencoder, with the engine's optimizer."""
from __future__ import annotations

import pytest
import torch

from modules.config import ConfigError
from modules.models import arch_names, build_model, get_arch
from modules.optim import make_optimizer
from modules.tasks import build_task


def test_task_is_seeded_and_sparse():
    task = build_task("superposition", {"n_features": 20, "sparsity": 0.9})
    a = task.batch(torch.Generator().manual_seed(3), 4096)["x"]
    b = task.batch(torch.Generator().manual_seed(3), 4096)["x"]
    c = task.batch(torch.Generator().manual_seed(4), 4096)["x"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4096, 20)
    zero = (a == 0).float().mean().item()
    assert abs(zero - 0.9) < 0.01
    nz = a[a > 0]
    assert nz.max() <= 1 and abs(nz.mean().item() - 0.5) < 0.02   # U[0, 1]


def test_loss_is_importance_weighted():
    task = build_task("superposition", {"n_features": 3, "importance_decay": 0.5})

    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    x = torch.ones(2, 3)
    assert task.loss(Zero(), {"x": x}).item() == pytest.approx(1 + 0.5 + 0.25)


def test_model_forward_and_hidden_shapes():
    model = build_model("toy_autoencoder", {"hidden": 5}, {"n_features": 20})
    x = torch.rand(7, 20)
    out, hidden = model(x, return_hidden=True)
    assert out.shape == (7, 20) and len(hidden) == 1 and hidden[0].shape == (7, 1, 5)
    assert (out >= 0).all()                                   # ReLU output
    lin = build_model("toy_autoencoder", {"hidden": 5, "activation": "none"}, {"n_features": 20})
    assert torch.allclose(lin(x), x @ lin.W.T @ lin.W + lin.b)


@pytest.mark.parametrize("params,key", [
    ({"hidden": 0}, "hidden"),
    ({"hidden": 5, "activation": "gelu"}, "activation"),
    ({"hiden": 5}, "hiden"),
    ({"hidden": "5"}, "hidden"),
])
def test_bad_model_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_model("toy_autoencoder", params, {"n_features": 4})
    assert e.value.key == key


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(KeyError, match="toy_autoencoder"):
        get_arch("mamba3")
    assert "toy_autoencoder" in arch_names()


@pytest.mark.parametrize("name,torch_cls,kw", [
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.0}),
    ("adam", torch.optim.Adam, {"weight_decay": 0.01}),
    ("sgd", torch.optim.SGD, {"weight_decay": 0.01, "momentum": 0.9}),
])
def test_optimizer_matches_torch(name, torch_cls, kw):
    """Our Adam and SGD are torch's single-tensor updates, bit for bit, also with a parameter that
    gets no gradient."""
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3), torch.nn.LayerNorm(3),
                               torch.nn.Linear(3, 3))
    ref = torch.nn.Sequential(*(type(m)(*a) for m, a in zip(ours, [(7, 5), (), (5, 3), (3,), (3, 3)])))
    ref.load_state_dict(ours.state_dict())
    opt = make_optimizer(ours.parameters(), name, 0.01, kw["weight_decay"], kw.get("momentum", 0.0))
    ref_opt = torch_cls(ref.parameters(), lr=0.01, foreach=False, **kw)
    for step in range(20):
        x = torch.randn(16, 7)
        for m, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            (m[:4](x) ** 2).mean().backward()          # the last layer gets no gradient
            o.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_model_learns_superposition_quickly():
    """A few hundred steps already separate the ReLU model from the linear one at high sparsity."""
    from workflow.train import train

    def run(activation):
        cfg = {"task": {"name": "superposition", "n_features": 20, "sparsity": 0.99},
               "model": {"arch": "toy_autoencoder", "hidden": 5, "activation": activation},
               "train": {"steps": 600, "batch_size": 1024, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0,
                         "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": None,
                         "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
        import tempfile
        from pathlib import Path

        from workflow.evaluate import evaluate

        with tempfile.TemporaryDirectory() as d:
            rec = train(cfg, Path(d), log=lambda s: None)
            assert rec["status"] == "ok" and len(rec["history"]["loss"]) == 100
            return evaluate(cfg, {"metrics": ["features_represented"], "sweep": {}}, Path(d) / "model.pt")[0]["metrics"]

    assert run("relu")["features_represented"] > run("none")["features_represented"]


def test_nan_loss_is_recorded_as_diverged(tmp_path):
    from workflow.train import train

    cfg = {"task": {"name": "superposition", "n_features": 4},
           "model": {"arch": "toy_autoencoder", "hidden": 2},
           "train": {"steps": 50, "batch_size": 8, "lr": 1e30, "optimizer": "sgd", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": None,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "diverged" and 1 <= rec["diverged_at"] <= 50
    assert rec["converged"] is False

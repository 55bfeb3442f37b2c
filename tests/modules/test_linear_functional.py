"""Linear functionals with a memory (StableSSM's targets): seeded inputs, targets equal to the
causal convolution written as a loop, the kernels as the authors define them, the zero predictor at
the closed-form chance level, an exact oracle at 0, config errors that name the key, and a tiny run
through the engine."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.linear_functional import LinearFunctionalTask, memory_kernel


def task(**over) -> LinearFunctionalTask:
    return build_config(LinearFunctionalTask, {"seq_len": 20, "eval_size": 512, **over})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


class Oracle(torch.nn.Module):
    """The target's own convolution, written as a loop over the past."""

    def __init__(self, t: LinearFunctionalTask):
        super().__init__()
        self.t = t

    def forward(self, x):
        T = x.shape[1]
        rho = memory_kernel(self.t.memory, T, self.t.dt)
        out = torch.zeros(x.shape, dtype=torch.float64)
        for i in range(T):
            out[:, i, 0] = (x[:, : i + 1, 0].double().flip(1) * rho[: i + 1]).sum(1)
        return out.float()


def test_the_kernels_are_the_authors():
    t = torch.tensor([0.0, 1.0, 10.0, 100.0], dtype=torch.float64)
    assert torch.allclose(memory_kernel("exp", 101, 1.0)[t.long()], torch.exp(-t))
    assert torch.allclose(memory_kernel("pol", 101, 1.0)[t.long()], (1 + 0.1 * t) ** -1.1)
    assert memory_kernel("pol", 50, 0.5)[4].item() == pytest.approx((1 + 0.1 * 2.0) ** -1.1)


@pytest.mark.parametrize("memory", ["exp", "pol"])
def test_targets_are_the_causal_convolution(memory):
    t = task(memory=memory, dt=0.5)
    b = t.batch(gen(), 8)
    assert b["inputs"].shape == (8, 20, 1) and b["target"].shape == (8, 20, 1)
    torch.testing.assert_close(b["target"], Oracle(t)(b["inputs"]), rtol=1e-5, atol=1e-6)
    assert b["inputs"].std().item() == pytest.approx(0.5, rel=0.15)           # x = dt * N(0, 1)


def test_batches_are_seeded():
    a, b, c = task().batch(gen(1), 4), task().batch(gen(1), 4), task().batch(gen(2), 4)
    assert torch.equal(a["inputs"], b["inputs"]) and not torch.equal(a["inputs"], c["inputs"])


@pytest.mark.parametrize("memory", ["exp", "pol"])
def test_zero_predictor_is_at_chance_and_the_oracle_at_zero(memory):
    t = task(memory=memory, eval_size=4096)
    z = t.evaluate(Zero(), gen())
    ch = t.chance()
    assert z["mse"] == pytest.approx(ch["mse"], rel=0.05) and z["rel_mse"] == pytest.approx(1.0, rel=0.05)
    o = t.evaluate(Oracle(t), gen())
    assert o["mse"] < 1e-10 and o["rel_mse"] < 1e-9


def test_polynomial_memory_reaches_further_back():
    assert task(memory="pol", seq_len=100).target_power() > task(memory="exp", seq_len=100).target_power()
    exp, pol = memory_kernel("exp", 100, 1.0), memory_kernel("pol", 100, 1.0)
    assert pol[50] > 0.1 and exp[50] < 1e-20


@pytest.mark.parametrize("params,key", [
    ({"memory": "gauss"}, "memory"),
    ({"seq_len": 0}, "seq_len"),
    ({"dt": 0.0}, "dt"),
    ({"eval_size": 2.5}, "eval_size"),
    ({"seq_length": 5}, "seq_length"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        task(**params)
    assert e.value.key == key


def test_engine_trains_and_evaluates(tmp_path):
    """Forty steps of a one-layer S4D through workflow.train and workflow.evaluate, and a longer
    evaluation sequence."""
    from workflow.evaluate import evaluate
    from workflow.train import train

    cfg = {"task": {"name": "linear_functional", "memory": "pol", "seq_len": 32, "eval_size": 64},
           "model": {"arch": "s4d", "n_layer": 1, "d_model": 16, "d_state": 8},
           "train": {"steps": 40, "batch_size": 16, "lr": 3e-3}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    points = evaluate(cfg, {"metrics": ["mse", "rel_mse"], "sweep": {"task.seq_len": [32, 64]}}, tmp_path / "model.pt")
    assert [p["at"]["task.seq_len"] for p in points] == [32, 64]
    assert all(math.isfinite(v) for p in points for v in p["metrics"].values())
    assert points[0]["chance"] == {"mse": pytest.approx(task(memory="pol", seq_len=32).target_power()), "rel_mse": 1.0}

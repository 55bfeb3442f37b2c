"""The adding problem (Hochreiter & Schmidhuber 1997; Orvieto et al. 2023, arXiv 2303.06349, use it
in catalogue/lru.yaml): seeded batches with exactly two markers, one in each half; targets that
are the sum of the marked values (a hand-computed example, and an oracle that reads x alone is
exact); a constant predictor at the 1/6 baseline; the loss reads only the last position; config
errors name the key; a small LRU overfits one batch."""
from __future__ import annotations

import time

import pytest
import torch

from modules.config import ConfigError
from modules.models import build_model
from modules.tasks import build_task
from modules.tasks.adding import CONSTANT_MSE, AddingTask


def task(**over) -> AddingTask:
    return build_task("adding", {"seq_len": 20, "eval_size": 512, **over})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Oracle(torch.nn.Module):
    """The running sum of value * marker: at the last position, exactly the target."""

    def forward(self, x):
        return torch.cumsum(x[..., 0] * x[..., 1], dim=1)[..., None]                 # (B, T, 1)


class Constant(torch.nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return torch.full((*x.shape[:2], 1), self.c)


def test_spec_shapes_and_markers_one_in_each_half():
    t = task(seq_len=21)
    assert t.spec() == {"d_input": 2, "d_output": 1}
    b = t.batch(gen(), 300)
    x, y = b["x"], b["y"]
    assert x.shape == (300, 21, 2) and y.shape == (300,) and x.dtype == torch.float32
    v, m = x[..., 0], x[..., 1]
    assert ((v >= 0) & (v < 1)).all()
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert (m.sum(1) == 2).all()                                                      # exactly two
    assert (m[:, :10].sum(1) == 1).all() and (m[:, 10:].sum(1) == 1).all()          # T//2 = 10
    # every position of each half is used
    assert (m[:, :10].sum(0) > 0).all() and (m[:, 10:].sum(0) > 0).all()
    torch.testing.assert_close(y, (v * m).sum(1))


def test_hand_computed_example():
    """The first sequence of seed 0 at T = 6, recomputed from torch's own draws."""
    t = task(seq_len=6)
    b = t.batch(gen(0), 1)
    g = gen(0)
    values = torch.rand(1, 6, generator=g)
    i = torch.randint(0, 3, (1,), generator=g).item()
    j = torch.randint(3, 6, (1,), generator=g).item()
    assert torch.equal(b["x"][0, :, 0], values[0])
    assert b["x"][0, :, 1].nonzero().flatten().tolist() == [i, j]
    assert b["y"].item() == pytest.approx(values[0, i].item() + values[0, j].item(), abs=1e-6)


def test_markers_anywhere_are_two_distinct_positions():
    b = task(seq_len=5, markers="anywhere").batch(gen(1), 2000)
    m = b["x"][..., 1]
    assert (m.sum(1) == 2).all()
    # both markers may fall in the same half (impossible with `halves`)
    assert ((m[:, :2].sum(1) == 2) | (m[:, 2:].sum(1) == 2)).any()
    assert (m.sum(0) > 300).all()                                                     # all positions used


def test_batches_are_seeded():
    t = task()
    a, b, c = t.batch(gen(3), 8), t.batch(gen(3), 8), t.batch(gen(4), 8)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["x"], c["x"])


def test_oracle_is_exact_and_a_constant_is_at_the_baseline():
    t = task(seq_len=50, eval_size=20000)
    assert t.evaluate(Oracle(), gen()) == {"mse": pytest.approx(0.0, abs=1e-10), "accuracy": 1.0}
    assert CONSTANT_MSE == pytest.approx(0.1667, abs=1e-4)
    best = t.evaluate(Constant(1.0), gen())
    assert best["mse"] == pytest.approx(CONSTANT_MSE, rel=0.03)
    assert best["accuracy"] < 0.1
    assert t.evaluate(Constant(0.5), gen())["mse"] == pytest.approx(CONSTANT_MSE + 0.25, rel=0.03)


def test_loss_reads_only_the_last_position():
    t = task()
    b = t.batch(gen(), 16)

    class Late(Oracle):
        def forward(self, x):
            out = super().forward(x)
            out[:, :-1] = 100.0                                                       # garbage before the end
            return out

    assert t.loss(Late(), b).item() == pytest.approx(0.0, abs=1e-10)
    assert t.loss(Constant(1.0), b).item() == pytest.approx(((b["y"] - 1) ** 2).mean().item())


def test_seq_len_and_markers_are_eval_axes():
    assert AddingTask.eval_axes == ("seq_len", "markers")
    assert task(seq_len=33).batch(gen(), 2)["x"].shape == (2, 33, 2)


@pytest.mark.parametrize("params,key", [
    ({"seq_len": 1}, "seq_len"),
    ({"markers": "first_ten"}, "markers"),
    ({"eval_size": 0}, "eval_size"),
    ({"length": 10}, "length"),
    ({"seq_len": 10.5}, "seq_len"),
])
def test_bad_config_names_the_key(params, key):
    with pytest.raises(ConfigError) as e:
        build_task("adding", params)
    assert e.value.key == key


def test_a_small_lru_overfits_one_batch():
    t = task(seq_len=12)
    torch.manual_seed(0)
    model = build_model("lru", {"n_layer": 2, "d_model": 32, "d_state": 16, "r_min": 0.5}, t.spec())
    b = t.batch(gen(), 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t0 = time.perf_counter()
    losses = []
    for _ in range(300):
        loss = t.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < 1e-3:
            break
    assert time.perf_counter() - t0 < 30
    assert losses[-1] < 1e-3, (len(losses), losses[0], losses[-1])

"""The synthetic sequence tasks: seeded, in-vocabulary, scored where the answer is determined
(an oracle that reads only x is perfect; a constant guess is at chance), and drivable by the
engine's train and evaluate steps."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.tasks import build_task, task_names
from modules.tasks.sequence import IGNORE

# tiny settings per task, and a value for each of its eval axes
TASKS = {
    "copy": ({"n_symbols": 6, "min_len": 2, "max_len": 6, "eval_size": 256}, {"length": 11}),
    "mqar": ({"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4, "eval_size": 256},
             {"seq_len": 48, "num_kv_pairs": 6, "query_gap": 5}),
    "selective_copy": ({"n_symbols": 8, "num_tokens": 4, "seq_len": 24, "eval_size": 256}, {"seq_len": 40}),
    "induction": ({"n_symbols": 8, "seq_len": 24, "eval_size": 512}, {"seq_len": 64}),
    "parity": ({"min_len": 2, "max_len": 10, "eval_size": 512}, {"length": 25}),
    "flip_flop": ({"seq_len": 32, "p_ignore": 0.6, "eval_size": 512}, {"p_ignore": 0.1, "seq_len": 64}),
    "dyck": ({"k": 3, "seq_len": 20, "max_depth": 4, "eval_size": 256}, {"seq_len": 40, "max_depth": 8}),
}




def task(name, **over):
    return build_task(name, {**TASKS[name][0], **over})


# ---- oracles: the answer at every position, computed from x alone ------------------------------

def solve(name, t, x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(x)
    for b, row in enumerate(x.tolist()):
        pred = out[b]
        if name == "copy":
            s = row.index(t.SEP)
            string = row[1:s]
            for j, c in enumerate(string):
                pred[s + j] = c
            pred[s + len(string)] = t.EOS
        elif name == "mqar":
            kv = {row[2 * i]: row[2 * i + 1] for i in range(t.num_kv_pairs)}
            for i, c in enumerate(row):
                pred[i] = kv.get(c, 0)
        elif name == "selective_copy":
            region = t.seq_len - t.num_tokens
            data = [c for c in row[:region] if c != t.BLANK]
            pred[region:] = torch.tensor(data)
        elif name == "induction":
            pred[-1] = row[row.index(t.TRIGGER) + 1]
        elif name == "parity":
            p = 0
            for i, c in enumerate(row):
                p ^= c if c in (0, 1) else 0
                pred[i] = p
        elif name == "flip_flop":
            last = 0
            for i, c in enumerate(row):
                if c == t.W:
                    last = row[i + 1]
                if c == t.R:
                    pred[i] = last
        elif name == "dyck":
            stack = []
            for i, c in enumerate(row):
                if c < t.k:
                    stack.append(c)
                elif c < 2 * t.k:
                    stack.pop()
                pred[i] = t.k + stack[-1] if stack else 0
    return out


class Oracle(torch.nn.Module):
    """Logits that put the right answer (`solver(name, task, x)`) far ahead of every other token."""

    def __init__(self, name, t, solver=None):
        super().__init__()
        self.name, self.t, self.V = name, t, t.spec()["vocab_size"]
        self.solver = solver or solve

    def forward(self, x):
        return 20.0 * torch.nn.functional.one_hot(self.solver(self.name, self.t, x), self.V).float()


class Constant(torch.nn.Module):
    def __init__(self, token, V):
        super().__init__()
        self.token, self.V = token, V

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full_like(x, self.token), self.V).float()


# ---- tests ------------------------------------------------------------------------------------

def test_every_task_is_registered():
    assert set(TASKS) <= set(task_names())


@pytest.mark.parametrize("name", TASKS)
def test_seeded_and_in_vocabulary(name):
    t = task(name)
    a = t.batch(torch.Generator().manual_seed(5), 16)
    b = t.batch(torch.Generator().manual_seed(5), 16)
    c = t.batch(torch.Generator().manual_seed(6), 16)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])
    V = t.spec()["vocab_size"]
    x, y = a["x"], a["y"]
    assert x.dtype == y.dtype == torch.long and x.shape == y.shape and x.shape[0] == 16
    assert 0 <= x.min() and x.max() < V
    scored = y != IGNORE
    assert scored.any(1).all()                                   # every sequence has something to score
    assert (y[scored] >= 0).all() and (y[scored] < V).all()
    assert t.metrics == ("loss", "accuracy", "sequence_accuracy")


@pytest.mark.parametrize("name", TASKS)
def test_oracle_is_perfect(name):
    """The targets are exactly what x determines, at exactly the scored positions."""
    t = task(name)
    m = t.evaluate(Oracle(name, t), torch.Generator().manual_seed(0))
    assert m["accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0 and m["loss"] < 1e-6


@pytest.mark.parametrize("name,token,chance,tol", [
    ("parity", 0, 0.5, 0.07),
    ("flip_flop", 1, 0.5, 0.05),
    ("induction", 3, 1 / 8, 0.05),
    ("selective_copy", 2, 1 / 8, 0.04),
    ("dyck", 4, 1 / 3, 0.05),                  # close bracket type 1 of 3
    ("mqar", 40, 1 / 32, 0.03),                # one of 32 values
    ("copy", 0, 1 / 6 * 4 / 5, 0.05),          # a symbol, wrong at EOS (L+1 scored positions, L ~ 4)
])
def test_constant_guess_is_at_chance(name, token, chance, tol):
    t = task(name)
    m = t.evaluate(Constant(token, t.spec()["vocab_size"]), torch.Generator().manual_seed(0))
    assert abs(m["accuracy"] - chance) < tol, m
    assert m["sequence_accuracy"] <= m["accuracy"]


def test_scored_positions():
    gen = torch.Generator().manual_seed(1)
    t = task("copy")
    b = t.make(gen, torch.tensor([2, 5]))
    assert b["x"].shape == (2, 12)                               # 2 * 5 + 2
    assert (b["y"] != IGNORE).sum(1).tolist() == [3, 6]          # L copied symbols and EOS
    assert b["x"][0, :7].tolist() == [t.BOS, *b["x"][0, 1:3].tolist(), t.SEP, *b["x"][0, 1:3].tolist(), t.EOS]
    assert b["x"][0, 7:].eq(t.PAD).all()
    t = task("mqar")
    b = t.batch(gen, 64)
    assert ((b["y"] != IGNORE).sum(1) == 4).all()
    keys = b["x"][:, 0:8:2]
    assert (keys < 32).all() and (keys > 0).all() and (b["x"][:, 1:8:2] >= 32).all()
    assert all(len(set(r)) == 4 for r in keys.tolist())
    assert (b["y"][:, :8] == IGNORE).all()                       # nothing scored inside the pairs
    t = task("selective_copy")
    b = t.batch(gen, 64)
    assert ((b["y"] != IGNORE).sum(1) == 4).all() and (b["y"][:, -4:] != IGNORE).all()
    assert ((b["x"][:, :20] != t.BLANK).sum(1) == 4).all()
    t = task("induction")
    b = t.batch(gen, 64)
    assert ((b["x"] == t.TRIGGER).sum(1) == 2).all() and (b["y"][:, :-1] == IGNORE).all()
    b = task("parity").make(gen, torch.tensor([3, 4]))
    assert (b["y"] != IGNORE).sum().item() == 2
    b = task("parity", scored="all").make(gen, torch.tensor([3, 4]))
    assert (b["y"] != IGNORE).sum(1).tolist() == [4, 5]
    t = task("flip_flop")
    b = t.batch(gen, 64)
    assert b["x"].shape == (64, 31) and (b["x"][:, 0] == t.W).all() and (b["x"][:, -1] == t.R).all()
    assert torch.equal(b["y"] != IGNORE, b["x"] == t.R)
    assert task("flip_flop", loss_on="all").batch(gen, 4)["y_loss"].ne(IGNORE).all()
    t = task("dyck")
    b = t.batch(gen, 64)
    assert ((b["y"] != IGNORE).sum(1) == 10).all()               # half the brackets close
    depth = torch.where(b["x"][:, 1:] < t.k, 1, -1).cumsum(1)
    assert depth.min() >= 0 and depth.max() <= 4 and (b["y"][:, -1] != IGNORE).all()


@pytest.mark.parametrize("name", TASKS)
def test_eval_axes_build_and_evaluate(name):
    axes = TASKS[name][1]
    t = task(name)
    assert set(axes) == set(t.eval_axes)
    for axis, value in axes.items():
        moved = task(name, **{axis: value})
        b = moved.eval_batch(torch.Generator().manual_seed(0), 8)
        assert b["x"].max() < t.spec()["vocab_size"]           # the trained model's vocabulary still fits
        m = moved.evaluate(Oracle(name, moved), torch.Generator().manual_seed(0))
        assert m["accuracy"] == 1.0, (axis, value)
    long = task("copy", length=11).eval_batch(torch.Generator().manual_seed(0), 4)
    assert long["x"].shape == (4, 24) and ((long["y"] != IGNORE).sum(1) == 12).all()


@pytest.mark.parametrize("name,params,key", [
    ("copy", {"min_len": 5, "max_len": 3}, "min_len"),
    ("copy", {"length": 0}, "length"),
    ("mqar", {"seq_len": 31}, "seq_len"),
    ("mqar", {"num_kv_pairs": 9, "seq_len": 32}, "num_kv_pairs"),
    ("selective_copy", {"num_tokens": 16, "seq_len": 20}, "seq_len"),
    ("parity", {"scored": "first"}, "scored"),
    ("flip_flop", {"p_ignore": 1.0}, "p_ignore"),
    ("dyck", {"seq_len": 7}, "seq_len"),
    ("dyck", {"bracket_types": 2}, "bracket_types"),
])
def test_bad_task_config_names_the_key(name, params, key):
    with pytest.raises(ConfigError) as e:
        build_task(name, params)
    assert e.value.key == key


@pytest.mark.parametrize("name", TASKS)
def test_engine_trains_and_evaluates_each_task(name, tmp_path):
    """Twenty steps of a tiny transformer through workflow.train and workflow.evaluate."""
    from workflow.evaluate import evaluate
    from workflow.train import train

    base, axes = TASKS[name]
    axis, value = next(iter(axes.items()))
    cfg = {"task": {"name": name, **base, "eval_size": 64},
           "model": {"arch": "transformer", "n_layer": 1, "n_head": 2, "d_model": 16, "pos": "rope"},
           "train": {"steps": 20, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and len(rec["history"]["loss"]) == 20
    assert rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    metrics = ["loss", "accuracy", "sequence_accuracy"]
    trained_at = base[axis] if axis in base else base["max_len"]    # `length` defaults to training lengths
    points = evaluate(cfg, {"metrics": metrics, "sweep": {f"task.{axis}": [trained_at, value]}},
                      tmp_path / "model.pt")
    assert [p["at"][f"task.{axis}"] for p in points] == [trained_at, value]
    for p in points:
        m = p["metrics"]
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["sequence_accuracy"] <= 1 and math.isfinite(m["loss"])

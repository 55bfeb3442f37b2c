"""The tasks of Zhou et al. 2024 (the RASP-L conjecture): count, mode, addition (with and without
index hints, forward or reversed answer) and copy with unique tokens. Each is seeded, scored where
the answer is determined (an oracle reading only x is perfect, a constant guess is near chance),
moves its lengths with its evaluation axis, and names the key of a bad config."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.tasks import build_task, task_names
from modules.tasks.sequence import IGNORE
from .test_seq_tasks import Constant
from .test_seq_tasks import Oracle as SeqOracle

# name -> (task, params, the evaluation length beyond the trained ones)
VARIANTS = {
    "count": ("count", {"n_numbers": 30, "min_len": 1, "max_len": 8, "eval_size": 256}, 14),
    "mode": ("mode", {"n_symbols": 5, "min_len": 1, "max_len": 9, "eval_size": 512}, 15),
    "addition": ("addition", {"min_len": 1, "max_len": 5, "eval_size": 256}, 9),
    "addition_reversed": ("addition", {"min_len": 1, "max_len": 5, "reverse_output": True, "eval_size": 256}, 9),
    "addition_hints": ("addition", {"min_len": 1, "max_len": 5, "index_hints": True, "n_hints": 12,
                                    "eval_size": 256}, 9),
    "addition_hints_reversed": ("addition", {"min_len": 1, "max_len": 5, "index_hints": True, "n_hints": 12,
                                             "reverse_output": True, "hint_offset": "zero", "eval_size": 256}, 9),
    "copy_unique": ("copy", {"n_symbols": 12, "min_len": 2, "max_len": 6, "unique": True, "eval_size": 256}, 10),
}


def task(variant, **over):
    name, params, _ = VARIANTS[variant]
    return build_task(name, {**params, **over})


def long_task(variant):
    return task(variant, length=VARIANTS[variant][2])


# ---- oracles: the next token of the right answer, computed from the prompt in x alone ------------

def addition_answer(t, row: list[int]) -> list[int]:
    """The answer's tokens (hints and digits, then EOS) that follow '=' in `row`."""
    plus, eq = row.index(t.PLUS), row.index(t.EQ)
    a_tok, b_tok = row[1:plus], row[plus + 1:eq]
    hints = a_tok[0::2] if t.index_hints else None
    a = [d for d in a_tok if d < 10]
    b = [d for d in b_tok if d < 10]
    W = len(a)
    digits = [int(ch) for ch in str(int("".join(map(str, a))) + int("".join(map(str, b)))).zfill(W)]
    places = list(range(W))[::-1] if t.reverse_output else list(range(W))
    out = []
    for i in places:
        out += [hints[i], digits[i]] if t.index_hints else [digits[i]]
    return out + [t.EOS]


def solve(name, t, x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(x)
    for r, row in enumerate(x.tolist()):
        pred = out[r]
        if name == "count":
            a, b = row[1], row[2]
            pred[2] = a
            for i in range(3, len(row)):
                if row[i] >= t.n_numbers:          # EOS or PAD: past the answer
                    break
                pred[i] = t.EOS if row[i] == b else row[i] + 1
        elif name == "mode":
            sep = row.index(t.SEP)
            counts = torch.bincount(torch.tensor(row[1:sep]), minlength=t.n_symbols)
            pred[sep] = int(counts.argmax())
        elif name == "addition":
            eq = row.index(t.EQ)
            answer = addition_answer(t, row)
            end = min(len(row), eq + len(answer))
            pred[eq:end] = torch.tensor(answer[:end - eq])
        elif name == "copy":
            sep = row.index(t.SEP)
            string = row[1:sep]
            for j, c in enumerate(string):
                pred[sep + j] = c
            pred[sep + len(string)] = t.EOS
    return out


def Oracle(name, t):
    return SeqOracle(name, t, solve)


def answer_lengths(b) -> list[int]:
    return (b["y"] != IGNORE).sum(1).tolist()


# ---- every variant --------------------------------------------------------------------------------

def test_registered():
    assert {"count", "mode", "addition", "copy"} <= set(task_names())


@pytest.mark.parametrize("variant", VARIANTS)
def test_seeded_and_in_vocabulary(variant):
    t = task(variant)
    a = t.batch(torch.Generator().manual_seed(5), 32)
    b = t.batch(torch.Generator().manual_seed(5), 32)
    c = t.batch(torch.Generator().manual_seed(6), 32)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])
    V = t.spec()["vocab_size"]
    x, y = a["x"], a["y"]
    assert x.dtype == y.dtype == torch.long and x.shape == y.shape and x.shape[0] == 32
    assert 0 <= x.min() and x.max() < V
    scored = y != IGNORE
    assert scored.any(1).all()
    assert (y[scored] >= 0).all() and (y[scored] < V).all()
    assert t.metrics == ("loss", "accuracy", "sequence_accuracy") and t.eval_axes == ("length",)


@pytest.mark.parametrize("variant", VARIANTS)
def test_oracle_is_perfect_at_training_and_longer_lengths(variant):
    """The targets are exactly what the prompt determines, at exactly the scored positions."""
    name = VARIANTS[variant][0]
    for t in (task(variant), long_task(variant)):
        m = t.evaluate(Oracle(name, t), torch.Generator().manual_seed(0))
        assert m["accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0 and m["loss"] < 1e-6, (variant, m)


@pytest.mark.parametrize("variant,token,expected,tol", [
    ("count", "EOS", 1 / 5.5, 0.04),             # the best constant: EOS, 1 of L + 1 scored (L ~ 4.5)
    ("mode", 2, 1 / 5, 0.05),                    # the mode is uniform over the symbols
    ("addition", 0, 0.21, 0.04),                 # a digit; 0 more often at the carry place (~0.55)
    ("addition_reversed", 0, 0.21, 0.04),
    ("addition_hints", 0, 0.21, 0.04),
    ("copy_unique", "EOS", 1 / 5, 0.04),         # EOS, 1 of L + 1 scored (L ~ 4); a symbol: 1/12 * 4/5
])
def test_best_constant_is_near_chance(variant, token, expected, tol):
    """chance() (the input-blind position-majority predictor) is near the best constant guess."""
    t = task(variant)
    token = t.EOS if token == "EOS" else token
    m = t.evaluate(Constant(token, t.spec()["vocab_size"]), torch.Generator().manual_seed(0))
    chance = t.chance()
    assert abs(m["accuracy"] - expected) < tol, m
    assert m["accuracy"] <= chance["accuracy"] + 0.02 and chance["accuracy"] - m["accuracy"] < 0.07, (m, chance)
    assert m["sequence_accuracy"] <= chance["sequence_accuracy"] + 0.02 and chance["sequence_accuracy"] < 0.3
    assert chance["sequence_accuracy"] <= chance["accuracy"] + 1e-9 and math.isfinite(chance["loss"])


def lengths(name, t, b) -> list[int]:
    """Each sequence's length in the task's own unit: the count L, the string length, the digits n."""
    if name == "mode":
        return [row.index(t.SEP) - 1 for row in b["x"].tolist()]
    return [k - 1 for k in answer_lengths(b)]      # count: L numbers + EOS; addition: n + 1 digits; copy: L + EOS


@pytest.mark.parametrize("variant", VARIANTS)
def test_eval_length_sets_the_length(variant):
    name, params, L = VARIANTS[variant]
    t, long = task(variant), long_task(variant)
    gen = torch.Generator().manual_seed(0)
    trained = t.eval_batch(gen, 256)
    moved = long.eval_batch(gen, 256)
    assert moved["x"].shape[1] > trained["x"].shape[1]
    assert set(lengths(name, t, trained)) == set(range(params["min_len"], params["max_len"] + 1))
    assert set(lengths(name, long, moved)) == {L}                      # one length, beyond the trained ones
    assert moved["x"].max() < t.spec()["vocab_size"]                  # the trained vocabulary still fits


@pytest.mark.parametrize("name,params,key", [
    ("count", {"min_len": 5, "max_len": 3}, "min_len"),
    ("count", {"n_numbers": 10, "max_len": 12}, "max_len"),
    ("count", {"n_numbers": 20, "max_len": 8, "length": 21}, "length"),
    ("count", {"n_numbers": 0}, "n_numbers"),
    ("mode", {"n_symbols": 1}, "n_symbols"),
    ("mode", {"length": 0}, "length"),
    ("mode", {"min_len": 0}, "min_len"),
    ("addition", {"min_len": 4, "max_len": 2}, "min_len"),
    ("addition", {"length": 0}, "length"),
    ("addition", {"index_hints": True, "max_len": 20, "n_hints": 20}, "n_hints"),
    ("addition", {"index_hints": True, "max_len": 10, "n_hints": 20, "length": 20}, "length"),
    ("addition", {"index_hints": True, "hint_offset": "last"}, "hint_offset"),
    ("copy", {"unique": True, "n_symbols": 5, "max_len": 6}, "n_symbols"),
    ("copy", {"unique": True, "n_symbols": 8, "max_len": 6, "length": 9}, "length"),
])
def test_bad_config_names_the_key(name, params, key):
    with pytest.raises(ConfigError) as e:
        build_task(name, params)
    assert e.value.key == key


# ---- per task -------------------------------------------------------------------------------------

def test_count_layout():
    t = task("count")
    b = t.make(torch.Generator().manual_seed(1), torch.tensor([1, 4]))
    x, y = b["x"].tolist(), b["y"].tolist()
    a = x[1][1]
    assert x[1] == [t.BOS, a, a + 3, a, a + 1, a + 2, a + 3]      # BOS a b, then a .. b (no separator)
    assert y[1] == [IGNORE, IGNORE, a, a + 1, a + 2, a + 3, t.EOS]
    assert x[0][:4] == [t.BOS, x[0][1], x[0][1], x[0][1]] and x[0][4:] == [t.EOS, t.PAD, t.PAD]
    starts = t.eval_batch(torch.Generator().manual_seed(2), 4000)["x"][:, 1]
    assert starts.min() == 0 and starts.max() == t.n_numbers - 1      # every number can start a count


def test_mode_has_a_unique_mode():
    t = task("mode")
    b = t.batch(torch.Generator().manual_seed(3), 500)
    for row, target in zip(b["x"].tolist(), b["y"].tolist()):
        sep = row.index(t.SEP)
        counts = torch.bincount(torch.tensor(row[1:sep]), minlength=t.n_symbols).sort(descending=True).values
        assert counts[0] > counts[1]                                    # no tie
        assert [i for i, v in enumerate(target) if v != IGNORE] == [sep]   # the answer only, at SEP
        assert target[sep] == int(torch.bincount(torch.tensor(row[1:sep])).argmax())
    two = t.make(torch.Generator().manual_seed(4), torch.full((50,), 2))["x"]
    assert (two[:, 1] == two[:, 2]).all()                               # length 2: unique only if equal


def test_addition_layout_with_and_without_hints():
    gen = torch.Generator().manual_seed(5)
    plain = task("addition")
    b = plain.make(gen, torch.tensor([3]))
    x = b["x"][0].tolist()
    assert len(x) == 4 + 3 * 4 - 1 and x[0] == plain.BOS and x[5] == plain.PLUS and x[10] == plain.EQ
    assert x[1] == 0 and x[6] == 0                                       # W = n + 1 places, the top one 0
    assert all(v < 10 for v in x[1:5] + x[6:10] + x[11:15])              # no hint anywhere
    a, c = int("".join(map(str, x[1:5]))), int("".join(map(str, x[6:10])))
    assert x[11:15] == [int(ch) for ch in str(a + c).zfill(4)]
    assert [v for v in b["y"][0].tolist() if v != IGNORE] == x[11:15]   # only the answer digits are scored

    hints = task("addition_hints", hint_offset="zero")
    b = hints.make(gen, torch.tensor([3]))
    x = b["x"][0].tolist()
    H = [hints.HINT0 + i for i in range(4)]
    assert x[1:9:2] == H and x[10:18:2] == H and x[19:27:2] == H       # h_i before every digit, in all three
    assert x[9] == hints.PLUS and x[18] == hints.EQ
    assert all(v < 10 for v in x[2:9:2] + x[11:18:2] + x[20:27:2])
    scored = [i for i, v in enumerate(b["y"][0].tolist()) if v != IGNORE]
    assert scored == [19, 21, 23, 25]                                    # at each answer hint: its digit
    assert plain.spec()["vocab_size"] == 15 and hints.spec()["vocab_size"] == 15 + 12

    rev = task("addition_hints_reversed")
    b = rev.make(gen, torch.tensor([3]))
    x = b["x"][0].tolist()
    assert x[19:27:2] == H[::-1]                                         # the answer from the units up
    a = int("".join(map(str, x[2:9:2])))
    c = int("".join(map(str, x[11:18:2])))
    assert x[20:27:2] == [int(ch) for ch in str(a + c).zfill(4)][::-1]


def test_addition_hint_offsets():
    t = task("addition_hints")
    b = t.make(torch.Generator().manual_seed(6), torch.full((3000,), 2))
    first = b["x"][:, 1] - t.HINT0
    assert first.min() == 0 and first.max() == 12 - 3                    # uniform in [0, n_hints - W]
    assert (b["x"][:, 3] == b["x"][:, 1] + 1).all()                      # consecutive hints
    zero = task("addition_hints", hint_offset="zero").batch(torch.Generator().manual_seed(6), 100)
    assert (zero["x"][:, 1] == t.HINT0).all()


COPY_BEFORE = {   # CopyTask(n_symbols=6, min_len=2, max_len=5) before `unique` existed
    "batch": ([[6, 3, 4, 0, 0, 7, 3, 4, 0, 0], [6, 5, 1, 7, 5, 1, 8, 9, 9, 9], [6, 3, 5, 5, 7, 3, 5, 5, 8, 9]],
              [[-100, -100, -100, -100, -100, 3, 4, 0, 0, 8], [-100, -100, -100, 5, 1, 8, -100, -100, -100, -100],
               [-100, -100, -100, -100, 3, 5, 5, 8, -100, -100]]),
    "eval": ([[6, 4, 0, 1, 5, 7, 4, 0, 1, 5], [6, 3, 2, 5, 4, 7, 3, 2, 5, 4]],
             [[-100, -100, -100, -100, -100, 4, 0, 1, 5, 8], [-100, -100, -100, -100, -100, 3, 2, 5, 4, 8]]),
}


def test_copy_default_is_unchanged_bit_for_bit():
    params = {"n_symbols": 6, "min_len": 2, "max_len": 5}
    for t in (build_task("copy", params), build_task("copy", {**params, "unique": False})):
        b = t.batch(torch.Generator().manual_seed(3), 3)
        assert b["x"].tolist() == COPY_BEFORE["batch"][0] and b["y"].tolist() == COPY_BEFORE["batch"][1]
    b = build_task("copy", {**params, "length": 4}).eval_batch(torch.Generator().manual_seed(4), 2)
    assert b["x"].tolist() == COPY_BEFORE["eval"][0] and b["y"].tolist() == COPY_BEFORE["eval"][1]


def test_copy_unique_has_no_repeats():
    t = task("copy_unique")
    for b in (t.batch(torch.Generator().manual_seed(7), 400), long_task("copy_unique").eval_batch(
            torch.Generator().manual_seed(7), 400)):
        for row in b["x"].tolist():
            string = row[1:row.index(t.SEP)]
            assert len(set(string)) == len(string) and all(0 <= s < t.n_symbols for s in string)
    full = task("copy_unique", n_symbols=6, max_len=6, length=6).eval_batch(torch.Generator().manual_seed(8), 50)
    assert all(sorted(r[1:7]) == list(range(6)) for r in full["x"].tolist())   # n_symbols == L: permutations
    prompts, _ = build_task("copy_generation", {"n_symbols": 12, "max_len": 6, "length": 10, "unique": True}
                                  ).prompt(torch.Generator().manual_seed(9), 50)   # its decoding prompts too
    assert prompts.shape == (50, 12) and all(len(set(r[1:-1])) == 10 for r in prompts.tolist())


@pytest.mark.parametrize("variant", ["count", "mode", "addition_hints"])
def test_engine_trains_and_evaluates(variant, tmp_path):
    """Twenty steps of a tiny transformer through workflow.train and workflow.evaluate."""
    from workflow.evaluate import evaluate
    from workflow.train import train

    name, params, L = VARIANTS[variant]
    cfg = {"task": {"name": name, **params, "eval_size": 64},
           "model": {"arch": "transformer", "n_layer": 1, "n_head": 2, "d_model": 16, "pos": "rope"},
           "train": {"steps": 20, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and len(rec["history"]["loss"]) == 20
    assert rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    points = evaluate(cfg, {"metrics": ["loss", "accuracy", "sequence_accuracy"],
                            "sweep": {"task.length": [params["max_len"], L]}}, tmp_path / "model.pt")
    assert [p["at"]["task.length"] for p in points] == [params["max_len"], L]
    for p in points:
        m = p["metrics"]
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["sequence_accuracy"] <= 1 and math.isfinite(m["loss"])

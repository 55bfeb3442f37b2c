"""The continual embedded Reber grammar: strings follow the grammar, the stream is seeded, an
oracle that tracks the grammar's state from x alone is perfect, a model blind to the recalled
branch symbol is not, and the engine trains and evaluates it."""
from __future__ import annotations

import math

import pytest
import torch

from modules.config import ConfigError
from modules.tasks import build_task, task_names
from modules.tasks.reber import _LEGAL, _NEXT, _SYM, SYMBOLS

REBER = {0: {"B": 1}, 1: {"T": 2, "P": 3}, 2: {"S": 2, "X": 4}, 3: {"T": 3, "V": 5}, 4: {"X": 3, "S": 6},
         5: {"P": 4, "V": 6}, 6: {"E": None}}


def parse(text: str) -> list[str]:
    """Split a stream into embedded strings, checking each against the grammar written out here
    (independently of the task's state machine); the last one may be cut off."""
    strings, i = [], 0
    while i < len(text):
        start = i
        assert text[i] == "B", (text, i)
        if i + 1 >= len(text):
            break
        branch = text[i + 1]
        assert branch in "TP"
        i += 2
        node = 0
        while i < len(text) and node is not None:
            assert text[i] in REBER[node], (text, i, node)
            node = REBER[node][text[i]]
            i += 1
        if node is not None or i + 2 > len(text):
            break
        assert text[i] == branch and text[i + 1] == "E", (text, i)
        i += 2
        strings.append(text[start:i])
    return strings


def text_of(b, row=0) -> str:
    return "".join(SYMBOLS[s] for s in torch.cat([b["x"][row, :1], b["y"][row]]).tolist())


class Oracle(torch.nn.Module):
    """Runs the grammar over x and puts its logits on the legal next symbols. `blind` forgets which
    branch symbol opened the string, so it guesses T at the recall position."""

    def __init__(self, blind: bool = False):
        super().__init__()
        self.blind = blind

    def forward(self, x):
        B, T = x.shape
        out = torch.zeros(B, T, len(SYMBOLS))
        for b in range(B):
            state = 0
            for t in range(T):
                k = (_SYM[state] == x[b, t]).nonzero()[0, 0]
                state = int(_NEXT[state, k])
                legal = _LEGAL[state].clone()
                if self.blind and state in (16, 17):    # the recall states: say T either way
                    legal[:] = False
                    legal[SYMBOLS.index("T")] = True
                out[b, t] = 20.0 * legal.float()
        return out


def test_registered_and_seeded():
    assert "reber" in task_names()
    t = build_task("reber", {"seq_len": 50})
    a, b = t.batch(torch.Generator().manual_seed(3), 8), t.batch(torch.Generator().manual_seed(3), 8)
    c = t.batch(torch.Generator().manual_seed(4), 8)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])
    assert a["x"].shape == a["y"].shape == (8, 50) and torch.equal(a["x"][:, 1:], a["y"][:, :-1])
    assert t.spec() == {"vocab_size": 7}


def test_streams_follow_the_embedded_grammar():
    t = build_task("reber", {"seq_len": 400})
    b = t.stream(torch.Generator().manual_seed(0), 16)
    lengths, branches = [], []
    for row in range(16):
        text = text_of(b, row)
        strings = parse(text)
        assert len(strings) >= 20
        assert sum(map(len, strings)) >= 400 - 60                     # only the last one is cut off
        lengths += [len(s) for s in strings]
        branches += [s[1] for s in strings]
        closes = b["closes"][row].nonzero()[:, 0].tolist()           # y positions of every string's last E
        ends = [sum(map(len, strings[:k + 1])) - 2 for k in range(len(strings))]
        assert closes == ends
    assert min(lengths) == 9 and 10 < sum(lengths) / len(lengths) < 14   # BTBTXSETE is the shortest
    assert 0.4 < branches.count("T") / len(branches) < 0.6


def test_oracle_is_perfect_and_blind_recall_is_not():
    t = build_task("reber", {"seq_len": 60, "eval_size": 64})
    m = t.evaluate(Oracle(), torch.Generator().manual_seed(0))
    assert m["accuracy"] == 1.0 and m["string_accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0
    blind = t.evaluate(Oracle(blind=True), torch.Generator().manual_seed(0))
    # every string starting with P is lost (about half), and one wrong position in 12
    assert 0.35 < blind["string_accuracy"] < 0.65 and 0.9 < blind["accuracy"] < 0.99
    assert blind["sequence_accuracy"] < 0.05


def test_longer_streams_at_evaluation():
    t = build_task("reber", {"seq_len": 30, "eval_size": 16})
    long = build_task("reber", {"seq_len": 90, "eval_size": 16})
    assert long.eval_axes == ("seq_len",)
    m = long.evaluate(Oracle(), torch.Generator().manual_seed(1))
    assert m["string_accuracy"] == 1.0
    assert t.stream(torch.Generator().manual_seed(1), 2)["x"].shape == (2, 30)


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError) as e:
        build_task("reber", {"seq_len": 1})
    assert e.value.key == "seq_len"


def test_engine_trains_an_lstm_on_it(tmp_path):
    from workflow.evaluate import evaluate
    from workflow.train import train

    torch.set_num_threads(1)
    cfg = {"task": {"name": "reber", "seq_len": 40, "eval_size": 32},
           "model": {"arch": "lstm", "d_model": 16},
           "train": {"steps": 30, "batch_size": 16, "lr": 1e-2, "optimizer": "adamw", "weight_decay": 0.0,
                     "momentum": 0.0, "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0,
                     "log_every": None, "converged_rel_drop": 0.02}, "seed": 0}
    rec = train(cfg, tmp_path, log=lambda s: None)
    assert rec["status"] == "ok" and rec["history"]["loss"][-1] < rec["history"]["loss"][0]
    points = evaluate(cfg, {"metrics": ["loss", "accuracy", "string_accuracy"], "sweep": {"task.seq_len": [40, 120]}},
                      tmp_path / "model.pt")
    for p in points:
        m = p["metrics"]
        assert math.isfinite(m["loss"]) and 0 <= m["string_accuracy"] <= 1 and 0 <= m["accuracy"] <= 1

"""MQAR's query_gap: the keys asked in their own order after g empty slots, so every query sits
2 (n + g) tokens after its key; unset, zoology's power-law placement, unchanged."""
from __future__ import annotations

import pytest
import torch

from modules.config import ConfigError, build_config
from modules.tasks.mqar import MQARTask
from modules.tasks.sequence import IGNORE

BASE = {"vocab_size": 64, "seq_len": 48, "num_kv_pairs": 4, "random_non_queries": False}


def task(**over) -> MQARTask:
    return build_config(MQARTask, {**BASE, **over})


def distances(b: dict, n: int) -> list[list[int]]:
    """Per sequence, for each scored position: how far back its query's key stands."""
    x, y = b["x"], b["y"]
    out = []
    for i in range(x.shape[0]):
        row = []
        for t in (y[i] != IGNORE).nonzero()[:, 0].tolist():
            key = x[i, t].item()
            pos = [2 * j for j in range(n) if x[i, 2 * j].item() == key]
            assert len(pos) == 1 and y[i, t].item() == x[i, pos[0] + 1].item()   # the key's own value
            row.append(t - pos[0])
        out.append(row)
    return out


@pytest.mark.parametrize("gap", [0, 3, 16])
def test_every_query_is_the_same_distance_from_its_key(gap):
    b = task(query_gap=gap).batch(torch.Generator().manual_seed(0), 16)
    for row in distances(b, 4):
        assert row == [2 * (4 + gap)] * 4


def test_unset_keeps_the_power_law_placement_bit_for_bit():
    a = task().batch(torch.Generator().manual_seed(3), 16)
    b = build_config(MQARTask, BASE).batch(torch.Generator().manual_seed(3), 16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds = {d for row in distances(a, 4) for d in row}
    assert len(ds) > 1                                                  # distances vary without a gap


def test_a_longer_gap_is_harder_for_a_model_that_forgets():
    """A model that remembers only the last w tokens recalls at gap 0 but not at a long gap (an oracle
    with a window): the axis moves what it should."""
    class Window(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, x):
            B, T = x.shape
            out = torch.zeros(B, T, 64)
            for t in range(T):
                lo = max(0, t - self.w)
                for i in range(B):
                    hit = (x[i, lo:t] == x[i, t]).nonzero()
                    if len(hit):
                        out[i, t, x[i, lo + hit[-1, 0] + 1]] = 1.0
            return out

    near = task(query_gap=0, eval_size=64).evaluate(Window(12), torch.Generator().manual_seed(0))
    far = task(query_gap=10, eval_size=64).evaluate(Window(12), torch.Generator().manual_seed(0))
    assert near["accuracy"] == 1.0 and far["accuracy"] < 0.3


@pytest.mark.parametrize("over,key", [
    ({"query_gap": -1}, "query_gap"),
    ({"query_gap": 1.5}, "query_gap"),
    ({"query_gap": 17}, "query_gap"),        # (48 - 8) / 2 = 20 slots, 4 queries: at most 16
])
def test_bad_query_gap_names_the_key(over, key):
    with pytest.raises(ConfigError) as e:
        task(**over)
    assert e.value.key == key

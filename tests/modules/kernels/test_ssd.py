"""SSD (Mamba-2): the chunked algorithm against the sequential recurrence."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from modules.kernels import ssd_chunked, ssd_ref

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    T: int
    H: int
    P: int
    N: int
    G: int
    chunk: int | None          # None: the default for the device (32 on a CPU)
    with_dt: bool = True


CASES = [
    Case("T63_chunk16_heads6_groups6", 2, 63, 6, 5, 7, 6, 16),
    Case("T63_chunk16_heads6_groups2", 2, 63, 6, 5, 7, 2, 16),
    Case("T63_chunk16_groups1_no_dt", 2, 63, 4, 3, 5, 1, 16, with_dt=False),
    Case("T64_chunk16_exact", 1, 64, 2, 4, 3, 1, 16),
    Case("T150_chunk64", 1, 150, 3, 2, 4, 3, 64),
    Case("T150_default_chunk", 1, 150, 3, 2, 4, 3, None),
    Case("T1", 2, 1, 2, 3, 2, 1, 16),
]


def make(c: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rn(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)

    x = rn(c.B, c.T, c.H, c.P)
    dt = F.softplus(rn(c.B, c.T, c.H) - 1)                       # positive step sizes, as in Mamba-2
    A_head = -torch.linspace(0.5, 4.0, c.H, dtype=torch.float64)  # per-head decay rate
    A = dt * A_head                                              # (B, T, H), already times dt
    Bm, Cm = rn(c.B, c.T, c.G, c.N), rn(c.B, c.T, c.G, c.N)
    h0 = rn(c.B, c.H, c.P, c.N)
    out = [x, dt if c.with_dt else None, A, Bm, Cm, h0]
    return [None if t is None else t.to(dtype) for t in out]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ssd_chunked_matches_recurrence(case, with_state):
    x, dt, A, Bm, Cm, h0 = (None if t is None else leaf(t) for t in make(case))
    h0 = h0 if with_state else None
    names = ["x", "dt", "A", "B", "C", "initial_state"]
    pairs = [(n, t) for n, t in zip(names, (x, dt, A, Bm, Cm, h0)) if t is not None]
    leaves = [t for _, t in pairs]
    y_ref, s_ref = ssd_ref(x, dt, A, Bm, Cm, case.chunk, h0)
    g_ref = grads([y_ref, s_ref], leaves)
    y, s = ssd_chunked(x, dt, A, Bm, Cm, case.chunk, h0)
    g = grads([y, s], leaves)
    assert_close(f"{case.name} y", y_ref, y)
    assert_close(f"{case.name} final_state", s_ref, s)
    for (n, _), gr, gf in zip(pairs, g_ref, g):
        assert_close(f"{case.name} d{n}", gr, gf, atol=1e-4, rtol=2e-4)


def test_ssd_gradcheck():
    c = Case("tiny", 1, 7, 2, 2, 2, 1, 4)   # two chunks of 4, the last padded
    args = tuple(leaf(t) for t in make(c, torch.float64))
    assert torch.autograd.gradcheck(lambda x, dt, A, B, C, h0: ssd_chunked(x, dt, A, B, C, 4, h0), args)


def test_ssd_state_carries_over():
    x, dt, A, Bm, Cm, h0 = make(CASES[1])
    y_full, s_full = ssd_chunked(x, dt, A, Bm, Cm, 16, h0)
    i = 40
    y1, s1 = ssd_chunked(x[:, :i], dt[:, :i], A[:, :i], Bm[:, :i], Cm[:, :i], 16, h0)
    y2, s2 = ssd_chunked(x[:, i:], dt[:, i:], A[:, i:], Bm[:, i:], Cm[:, i:], 16, s1)
    assert_close("two halves y", y_full, torch.cat([y1, y2], 1))
    assert_close("two halves final_state", s_full, s2)


def test_ssd_long_sequence_stays_finite():
    # strong decay over 1000 steps: exp of a long cumulative sum would underflow to 0 * inf
    c = Case("long", 1, 1000, 2, 2, 2, 1, 64)
    x, dt, A, Bm, Cm, _ = make(c)
    y_ref, s_ref = ssd_ref(x, dt, A * 10, Bm, Cm)
    y, s = ssd_chunked(x, dt, A * 10, Bm, Cm, 64)
    assert_close("long y", y_ref, y)
    assert_close("long final_state", s_ref, s)


def test_ssd_rejects_bad_groups():
    x, dt, A, Bm, Cm, _ = make(Case("bad", 1, 8, 6, 2, 3, 4, 4))   # 6 heads, 4 groups
    with pytest.raises(ValueError, match="divisible"):
        ssd_chunked(x, dt, A, Bm, Cm, 4)

"""scan: the parallel scan against the loop, real and complex, values, states and gradients."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from modules.kernels import scan, scan_ref

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    T: int
    channels: tuple
    complex: bool = False


CASES = [
    Case("real_T63_D5", 2, 63, (5,)),
    Case("complex_T63_D7", 2, 63, (7,), complex=True),
    Case("real_T100_D3xN4", 3, 100, (3, 4)),      # (B, T, D, N): what the selective scan feeds it
    Case("complex_T37_D2xN3", 1, 37, (2, 3), complex=True),
    Case("real_T1", 2, 1, (5,)),
    Case("real_T17_one_past_base", 2, 17, (3,)),
]


def make(case: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (case.B, case.T, *case.channels)
    # |a| in [0.5, 1): decaying but long memory, like a trained SSM
    mag = 0.5 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    if case.complex:
        phase = torch.rand(shape, generator=g, dtype=torch.float64) * 6.28
        a = torch.polar(mag, phase)
        b = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))
        h0 = torch.complex(torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64),
                           torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64))
        cd = torch.complex128 if dtype == torch.float64 else torch.complex64
        return a.to(cd), b.to(cd), h0.to(cd)
    sign = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.2, -1.0, 1.0)  # some negative a
    a = mag * sign
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    h0 = torch.randn(shape[:1] + shape[2:], generator=g, dtype=torch.float64)
    return a.to(dtype), b.to(dtype), h0.to(dtype)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scan_matches_reference(case, with_state):
    a, b, h0 = (leaf(t) for t in make(case))
    inputs = [a, b, h0] if with_state else [a, b]
    h_ref, s_ref = scan_ref(a, b, h0 if with_state else None)
    g_ref = grads([h_ref, s_ref], inputs)
    h, s = scan(a, b, h0 if with_state else None)
    g = grads([h, s], inputs)
    assert_close(f"{case.name} h", h_ref, h)
    assert_close(f"{case.name} final_state", s_ref, s)
    for n, gr, gf in zip("a b h0".split(), g_ref, g):
        assert_close(f"{case.name} d{n}", gr, gf)


@pytest.mark.parametrize("case", [Case("real_T21", 1, 21, (2,)), Case("complex_T21", 1, 21, (2,), complex=True)], ids=lambda c: c.name)
def test_scan_gradcheck(case):
    a, b, h0 = (leaf(t) for t in make(case, torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, h0: scan(a, b, h0), (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b: scan(a, b)[0], (a, b))


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=lambda c: c.name)
def test_scan_state_carries_over(case):
    a, b, h0 = make(case)
    h_full, s_full = scan(a, b, h0)
    k = 40
    h1, s1 = scan(a[:, :k], b[:, :k], h0)
    h2, s2 = scan(a[:, k:], b[:, k:], s1)
    assert_close("two halves h", h_full, torch.cat([h1, h2], 1))
    assert_close("two halves final_state", s_full, s2)


def test_scan_keeps_low_precision_dtype():
    a, b, _ = make(CASES[0])
    h, s = scan(a.bfloat16(), b.bfloat16())
    assert h.dtype == s.dtype == torch.bfloat16
    assert_close("bf16 h", scan_ref(a, b)[0], h.float(), atol=0.1, rtol=2e-2)


def test_scan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        scan(torch.zeros(2, 5, 3), torch.zeros(2, 5, 4))

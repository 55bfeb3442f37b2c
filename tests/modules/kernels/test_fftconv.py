"""fftconv: the FFT long convolution against the direct causal sum."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from modules.kernels import fftconv, fftconv_ref

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    T: int
    D: int
    L: int   # kernel length


CASES = [
    Case("T63_D5", 2, 63, 5, 63),
    Case("T100_D7_short_kernel", 2, 100, 7, 20),
    Case("T33_D3_long_kernel", 1, 33, 3, 80),      # taps past T are unused
    Case("T1", 2, 1, 3, 1),
]


def make(c: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(c.B, c.T, c.D, generator=g, dtype=torch.float64)
    decay = torch.exp(-0.05 * torch.arange(c.L, dtype=torch.float64))   # S4-like decaying filter
    k = torch.randn(c.D, c.L, generator=g, dtype=torch.float64) * decay
    return u.to(dtype), k.to(dtype)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fftconv_matches_direct_convolution(case):
    u, k = (leaf(t) for t in make(case))
    y_ref, s_ref = fftconv_ref(u, k)
    g_ref = grads([y_ref], [u, k])
    y, s = fftconv(u, k)
    g = grads([y], [u, k])
    assert s is None and s_ref is None
    assert_close(f"{case.name} y", y_ref, y)
    assert_close(f"{case.name} du", g_ref[0], g[0])
    assert_close(f"{case.name} dk", g_ref[1], g[1], atol=1e-4)


def test_fftconv_is_causal():
    u, k = make(CASES[0])
    u2 = u.clone()
    u2[:, 40:] = torch.randn_like(u2[:, 40:])
    assert torch.equal(fftconv_ref(u, k)[0][:, :40], fftconv_ref(u2, k)[0][:, :40])
    assert_close("past outputs", fftconv(u, k)[0][:, :40], fftconv(u2, k)[0][:, :40], atol=1e-5)


def test_fftconv_gradcheck():
    u, k = (leaf(t) for t in make(Case("tiny", 1, 9, 2, 9), torch.float64))
    assert torch.autograd.gradcheck(lambda u, k: fftconv(u, k)[0], (u, k))


def test_fftconv_rejects_mismatched_channels():
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        fftconv(torch.zeros(1, 8, 3), torch.zeros(4, 8))


def test_fftconv_returns_a_contiguous_b_t_d_tensor():
    """irfft along the time axis lays its result out as (B, D, n); the op hands back (B, T, D) in
    that order, so the element-wise ops and their backward after it do not pay for mixed layouts."""
    u, k = torch.randn(2, 9, 4), torch.randn(4, 9)
    y, _ = fftconv(u, k)
    assert y.shape == (2, 9, 4) and y.is_contiguous()

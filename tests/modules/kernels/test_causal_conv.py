"""causal_conv1d (the compiled CPU kernel, channels last) against torch's depthwise conv1d: the same
outputs bit for bit, the same input gradients, weight and bias gradients to rounding (the kernel
sums the B T terms in another order); and the Mamba models on it against their own step()."""
from __future__ import annotations

import pytest
import torch

from modules.kernels.causal_conv import causal_conv1d, causal_conv1d_ref, native_available

from .helpers import assert_close, check_model_on_kernel, grads, leaf

needs_kernel = pytest.mark.skipif(not native_available(), reason="no C compiler here: the op runs torch's conv1d")


def make(B=3, T=11, C=40, W=4, bias=True, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    return rn(B, T, C), rn(C, 1, W), (rn(C) if bias else None)


@needs_kernel
@pytest.mark.parametrize("B,T,C,W,bias", [(3, 11, 40, 4, True), (2, 3, 16, 4, True), (4, 9, 7, 2, False),
                                          (32, 42, 128, 4, True)])
def test_kernel_matches_torch(B, T, C, W, bias):
    """T = 3 < W - 1 + 1: every output reads padding; C = 7 and 40: no whole vector of channels."""
    x, w, b = (None if t is None else leaf(t) for t in make(B, T, C, W, bias))
    ins = [x, w] + ([b] if bias else [])
    ref = causal_conv1d_ref(x, w, b)
    g_ref = grads([ref], ins)
    out = causal_conv1d(x, w, b)
    g = grads([out], ins)
    assert torch.equal(ref, out), "the forward sums bias, then tap 0 .. W-1, as torch does: bit for bit"
    assert torch.equal(g_ref[0], g[0]), "dx: the same taps in the same order"
    for what, gr, gf in zip(["weight", "bias"], g_ref[1:], g[1:]):
        assert_close(f"d{what}", gr, gf, atol=1e-5, rtol=1e-5)


@needs_kernel
def test_gradcheck_in_double():
    for bias in (True, False):
        leaves = [leaf(t) for t in make(B=2, T=6, C=5, W=4, bias=bias, dtype=torch.float64) if t is not None]
        assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a), leaves)


def test_bad_shapes_are_named():
    x, w, b = make()
    with pytest.raises(ValueError, match="weight must be"):
        causal_conv1d(x, w[:-1], b)
    with pytest.raises(ValueError, match="bias must be"):
        causal_conv1d(x, w, b[:-1])
    with pytest.raises(ValueError, match="x must be"):
        causal_conv1d(x[0], w, b)


@needs_kernel
@pytest.mark.parametrize("arch", ["mamba", "mamba2"])
def test_models_on_the_kernel_match_their_step_and_torch(arch, monkeypatch):
    import modules.kernels.causal_conv as op

    check_model_on_kernel(arch, {}, op, monkeypatch, what="torch's conv1d")

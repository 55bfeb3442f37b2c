"""Linear attention (recurrent, parallel, chunked; optional decay) and the delta rule."""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from modules.kernels import (
    delta_rule,
    delta_rule_chunked,
    delta_rule_ref,
    linear_attn_chunked,
    linear_attn_parallel,
    linear_attn_recurrent_ref,
)
from modules.kernels.delta_rule import native_available as delta_native_available

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    T: int
    H: int
    K: int
    V: int
    chunk: int | None          # None: the kernel's default for the device (32 on a CPU)
    decay: str | None = None   # None, "head": (H,), "step": (B, T, H)


CASES = [
    Case("T63_chunk16_K5_V7", 2, 63, 3, 5, 7, 16),
    Case("T63_chunk16_head_decay", 2, 63, 3, 5, 7, 16, "head"),
    Case("T63_chunk16_step_decay", 2, 63, 3, 5, 7, 16, "step"),
    Case("T64_chunk16_exact", 1, 64, 2, 4, 3, 16, "step"),
    Case("T150_chunk64", 1, 150, 2, 6, 5, 64, "step"),
    Case("T150_default_chunk", 1, 150, 2, 6, 5, None),
    Case("T150_default_chunk_step_decay", 1, 150, 2, 6, 5, None, "step"),
    Case("T1", 2, 1, 2, 3, 4, 16, "head"),
]


def make(c: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rn(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    q, k, v = rn(c.B, c.T, c.H, c.K) * 0.5, rn(c.B, c.T, c.H, c.K) * 0.5, rn(c.B, c.T, c.H, c.V)
    h0 = rn(c.B, c.H, c.K, c.V)
    decay = None
    if c.decay == "head":
        decay = -torch.linspace(0.01, 0.5, c.H, dtype=dtype)
    elif c.decay == "step":
        decay = F.logsigmoid(rn(c.B, c.T, c.H) + 2)   # gates near 1, as trained models have
    return q, k, v, h0, decay


FAST = {"parallel": linear_attn_parallel, "chunked": linear_attn_chunked}


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("form", list(FAST))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_linear_attention_matches_recurrent(case, form, with_state):
    q, k, v, h0, decay = make(case)
    q, k, v, h0 = (leaf(t) for t in (q, k, v, h0))
    decay = None if decay is None else leaf(decay)
    h0 = h0 if with_state else None
    leaves = [t for t in (q, k, v, decay, h0) if t is not None]
    names = [n for n, t in zip(["q", "k", "v", "decay", "initial_state"], (q, k, v, decay, h0)) if t is not None]
    fast = FAST[form] if form == "parallel" else partial(FAST[form], chunk_size=case.chunk)
    o_ref, s_ref = linear_attn_recurrent_ref(q, k, v, h0, True, decay)
    g_ref = grads([o_ref, s_ref], leaves)
    o, s = fast(q, k, v, h0, True, decay)
    g = grads([o, s], leaves)
    assert_close(f"{case.name} {form} o", o_ref, o)
    assert_close(f"{case.name} {form} final_state", s_ref, s)
    for n, gr, gf in zip(names, g_ref, g):
        assert_close(f"{case.name} {form} d{n}", gr, gf, atol=1e-4, rtol=2e-4)


def test_linear_attention_final_state_is_none_unless_asked():
    q, k, v, _, decay = make(CASES[1])
    for f in (linear_attn_recurrent_ref, linear_attn_parallel, linear_attn_chunked):
        assert f(q, k, v, decay=decay)[1] is None


@pytest.mark.parametrize("decay", [None, "head", "step"])
@pytest.mark.parametrize("form", list(FAST))
def test_linear_attention_gradcheck(form, decay):
    c = Case("tiny", 1, 7, 1, 3, 2, 4, decay)   # two chunks of 4, the last padded
    q, k, v, h0, d = (None if t is None else leaf(t) for t in make(c, torch.float64))
    fast = FAST[form] if form == "parallel" else partial(FAST[form], chunk_size=4)
    args = (q, k, v, h0) + ((d,) if d is not None else ())
    assert torch.autograd.gradcheck(lambda q, k, v, h0, *d: fast(q, k, v, h0, True, *d), args)


@pytest.mark.parametrize("form", list(FAST))
def test_linear_attention_state_carries_over(form):
    q, k, v, h0, decay = make(CASES[2])
    fast = FAST[form]
    o_full, s_full = fast(q, k, v, h0, True, decay)
    i = 40
    o1, s1 = fast(q[:, :i], k[:, :i], v[:, :i], h0, True, decay[:, :i])
    o2, s2 = fast(q[:, i:], k[:, i:], v[:, i:], s1, True, decay[:, i:])
    assert_close(f"{form} two halves o", o_full, torch.cat([o1, o2], 1))
    assert_close(f"{form} two halves final_state", s_full, s2)


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "32"])
def test_chunked_ops_reject_a_bad_chunk_size(bad):
    q, k, v, _, _ = make(CASES[0])
    with pytest.raises(ValueError, match="chunk_size"):
        linear_attn_chunked(q, k, v, chunk_size=bad)
    with pytest.raises(ValueError, match="chunk_size"):
        delta_rule_chunked(q, F.normalize(k, dim=-1), v, torch.rand(q.shape[:3]), chunk_size=bad)


def test_default_chunk_on_a_cpu_is_32():
    from modules.kernels._common import chunk_or_default

    x = torch.zeros(1)
    assert chunk_or_default(None, x) == 32
    assert chunk_or_default(None, x.to("meta")) == 32   # not CUDA
    assert chunk_or_default(16, x) == 16


def test_linear_attention_rejects_bad_decay():
    q, k, v, _, _ = make(CASES[0])
    with pytest.raises(ValueError, match="decay"):
        linear_attn_chunked(q, k, v, decay=torch.zeros(7))


# --- delta rule --------------------------------------------------------------------------

DELTA_CASES = [
    Case("T63_chunk16_K5_V7", 2, 63, 3, 5, 7, 16),
    Case("T64_chunk16_exact", 1, 64, 2, 8, 3, 16),
    Case("T150_chunk64", 1, 150, 2, 6, 5, 64),
    Case("T150_default_chunk", 1, 150, 2, 6, 5, None),
    Case("T1", 2, 1, 2, 3, 4, 16),
]


def make_delta(c: Case, dtype=torch.float32, seed=0):
    q, k, v, h0, _ = make(c, dtype, seed)
    g = torch.Generator().manual_seed(seed + 1)
    k = F.normalize(k, dim=-1)  # DeltaNet normalizes keys; with beta in (0, 1) the state stays bounded
    beta = torch.rand(c.B, c.T, c.H, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v, beta, h0


@pytest.mark.parametrize("fast", ["chunked", "kernel"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("case", DELTA_CASES, ids=[c.name for c in DELTA_CASES])
def test_delta_rule_chunked_and_kernel_match_recurrent(case, with_state, fast):
    """The chunked form (WY transform) and the op the model calls (on a CPU, the C recurrence)."""
    if fast == "kernel" and not delta_native_available():
        pytest.skip("no C compiler here: delta_rule runs the chunked form")
    q, k, v, beta, h0 = (leaf(t) for t in make_delta(case))
    h0 = h0 if with_state else None
    leaves = [t for t in (q, k, v, beta, h0) if t is not None]
    o_ref, s_ref = delta_rule_ref(q, k, v, beta, h0, True)
    g_ref = grads([o_ref, s_ref], leaves)
    if fast == "kernel":
        o, s = delta_rule(q, k, v, beta, h0, True)
    else:
        o, s = delta_rule_chunked(q, k, v, beta, h0, True, chunk_size=case.chunk)
    g = grads([o, s], leaves)
    assert_close(f"{case.name} o", o_ref, o)
    assert_close(f"{case.name} final_state", s_ref, s)
    for n, gr, gf in zip(["q", "k", "v", "beta", "initial_state"], g_ref, g):
        assert_close(f"{case.name} d{n}", gr, gf, atol=1e-4, rtol=2e-4)


def test_delta_rule_gradcheck():
    c = Case("tiny", 1, 7, 1, 3, 2, 4)
    q, k, v, beta, h0 = (leaf(t) for t in make_delta(c, torch.float64))
    assert torch.autograd.gradcheck(lambda *a: delta_rule_chunked(*a, True, chunk_size=4), (q, k, v, beta, h0))


def test_delta_rule_state_carries_over():
    q, k, v, beta, h0 = make_delta(DELTA_CASES[0])
    o_full, s_full = delta_rule_chunked(q, k, v, beta, h0, True, chunk_size=16)
    i = 40
    o1, s1 = delta_rule_chunked(q[:, :i], k[:, :i], v[:, :i], beta[:, :i], h0, True, chunk_size=16)
    o2, s2 = delta_rule_chunked(q[:, i:], k[:, i:], v[:, i:], beta[:, i:], s1, True, chunk_size=16)
    assert_close("two halves o", o_full, torch.cat([o1, o2], 1))
    assert_close("two halves final_state", s_full, s2)


def test_delta_rule_with_beta_one_writes_the_value():
    # beta = 1 and a unit key: reading the key back right after writing returns exactly v
    q, k, v, beta, _ = make_delta(Case("b1", 1, 5, 1, 4, 3, 4))
    o, _ = delta_rule_chunked(k, k, v, torch.ones_like(beta), chunk_size=4)
    assert_close("read back", v, o)

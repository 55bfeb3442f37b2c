"""selective_scan (Mamba S6) against mamba's reference loop: values, states, every gradient."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from modules.kernels import selective_scan, selective_scan_ref

from .helpers import assert_close, grads, leaf


class Case(NamedTuple):
    name: str
    B: int
    D: int
    L: int
    N: int
    groups: int | None = None   # None: B, C are (B, N, L); else (B, G, N, L)
    extras: bool = False        # D skip, z gate, delta_bias + softplus
    complex: bool = False


CASES = [
    Case("shared_BC_L63_D5_N3", 2, 5, 63, 3),
    Case("extras_L63_D7_N4", 2, 7, 63, 4, extras=True),
    Case("groups2_L150_D6_N3", 2, 6, 150, 3, groups=2, extras=True),   # 150: three chunks of 64, the last partial
    Case("groups1_L65_D5_N2", 1, 5, 65, 2, groups=1),
    Case("complex_L70_D5_N3", 2, 5, 70, 3, extras=True, complex=True),
    Case("L1", 2, 3, 1, 2, extras=True),
]


def make(c: Case, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rn(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)

    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    u = rn(c.B, c.D, c.L)
    delta = 0.5 * torch.rand(c.B, c.D, c.L, generator=g, dtype=torch.float64) if not c.extras else rn(c.B, c.D, c.L) * 0.5
    A = -torch.rand(c.D, c.N, generator=g, dtype=torch.float64) - 0.1
    bc_shape = (c.B, c.N, c.L) if c.groups is None else (c.B, c.groups, c.N, c.L)
    Bm, Cm = rn(*bc_shape), rn(*bc_shape)
    h0 = rn(c.B, c.D, c.N)
    if c.complex:
        A = torch.complex(A, rn(c.D, c.N)).to(cdt)
        Bm, Cm = torch.complex(Bm, rn(*bc_shape)).to(cdt), torch.complex(Cm, rn(*bc_shape)).to(cdt)
        h0 = torch.complex(h0, rn(c.B, c.D, c.N)).to(cdt)
    else:
        A, Bm, Cm, h0 = A.to(dtype), Bm.to(dtype), Cm.to(dtype), h0.to(dtype)
    inputs = dict(u=u.to(dtype), delta=delta.to(dtype), A=A, B=Bm, C=Cm)
    if c.extras:
        inputs.update(D=rn(c.D).to(dtype), z=rn(c.B, c.D, c.L).to(dtype), delta_bias=rn(c.D).to(dtype) * 0.1)
    return inputs, h0


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_selective_scan_matches_reference(case, with_state):
    inputs, h0 = make(case)
    inputs = {k: leaf(v) for k, v in inputs.items()}
    h0 = leaf(h0) if with_state else None
    kw = dict(delta_softplus=case.extras, initial_state=h0, output_final_state=True)
    leaves = list(inputs.values()) + ([h0] if with_state else [])
    o_ref, s_ref = selective_scan_ref(**inputs, **kw)
    g_ref = grads([o_ref, s_ref], leaves)
    o, s = selective_scan(**inputs, **kw)
    g = grads([o, s], leaves)
    assert_close(f"{case.name} out", o_ref, o)
    assert_close(f"{case.name} final_state", s_ref, s)
    for name, gr, gf in zip([*inputs, "initial_state"], g_ref, g):
        assert_close(f"{case.name} d{name}", gr, gf, atol=1e-4, rtol=2e-4)


def test_selective_scan_final_state_is_none_unless_asked():
    inputs, _ = make(CASES[0])
    assert selective_scan(**inputs)[1] is None
    assert selective_scan_ref(**inputs)[1] is None


@pytest.mark.parametrize("case", [Case("real", 1, 2, 9, 2, groups=1, extras=True), Case("complex", 1, 2, 7, 2, complex=True)],
                         ids=lambda c: c.name)
def test_selective_scan_gradcheck(case):
    inputs, h0 = make(case, torch.float64)
    names = list(inputs)
    leaves = [leaf(v) for v in inputs.values()] + [leaf(h0)]

    def f(*xs):
        kw = dict(zip(names, xs[:-1]))
        return selective_scan(**kw, delta_softplus=case.extras, initial_state=xs[-1], output_final_state=True)

    assert torch.autograd.gradcheck(f, leaves)


def test_selective_scan_gradcheck_across_chunks():
    # the public op chunks time by 64; force chunks of 4 so the state crosses chunk borders
    from modules.kernels.selective_scan.chunk import _selective_scan_torch

    c = Case("chunks", 1, 2, 9, 2, groups=1, extras=True)
    inputs, h0 = make(c, torch.float64)
    names = list(inputs)
    leaves = [leaf(v) for v in inputs.values()] + [leaf(h0)]

    def f(u, delta, A, B, C, D, z, delta_bias, h0):
        return _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, True, h0, True, chunk_size=4)

    assert names == ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    assert torch.autograd.gradcheck(f, leaves)


def test_selective_scan_state_carries_over():
    c = Case("carry", 2, 5, 150, 3, groups=1)
    inputs, h0 = make(c)
    o_full, s_full = selective_scan(**inputs, initial_state=h0, output_final_state=True)
    k = 70
    first = {n: (v[..., :k] if v.dim() >= 3 else v) for n, v in inputs.items()}
    second = {n: (v[..., k:] if v.dim() >= 3 else v) for n, v in inputs.items()}
    o1, s1 = selective_scan(**first, initial_state=h0, output_final_state=True)
    o2, s2 = selective_scan(**second, initial_state=s1, output_final_state=True)
    assert_close("two halves out", o_full, torch.cat([o1, o2], -1))
    assert_close("two halves final_state", s_full, s2)


def test_selective_scan_rejects_bad_groups():
    inputs, _ = make(Case("bad", 1, 5, 8, 2, groups=2))  # D=5 is not divisible by G=2
    with pytest.raises(ValueError, match="divisible"):
        selective_scan(**inputs)


# --- the compiled CPU kernel (sscan_cpu.c): the path `selective_scan` takes for real CPU tensors ---

native = pytest.mark.skipif(not __import__("modules.kernels.selective_scan", fromlist=["x"]).native_available(),
                            reason="no C compiler here: selective_scan runs its torch path")


def _graph_names(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        g = stack.pop()
        if g is not None and type(g).__name__ not in seen:
            seen.add(type(g).__name__)
            stack += [n for n, _ in g.next_functions]
    return seen


@native
def test_real_cpu_inputs_take_the_compiled_kernel_and_complex_ones_do_not():
    inputs, _ = make(CASES[1])
    inputs = {k: leaf(v) for k, v in inputs.items()}
    assert "_NativeSelectiveScanBackward" in _graph_names(selective_scan(**inputs, delta_softplus=True)[0])
    cinputs, _ = make(CASES[4])
    cinputs = {k: leaf(v) for k, v in cinputs.items()}
    assert "_NativeSelectiveScanBackward" not in _graph_names(selective_scan(**cinputs, delta_softplus=True)[0])


@native
def test_kernel_gradcheck_across_its_chunks_with_different_groups_for_B_and_C():
    """float64 (libm's exp) through the kernel's chunks of time (4 here), B shared by all channels
    and C in two groups of three: the blocks of channels that share both groups."""
    from modules.kernels.selective_scan.cpu import _selective_scan_native

    g = torch.Generator().manual_seed(3)
    Bn, D, L, N = 1, 6, 9, 2
    u, delta, z = (torch.randn(Bn, D, L, generator=g, dtype=torch.float64) for _ in range(3))
    A = -torch.rand(D, N, generator=g, dtype=torch.float64) - 0.1
    Bm = torch.randn(Bn, N, L, generator=g, dtype=torch.float64)
    Cm = torch.randn(Bn, 2, N, L, generator=g, dtype=torch.float64)
    Dd, bias = torch.randn(D, generator=g, dtype=torch.float64), 0.1 * torch.randn(D, generator=g, dtype=torch.float64)
    h0 = torch.randn(Bn, D, N, generator=g, dtype=torch.float64)
    leaves = [leaf(t) for t in (u, delta, A, Bm, Cm, Dd, z, bias, h0)]

    def f(u, delta, A, B, C, D, z, bias, h0):
        return _selective_scan_native(u, delta, A, B, C, D, z, bias, True, h0, True, chunk_size=4)

    assert torch.autograd.gradcheck(f, leaves)
    o, s = f(*leaves)
    o_ref, s_ref = selective_scan_ref(*leaves[:8], delta_softplus=True, initial_state=leaves[8], output_final_state=True)
    assert_close("mixed groups out", o_ref, o, atol=1e-10, rtol=1e-10)
    assert_close("mixed groups state", s_ref, s, atol=1e-10, rtol=1e-10)


@native
def test_kernel_float32_exp_holds_at_model_sizes_and_at_the_underflow_end():
    """float32 runs the kernel's own exp: against the float64 reference at Mamba's sizes (D=128,
    N=16, L=300 across two chunks), with decays from 1 down to exp(-80) (near float32's floor)."""
    g = torch.Generator().manual_seed(5)
    Bn, D, L, N = 2, 128, 300, 16
    u = torch.randn(Bn, D, L, generator=g)
    delta = torch.rand(Bn, D, L, generator=g) * 4
    A = -torch.logspace(-3, 1.3, N).repeat(D, 1)                    # up to 20: Delta A down to -80
    Bm, Cm = torch.randn(Bn, N, L, generator=g), torch.randn(Bn, N, L, generator=g)
    o, s = selective_scan(u, delta, A, Bm, Cm, output_final_state=True)
    o_ref, s_ref = selective_scan_ref(*(t.double() for t in (u, delta, A, Bm, Cm)), output_final_state=True)
    assert_close("float32 kernel out", o_ref, o, atol=1e-4, rtol=1e-5)
    assert_close("float32 kernel state", s_ref, s, atol=1e-4, rtol=1e-5)


@native
def test_kernel_without_gradients_gives_the_same_numbers():
    """Under no_grad the kernel keeps no states for a backward: the same outputs, bit for bit."""
    inputs, h0 = make(CASES[2])
    inputs = {k: leaf(v) for k, v in inputs.items()}
    o, s = selective_scan(**inputs, delta_softplus=True, initial_state=h0, output_final_state=True)
    assert o.requires_grad
    with torch.no_grad():
        o2, s2 = selective_scan(**inputs, delta_softplus=True, initial_state=h0, output_final_state=True)
    assert torch.equal(o, o2) and torch.equal(s, s2)

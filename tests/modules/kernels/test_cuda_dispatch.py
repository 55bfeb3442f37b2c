"""Dispatch to the optional CUDA/Triton kernels (mamba-ssm, flash-linear-attention).

On a GPU with the package installed, the dispatched op must match the reference. Without
one, the glue (argument order, layouts, the transposed SSD state, the fallback) is still
checked on CPU by standing in a fake kernel with the package's documented semantics.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings

import pytest
import torch

from modules.kernels import (
    delta_rule_chunked,
    delta_rule_ref,
    linear_attn_chunked,
    linear_attn_recurrent_ref,
    selective_scan,
    selective_scan_ref,
    ssd_chunked,
    ssd_ref,
)
from modules.kernels._common import optional_kernel

from . import test_linear_attention as tla
from . import test_selective_scan as tss
from . import test_ssd as tssd
from .helpers import assert_close, grads, leaf

# the modules that hold each dispatch (the ones to patch). The package re-exports functions named
# like their op folders (scan, selective_scan, fftconv), so `import modules.kernels.selective_scan
# as m` would give the function: take the modules
la_mod = importlib.import_module("modules.kernels.linear_attn.chunk")
dr_mod = importlib.import_module("modules.kernels.delta_rule.chunk")
ss_mod = importlib.import_module("modules.kernels.selective_scan")   # its __init__ holds `selective_scan`
ssd_mod = importlib.import_module("modules.kernels.ssd.chunk")


def _usable(pkg: str) -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec(pkg) is not None


needs_mamba = pytest.mark.skipif(not _usable("mamba_ssm"), reason="needs a CUDA GPU and mamba-ssm")
needs_fla = pytest.mark.skipif(not _usable("fla"), reason="needs a CUDA GPU and flash-linear-attention")
GPU_TOL = dict(atol=2e-3, rtol=5e-3)   # Triton kernels use TF32 dot products for fp32


def _compare_on_gpu(name, ref_fn, fast_fn, tensors):
    """Run ref and fast on CUDA; compare outputs, states and gradients. Any fallback warning fails."""
    cuda = [None if t is None else leaf(t.cuda()) for t in tensors]
    leaves = [t for t in cuda if t is not None]
    o_ref, s_ref = ref_fn(*cuda)
    g_ref = grads([o_ref, s_ref], leaves)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # try_kernel warns when it falls back: that is a failure here
        o, s = fast_fn(*cuda)
        g = grads([o, s], leaves)
    assert_close(f"{name} out", o_ref, o, **GPU_TOL)
    assert_close(f"{name} final_state", s_ref, s, **GPU_TOL)
    for i, (gr, gf) in enumerate(zip(g_ref, g)):
        assert_close(f"{name} grad {i}", gr, gf, atol=1e-2, rtol=1e-2)


@needs_mamba
@pytest.mark.parametrize("case", [tss.CASES[1], tss.CASES[2]], ids=lambda c: c.name)
def test_selective_scan_uses_mamba_ssm(case):
    assert optional_kernel("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn") is not None
    inputs, _ = tss.make(case)
    names = list(inputs)

    def run(fn):
        return lambda *xs: fn(**dict(zip(names, xs)), delta_softplus=case.extras, output_final_state=True)

    _compare_on_gpu(case.name, run(selective_scan_ref), run(selective_scan), list(inputs.values()))


@needs_fla
@pytest.mark.parametrize("case", [tla.CASES[0], tla.CASES[2]], ids=lambda c: c.name)
def test_linear_attention_uses_fla(case):
    q, k, v, h0, decay = tla.make(case)
    _compare_on_gpu(case.name, lambda q, k, v, h0, d: linear_attn_recurrent_ref(q, k, v, h0, True, d),
                    lambda q, k, v, h0, d: linear_attn_chunked(q, k, v, h0, True, d), [q, k, v, h0, decay])


@needs_fla
def test_delta_rule_uses_fla():
    q, k, v, beta, h0 = tla.make_delta(tla.DELTA_CASES[0])
    _compare_on_gpu("delta", lambda *a: delta_rule_ref(*a, True), lambda *a: delta_rule_chunked(*a, True), [q, k, v, beta, h0])


@needs_fla
@pytest.mark.parametrize("case", [tssd.CASES[0], tssd.CASES[1]], ids=lambda c: c.name)
def test_ssd_uses_fla(case):
    x, dt, A, Bm, Cm, h0 = tssd.make(case)
    _compare_on_gpu(case.name, lambda x, dt, A, B, C, h0: ssd_ref(x, dt, A, B, C, 64, h0),
                    lambda x, dt, A, B, C, h0: ssd_chunked(x, dt, A, B, C, 64, h0), [x, dt, A, Bm, Cm, h0])


# --- the glue, on CPU, with fake kernels --------------------------------------------------

def fake_chunk_simple_gla(q, k, v, g=None, scale=None, initial_state=None, output_final_state=False, head_first=False):
    """fla's contract: S_t = exp(g_t) S_{t-1} + k_t v_t^T (state (B, H, K, V)), o_t = scale q_t^T S_t."""
    assert not head_first
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return linear_attn_recurrent_ref(q * scale, k, v, initial_state, output_final_state, g)


def fake_chunk_delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return delta_rule_ref(q * scale, k, v, beta, initial_state, output_final_state)


def fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False):
    out, last = selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, None, True)
    return (out, last) if return_last_state else out


def _install(monkeypatch, module, fake):
    monkeypatch.setattr(module, "optional_kernel", lambda mod, name: fake)
    monkeypatch.setattr(module, "on_cuda", lambda *ts: True)


def test_ssd_glue_maps_onto_simple_gla(monkeypatch):
    _install(monkeypatch, ssd_mod, fake_chunk_simple_gla)
    x, dt, A, Bm, Cm, h0 = tssd.make(tssd.CASES[1])   # groups < heads, and an initial state
    y_ref, s_ref = ssd_ref(x, dt, A, Bm, Cm, 16, h0)
    y, s = ssd_mod.ssd_chunked(x, dt, A, Bm, Cm, 16, h0)
    assert_close("ssd via gla y", y_ref, y)
    assert_close("ssd via gla state", s_ref, s)


@pytest.mark.parametrize("case", [tla.CASES[0], tla.CASES[1], tla.CASES[2]], ids=lambda c: c.name)
def test_linear_attention_glue_maps_onto_simple_gla(monkeypatch, case):
    _install(monkeypatch, la_mod, fake_chunk_simple_gla)
    q, k, v, h0, decay = tla.make(case)
    o_ref, s_ref = linear_attn_recurrent_ref(q, k, v, h0, True, decay)
    o, s = la_mod.linear_attn_chunked(q, k, v, h0, True, decay)
    assert_close(f"{case.name} o", o_ref, o)
    assert_close(f"{case.name} state", s_ref, s)


def test_delta_rule_glue(monkeypatch):
    _install(monkeypatch, dr_mod, fake_chunk_delta_rule)
    q, k, v, beta, h0 = tla.make_delta(tla.DELTA_CASES[0])
    o_ref, s_ref = delta_rule_ref(q, k, v, beta, h0, True)
    o, s = dr_mod.delta_rule_chunked(q, k, v, beta, h0, True)
    assert_close("delta o", o_ref, o)
    assert_close("delta state", s_ref, s)


@pytest.mark.parametrize("final", [False, True])
def test_selective_scan_glue(monkeypatch, final):
    _install(monkeypatch, ss_mod, fake_selective_scan_fn)
    inputs, h0 = tss.make(tss.CASES[1])
    o_ref, s_ref = selective_scan_ref(**inputs, delta_softplus=True, output_final_state=final)
    o, s = ss_mod.selective_scan(**inputs, delta_softplus=True, output_final_state=final)
    assert_close("selective o", o_ref, o)
    assert (s is None) == (not final)
    if final:
        assert_close("selective state", s_ref, s)
    # mamba's kernel takes no initial state: then the torch path runs, and still matches
    o, s = ss_mod.selective_scan(**inputs, delta_softplus=True, initial_state=h0, output_final_state=True)
    o_ref, s_ref = selective_scan_ref(**inputs, delta_softplus=True, initial_state=h0, output_final_state=True)
    assert_close("selective o with state", o_ref, o)


def test_a_failing_kernel_falls_back_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available")

    _install(monkeypatch, la_mod, broken)
    q, k, v, h0, decay = tla.make(tla.CASES[2])
    with pytest.warns(UserWarning, match="torch path"):
        o, s = la_mod.linear_attn_chunked(q, k, v, h0, True, decay)
    o_ref, s_ref = linear_attn_recurrent_ref(q, k, v, h0, True, decay)
    assert_close("fallback o", o_ref, o)

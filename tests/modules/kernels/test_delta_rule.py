"""delta_rule (the compiled CPU recurrence): gradients in double, against the chunked form, its
no-grad path, its fallback, bf16, and the DeltaNet model on it against its own step() and against the
chunked form. Its values and gradients against the reference loop, case by case, are checked beside
the chunked form's in test_linear_attention.py."""
from __future__ import annotations

import importlib

import pytest
import torch

from modules.kernels.delta_rule import (
    delta_rule,
    delta_rule_chunked,
    delta_rule_ref,
    native_available,
)

from .helpers import assert_close, check_model_on_kernel, leaf, spy_kept
from .test_linear_attention import DELTA_CASES, Case, make_delta

needs_kernel = pytest.mark.skipif(not native_available(), reason="no C compiler here: the op runs its chunked form")


@needs_kernel
def test_gradcheck_in_double_with_and_without_an_initial_state_or_a_final_one():
    c = Case("tiny", 2, 19, 2, 3, 4, None)        # T = 19: a whole chunk of 16 and a part
    q, k, v, beta, h0 = (leaf(t) for t in make_delta(c, torch.float64))
    assert torch.autograd.gradcheck(lambda *a: delta_rule(*a, True), (q, k, v, beta, h0))
    assert torch.autograd.gradcheck(lambda *a: delta_rule(*a)[0], (q, k, v, beta))
    # only the final state is used: the outputs' gradient is None in the backward
    assert torch.autograd.gradcheck(lambda *a: delta_rule(*a, True)[1], (q, k, v, beta, h0))


@needs_kernel
def test_the_kernel_is_the_op_on_a_cpu_and_the_chunked_form_agrees():
    q, k, v, beta, h0 = make_delta(DELTA_CASES[0])
    o, s = delta_rule(q, k, v, beta, h0, True)
    o_c, s_c = delta_rule_chunked(q, k, v, beta, h0, True, chunk_size=16)
    assert not torch.equal(o, o_c)                  # two computations (rounding differs) ...
    assert_close("o", o_c, o)                       # ... of the same thing
    assert_close("final_state", s_c, s)


@needs_kernel
def test_under_no_grad_it_keeps_no_states_and_gives_the_same_numbers(monkeypatch):
    from modules.kernels.delta_rule import cpu

    q, k, v, beta, _ = (leaf(t) for t in make_delta(DELTA_CASES[0]))
    kept = spy_kept(monkeypatch, cpu._native_fns(), torch.float32, 6 + 7)   # the states pointer
    o, s = delta_rule(q, k, v, beta, None, True)
    with torch.no_grad():
        o2, s2 = delta_rule(q, k, v, beta, None, True)
    assert kept == [True, False]
    assert torch.equal(o, o2) and torch.equal(s, s2) and not o2.requires_grad


def test_without_the_kernel_the_op_is_the_chunked_form(monkeypatch):
    op = importlib.import_module("modules.kernels.delta_rule")   # the package (the attribute is the op)

    monkeypatch.setattr(op, "usable", lambda *t: False)
    q, k, v, beta, h0 = make_delta(DELTA_CASES[0])
    o, s = op.delta_rule(q, k, v, beta, h0, True, chunk_size=16)
    o_c, s_c = delta_rule_chunked(q, k, v, beta, h0, True, chunk_size=16)
    assert torch.equal(o, o_c) and torch.equal(s, s_c)


@needs_kernel
def test_bf16_inputs_compute_in_fp32_and_come_back_in_bf16():
    q, k, v, beta, h0 = make_delta(DELTA_CASES[0])
    o_ref, _ = delta_rule_ref(q, k, v, beta, h0, True)
    o, s = delta_rule(*(t.to(torch.bfloat16) for t in (q, k, v, beta, h0)), output_final_state=True)
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32
    assert_close("bf16 o", o_ref, o.float(), atol=0.1, rtol=0.05)


def test_bad_shapes_are_named():
    q, k, v, beta, _ = make_delta(DELTA_CASES[0])
    with pytest.raises(ValueError, match="beta must be"):
        delta_rule(q, k, v, beta[..., :1])
    with pytest.raises(ValueError, match="q, k must be"):
        delta_rule(q, k[..., :2], v, beta)


@needs_kernel
def test_deltanet_on_the_kernel_is_its_step_loop_and_the_chunked_form(monkeypatch):
    op = importlib.import_module("modules.kernels.delta_rule")   # the package (the attribute is the op)
    check_model_on_kernel("deltanet", {"n_head": 2}, op, monkeypatch, what="the chunked form")

"""elman_recurrence and gru_recurrence (the compiled CPU loops) against their reference loops: values,
final states and every gradient; and the models' fused layers against their own step()."""
from __future__ import annotations

import pytest
import torch

from modules.kernels.rnn import (elman_recurrence, elman_recurrence_ref, gru_recurrence, gru_recurrence_ref,
                                 linear_recurrence, linear_recurrence_ref, native_available)

from .helpers import assert_close, check_model_on_kernel, fixed_weights, grads, leaf, spy_kept

needs_kernel = pytest.mark.skipif(not native_available(), reason="no C compiler here: the op runs its loop")


def make(gates: int, B=3, T=11, H=5, dtype=torch.float32, seed=0, state=True):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    u, R, bR = rn(B, T, gates * H), rn(gates * H, H) * 0.5, rn(gates * H)
    return u, R, bR, (rn(B, H) if state else None)


@needs_kernel
@pytest.mark.parametrize("relu", [False, True])
def test_elman_kernel_matches_the_loop(relu):
    u, R, _, h0 = (leaf(t) for t in make(1))
    ref_y, ref_hT = elman_recurrence_ref(u, R, h0, relu)
    g_ref = grads([ref_y, ref_hT], [u, R, h0])
    y, hT = elman_recurrence(u, R, h0, relu)
    g = grads([y, hT], [u, R, h0])
    assert_close("y", ref_y, y)
    assert_close("h_T", ref_hT, hT)
    for what, gr, gf in zip(["u", "R", "h0"], g_ref, g):
        assert_close(f"d{what}", gr, gf, atol=1e-4, rtol=2e-4)



@needs_kernel
def test_linear_kernel_matches_the_loop():
    """The Elman kernel without its activation (the linear SSM's recurrence), and in double precision
    its gradients against finite differences."""
    u, R, _, h0 = (leaf(t) for t in make(1))
    ref_y, ref_hT = linear_recurrence_ref(u, R * 0.5, h0)
    g_ref = grads([ref_y, ref_hT], [u, R, h0])
    y, hT = linear_recurrence(u, R * 0.5, h0)
    g = grads([y, hT], [u, R, h0])
    assert_close("y", ref_y, y)
    assert_close("h_T", ref_hT, hT)
    for what, gr, gf in zip(["u", "R", "h0"], g_ref, g):
        assert_close(f"d{what}", gr, gf, atol=1e-4, rtol=2e-4)
    u, R, _, h0 = make(1, B=2, T=5, H=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: linear_recurrence(*a), [leaf(u), leaf(R * 0.5), leaf(h0)])

@needs_kernel
def test_gru_kernel_matches_the_loop():
    u, R, bR, h0 = (leaf(t) for t in make(3))
    ref_y, ref_hT = gru_recurrence_ref(u, R, bR, h0)
    g_ref = grads([ref_y, ref_hT], [u, R, bR, h0])
    y, hT = gru_recurrence(u, R, bR, h0)
    g = grads([y, hT], [u, R, bR, h0])
    assert_close("y", ref_y, y)
    assert_close("h_T", ref_hT, hT)
    for what, gr, gf in zip(["u", "R", "bR", "h0"], g_ref, g):
        assert_close(f"d{what}", gr, gf, atol=1e-4, rtol=2e-4)



@needs_kernel
@pytest.mark.parametrize("kind", ["tanh", "relu", "linear", "gru"])
def test_rows_stepped_together_give_each_row_its_own_numbers(kind):
    """The kernels step batch rows through time in blocks of native.ROW_BLOCK (one read of R per
    block), a row's terms summed in the single-row order: every row of a batch of 7 (a full block and
    a part one) at H = 40 (a register tile and a remainder) equals the row run alone, bit for bit,
    values and gradients."""
    gates = 3 if kind == "gru" else 1
    u, R, bR, h0 = make(gates, B=7, T=9, H=40)
    R = R * 0.3
    out_y, out_g = [], []
    weights = fixed_weights()
    for rows in [slice(0, 7)] + [slice(b, b + 1) for b in range(7)]:
        uu, hh, RR, bb = leaf(u[rows]), leaf(h0[rows]), leaf(R), leaf(bR)
        y, hT = (gru_recurrence(uu, RR, bb, hh) if kind == "gru" else linear_recurrence(uu, RR, hh)
                 if kind == "linear" else elman_recurrence(uu, RR, hh, kind == "relu"))
        outs = [y, hT]
        loss = sum((o * w[rows]).sum() for o, w in zip(outs, weights(outs, 7)))
        g = torch.autograd.grad(loss, [uu, hh])
        out_y.append(torch.cat([y.flatten(1), hT], 1))
        out_g.append(torch.cat([x.flatten(1) for x in g], 1))
    assert torch.equal(out_y[0], torch.cat(out_y[1:])), "a row's outputs depend on the rows beside it"
    assert torch.equal(out_g[0], torch.cat(out_g[1:])), "a row's gradients depend on the rows beside it"


@needs_kernel
def test_kernels_match_the_loops_across_blocks_and_tiles():
    """B = 6 (a block of four and a part block), H = 40 (a register tile and a remainder)."""
    for gates in (1, 3):
        u, R, bR, h0 = (leaf(t) for t in make(gates, B=6, T=7, H=40))
        ref = gru_recurrence_ref(u, R * 0.3, bR, h0) if gates == 3 else elman_recurrence_ref(u, R * 0.3, h0)
        out = gru_recurrence(u, R * 0.3, bR, h0) if gates == 3 else elman_recurrence(u, R * 0.3, h0)
        ins = [u, R, bR, h0] if gates == 3 else [u, R, h0]
        for what, gr, gf in zip("u R bR h0".split() if gates == 3 else "u R h0".split(),
                                grads(list(ref), ins), grads(list(out), ins)):
            assert_close(f"d{what}", gr, gf, atol=1e-4, rtol=2e-4)
        assert_close("y", ref[0], out[0])

@needs_kernel
def test_gradcheck_in_double_with_and_without_an_initial_state():
    for state in (True, False):
        u, R, bR, h0 = make(3, B=2, T=5, H=3, dtype=torch.float64, state=state)
        leaves = [leaf(t) for t in (u, R, bR)] + ([leaf(h0)] if state else [])
        assert torch.autograd.gradcheck(lambda *a: gru_recurrence(*a), leaves)
        u, R, _, h0 = make(1, B=2, T=5, H=3, dtype=torch.float64, state=state)
        leaves = [leaf(u), leaf(R)] + ([leaf(h0)] if state else [])
        assert torch.autograd.gradcheck(lambda *a: elman_recurrence(*a), leaves)


@needs_kernel
def test_under_no_grad_the_gru_kernel_keeps_nothing_and_gives_the_same_numbers(monkeypatch):
    """An evaluation (torch.no_grad, the weights still requiring grad) keeps no (B, T, 4, H) gate
    activations for a backward that will not come."""
    from modules.kernels.rnn import cpu

    u, R, bR, h0 = (leaf(t) for t in make(3))
    kept = spy_kept(monkeypatch, cpu._native_fns()["gru"], torch.float32, 4 + 5)   # the acts pointer
    y, hT = gru_recurrence(u, R, bR, h0)
    with torch.no_grad():
        y2, hT2 = gru_recurrence(u, R, bR, h0)
    assert kept == [True, False]
    assert torch.equal(y, y2) and torch.equal(hT, hT2) and not y2.requires_grad


def test_bad_shapes_are_named():
    u, R, bR, h0 = make(3)
    with pytest.raises(ValueError, match="R must be"):
        gru_recurrence(u, R[:-1], bR, h0)
    with pytest.raises(ValueError, match="h0 must be"):
        elman_recurrence(u[..., :5], R[:5], h0[:, :2])


@needs_kernel
@pytest.mark.parametrize("arch,params", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("gru", {})])
def test_the_models_fused_layers_are_their_step_loops(arch, params, monkeypatch):
    """The models call the kernel in training (fused) and their cells' step() one position at a time:
    the same numbers, and the same gradients as torch's own native recurrence."""
    import modules.kernels.rnn as op

    check_model_on_kernel(arch, params, op, monkeypatch, what="torch's native recurrence")   # usable False: torch.rnn_* / torch.gru

"""lstm_recurrence (the compiled CPU loop) against its reference loop: values, final states and every
gradient, for each of Greff et al.'s variants that the op takes (all but full gate recurrence)."""
from __future__ import annotations

import pytest
import torch

from modules.kernels.lstm import Flags, lstm_recurrence, lstm_recurrence_ref, native_available

from .helpers import assert_close, fixed_weights, grads, leaf, spy_kept

VARIANTS = {
    "V": Flags(),
    "NIG": Flags(input_gate=False),
    "NFG": Flags(forget_gate=False),
    "NOG": Flags(output_gate=False),
    "NIAF": Flags(input_activation=False),
    "NOAF": Flags(output_activation=False),
    "CIFG": Flags(coupled_input_forget=True),
    "NP": Flags(peepholes=False),
    "NP_CIFG": Flags(peepholes=False, coupled_input_forget=True),
}
needs_kernel = pytest.mark.skipif(not native_available(), reason="no C compiler here: the op runs its loop")


def make(flags: Flags, B=3, T=11, H=5, dtype=torch.float32, seed=0, states=True):
    g = torch.Generator().manual_seed(seed)
    n = 1 + len(flags.gates)
    rn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    u = rn(B, T, n * H)
    R = rn(n * H, H) * 0.5
    peep = rn(3, H) * 0.5
    if not flags.peepholes:
        peep = torch.zeros_like(peep)
    for row, gate in enumerate("ifo"):
        if gate not in flags.gates:
            peep[row] = 0
    y0, c0 = (rn(B, H), rn(B, H)) if states else (None, None)
    return u, R, peep, y0, c0


@needs_kernel
@pytest.mark.parametrize("name", list(VARIANTS))
def test_kernel_matches_the_loop(name):
    flags = VARIANTS[name]
    u, R, peep, y0, c0 = (None if t is None else leaf(t) for t in make(flags))
    ref_y, (ref_yT, ref_cT) = lstm_recurrence_ref(u, R, peep, flags, y0, c0)
    g_ref = grads([ref_y, ref_yT, ref_cT], [u, R, peep, y0, c0])
    y, (yT, cT) = lstm_recurrence(u, R, peep, flags, y0, c0)
    g = grads([y, yT, cT], [u, R, peep, y0, c0])
    assert_close(f"{name} y", ref_y, y)
    assert_close(f"{name} y_T", ref_yT, yT)
    assert_close(f"{name} c_T", ref_cT, cT)
    for what, gr, gf in zip(["u", "R", "peep", "y0", "c0"], g_ref, g):
        assert_close(f"{name} d{what}", gr, gf, atol=1e-4, rtol=2e-4)


@needs_kernel
@pytest.mark.parametrize("name", ["V", "NIG", "CIFG", "NOAF"])
def test_kernel_gradcheck(name):
    flags = VARIANTS[name]
    leaves = [leaf(t) for t in make(flags, B=2, T=5, H=3, dtype=torch.float64)]

    def f(u, R, peep, y0, c0):
        y, (yT, cT) = lstm_recurrence(u, R, peep, flags, y0, c0)
        return y, yT, cT

    assert torch.autograd.gradcheck(f, leaves)


@needs_kernel
def test_zero_initial_states_and_float32_at_model_sizes():
    """No initial state (zeros), H = 64 and T = 64 as the catalogue's models run: float32's own
    sigmoid and tanh against the float64 loop."""
    flags = VARIANTS["V"]
    u, R, peep, _, _ = make(flags, B=4, T=64, H=64, states=False)
    y, (yT, cT) = lstm_recurrence(u, R * 0.3, peep, flags)
    ref_y, (_, ref_cT) = lstm_recurrence_ref(u.double(), R.double() * 0.3, peep.double(), flags)
    assert_close("float32 y", ref_y, y, atol=2e-5, rtol=1e-5)
    assert_close("float32 c_T", ref_cT, cT, atol=2e-5, rtol=1e-5)


def test_bad_shapes_are_named():
    flags = VARIANTS["NIG"]                                    # z, f, o: 3 rows
    u, R, peep, y0, c0 = make(flags)
    with pytest.raises(ValueError, match="R must be"):
        lstm_recurrence(u, R[:-1], peep, flags)
    with pytest.raises(ValueError, match="peep must be"):
        lstm_recurrence(u, R, peep[:2], flags)


@needs_kernel
def test_without_gradients_the_kernel_keeps_nothing_for_a_backward_and_gives_the_same_numbers(monkeypatch):
    """Under no_grad the kernel writes the per-step activations to a scratch row, not (B, T, 5, H)
    tensors: the same outputs, bit for bit, as with gradients."""
    from modules.kernels.lstm import cpu

    flags = VARIANTS["V"]
    u, R, peep, y0, c0 = (leaf(t) for t in make(flags))
    kept = spy_kept(monkeypatch, cpu._native_fns(), torch.float32, 4 + 7)   # the acts pointer
    y, (yT, cT) = lstm_recurrence(u, R, peep, flags, y0, c0)
    with torch.no_grad():                 # R and the rest still require grad: an evaluation
        y2, (yT2, cT2) = lstm_recurrence(u, R, peep, flags, y0, c0)
    assert kept == [True, False]
    assert torch.equal(y, y2) and torch.equal(yT, yT2) and torch.equal(cT, cT2)


@needs_kernel
@pytest.mark.parametrize("name", ["V", "CIFG", "NP"])
def test_rows_stepped_together_give_each_row_its_own_numbers(name):
    """The kernel steps batch rows through time in blocks of native.ROW_BLOCK, one read of R for the
    block, with a row's terms summed in the single-row order. So every row of a batch of 7 (a full
    block and a part one) at H = 40 (a tile of outputs and a remainder) equals, bit for bit, the row
    run alone, values and gradients."""
    flags = VARIANTS[name]
    u, R, peep, y0, c0 = make(flags, B=7, T=9, H=40)
    R = R * 0.3
    out_y, out_g = [], []
    weights = fixed_weights()
    for rows in [slice(0, 7)] + [slice(b, b + 1) for b in range(7)]:
        leaves = [leaf(t[rows]) for t in (u, y0, c0)] + [leaf(R), leaf(peep)]
        uu, yy, cc, RR, pp = leaves
        y, (yT, cT) = lstm_recurrence(uu, RR, pp, flags, yy, cc)
        outs = [y, yT, cT]
        loss = sum((o * w[rows]).sum() for o, w in zip(outs, weights(outs, 7)))
        g = torch.autograd.grad(loss, [uu, yy, cc])
        out_y.append(torch.cat([y.flatten(1), yT, cT], 1))
        out_g.append(torch.cat([x.flatten(1) for x in g], 1))
    assert torch.equal(out_y[0], torch.cat(out_y[1:])), "a row's outputs depend on the rows beside it"
    assert torch.equal(out_g[0], torch.cat(out_g[1:])), "a row's gradients depend on the rows beside it"


@needs_kernel
def test_kernel_matches_the_loop_across_blocks_and_tiles():
    """B = 6 (a block of four and a part block), H = 40 (a register tile and a remainder)."""
    flags = VARIANTS["V"]
    u, R, peep, y0, c0 = (leaf(t) for t in make(flags, B=6, T=7, H=40))
    ref = lstm_recurrence_ref(u, R * 0.3, peep, flags, y0, c0)
    g_ref = grads([ref[0], *ref[1]], [u, R, peep, y0, c0])
    out = lstm_recurrence(u, R * 0.3, peep, flags, y0, c0)
    g = grads([out[0], *out[1]], [u, R, peep, y0, c0])
    assert_close("y", ref[0], out[0])
    for what, gr, gf in zip(["u", "R", "peep", "y0", "c0"], g_ref, g):
        assert_close(f"d{what}", gr, gf, atol=1e-4, rtol=2e-4)

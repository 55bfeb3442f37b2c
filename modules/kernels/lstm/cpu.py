"""The compiled CPU kernel of the LSTM recurrence: lstm_cpu.c beside this file, built on first use
by ../native.py and called through ctypes. The whole time loop runs in C (the recurrent product,
the gates, the cell), forward and backward; torch forms the weight gradients from the kernel's
per-step gate gradients in one matmul. `lstm_recurrence` uses it for CPU tensors when it builds.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import native
from .._common import fp32_math, work_dtype
from .naive import Flags, _check

SOURCE = Path(__file__).resolve().with_name("lstm_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_BITS = {"input_gate": 1, "forget_gate": 2, "output_gate": 4, "input_activation": 8, "output_activation": 16,
         "coupled_input_forget": 32}


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled lstm_cpu.c, or None when it is unavailable."""
    return native.fwd_bwd(SOURCE, "lstm", _SUFFIX, (4, 11), (4, 12))


def native_available() -> bool:
    """Whether `lstm_recurrence` runs the compiled CPU kernel here (builds it on the first call)."""
    return _native_fns() is not None


def _bits(flags: Flags) -> int:
    return sum(bit for name, bit in _BITS.items() if getattr(flags, name))


class _NativeLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, peep, y0, c0, bits: int, keep: bool):
        fwd, _ = _native_fns()[u.dtype]
        u, R, peep = u.contiguous(), R.contiguous(), peep.contiguous()
        y0 = None if y0 is None else y0.contiguous()
        c0 = None if c0 is None else c0.contiguous()
        Bn, L, nH = u.shape
        H = R.shape[1]
        # `keep` comes from the caller: inside forward, grad mode is always off, and needs_input_grad
        # still says True for a parameter under torch.no_grad (an evaluation)
        want_grad = keep and any(ctx.needs_input_grad)
        ys = u.new_empty(Bn, L, H)
        cs = u.new_empty(Bn, L, H) if want_grad else None          # what the backward reads, kept only for it
        acts = u.new_empty(Bn, L, 5, H) if want_grad else None
        yT, cT = u.new_empty(Bn, H), u.new_empty(Bn, H)
        work = u.new_empty(6 * H + native.ROW_BLOCK * (nH + 2 * H))
        RT = R.t().contiguous()            # held here: a temporary would be freed before the call reads it
        fwd(Bn, L, H, bits, *(native.ptr(t) for t in (u, RT, peep, y0, c0, ys, cs, acts, yT, cT, work)))
        ctx.bits = bits
        if want_grad:
            ctx.save_for_backward(R, peep, y0, c0, ys, cs, acts)
        return ys, yT, cT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dys, dyT, dcT):
        R, peep, y0, c0, ys, cs, acts = ctx.saved_tensors
        _, bwd = _native_fns()[R.dtype]
        Bn, L, H = ys.shape
        nH = R.shape[0]
        dys, dyT, dcT = (g.to(R.dtype).contiguous() for g in (dys, dyT, dcT))
        dpre = ys.new_empty(Bn, L, nH)
        dy0, dc0 = ys.new_empty(Bn, H), ys.new_empty(Bn, H)
        work = ys.new_zeros((2 * native.ROW_BLOCK + 1) * H)
        bwd(Bn, L, H, ctx.bits, *(native.ptr(t) for t in (R, peep, c0, cs, acts, dys, dyT, dcT, dpre, dy0, dc0, work)))
        # the inputs of every step's R y_{t-1}: y0 (or zeros), then the outputs but the last
        y_prev = torch.cat([(ys.new_zeros(Bn, 1, H) if y0 is None else y0[:, None]), ys[:, :-1]], dim=1)
        dR = dpre.reshape(-1, nH).t() @ y_prev.reshape(-1, H)                            # (nH, H)
        dpeep = None
        if ctx.needs_input_grad[2]:
            flags = {name: bool(ctx.bits & bit) for name, bit in _BITS.items()}
            gates = Flags(**flags, peepholes=True).gates
            c_prev = torch.cat([(cs.new_zeros(Bn, 1, H) if c0 is None else c0[:, None]), cs[:, :-1]], dim=1)
            dpeep = torch.zeros_like(peep)
            for row, g in enumerate(("i", "f", "o")):
                if g in gates:
                    k = 1 + gates.index(g)
                    dpeep[row] = (dpre[..., k * H:(k + 1) * H] * (cs if g == "o" else c_prev)).sum((0, 1))
        return (dpre, dR, dpeep, dy0 if y0 is not None and ctx.needs_input_grad[3] else None,
                dc0 if c0 is not None and ctx.needs_input_grad[4] else None, None, None)


def usable(*tensors) -> bool:
    return native.real_on_cpu(*tensors) and native_available()


@fp32_math
def _lstm_native(u, R, peep, flags: Flags, y0=None, c0=None):
    _check(u, R, peep, flags, y0, c0)
    dtype = u.dtype
    work = work_dtype(u, R, peep)
    cast = (lambda t: None if t is None else t.to(work))
    keep = native.wants_backward(u, R, peep, y0, c0)
    ys, yT, cT = _NativeLSTM.apply(cast(u), cast(R), cast(peep), cast(y0), cast(c0), _bits(flags), keep)
    return ys.to(dtype), (yT.to(dtype), cT.to(dtype))

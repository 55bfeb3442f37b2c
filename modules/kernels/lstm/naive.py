"""The reference loop of the LSTM recurrence (Greff et al. 2015's vanilla LSTM and its variants,
without full gate recurrence), on the packed layout the models use, and the checks every path shares.

Per step, with the input projection u_t = W x_t + b already computed (one matmul over the sequence):
    pre_t = u_t + R y_{t-1}                          rows [z, i, f, o]: the gates present, in that order
    z_t = g(pre_z)                                    g = tanh, or the identity (input_activation: false)
    i_t = sigma(pre_i + p_i * c_{t-1})                1 without an input gate
    f_t = sigma(pre_f + p_f * c_{t-1})                1 without a forget gate; 1 - i_t when coupled
    c_t = z_t i_t + c_{t-1} f_t
    o_t = sigma(pre_o + p_o * c_t)                    1 without an output gate (it peeps at the new cell)
    y_t = h(c_t) o_t                                  h = tanh, or the identity (output_activation: false)
p_* are the peepholes (zero without them).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .._common import fp32_math, work_dtype


class Flags(NamedTuple):
    """Which parts of the vanilla LSTM a variant keeps (modules/models/lstm.py's LSTMConfig)."""
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    coupled_input_forget: bool = False
    peepholes: bool = True

    @property
    def gates(self) -> list[str]:
        """The sigmoid gates with rows of their own in u and R, in order."""
        out = []
        if self.input_gate:
            out.append("i")
        if self.forget_gate and not self.coupled_input_forget:
            out.append("f")
        if self.output_gate:
            out.append("o")
        return out


def _check(u, R, peep, flags: Flags, y0, c0):
    if u.dim() != 3:
        raise ValueError(f"lstm_recurrence: u must be (B, T, (1 + gates) H); got {tuple(u.shape)}")
    H = R.shape[1]
    n = 1 + len(flags.gates)
    if R.shape != (n * H, H) or u.shape[2] != n * H:
        raise ValueError(f"lstm_recurrence: with gates {flags.gates}, R must be ({n * H}, {H}) and u (B, T, {n * H}); "
                         f"got R {tuple(R.shape)}, u {tuple(u.shape)}")
    if peep.shape != (3, H):
        raise ValueError(f"lstm_recurrence: peep must be (3, {H}) (rows i, f, o; zeros where absent); got {tuple(peep.shape)}")
    if flags.coupled_input_forget and not (flags.input_gate and flags.forget_gate):
        raise ValueError("lstm_recurrence: coupling (f = 1 - i) needs the input and the forget gate")
    for name, s in (("y0", y0), ("c0", c0)):
        if s is not None and s.shape != (u.shape[0], H):
            raise ValueError(f"lstm_recurrence: {name} must be (B, H) = ({u.shape[0]}, {H}); got {tuple(s.shape)}")


@fp32_math
def lstm_recurrence_ref(u, R, peep, flags: Flags, y0=None, c0=None):
    """Reference loop, fp32 (fp64 when an input is). u (B, T, (1 + gates) H), R (rows, H), peep (3, H)
    (rows i, f, o), y0 and c0 (B, H) or None (zeros). Returns (y (B, T, H), (y_T, c_T))."""
    _check(u, R, peep, flags, y0, c0)
    dtype = u.dtype
    work = work_dtype(u, R, peep)
    u, R, peep = u.to(work), R.to(work), peep.to(work)
    B, H = u.shape[0], R.shape[1]
    y = u.new_zeros(B, H) if y0 is None else y0.to(work)
    c = u.new_zeros(B, H) if c0 is None else c0.to(work)
    rows = dict(zip(["z", *flags.gates], range(1 + len(flags.gates))))
    ys = []
    for u_t in u.unbind(1):      # not u[:, t], whose backward fills all of u per step
        pre = u_t + y @ R.t()
        part = {g: pre[:, k * H:(k + 1) * H] for g, k in rows.items()}
        z = torch.tanh(part["z"]) if flags.input_activation else part["z"]
        i = torch.sigmoid(part["i"] + peep[0] * c) if flags.input_gate else None
        if flags.coupled_input_forget:
            f = 1 - i
        elif flags.forget_gate:
            f = torch.sigmoid(part["f"] + peep[1] * c)
        else:
            f = None
        c = (z * i if i is not None else z) + (c * f if f is not None else c)
        o = torch.sigmoid(part["o"] + peep[2] * c) if flags.output_gate else None
        y = torch.tanh(c) if flags.output_activation else c
        if o is not None:
            y = y * o
        ys.append(y)
    return torch.stack(ys, dim=1).to(dtype), (y.to(dtype), c.to(dtype))

"""The Elman, linear and GRU recurrences on the layout the models use (modules/models/rnn.py,
linear_ssm.py): ys, h_T = elman_recurrence(u, R, h0, relu), linear_recurrence(u, R, h0) and
gru_recurrence(u, R, bR, h0), u the input projection of every step.

`*_ref` are the loops (naive.py, the equations). The fast versions run the compiled CPU kernels
(rnn_cpu.c, cpu.py, built by ../native.py when the machine has a C compiler): the time loop, the
recurrent product and the gates in C, forward and backward; else, and on a GPU, the loops.
"""
from __future__ import annotations

from .cpu import _elman_native, _gru_native, native_available, usable
from .naive import elman_recurrence_ref, gru_recurrence_ref, linear_recurrence_ref

__all__ = ["elman_recurrence", "elman_recurrence_ref", "gru_recurrence", "gru_recurrence_ref", "linear_recurrence",
           "linear_recurrence_ref", "native_available"]


def elman_recurrence(u, R, h0=None, relu: bool = False):
    """Fast Elman recurrence; same signature and returns as `elman_recurrence_ref`."""
    if usable(u, R, h0) and u.numel() > 0:
        return _elman_native(u, R, h0, "relu" if relu else "tanh")
    return elman_recurrence_ref(u, R, h0, relu)


def linear_recurrence(u, R, h0=None):
    """Fast linear recurrence h_t = u_t + R h_{t-1}; same signature and returns as `linear_recurrence_ref`."""
    if usable(u, R, h0) and u.numel() > 0:
        return _elman_native(u, R, h0, act="linear")
    return linear_recurrence_ref(u, R, h0)


def gru_recurrence(u, R, bR, h0=None):
    """Fast GRU recurrence; same signature and returns as `gru_recurrence_ref`."""
    if usable(u, R, bR, h0) and u.numel() > 0:
        return _gru_native(u, R, bR, h0)
    return gru_recurrence_ref(u, R, bR, h0)

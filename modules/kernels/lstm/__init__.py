"""The LSTM recurrence (Greff et al. 2015's LSTM and its variants, without full gate recurrence) on
the packed layout the models use: y, (y_T, c_T) = lstm_recurrence(u, R, peep, flags, y0, c0).

`lstm_recurrence_ref` is the loop (naive.py, the equations). `lstm_recurrence` runs the compiled
CPU kernel (lstm_cpu.c, cpu.py, built by ../native.py when the machine has a C compiler): the time
loop, the recurrent product and the gates in C, forward and backward; else, and on a GPU, the loop.
"""
from __future__ import annotations

from .cpu import _lstm_native, native_available, usable
from .naive import Flags, lstm_recurrence_ref

__all__ = ["lstm_recurrence", "lstm_recurrence_ref", "native_available", "Flags"]


def lstm_recurrence(u, R, peep, flags: Flags, y0=None, c0=None):
    """Fast LSTM recurrence; same signature and returns as `lstm_recurrence_ref`."""
    if usable(u, R, peep, y0, c0) and u.numel() > 0:
        return _lstm_native(u, R, peep, flags, y0, c0)
    return lstm_recurrence_ref(u, R, peep, flags, y0, c0)

"""First-order linear recurrence h_t = a_t * h_{t-1} + b_t, elementwise, real or complex.

`scan_ref` is the loop (naive.py). `scan_parallel` is a log-depth parallel associative scan
(odd-even recursive doubling, a work-efficient Blelloch-style scan written with strided torch
views) with a hand-written backward, which is itself one reverse scan (parallel.py). `scan` is
what the models call: on a CPU it runs the compiled kernel of scan_cpu.c (one pass over time,
vectorized across channels; cpu.py, built by ../native.py) when the machine has a C compiler,
and `scan_parallel` otherwise and on a GPU. A log-depth scan pays ~2 log2(T) memory passes for
its parallelism, which a GPU has the threads to use and a CPU core does not.

Layout: (B, T, ...) with time in dim 1; every trailing dim is an independent channel
(e.g. (B, T, D) or (B, T, D, N)). a and b must have the same shape.
"""
from __future__ import annotations

import torch

from .cpu import _NativeScan, native_available
from .naive import scan_ref
from .parallel import _prepare, _Scan, scan_parallel

__all__ = ["scan", "scan_parallel", "scan_ref", "native_available"]


def scan(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """Fast scan for h_t = a_t * h_{t-1} + b_t; same signature and returns as `scan_ref`.
    The compiled CPU kernel for CPU tensors when it is available, else `scan_parallel`."""
    a, b, h0, dtype = _prepare("scan", a, b, initial_state)
    use_native = (a.device.type == "cpu" and b.device.type == "cpu" and (h0 is None or h0.device.type == "cpu")
                  and a.numel() > 0 and native_available())
    h, h_last = (_NativeScan if use_native else _Scan).apply(a, b, h0)
    return h.to(dtype), h_last.to(dtype)

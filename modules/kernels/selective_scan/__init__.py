"""Selective scan (Mamba's S6), with mamba-ssm's shapes and conventions.

Per channel d and state n, with Delta = softplus(delta + delta_bias) (when asked):
    h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t        (ZOH for A, Euler for B)
    y_t = <C_t, h_t> + D u_t,   out_t = y_t * silu(z_t)
Shapes (mamba-ssm's `selective_scan_fn`): u, delta, z: (B, D, L); A: (D, N) real or complex;
B, C: (B, N, L), or (B, G, N, L) with D divisible by G (channel d reads group d // (D/G));
D, delta_bias: (D,); state (B, D, N). With complex A, B and C are complex tensors and
y = 2 Re<C, h> (the conjugate pair is implicit, as in mamba); mamba's packed real (B, N, 2L)
form of complex B/C is not accepted.

`selective_scan_ref` is the loop (naive.py). `selective_scan` runs mamba-ssm's CUDA kernel when it
is importable and the inputs are on a GPU (without an initial state, which that kernel does not
take); on a CPU with real inputs, the compiled kernel of sscan_cpu.c (cpu.py, built by ../native.py
when the machine has a C compiler: torch discretizes, the kernel runs the recurrence and the
readout <C, h> with a fused backward); else a chunked torch path (chunk.py): time is cut into chunks; in each, the discretized
(B, chunk, D, N) tensors are built and scanned with the scan op (../scan/), carrying the state
between chunks. Chunking keeps the big (D, N)-wide temporaries small enough to stay in cache
(measured 4x faster than materializing all L at once on CPU, and under a tenth of the memory).
"""
from __future__ import annotations

from .._common import on_cuda, optional_kernel, try_kernel
from .chunk import _selective_scan_torch
from .cpu import _selective_scan_native, native_available, usable
from .naive import _check, selective_scan_ref

__all__ = ["selective_scan", "selective_scan_ref", "native_available"]


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, output_final_state=False):
    """Fast selective scan; same signature and returns as `selective_scan_ref`."""
    _check(u, delta, A, B, C)
    fn = optional_kernel("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
    if fn is not None and initial_state is None and on_cuda(u, delta, A, B, C):
        res = try_kernel("selective_scan", fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                         return_last_state=output_final_state)
        if res is not None:
            return res if output_final_state else (res, None)
    if usable(u, A, B, C, initial_state):
        return _selective_scan_native(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                      output_final_state)
    return _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                 output_final_state)

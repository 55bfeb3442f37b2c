"""SSD, the state space dual of Mamba-2 (Dao & Gu 2024): a selective SSM whose A is a
scalar times the identity per head, so the whole sequence map is one semiseparable matrix.

    h_t = exp(A_t) h_{t-1} + dt_t x_t B_t^T        h: (B, H, P, N)
    y_t = h_t C_t

Shapes follow mamba's ssd_minimal: x (B, T, H, P); dt (B, T, H); A (B, T, H) is the per-step
log-decay, already multiplied by dt (A_t = dt_t * A_head <= 0); B, C (B, T, G, N) with H
divisible by G (head h reads group h // (H / G); G = H gives per-head B, C). dt scales the
input (x dt, mamba's Euler-like discretization of B); pass dt=None when x is already scaled.
Final state (B, H, P, N), as mamba's. The D skip, gate and dt_bias/softplus belong to the
layer, not the kernel.

`ssd_ref` is the loop (naive.py). `ssd_chunked` (chunk.py) follows the paper's minimal chunked
algorithm (ssd_minimal_discrete, Listing 1):
  1. intra-chunk outputs (diagonal blocks, a masked quadratic form),
  2. each chunk's own end state (right factor of the off-diagonal blocks),
  3. a recurrence over chunk states (the A terms),
  4. state-to-output for every position (left factor).
On a GPU with flash-linear-attention importable it runs fla's chunk_simple_gla, which is
the same recurrence (q=C, k=B, v=x dt, g=A) with the state transposed.
"""
from __future__ import annotations

from .chunk import ssd_chunked
from .naive import ssd_ref

__all__ = ["ssd_chunked", "ssd_ref"]

"""The delta rule (DeltaNet; Schlag et al. 2021, Yang et al. 2024).

Layout as in flash-linear-attention (and as linear attention's, ../linear_attn/): q, k
(B, T, H, K); v (B, T, H, V); beta (B, T, H); state (B, H, K, V); every op returns
(o, final_state) with o (B, T, H, V) and final_state None unless `output_final_state`. No scale
or feature map is applied: the caller maps q and k first (k is usually L2-normalized).

The delta rule has a recurrent reference (naive.py) and a chunked form (chunk.py) using the
WY / UT transform of Yang et al. 2024 ("Parallelizing Linear Transformers with the Delta Rule
over Sequence Length"): the C sequential rank-one updates in a chunk are rewritten as one
triangular solve.

When flash-linear-attention (`fla`) is importable and the inputs are on a GPU, the chunked
op calls its Triton kernel (chunk_delta_rule) with scale=1.

`delta_rule` is the op the models call: on a CPU the compiled recurrence (cpu.py, delta_cpu.c,
built by ../native.py when the machine has a C compiler), else the chunked form.
"""
from __future__ import annotations

from .chunk import delta_rule_chunked
from .cpu import delta_rule_native, native_available, usable
from .naive import delta_rule_ref

__all__ = ["delta_rule", "delta_rule_ref", "delta_rule_chunked", "native_available"]


def delta_rule(q, k, v, beta, initial_state=None, output_final_state=False, chunk_size=None):
    """Fast delta rule: the compiled recurrence on a CPU when it builds, else `delta_rule_chunked`
    (fla's kernel on a GPU). Same returns as `delta_rule_ref`; chunk_size is the chunked form's."""
    if usable(q, k, v, beta, initial_state) and q.shape[1] > 0:
        return delta_rule_native(q, k, v, beta, initial_state, output_final_state)
    return delta_rule_chunked(q, k, v, beta, initial_state, output_final_state, chunk_size)

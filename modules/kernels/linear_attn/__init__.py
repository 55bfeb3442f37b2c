"""Linear attention, with optional scalar decay.

Layout as in flash-linear-attention: q, k (B, T, H, K); v (B, T, H, V); state (B, H, K, V);
every op returns (o, final_state) with o (B, T, H, V) and final_state None unless
`output_final_state`. No scale or feature map is applied: the caller maps q and k first
(e.g. elu+1 for Katharopoulos et al. 2020, a K**-0.5 scale for fla's default). For the
normalized form o_t = q_t S_t / (q_t z_t), append a column of ones to v: the last output
column is the denominator.

Decay (gated linear attention with a scalar gate, RetNet, SSD-like): `decay` is a log-decay
g <= 0, either per head (H,) and constant in time (RetNet) or per step and head (B, T, H)
(data-dependent gate); the state is multiplied by exp(g_t) before step t's update.

Three equivalent forms of the same recurrence:
  recurrent (the reference loop, naive.py), parallel (one masked T x T product, parallel.py),
  and chunked (parallel inside chunks of `chunk_size`, a recurrence over chunk states between
  them; O(T C) work, the form fla's kernels use; chunk.py).
The delta rule, with the same layout, is its own op (../delta_rule/).

When flash-linear-attention (`fla`) is importable and the inputs are on a GPU, the chunked
op calls its Triton kernel (chunk_simple_gla) with scale=1.
"""
from __future__ import annotations

from .chunk import linear_attn_chunked
from .naive import linear_attn_recurrent_ref
from .parallel import linear_attn_parallel

__all__ = ["linear_attn_recurrent_ref", "linear_attn_parallel", "linear_attn_chunked"]

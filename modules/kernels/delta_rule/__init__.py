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
"""
from __future__ import annotations

from .chunk import delta_rule_chunked
from .naive import delta_rule_ref

__all__ = ["delta_rule_ref", "delta_rule_chunked"]

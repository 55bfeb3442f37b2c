"""The parallel form of linear attention: one masked T x T product."""
from __future__ import annotations

import torch

from .._common import check_qkv, fp32_math, to_work
from .naive import _log_decay


@fp32_math
def linear_attn_parallel(q, k, v, initial_state=None, output_final_state=False, decay=None):
    """Masked quadratic form: o = ((q k^T) * M) v + exp(G_t) q_t S_0, M_ts = exp(G_t - G_s) [s <= t],
    with G the cumulative log-decay. Same signature and returns as the reference.
    O(T^2) memory: a check and a short-sequence tool. G_t - G_s is a difference of two long
    sums, which loses digits once |G| reaches the thousands; the chunked form only takes
    differences inside a chunk."""
    check_qkv(q, k, v)
    dtype = v.dtype
    q, k, v, S0 = to_work(q, k, v, initial_state)
    g = _log_decay(decay, q)
    T = q.shape[1]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))                     # (B, H, T, *)
    scores = q @ k.transpose(-1, -2)                                      # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if g is None:
        scores = scores.masked_fill(~causal, 0)
    else:
        G = g.transpose(1, 2).cumsum(-1)                                  # (B, H, T)
        scores = scores * (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    o = scores @ v
    S = None
    if S0 is not None:
        q_in = q if g is None else q * G[..., None].exp()
        o = o + q_in @ S0
    if output_final_state:
        k_w = k if g is None else k * (G[..., -1:] - G).exp()[..., None]
        S = k_w.transpose(-1, -2) @ v
        if S0 is not None:
            S = S + (S0 if g is None else S0 * G[..., -1].exp()[..., None, None])
    return o.transpose(1, 2).to(dtype), S

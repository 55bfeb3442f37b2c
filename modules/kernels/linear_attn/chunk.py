"""The chunked form of linear attention: parallel inside chunks, a recurrence over chunk states
between them; fla's chunk_simple_gla on a GPU when it is importable."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import (check_qkv, chunk_or_default, fp32_math, on_cuda, optional_kernel, segsum, to_chunks,
                       to_work, try_kernel)
from .naive import _log_decay


@fp32_math
def _chunked_torch(q, k, v, initial_state, output_final_state, decay, chunk_size):
    dtype = v.dtype
    q, k, v, S0 = to_work(q, k, v, initial_state)
    g = _log_decay(decay, q)
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    q, k, v = (to_chunks(x, C) for x in (q, k, v))                    # (B, H, n, C, *)
    n = q.shape[2]
    scores = q @ k.transpose(-1, -2)                                    # (B, H, n, C, C)
    if g is None:
        # times a causal 0/1 mask rather than tril_: tril's backward on these batched (C, C) blocks
        # cost as much as all the matmuls together
        scores = scores.mul_(torch.ones(C, C, dtype=scores.dtype, device=scores.device).tril_())
        q_in, k_out = q, k
    else:
        G = to_chunks(g[..., None], C)[..., 0].cumsum(-1)              # (B, H, n, C) within-chunk
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        # exp(G_t - G_s) for s <= t, 0 above the diagonal (in place: these are (B, H, n, C, C))
        scores = scores * (G[..., :, None] - G[..., None, :]).masked_fill_(~causal, float("-inf")).exp_()
        q_in = q * G.exp()[..., None]                                   # decay from chunk start to t
        k_out = k * (G[..., -1:] - G).exp()[..., None]                  # decay from s to chunk end
    U = k_out.transpose(-1, -2) @ v                                     # (B, H, n, K, V) each chunk's own update
    # the state entering every chunk, and the final state
    if g is None:
        # an exclusive prefix sum over chunks as one product with a strictly lower-triangular
        # matrix of ones (faster than cumsum over a middle dim, and no cat to shift it by one)
        ones = torch.ones(n, n, dtype=U.dtype, device=U.device).tril_(-1)
        states = (ones @ U.reshape(B, H, n, K * V)).view(B, H, n, K, V)
        S = states[:, :, -1] + U[:, :, -1]
        if S0 is not None:
            states, S = states + S0[:, :, None], S + S0
    else:
        # S_{j+1} = exp(a_j) S_j + U_j over chunks, as one small (n+1) x (n+1) decay matrix (SSD step 3)
        a = F.pad(G[..., -1], (1, 0))                                   # (B, H, n+1)
        init = U.new_zeros(B, H, 1, K, V) if S0 is None else S0[:, :, None]
        all_states = torch.einsum("bhzc,bhckv->bhzkv", segsum(a).exp(), torch.cat([init, U], dim=2))
        states, S = all_states[:, :, :-1], all_states[:, :, -1]
    # inter- plus intra-chunk in one fused multiply-add: q_in @ states + scores @ v
    # (in place: the out-of-place baddbmm copies its first argument once more)
    o = (q_in @ states).view(-1, C, V).baddbmm_(scores.view(-1, C, C), v.view(-1, C, V)).view(B, H, n, C, V)
    o = o.permute(0, 2, 3, 1, 4).reshape(B, n * C, H, V)[:, :T]
    return o.to(dtype), (S if output_final_state else None)


def linear_attn_chunked(q, k, v, initial_state=None, output_final_state=False, decay=None, chunk_size=None):
    """Chunked form (fla's chunk kernels on a GPU when available). Same returns as the reference.
    chunk_size None: 64 on a GPU, 32 on a CPU (see `chunk_or_default`)."""
    check_qkv(q, k, v)
    fn = optional_kernel("fla.ops.simple_gla", "chunk_simple_gla")
    if fn is not None and on_cuda(q, k, v):
        g = _log_decay(decay, q)
        g = torch.zeros(q.shape[:3], dtype=torch.float32, device=q.device) if g is None else g.float().contiguous()
        res = try_kernel("linear_attn_chunked", fn, q, k, v, g=g, scale=1.0, initial_state=initial_state,
                         output_final_state=output_final_state)
        if res is not None:
            return res
    return _chunked_torch(q, k, v, initial_state, output_final_state, decay, chunk_or_default(chunk_size, q))

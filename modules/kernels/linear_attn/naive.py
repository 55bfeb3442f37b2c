"""The reference loop of linear attention (its recurrent form), and the decay argument's
normalization that every form shares."""
from __future__ import annotations

import torch

from .._common import check_qkv, fp32_math, to_work


def _log_decay(decay, q):
    """decay None | (H,) | (B, T, H) -> None or a (B, T, H) log-decay in q's dtype."""
    if decay is None:
        return None
    B, T, H = q.shape[:3]
    decay = decay.to(q.dtype)
    if decay.shape == (H,):
        return decay.expand(B, T, H)
    if decay.shape != (B, T, H):
        raise ValueError(f"decay must be (H,)=({H},) or (B, T, H)=({B}, {T}, {H}); got {tuple(decay.shape)}")
    return decay


@fp32_math
def linear_attn_recurrent_ref(q, k, v, initial_state=None, output_final_state=False, decay=None):
    """Reference loop (fp32):  S_t = exp(g_t) S_{t-1} + k_t v_t^T,   o_t = q_t^T S_t.
    With decay=None, g_t = 0 (Katharopoulos et al. 2020's causal linear attention)."""
    check_qkv(q, k, v)
    dtype = v.dtype
    q, k, v, S = to_work(q, k, v, initial_state)
    g = _log_decay(decay, q)
    B, T, H, K = q.shape
    if S is None:
        S = q.new_zeros(B, H, K, v.shape[-1])
    os = []
    for t, (q_t, k_t, v_t) in enumerate(zip(q.unbind(1), k.unbind(1), v.unbind(1))):
        if g is not None:
            S = S * g[:, t].exp()[..., None, None]
        S = S + k_t[..., :, None] * v_t[..., None, :]
        os.append(torch.einsum("bhk,bhkv->bhv", q_t, S))
    return torch.stack(os, dim=1).to(dtype), (S if output_final_state else None)

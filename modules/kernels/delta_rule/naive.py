"""The reference loop of the delta rule, and the beta check both forms share."""
from __future__ import annotations

import torch

from .._common import check_qkv, fp32_math, to_work


def _check_beta(q, beta):
    if beta.shape != q.shape[:3]:
        raise ValueError(f"beta must be (B, T, H)={tuple(q.shape[:3])}; got {tuple(beta.shape)}")


@fp32_math
def delta_rule_ref(q, k, v, beta, initial_state=None, output_final_state=False):
    """Reference loop for DeltaNet (Schlag et al. 2021; Yang et al. 2024), fp32:
        S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
        o_t = q_t^T S_t
    beta: (B, T, H), usually in (0, 1) (or (0, 2)); k is usually L2-normalized by the caller."""
    check_qkv(q, k, v)
    _check_beta(q, beta)
    dtype = v.dtype
    q, k, v, beta, S = to_work(q, k, v, beta, initial_state)
    B, T, H, K = q.shape
    if S is None:
        S = q.new_zeros(B, H, K, v.shape[-1])
    os = []
    for q_t, k_t, v_t, b_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), beta.unbind(1)):
        v_old = torch.einsum("bhk,bhkv->bhv", k_t, S)
        S = S + (b_t[..., None, None] * k_t[..., :, None]) * (v_t - v_old)[..., None, :]
        os.append(torch.einsum("bhk,bhkv->bhv", q_t, S))
    return torch.stack(os, dim=1).to(dtype), (S if output_final_state else None)

"""Chunked SSD: the paper's minimal chunked algorithm in torch, and fla's chunk_simple_gla on a GPU."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import chunk_or_default, fp32_math, on_cuda, optional_kernel, segsum, to_chunks, try_kernel, work_dtype
from .naive import _check, _heads


@fp32_math
def _ssd_torch(x, dt, A, B, C, chunk_size, initial_state):
    dtype = x.dtype
    work = work_dtype(x, A, B, C)
    x, dt, A, B, C = (None if t is None else t.to(work) for t in (x, dt, A, B, C))
    b, T, H, P = x.shape
    B, C = _heads(B, H), _heads(C, H)
    if dt is not None:
        x = x * dt[..., None]
    L = chunk_size
    # zero-padded steps: A = 0 keeps the state, x = 0 adds nothing; their outputs are cut off
    x, B, C = to_chunks(x, L), to_chunks(B, L), to_chunks(C, L)                # (b, h, c, l, *)
    A_cumsum = to_chunks(A[..., None], L)[..., 0].cumsum(dim=-1)           # (b, h, c, l), within chunk
    c = x.shape[2]

    # 1. intra-chunk outputs (diagonal blocks): (C_l . B_s) exp(A_s+1 + ... + A_l) x_s for s <= l.
    # Within one chunk the difference of cumsums is accurate (mamba's kernels use it too); the
    # listing's segsum is kept for step 3, where the sums run over the whole sequence.
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    decay = (A_cumsum[..., :, None] - A_cumsum[..., None, :]).masked_fill_(~causal, float("-inf")).exp_()
    Y_diag = ((C @ B.transpose(-1, -2)) * decay) @ x                     # (b, h, c, l, p)
    # 2. each chunk's own state at its end: sum_s exp(A_s+1 + ... + A_end) B_s x_s^T
    decay_states = (A_cumsum[..., -1:] - A_cumsum).exp()                 # (b, h, c, l)
    states = (B * decay_states[..., None]).transpose(-1, -2) @ x         # (b, h, c, n, p)
    # 3. recurrence over chunks: the state entering every chunk, and the final state
    if initial_state is None:
        init = states.new_zeros(b, H, 1, B.shape[-1], P)
    else:
        init = initial_state.to(work).transpose(-1, -2)[:, :, None]      # (b, h, 1, n, p)
    states = torch.cat([init, states], dim=2)                            # (b, h, c+1, n, p)
    decay_chunk = segsum(F.pad(A_cumsum[..., -1], (1, 0))).exp()         # (b, h, c+1, c+1)
    new_states = torch.einsum("bhzc,bhcnp->bhznp", decay_chunk, states)
    states, final_state = new_states[:, :, :-1], new_states[:, :, -1]
    # 4. state -> output within each chunk: exp(A_1 + ... + A_l) C_l h_chunk_start
    Y_off = (C * A_cumsum.exp()[..., None]) @ states                     # (b, h, c, l, p)
    y = (Y_diag + Y_off).permute(0, 2, 3, 1, 4).reshape(b, c * L, H, P)[:, :T]
    return y.to(dtype), final_state.transpose(-1, -2)                    # state (b, h, p, n)


def ssd_chunked(x, dt, A, B, C, chunk_size=None, initial_state=None):
    """Chunked SSD (the paper's minimal algorithm). Same signature and returns as `ssd_ref`;
    chunk_size None: 64 on a GPU, 32 on a CPU (see `chunk_or_default`)."""
    _check(x, dt, A, B, C)
    fn = optional_kernel("fla.ops.simple_gla", "chunk_simple_gla")
    if fn is not None and on_cuda(x, A, B, C):
        H = x.shape[2]
        v = x if dt is None else x * dt[..., None].to(x.dtype)
        h0 = None if initial_state is None else initial_state.transpose(-1, -2).contiguous()
        res = try_kernel("ssd_chunked", fn, _heads(C, H).contiguous(), _heads(B, H).contiguous(), v.contiguous(),
                         g=A.float().contiguous(), scale=1.0, initial_state=h0, output_final_state=True)
        if res is not None:
            y, S = res
            return y, S.transpose(-1, -2)  # fla keeps (K=N, V=P); ours is (P, N) as mamba's
    return _ssd_torch(x, dt, A, B, C, chunk_or_default(chunk_size, x), initial_state)

"""The chunked torch path of the selective scan: in each chunk of time the discretized
(B, chunk, D, N) tensors are built and run through the scan op, carrying the state between chunks."""
from __future__ import annotations

import torch

from .._common import fp32_math

# the one op built on another: Mamba's selective scan is the scan h_t = a_t h_{t-1} + b_t with input-dependent a, b
from ..scan import scan
from .naive import _finish, _prepare

_CHUNK = 64


@fp32_math
def _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                          output_final_state, chunk_size=_CHUNK):
    dtype_in = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    N = A.shape[1]
    # time-major and contiguous, (B, L, D) and B/C (B, L, G, N) with G=1 for the shared case, so
    # the (B, chunk, D, N) products come out time-major too (elementwise ops follow their
    # inputs' layout) and the scan's strided time slices stay vectorizable
    dt = delta.transpose(1, 2).contiguous()
    dtu = (dt * u.transpose(1, 2)).contiguous()
    Bt = (B.unsqueeze(1) if B.dim() == 3 else B).permute(0, 3, 1, 2).contiguous()
    Ct = (C.unsqueeze(1) if C.dim() == 3 else C).permute(0, 3, 1, 2).contiguous()
    gB, gC = Bt.shape[2], Ct.shape[2]
    h = None if initial_state is None else initial_state.to(A.dtype)
    ys = []
    for s in range(0, L, chunk_size):
        sl = slice(s, s + chunk_size)
        n = dt[:, sl].shape[1]
        dA = torch.exp(dt[:, sl, :, None] * A)                                          # (B, n, D, N)
        dBu = (dtu[:, sl].view(batch, n, gB, dim // gB, 1) * Bt[:, sl, :, None]).view(batch, n, dim, N)
        hs, h = scan(dA, dBu, h)                                                        # (B, n, D, N)
        y = torch.einsum("blgdn,blgn->blgd", hs.view(batch, n, gC, dim // gC, N), Ct[:, sl])
        ys.append(y.reshape(batch, n, dim))
    y = torch.cat(ys, dim=1).transpose(1, 2)                                            # (B, D, L)
    if y.is_complex():
        y = 2 * y.real
    return _finish(y, u, D, z, dtype_in), (h if output_final_state else None)

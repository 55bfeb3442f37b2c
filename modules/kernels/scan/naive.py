"""The reference loop of the scan h_t = a_t * h_{t-1} + b_t."""
from __future__ import annotations

import torch

from .._common import work_dtype


def scan_ref(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """Reference loop for h_t = a_t * h_{t-1} + b_t, with h_{-1} = initial_state (or 0).

    a, b: (B, T, ...) real or complex; initial_state: (B, ...) or None.
    Returns (h, final_state): h (B, T, ...) holds h_t for every t, final_state = h_{T-1}.
    Computed in fp32 (complex64 for complex inputs), returned in the input dtype.
    """
    dtype = torch.promote_types(a.dtype, b.dtype)
    work = work_dtype(a, b, initial_state)
    a, b = a.to(work), b.to(work)
    h = torch.zeros_like(b[:, 0]) if initial_state is None else initial_state.to(work)
    hs = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):  # unbind: one stack in backward, not T scatters
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs, dim=1).to(dtype), h.to(dtype)

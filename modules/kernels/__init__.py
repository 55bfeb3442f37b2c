"""Sequence-model kernels: each op has a plain fp32 loop `<op>_ref` with the paper's equation
in its docstring, and a fast torch path with the same signature returning (out, final_state).
Optional CUDA/Triton kernels (mamba-ssm, flash-linear-attention) are used when importable
and the inputs are on a GPU; otherwise (and on any failure) the torch path runs.

    scan                 h_t = a_t h_{t-1} + b_t, (B, T, ...) real or complex    scan.py
                         (on a CPU, a compiled C loop when it builds: native.py)
    selective scan       Mamba's S6, mamba-ssm shapes (B, D, L)                   selective_scan.py
    linear attention     recurrent / parallel / chunked, optional decay;          linear_attention.py
                         delta rule (DeltaNet) recurrent / chunked (WY transform)
    fftconv              causal long convolution, u (B, T, D), k (D, L)            fftconv.py
    ssd                  Mamba-2's SSD, chunked algorithm, (B, T, H, P)           ssd.py
"""
from .fftconv import fftconv, fftconv_ref
from .linear_attention import (
    delta_rule_chunked,
    delta_rule_ref,
    linear_attn_chunked,
    linear_attn_parallel,
    linear_attn_recurrent_ref,
)
from .scan import native_available as scan_native_available
from .scan import scan, scan_parallel, scan_ref
from .selective_scan import selective_scan, selective_scan_ref
from .ssd import ssd_chunked, ssd_ref

__all__ = [
    "scan", "scan_parallel", "scan_ref", "scan_native_available",
    "selective_scan", "selective_scan_ref",
    "linear_attn_recurrent_ref", "linear_attn_parallel", "linear_attn_chunked",
    "delta_rule_ref", "delta_rule_chunked",
    "fftconv", "fftconv_ref",
    "ssd_ref", "ssd_chunked",
]

"""Sequence-model kernels: each op has a plain fp32 loop `<op>_ref` with the paper's equation
in its docstring, and a fast torch path with the same signature returning (out, final_state).
Optional CUDA/Triton kernels (mamba-ssm, flash-linear-attention) are used when importable
and the inputs are on a GPU; otherwise (and on any failure) the torch path runs.

One folder per op, as flash-linear-attention's fla/ops/<op>/: naive.py holds the loop `<op>_ref`,
the other files the fast paths (chunk.py, parallel.py, fft.py, cpu.py), and __init__.py the op's
public names (for scan and selective_scan also the dispatch between paths). Ops share code only
through _common.py and native.py; selective_scan, built on the scan, calls the public `scan`.

    scan                 h_t = a_t h_{t-1} + b_t, (B, T, ...) real or complex    scan/
                         (on a CPU, a compiled C loop when it builds: scan/cpu.py,
                         scan/scan_cpu.c, native.py)
    selective scan       Mamba's S6, mamba-ssm shapes (B, D, L)                   selective_scan/
    linear attention     recurrent / parallel / chunked, optional decay           linear_attn/
    delta rule           DeltaNet, recurrent / chunked (WY transform)             delta_rule/
                         (on a CPU, a compiled loop: delta_rule/cpu.py, delta_cpu.c)
    fftconv              causal long convolution, u (B, T, D), k (D, L)            fftconv/
    ssd                  Mamba-2's SSD, chunked algorithm, (B, T, H, P)           ssd/
    lstm recurrence      Greff et al.'s LSTM variants on packed gates (B, T, nH)  lstm/
                         (on a CPU, a compiled loop: lstm/cpu.py, lstm/lstm_cpu.c)
    Elman, linear, GRU   the Elman, linear and GRU recurrences on their input      rnn/
                         projection
                         (on a CPU, a compiled loop: rnn/cpu.py, rnn/rnn_cpu.c)
    causal conv1d        Mamba's short depthwise convolution, channels last       causal_conv/
                         (B, T, C) (on a CPU, a compiled loop: causal_conv/cpu.py, cconv_cpu.c)
"""
from .causal_conv import causal_conv1d, causal_conv1d_ref
from .delta_rule import delta_rule, delta_rule_chunked, delta_rule_ref
from .fftconv import fftconv, fftconv_ref
from .linear_attn import linear_attn_chunked, linear_attn_parallel, linear_attn_recurrent_ref
from .lstm import lstm_recurrence, lstm_recurrence_ref
from .rnn import (elman_recurrence, elman_recurrence_ref, gru_recurrence, gru_recurrence_ref, linear_recurrence,
                  linear_recurrence_ref)
from .scan import native_available as scan_native_available
from .scan import scan, scan_parallel, scan_ref
from .selective_scan import selective_scan, selective_scan_ref
from .ssd import ssd_chunked, ssd_ref

__all__ = [
    "scan", "scan_parallel", "scan_ref", "scan_native_available",
    "selective_scan", "selective_scan_ref",
    "linear_attn_recurrent_ref", "linear_attn_parallel", "linear_attn_chunked",
    "delta_rule", "delta_rule_ref", "delta_rule_chunked",
    "fftconv", "fftconv_ref",
    "ssd_ref", "ssd_chunked",
    "lstm_recurrence", "lstm_recurrence_ref",
    "elman_recurrence", "elman_recurrence_ref", "gru_recurrence", "gru_recurrence_ref",
    "linear_recurrence", "linear_recurrence_ref",
    "causal_conv1d", "causal_conv1d_ref",
]

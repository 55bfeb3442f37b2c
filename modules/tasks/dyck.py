"""Dyck-k: bounded-depth well-nested strings over k bracket types, as in Hewitt et al. 2020,
"RNNs can generate bounded hierarchical languages with optimal memory" and Yao et al. 2021,
"Self-Attention Networks Can Process Bounded Hierarchical Languages" (Dyck-(k, m)).

This is next-token prediction of the closing brackets, not membership: the input is BOS and a
string of seq_len brackets (without its last one); wherever the next token is a closing bracket
its type is determined by the stack, and that is what is scored (an opening bracket's arrival
and type are random, so those positions are free). sequence_accuracy counts strings whose
closing brackets are all predicted.

Strings are sampled by a random walk: open (a uniform type) with probability p_open, else
close; forced to open at depth 0, to close at depth max_depth (when set) and when the brackets
left are just enough to close everything. Every string has exactly seq_len brackets and is
balanced. seq_len and max_depth are eval axes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, SequenceTask, check_pos


@dataclass
class DyckTask(SequenceTask):
    k: int = 2                     # bracket types: open t is token t, close t is token k + t
    seq_len: int = 64              # brackets per string (even)
    max_depth: int | None = 8      # m; None: unbounded (up to seq_len / 2)
    p_open: float = 0.5

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len", "max_depth")

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "k")
        require(self.seq_len >= 2 and self.seq_len % 2 == 0, "seq_len", f"{self.seq_len} must be even, at least 2")
        require(self.max_depth is None or self.max_depth >= 1, "max_depth", f"{self.max_depth} must be at least 1")
        require(0.0 < self.p_open < 1.0, "p_open", f"{self.p_open} must be in (0, 1)")

    @property
    def BOS(self) -> int:
        return 2 * self.k

    def spec(self) -> dict:
        return {"vocab_size": 2 * self.k + 1}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, n = batch_size, self.seq_len
        coin = torch.rand(B, n, generator=gen)
        kind = torch.randint(0, self.k, (B, n), generator=gen)
        stack = torch.zeros(B, n // 2 + 1, dtype=torch.long)                          # open types, bottom first
        depth = torch.zeros(B, dtype=torch.long)
        rows = torch.arange(B)
        seq = torch.empty(B, n, dtype=torch.long)
        cap = self.max_depth if self.max_depth is not None else n
        for t in range(n):
            must_close = (depth >= n - t) | (depth >= cap)
            opens = (depth == 0) | (~must_close & (coin[:, t] < self.p_open))          # (B,)
            top = stack[rows, (depth - 1).clamp(min=0)]
            seq[:, t] = torch.where(opens, kind[:, t], self.k + top)
            stack[rows, depth] = torch.where(opens, kind[:, t], stack[rows, depth])     # push (depth <= n/2)
            depth = depth + torch.where(opens, 1, -1)
        full = torch.cat([torch.full((B, 1), self.BOS, dtype=torch.long), seq], dim=1)  # (B, n+1)
        x, target = full[:, :-1], full[:, 1:]                                          # (B, n)
        return {"x": x, "y": torch.where(target >= self.k, target, IGNORE)}

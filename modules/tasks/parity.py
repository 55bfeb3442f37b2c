"""Parity of a bit string, trained at short lengths and evaluated at longer ones, as in
Delétang et al. 2023, "Neural Networks and the Chomsky Hierarchy" (parity check, a regular
task) and Anil et al. 2022, "Exploring Length Generalization in Large Language Models".

    x:  b_1 b_2 ... b_L EQ  (PAD ...)          y: at EQ, b_1 xor ... xor b_L
                                                  (`scored: all`: also the running parity at every b_t)

Bits are uniform; L is uniform in [min_len, max_len] for training and equals `length` at
evaluation when it is set (the eval axis). `scored: last` is the classic task (a constant
model is at chance, 0.5); `scored: all` supervises every prefix, which is much easier to learn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import require
from .sequence import IGNORE, LengthBatches, SequenceTask, check_pos, randint


@dataclass
class ParityTask(LengthBatches, SequenceTask):
    min_len: int = 1
    max_len: int = 20
    length: int | None = None      # evaluation length; None: the training distribution
    scored: Literal["last", "all"] = "last"

    eval_axes: ClassVar[tuple[str, ...]] = ("length",)

    EQ: ClassVar[int] = 2
    PAD: ClassVar[int] = 3

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "min_len", "max_len")
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.length is None or self.length >= 1, "length", f"{self.length} must be at least 1")

    def spec(self) -> dict:
        return {"vocab_size": 4}   # 0, 1, EQ, PAD

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        B, Lmax = lengths.shape[0], int(lengths.max())
        bits = randint(gen, 0, 2, (B, Lmax + 1))                                       # (B, Lmax+1)
        pos = torch.arange(Lmax + 1)[None]                                             # (1, Lmax+1)
        L = lengths[:, None]
        inside = pos < L
        bits = bits * inside                                                           # no bits past L
        running = bits.cumsum(1) % 2                                                   # parity of b_1..b_t
        x = torch.where(inside, bits, self.PAD)
        x = torch.where(pos == L, self.EQ, x)
        scored = (pos == L) | (inside if self.scored == "all" else torch.zeros_like(inside))
        return {"x": x, "y": torch.where(scored, running, IGNORE)}


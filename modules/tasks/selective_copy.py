"""Selective copying, from Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
State Spaces" (section 3.1 and 4.1.1; after the copying task of Arjovsky et al. 2016 with the
data tokens at random, content-dependent positions).

    x:  _ a _ _ b _ c _ _ ... _ | M M M             (noise region, then num_tokens markers M)
    y:                            a b c             (the data tokens, in order, at the markers)

A region of seq_len - num_tokens positions holds num_tokens data tokens, uniform over
`n_symbols`, at random positions; the rest is the blank token. The model must output the data
tokens in order at the markers, skipping the blanks: a time-invariant model cannot know where
they are. seq_len, the whole input length, is the eval axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, SequenceTask, check_pos, randint


@dataclass
class SelectiveCopyTask(SequenceTask):
    n_symbols: int = 16            # data tokens 1 .. n_symbols
    num_tokens: int = 16           # data tokens to remember per sequence
    seq_len: int = 256             # whole input: region plus the num_tokens markers

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    BLANK: ClassVar[int] = 0

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "n_symbols", "num_tokens", "seq_len")
        require(self.seq_len >= 2 * self.num_tokens, "seq_len",
                f"{self.seq_len} must be at least 2 * num_tokens = {2 * self.num_tokens}")

    @property
    def MARK(self) -> int:
        return self.n_symbols + 1

    def spec(self) -> dict:
        return {"vocab_size": self.n_symbols + 2}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, k = batch_size, self.num_tokens
        region = self.seq_len - k
        data = randint(gen, 1, self.n_symbols + 1, (B, k))                             # (B, k)
        where = torch.rand(B, region, generator=gen).argsort(-1)[:, :k].sort(-1).values  # (B, k), increasing
        x = torch.full((B, self.seq_len), self.BLANK, dtype=torch.long)
        x.scatter_(1, where, data)
        x[:, region:] = self.MARK
        y = torch.full((B, self.seq_len), IGNORE, dtype=torch.long)
        y[:, region:] = data
        return {"x": x, "y": y}

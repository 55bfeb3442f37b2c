"""Copying strings, trained at short lengths and evaluated at longer ones: the copy task of
Jelassi et al. 2024, "Repeat After Me: Transformers are Better than State Space Models at
Copying" (section 3; after the copy task of Graves et al. 2014, "Neural Turing Machines").

    x:  BOS s_1 ... s_L SEP s_1 ... s_L           y: the copy s_1 ... s_L EOS, at SEP and after
    (followed by PAD up to the longest sequence of the batch; PAD positions are not scored)

The string's symbols are uniform over `n_symbols`; its length L is uniform in
[min_len, max_len] for training and equals `length` at evaluation when `length` is set (the
eval axis: set `length` above max_len to measure length generalization). Scored: the L copied
symbols and the final EOS, so a model must also know where the copy ends. sequence_accuracy is
the paper's string-level accuracy.

`unique: true` draws each string without repeated symbols (a uniformly random arrangement of L
distinct symbols; needs n_symbols >= every length drawn): the "copy with unique tokens" task of
Zhou et al. 2024, "What Algorithms can Transformers Learn? A Study in Length Generalization"
(ICLR 2024, arXiv 2310.16028; Figure 1a), which a short RASP-L program (an induction
head: find the previous occurrence of the current token, output its successor) solves at every
length, unlike copying with repeated tokens. The default (`unique: false`) is the task above,
batch for batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, LengthBatches, SequenceTask, check_pos, randint


@dataclass
class CopyTask(LengthBatches, SequenceTask):
    n_symbols: int = 26            # alphabet of the strings
    min_len: int = 1               # training lengths: uniform in [min_len, max_len]
    max_len: int = 20
    length: int | None = None      # evaluation length; None: the training distribution
    unique: bool = False           # no symbol repeated within a string (Zhou et al. 2024)

    eval_axes: ClassVar[tuple[str, ...]] = ("length",)

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "n_symbols", "min_len", "max_len")
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.length is None or self.length >= 1, "length", f"{self.length} must be at least 1")
        if self.unique:
            require(self.n_symbols >= self.max_len, "n_symbols",
                    f"{self.n_symbols} symbols cannot fill a string of max_len={self.max_len} without repeats (unique: true)")
            require(self.length is None or self.length <= self.n_symbols, "length",
                    f"{self.length} exceeds n_symbols={self.n_symbols}: no string that long without repeats (unique: true)")

    # token ids: the symbols are 0 .. n_symbols-1, then the specials
    @property
    def BOS(self) -> int:
        return self.n_symbols

    @property
    def SEP(self) -> int:
        return self.n_symbols + 1

    @property
    def EOS(self) -> int:
        return self.n_symbols + 2

    @property
    def PAD(self) -> int:
        return self.n_symbols + 3

    def spec(self) -> dict:
        return {"vocab_size": self.n_symbols + 4}

    def strings(self, gen: torch.Generator, batch_size: int, length: int) -> torch.Tensor:
        """Strings of symbols, (B, length): uniform, or (unique) a random arrangement of the
        symbols cut to `length`, so no symbol repeats."""
        if self.unique:
            return torch.rand((batch_size, self.n_symbols), generator=gen).argsort(1)[:, :length]
        return randint(gen, 0, self.n_symbols, (batch_size, length))

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sequences with the given string lengths, (B,)."""
        B, Lmax = lengths.shape[0], int(lengths.max())
        s = self.strings(gen, B, Lmax)                                                 # (B, Lmax)
        pos = torch.arange(2 * Lmax + 3)[None]                                         # (1, 2Lmax+3)
        L = lengths[:, None]                                                           # (B, 1)
        seq = torch.full((B, 2 * Lmax + 3), self.PAD, dtype=torch.long)
        first = (pos >= 1) & (pos <= L)
        second = (pos >= L + 2) & (pos < 2 * L + 2)
        seq = torch.where(first, s.gather(1, (pos - 1).clamp(0, Lmax - 1).expand(B, -1)), seq)
        seq = torch.where(second, s.gather(1, (pos - L - 2).clamp(0, Lmax - 1)), seq)
        seq[:, 0] = self.BOS
        seq = torch.where(pos == L + 1, self.SEP, seq)
        seq = torch.where(pos == 2 * L + 2, self.EOS, seq)
        x, target = seq[:, :-1], seq[:, 1:]                                            # (B, 2Lmax+2)
        scored = (pos[:, 1:] >= L + 2) & (pos[:, 1:] <= 2 * L + 2)                     # the copy and EOS
        return {"x": x, "y": torch.where(scored, target, IGNORE)}


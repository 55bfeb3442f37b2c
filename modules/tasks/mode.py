"""The most frequent token of a string, trained at short lengths and evaluated at longer ones: the
mode task of Zhou et al. 2024, "What Algorithms can Transformers Learn? A Study in Length
Generalization" (ICLR 2024, arXiv 2310.16028; Figure 1a), one of the tasks with a short RASP-L
program (the authors' library np_rasp/lib.py in apple/ml-np-rasp: count, at each position, the
earlier tokens equal to it; answer the token where that count is largest).

    x:  BOS s_1 ... s_L SEP  (PAD ...)          y: at SEP, the mode of s_1 ... s_L

The symbols are drawn uniformly from `n_symbols`, conditioned on a unique mode: a string whose
largest count is shared by two symbols is drawn again (so the answer is always defined, and a
model is never scored on a tie). L is uniform in [min_len, max_len] for training and equals
`length` at evaluation when it is set (the eval axis). Scored: the one answer token, so
sequence_accuracy equals accuracy (the paper's exact match); a constant guess is right 1/n_symbols
of the time (the mode is uniform over the symbols by symmetry).

Ours, not the paper's: the tie rule (strings with tied modes are redrawn; the paper's text was not
at hand to check its rule, and its RASP-L mode is ambiguous at ties), the SEP token before the
answer, the uniform laws, the alphabet size and the token ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from .sequence import IGNORE, LengthBatches, SequenceTask, check_pos, randint

MAX_REDRAWS = 100_000      # rounds of redrawing tied strings before giving up (L = 2 needs ~n_symbols)


@dataclass
class ModeTask(LengthBatches, SequenceTask):
    n_symbols: int = 10            # alphabet of the strings
    min_len: int = 1               # training lengths: uniform in [min_len, max_len]
    max_len: int = 40
    length: int | None = None      # evaluation length; None: the training distribution

    eval_axes: ClassVar[tuple[str, ...]] = ("length",)

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "min_len", "max_len")
        check_pos(self, "n_symbols", minimum=2)
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.length is None or self.length >= 1, "length", f"{self.length} must be at least 1")

    @property
    def BOS(self) -> int:
        return self.n_symbols

    @property
    def SEP(self) -> int:
        return self.n_symbols + 1

    @property
    def PAD(self) -> int:
        return self.n_symbols + 2

    def spec(self) -> dict:
        return {"vocab_size": self.n_symbols + 3}

    def counts(self, s: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Occurrences of each symbol among the first L of each row of s; (B, n_symbols)."""
        inside = torch.arange(s.shape[1])[None] < lengths[:, None]                     # (B, Lmax)
        return torch.zeros((s.shape[0], self.n_symbols), dtype=torch.long).scatter_add_(1, s, inside.long())

    def strings(self, gen: torch.Generator, lengths: torch.Tensor) -> torch.Tensor:
        """Uniform strings with a unique mode, (B, Lmax); rows with a tied mode are drawn again."""
        B, Lmax = lengths.shape[0], int(lengths.max())
        s = randint(gen, 0, self.n_symbols, (B, Lmax))
        rows = torch.arange(B)                                                         # rows still to check
        for _ in range(MAX_REDRAWS):
            top = self.counts(s[rows], lengths[rows]).topk(2, dim=1).values            # (rows, 2)
            rows = rows[top[:, 0] == top[:, 1]]                                        # the tied ones
            if rows.numel() == 0:
                return s
            s[rows] = randint(gen, 0, self.n_symbols, (rows.numel(), Lmax))
        raise RuntimeError(f"mode: no string with a unique mode after {MAX_REDRAWS} redraws")

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sequences with the given string lengths, (B,)."""
        B, Lmax = lengths.shape[0], int(lengths.max())
        s = self.strings(gen, lengths)                                                 # (B, Lmax)
        mode = self.counts(s, lengths).argmax(1)                                       # (B,)
        L = lengths[:, None]
        pos = torch.arange(Lmax + 2)[None]                                             # (1, Lmax+2)
        x = torch.full((B, Lmax + 2), self.PAD, dtype=torch.long)
        x[:, 1:] = torch.where(pos[:, 1:] <= L, F.pad(s, (0, 1), value=self.PAD), self.PAD)
        x[:, 0] = self.BOS
        x = torch.where(pos == L + 1, self.SEP, x)
        y = torch.where(pos == L + 1, mode[:, None], IGNORE)
        return {"x": x, "y": y}


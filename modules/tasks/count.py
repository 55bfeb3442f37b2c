"""Counting from a to b, trained at short counts and evaluated at longer ones: the count task of
Zhou et al. 2024, "What Algorithms can Transformers Learn? A Study in Length Generalization"
(ICLR 2024, arXiv 2310.16028; Figure 1a, and Figure 1b: exact match at lengths beyond the
longest trained), one of the tasks with a short RASP-L program (the authors' listing
examples/count.py in apple/ml-np-rasp: at b the next token is a, after it each token plus one,
after b the end token).

    x:  BOS a b a a+1 ... b           y: a a+1 ... b EOS, at b (the prompt's last token) and after
    (followed by PAD up to the longest sequence of the batch; PAD positions are not scored)

The prompt is BOS, the start a and the end b; the answer is the L = b - a + 1 integers a .. b and
EOS, as in the authors' RASP-L program (prompt START a b, then a .. b, then END: no separator
token between prompt and answer). Numbers are single tokens 0 .. n_numbers-1. L is uniform in
[min_len, max_len] for training and equals `length` at evaluation when it is set (the eval axis);
given L, the start a is uniform in [0, n_numbers - L], so every number is trained. Scored: the L
numbers and EOS; sequence_accuracy is the paper's exact match (EM) of the whole answer.

Ours, not the paper's: L (the count of numbers answered) as the length; the uniform laws of L
and a; the token ids; a fixed number vocabulary (n_numbers must cover every evaluated length).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, LengthBatches, SequenceTask, check_pos


@dataclass
class CountTask(LengthBatches, SequenceTask):
    n_numbers: int = 160           # number tokens 0 .. n_numbers-1
    min_len: int = 1               # training counts L = b - a + 1: uniform in [min_len, max_len]
    max_len: int = 40
    length: int | None = None      # evaluation count; None: the training distribution

    eval_axes: ClassVar[tuple[str, ...]] = ("length",)

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "n_numbers", "min_len", "max_len")
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.max_len <= self.n_numbers, "max_len",
                f"{self.max_len} numbers cannot be counted with n_numbers={self.n_numbers}")
        require(self.length is None or 1 <= self.length <= self.n_numbers, "length",
                f"{self.length} must be in [1, n_numbers={self.n_numbers}]")

    # token ids: the numbers are 0 .. n_numbers-1, then the specials
    @property
    def BOS(self) -> int:
        return self.n_numbers

    @property
    def EOS(self) -> int:
        return self.n_numbers + 1

    @property
    def PAD(self) -> int:
        return self.n_numbers + 2

    def spec(self) -> dict:
        return {"vocab_size": self.n_numbers + 3}

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sequences with the given counts L, (B,)."""
        B, Lmax = lengths.shape[0], int(lengths.max())
        L = lengths[:, None]                                                           # (B, 1)
        a = (torch.rand((B, 1), generator=gen) * (self.n_numbers - L + 1)).long()      # uniform in [0, n - L]
        a = torch.minimum(a, self.n_numbers - L)
        pos = torch.arange(Lmax + 4)[None]                                             # (1, Lmax+4)
        seq = torch.full((B, Lmax + 4), self.PAD, dtype=torch.long)
        seq = torch.where((pos >= 3) & (pos < 3 + L), a + pos - 3, seq)                # a .. b
        seq[:, 0] = self.BOS
        seq[:, 1:2] = a
        seq[:, 2:3] = a + L - 1                                                        # b
        seq = torch.where(pos == 3 + L, self.EOS, seq)
        x, target = seq[:, :-1], seq[:, 1:]                                            # (B, Lmax+3)
        scored = (pos[:, 1:] >= 3) & (pos[:, 1:] <= 3 + L)                             # a .. b and EOS
        return {"x": x, "y": torch.where(scored, target, IGNORE)}


"""Multi-digit addition, trained on short operands and evaluated on longer ones, with or without
index hints: the addition tasks of Zhou et al. 2024, "What Algorithms can Transformers Learn? A
Study in Length Generalization" (ICLR 2024, arXiv 2310.16028; Figure 1a): plain addition has no
short RASP-L program and does not length-generalize; with index hints (each digit preceded by a
token naming its place, so a causal model can find the digits to add by induction) it does. The
layout follows the authors' RASP-L listing and its test (examples/add.py, examples/test_add.py
in apple/ml-np-rasp).

With n digits (the length), both operands and the sum are written with W = n + 1 digits, most
significant first, zero-padded on the left (the extra place holds the final carry):

    index_hints: false   BOS a_1 .. a_W + b_1 .. b_W = c_1 .. c_W EOS
    index_hints: true    BOS h_1 a_1 .. h_W a_W + h_1 b_1 .. h_W b_W = h_1 c_1 .. h_W c_W EOS

h_i is the hint of place i (counted from the most significant): the same hint precedes the digits
of one place in both operands and in the answer. `reverse_output: true` writes the answer least
significant first (c_W .. c_1, with hints: h_W c_W .. h_1 c_1), so each digit depends only on
what is already written; the operands stay most significant first (as in the authors' listing:
the reversed-order program and the forward-order one read the same prompt).

x is the sequence, y its next token; scored: the W answer digits only (not the hints inside the
answer, which the prompt determines, nor EOS), so sequence_accuracy is the exact match of the
whole answer (the paper's metric). Operands are uniform in [0, 10^n); n is uniform in
[min_len, max_len] for training and equals `length` at evaluation when it is set (the eval axis).

Hints come from a fixed vocabulary of `n_hints` tokens. `hint_offset: random` (the default) starts
each sequence's run of W consecutive hints at a uniform offset in [0, n_hints - W], so every hint
token is trained even though training numbers are short; `hint_offset: zero` always starts at the
first hint, exactly as the authors' listing does (hints of places beyond the trained widths are
then never seen in training). Evaluated widths must fit: length + 1 <= n_hints.

Ours, not the paper's: the random hint offset (we could not check how the paper draws hints),
the width W = n + 1 from the drawn n (the authors' test pads to one more than the longer operand's
actual digits), the token ids, the uniform laws of n and of the operands, and not scoring the
answer's hints (teacher-forced, they are given; the authors' model also generates them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import require
from .sequence import IGNORE, LengthBatches, SequenceTask, check_pos, randint


@dataclass
class AdditionTask(LengthBatches, SequenceTask):
    min_len: int = 1               # training digits n: uniform in [min_len, max_len]
    max_len: int = 20
    length: int | None = None      # evaluation digits; None: the training distribution
    index_hints: bool = False      # a place token before every digit
    reverse_output: bool = False   # the answer least significant digit first
    n_hints: int = 64              # hint vocabulary (index_hints); widths n + 1 up to n_hints
    hint_offset: Literal["random", "zero"] = "random"

    eval_axes: ClassVar[tuple[str, ...]] = ("length",)

    # token ids: digits 0-9, then the specials, then the hints
    PLUS: ClassVar[int] = 10
    EQ: ClassVar[int] = 11
    BOS: ClassVar[int] = 12
    EOS: ClassVar[int] = 13
    PAD: ClassVar[int] = 14
    HINT0: ClassVar[int] = 15

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "min_len", "max_len", "n_hints")
        require(self.min_len <= self.max_len, "min_len", f"{self.min_len} must not exceed max_len={self.max_len}")
        require(self.length is None or self.length >= 1, "length", f"{self.length} must be at least 1")
        require(self.hint_offset in ("random", "zero"), "hint_offset", f"{self.hint_offset!r} is not random or zero")
        if self.index_hints:
            require(self.max_len + 1 <= self.n_hints, "n_hints",
                    f"{self.n_hints} hints cannot mark the {self.max_len + 1} places of max_len={self.max_len} digits")
            require(self.length is None or self.length + 1 <= self.n_hints, "length",
                    f"{self.length} digits need one hint more, more than n_hints={self.n_hints}")

    def spec(self) -> dict:
        return {"vocab_size": self.HINT0 + (self.n_hints if self.index_hints else 0)}

    def make(self, gen: torch.Generator, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sequences with the given numbers of digits n, (B,)."""
        B = lengths.shape[0]
        n = lengths[:, None]                                                           # (B, 1)
        W = n + 1                                                                      # places written
        Wmax = int(W.max())
        place = torch.arange(Wmax)[None]                                               # (1, Wmax), 0 = units
        a = randint(gen, 0, 10, (B, Wmax)) * (place < n)                               # least significant first
        b = randint(gen, 0, 10, (B, Wmax)) * (place < n)
        c = torch.zeros_like(a)
        carry = torch.zeros(B, dtype=torch.long)
        for e in range(Wmax):                                                          # the sum, with carries
            s = a[:, e] + b[:, e] + carry
            c[:, e], carry = s % 10, s // 10
        if self.index_hints and self.hint_offset == "random":
            first = (torch.rand((B, 1), generator=gen) * (self.n_hints - W + 1)).long()
            first = torch.minimum(first, self.n_hints - W)                             # uniform in [0, n_hints - W]
        else:
            first = torch.zeros((B, 1), dtype=torch.long)

        k = 2 if self.index_hints else 1                                               # tokens per place
        T = 4 + 3 * k * Wmax
        pos = torch.arange(T)[None]                                                    # (1, T)
        starts = (1, 2 + k * W, 3 + 2 * k * W)                                         # a, b, c blocks
        seq = torch.full((B, T), self.PAD, dtype=torch.long)
        scored = torch.zeros((B, T), dtype=torch.bool)
        for block, (digits, start) in enumerate(zip((a, b, c), starts)):
            j = pos - start                                                            # index in the block
            inside = (j >= 0) & (j < k * W)
            i = j // k if self.index_hints else j                                      # place from the left
            if block == 2 and self.reverse_output:
                i = W - 1 - i
            i = i.clamp(0, Wmax - 1)
            e = (W - 1 - i).clamp(0, Wmax - 1)                                         # place from the units
            token = digits.gather(1, e)
            is_digit = inside & ((j % 2 == 1) if self.index_hints else True)
            if self.index_hints:
                seq = torch.where(inside & (j % 2 == 0), self.HINT0 + first + i, seq)
            seq = torch.where(is_digit, token, seq)
            if block == 2:
                scored = is_digit
        seq[:, 0] = self.BOS
        seq = torch.where(pos == starts[1] - 1, self.PLUS, seq)
        seq = torch.where(pos == starts[2] - 1, self.EQ, seq)
        seq = torch.where(pos == starts[2] + k * W, self.EOS, seq)
        x, target = seq[:, :-1], seq[:, 1:]                                            # (B, T-1)
        return {"x": x, "y": torch.where(scored[:, 1:], target, IGNORE)}


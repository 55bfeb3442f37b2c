"""Flip-flop language modelling, from Liu et al. 2023, "Exposing Attention Glitches with
Flip-Flop Language Modeling" (section 2).

A string is seq_len/2 pairs (instruction, bit) over the vocabulary {0, 1, w, r, i}:
    w b   write b          i b   ignore (b is noise)          r b   read: b is the last written bit
The first instruction is w and the last is r; the others are i with probability p_ignore and
w or r with probability (1 - p_ignore)/2 each (FFL(p_ignore); the paper trains at 0.8 and
probes sparse (0.98) and dense (0.1) sequences: p_ignore is an eval axis, as is seq_len).
The input is the string without its last bit (length seq_len - 1). The deterministic
positions are the bits after r: they are what is evaluated, and, with `loss_on: read`, all
that is trained on. `loss_on: all` trains on every next token, as language modelling does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import require
from .sequence import IGNORE, SequenceTask, randint


@dataclass
class FlipFlopTask(SequenceTask):
    seq_len: int = 512             # tokens in the string: seq_len/2 (instruction, bit) pairs
    p_ignore: float = 0.8
    loss_on: Literal["read", "all"] = "read"

    eval_axes: ClassVar[tuple[str, ...]] = ("p_ignore", "seq_len")

    # token ids: the bits are themselves
    W: ClassVar[int] = 2
    R: ClassVar[int] = 3
    I: ClassVar[int] = 4  # noqa: E741

    def __post_init__(self):
        super().__post_init__()
        require(self.seq_len >= 4 and self.seq_len % 2 == 0, "seq_len",
                f"{self.seq_len} must be an even number, at least 4 (a write and a read)")
        require(0.0 <= self.p_ignore < 1.0, "p_ignore", f"{self.p_ignore} must be in [0, 1)")

    def spec(self) -> dict:
        return {"vocab_size": 5}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, n = batch_size, self.seq_len // 2
        p_w = (1 - self.p_ignore) / 2
        probs = torch.tensor([p_w, p_w, self.p_ignore], dtype=torch.float64)          # w, r, i
        instr = torch.multinomial(probs, B * n, replacement=True, generator=gen).view(B, n) + self.W
        instr[:, 0], instr[:, -1] = self.W, self.R
        bits = randint(gen, 0, 2, (B, n))                                              # (B, n)
        idx = torch.arange(n)[None].expand(B, n)
        last_w = torch.where(instr == self.W, idx, -1).cummax(dim=1).values           # last write at or before j
        reads = instr == self.R
        bits = torch.where(reads, bits.gather(1, last_w.clamp(min=0)), bits)           # a read returns it
        seq = torch.stack([instr, bits], dim=-1).flatten(1)                            # (B, 2n): w b i b r b ...
        x, target = seq[:, :-1], seq[:, 1:]                                            # (B, 2n-1)
        read_at = torch.stack([reads, torch.zeros_like(reads)], dim=-1).flatten(1)[:, :-1]  # the r positions
        out = {"x": x, "y": torch.where(read_at, target, IGNORE)}
        if self.loss_on == "all":
            out["y_loss"] = target.clone()
        return out

"""Induction heads as a synthetic task: the associative-recall form used by Fu et al. 2023,
"Hungry Hungry Hippos" (section 3.1) and Gu & Dao 2023, "Mamba" (section 4.1.2), after the
induction heads of Olsson et al. 2022.

    x:  random symbols ... T a ... random symbols ... T        y: a, at the last position only

The sequence is uniform over `n_symbols`; a trigger token T appears at one random position,
followed by the answer a, and again at the last position, where the model must predict a.
It is scored at that single position, so sequence_accuracy equals accuracy. seq_len is the
eval axis (Mamba trains at 256 and tests far longer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from .sequence import IGNORE, SequenceTask, check_pos, randint


@dataclass
class InductionTask(SequenceTask):
    n_symbols: int = 16            # ordinary tokens 0 .. n_symbols-1; the trigger is n_symbols
    seq_len: int = 256

    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "n_symbols")
        require(self.seq_len >= 3, "seq_len", f"{self.seq_len} must be at least 3 (trigger, answer, trigger)")

    @property
    def TRIGGER(self) -> int:
        return self.n_symbols

    def spec(self) -> dict:
        return {"vocab_size": self.n_symbols + 1}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, T = batch_size, self.seq_len
        x = randint(gen, 0, self.n_symbols, (B, T))                                   # (B, T)
        at = randint(gen, 0, T - 2, (B, 1))                                            # trigger position
        x.scatter_(1, at, self.TRIGGER)
        x[:, -1] = self.TRIGGER
        y = torch.full((B, T), IGNORE, dtype=torch.long)
        y[:, -1] = x.gather(1, at + 1)[:, 0]
        return {"x": x, "y": y}

"""Pieces every sequence model in the zoo shares: what goes in, what comes out, and the MLP.

A sequence model reads either tokens, (B, T) ints with `vocab_size` injected from the task's
spec(), or continuous features, (B, T, d_input), and returns logits (B, T, vocab_size or
d_output). `SeqIOConfig` holds those sizes; every model config inherits from it so that a
catalogue entry never names them (the task declares them) unless it means to.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import ConfigError, require


@dataclass
class SeqIOConfig:
    vocab_size: int | None = None  # token inputs (B, T) of ints; injected from the task spec
    d_input: int | None = None     # or continuous inputs (B, T, d_input)
    d_output: int | None = None    # output width; defaults to vocab_size for token inputs

    def check_io(self) -> None:
        if (self.vocab_size is None) == (self.d_input is None):
            raise ConfigError("vocab_size", "give exactly one of vocab_size (token inputs) and d_input "
                                            "(continuous inputs); a token task declares vocab_size itself")
        for key in ("vocab_size", "d_input", "d_output"):
            v = getattr(self, key)
            require(v is None or v >= 1, key, f"{v} must be at least 1")
        require(self.out_size is not None, "d_output", "is required with continuous inputs (d_input)")

    @property
    def out_size(self) -> int | None:
        return self.d_output if self.d_output is not None else self.vocab_size


class SeqInput(nn.Module):
    """Token embedding, or a linear map of continuous features, to width d_model."""

    def __init__(self, cfg: SeqIOConfig, d_model: int):
        super().__init__()
        self.tokens = cfg.vocab_size is not None
        if self.tokens:
            self.proj = nn.Embedding(cfg.vocab_size, d_model)
        else:
            self.proj = nn.Linear(cfg.d_input, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens and x.is_floating_point():
            raise TypeError("this model reads tokens (integer ids); got a float tensor")
        return self.proj(x)                                # (B, T) -> (B, T, D), or (B,) -> (B, D)


class MLP(nn.Module):
    """The position-wise half of a pre-norm block."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(torch.nn.functional.gelu(self.fc(x))))   # (..., D)


def check_int(cfg, key: str, minimum: int = 1) -> None:
    v = getattr(cfg, key)
    require(v >= minimum, key, f"{v} must be at least {minimum}")

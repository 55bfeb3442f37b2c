"""Recurrent networks as explicit cells: the Elman RNN and the GRU, and the stack that the LSTM
(lstm.py) shares with them.

Elman 1990, "Finding Structure in Time":
    h_t = phi(W x_t + R h_{t-1} + b)                              phi = tanh or relu
GRU, Cho et al. 2014 (the form of torch.nn.GRU, reset gate applied after the recurrent product):
    r_t = sigma(W_r x_t + R_r h_{t-1} + b_r)
    u_t = sigma(W_u x_t + R_u h_{t-1} + b_u)                      update gate
    n_t = tanh(W_n x_t + r_t * (R_n h_{t-1} + b_rn) + b_n)
    h_t = (1 - u_t) * n_t + u_t * h_{t-1}

The cells are written out instead of using nn.RNN / nn.GRU so that `step()` runs the very same
code as `forward` and every layer's hidden states come back. A cell splits its work in two:
`input_proj` (the W x_t terms of all positions in one matmul) and `step` (the recurrence).

Two ways to stack layers (`block`):
  stack    input -> cell_1 -> cell_2 -> ... -> linear readout   (the classic recurrent network)
  prenorm  h = h + cell(LN(h)); h = h + MLP(LN(h)); final LN    (the block of modern zoos)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn as nn

from ..config import require
from ..kernels import rnn as rnn_kernels
from .common import MLP, SeqInput, SeqIOConfig, check_int


@dataclass
class RNNConfig(SeqIOConfig):
    n_layer: int = 1
    d_model: int = 128             # hidden size of every layer
    block: Literal["stack", "prenorm"] = "stack"
    d_ff: int | None = None        # prenorm only: MLP width, default 4 * d_model

    def __post_init__(self):
        self.check_io()
        check_int(self, "n_layer")
        check_int(self, "d_model")
        require(self.d_ff is None or self.d_ff >= 1, "d_ff", f"{self.d_ff} must be at least 1")
        require(self.d_ff is None or self.block == "prenorm", "d_ff", "only a prenorm block has an MLP")
        if self.d_ff is None and self.block == "prenorm":
            self.d_ff = 4 * self.d_model


@dataclass
class ElmanConfig(RNNConfig):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


@dataclass
class GRUConfig(RNNConfig):
    pass


def uniform_init(module: nn.Module, hidden: int) -> None:
    """U(-1/sqrt(H), 1/sqrt(H)) for every weight, as torch.nn.RNN/GRU/LSTM initialise."""
    bound = 1.0 / math.sqrt(hidden)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


# ---------------------------------------------------------------------------------------------
# cells: input_proj (all positions at once), init_state, step (one position)

class ElmanCell(nn.Module):
    def __init__(self, d_in: int, hidden: int, nonlinearity: str = "tanh"):
        super().__init__()
        self.hidden = hidden
        self.W = nn.Linear(d_in, hidden)                   # W x + b
        self.R = nn.Linear(hidden, hidden, bias=False)     # R h
        self.act = torch.tanh if nonlinearity == "tanh" else torch.relu
        uniform_init(self, hidden)

    def input_proj(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)                                                               # (..., H)

    def init_state(self, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch_size, self.hidden, device=device),)

    def step(self, u: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        h = self.act(u + self.R(state[0]))                                             # (B, H)
        return h, (h,)

    can_fuse = True                    # torch runs this recurrence natively: `fused`, one call a sequence

    def fused(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """The layer on a whole sequence x (B, T, d_in) in one call: the compiled CPU recurrence
        (modules/kernels/rnn) where it runs, else torch.rnn_tanh / rnn_relu; the same equations as
        `step` (W x + b, then R h with no bias of its own)."""
        if rnn_kernels.usable(x, state[0]):
            ys, h = rnn_kernels.elman_recurrence(self.input_proj(x), self.R.weight, state[0],
                                                 relu=self.act is torch.relu)
            return ys, (h,)
        run = torch.rnn_tanh if self.act is torch.tanh else torch.rnn_relu
        zero = torch.zeros_like(self.W.bias)
        out, h = run(x, state[0][None], [self.W.weight, self.R.weight, self.W.bias, zero],
                     True, 1, 0.0, self.training, False, True)
        return out, (h[0],)


class GRUCell(nn.Module):
    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.W = nn.Linear(d_in, 3 * hidden)               # [r, u, n] input terms and biases
        self.R = nn.Linear(hidden, 3 * hidden)             # [r, u, n] recurrent terms; b_rn sits inside r*(.)
        uniform_init(self, hidden)

    def input_proj(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)                                                               # (..., 3H)

    def init_state(self, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch_size, self.hidden, device=device),)

    def step(self, u: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        h = state[0]
        ur, uu, un = u.chunk(3, dim=-1)                                                # (B, H) each
        hr, hu, hn = self.R(h).chunk(3, dim=-1)
        r = torch.sigmoid(ur + hr)
        z = torch.sigmoid(uu + hu)
        n = torch.tanh(un + r * hn)
        h = (1 - z) * n + z * h                                                        # (B, H)
        return h, (h,)

    can_fuse = True                    # torch runs this recurrence natively: `fused`, one call a sequence

    def fused(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """The layer on a whole sequence x (B, T, d_in) in one call: the compiled CPU recurrence
        (modules/kernels/rnn) where it runs, else torch.gru; the same equations and gate order
        ([r, z, n], the recurrent bias of n inside r * (.)) as `step`."""
        if rnn_kernels.usable(x, state[0]):
            ys, h = rnn_kernels.gru_recurrence(self.input_proj(x), self.R.weight, self.R.bias, state[0])
            return ys, (h,)
        out, h = torch.gru(x, state[0][None], [self.W.weight, self.R.weight, self.W.bias, self.R.bias],
                           True, 1, 0.0, self.training, False, True)
        return out, (h[0],)


# ---------------------------------------------------------------------------------------------
# the stack shared by every recurrent arch

class RecurrentLM(nn.Module):
    """Input -> n_layer recurrent layers (classic stack or pre-norm blocks) -> readout."""

    def __init__(self, cfg: RNNConfig, make_cell: Callable[[int, int], nn.Module]):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.inp = SeqInput(cfg, D)
        self.cells = nn.ModuleList(make_cell(D, D) for _ in range(cfg.n_layer))
        self.prenorm = cfg.block == "prenorm"
        if self.prenorm:
            self.ln1 = nn.ModuleList(nn.LayerNorm(D) for _ in range(cfg.n_layer))
            self.ln2 = nn.ModuleList(nn.LayerNorm(D) for _ in range(cfg.n_layer))
            self.mlps = nn.ModuleList(MLP(D, cfg.d_ff) for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(D)
        self.head = nn.Linear(D, cfg.out_size)

    def _device(self):
        return self.head.weight.device

    def _layer(self, i: int, h: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """Layer i on a whole sequence h (B, T, D) from `state`; returns (B, T, D) and the last state."""
        cell = self.cells[i]
        inp = self.ln1[i](h) if self.prenorm else h
        if getattr(cell, "can_fuse", False):                                           # torch's own loop
            y, state = cell.fused(inp, state)                                          # (B, T, D)
        else:
            u = cell.input_proj(inp)                                                   # (B, T, G*D)
            done = cell.loop(u, state) if hasattr(cell, "loop") else None              # a compiled loop
            if done is not None:
                y, state = done
            else:
                ys = []
                for u_t in u.unbind(1):       # not u[:, t], whose backward fills all of u per step
                    y, state = cell.step(u_t, state)                                   # (B, D)
                    ys.append(y)
                y = torch.stack(ys, dim=1)                                             # (B, T, D)
        if self.prenorm:
            y = h + y
            y = y + self.mlps[i](self.ln2[i](y))
        return y, state

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln_f(h) if self.prenorm else h)                          # (..., V)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        h = self.inp(x)                                                                # (B, T, D)
        B = h.shape[0]
        hiddens = []
        for i, cell in enumerate(self.cells):
            h, _ = self._layer(i, h, cell.init_state(B, h.device))
            hiddens.append(h)                                                          # (B, T, D)
        logits = self._readout(h)                                                      # (B, T, V)
        return (logits, hiddens) if return_hidden else logits

    def init_state(self, batch_size: int) -> list[tuple]:
        return [cell.init_state(batch_size, self._device()) for cell in self.cells]

    def step(self, x_t: torch.Tensor, state: list[tuple]) -> tuple[torch.Tensor, list[tuple]]:
        """One position: x_t is (B,) token ids or (B, d_input); returns logits (B, V) and the state."""
        h = self.inp(x_t)                                                              # (B, D)
        new_state = []
        for i, cell in enumerate(self.cells):
            y, s = cell.step(cell.input_proj(self.ln1[i](h) if self.prenorm else h), state[i])
            if self.prenorm:
                y = h + y
                y = y + self.mlps[i](self.ln2[i](y))
            h = y
            new_state.append(s)
        return self._readout(h), new_state


class ElmanRNN(RecurrentLM):
    def __init__(self, cfg: ElmanConfig):
        super().__init__(cfg, lambda d_in, hidden: ElmanCell(d_in, hidden, cfg.nonlinearity))


class GRU(RecurrentLM):
    def __init__(self, cfg: GRUConfig):
        super().__init__(cfg, GRUCell)

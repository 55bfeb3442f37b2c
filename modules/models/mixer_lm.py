"""One block, many mixers (zoology): the backbone every state-space and linear-attention model
in the zoo shares.

    h_0 = embed(x)
    h_l = h_{l-1} + Mixer_l(LN(h_{l-1}));  h_l = h_l + MLP(LN(h_l))       (MLP left out when d_ff = 0)
    logits = W_out LN(h_L)

A mixer is an nn.Module built as `Mixer(cfg, layer_idx)` with three methods:
    forward(x)                 (B, T, D) -> (B, T, D), the parallel / chunked / convolution form
    init_state(batch, device)  the empty recurrent state of one layer
    step(x_t, state)           (B, D) -> ((B, D), state), the recurrent form of the same map
and `step` run over a sequence must equal `forward` (the tests check it for every arch).
An arch file subclasses `MixerLM` with its mixer in `mixer_cls` and its config, which extends
`MixerLMConfig`; `hybrid.py` builds a stack from several mixers.

Training-time initial states (`train_state`; LongSSM, Wang 2024, "On the Length Extension of
State-space Models in Language Modelling"). LongSSM shows that SSMs trained from a zero hidden
state extend poorly beyond the training length, and that training from the previous hidden
state instead (as truncated backpropagation through time does) fixes it, even with short
training windows. The option acts only while `model.training`; in eval mode every model starts
from zero and runs the whole sequence.
    zero     the usual zero state (the default, bit for bit today's forward)
    random   each layer's recurrent state starts from a fresh N(0, train_state_scale^2) draw per
             sequence and forward (torch's global RNG, on the CPU: the same draws on every
             machine); the short causal-conv buffer stays zero. Ours, with its scale (Buitrago
             Ruiz & Gu 2025 try Gaussian-noise states too).
    carried  the sequence is run in consecutive windows of `tbptt` tokens (the last may be
             shorter); each window starts every layer from the previous window's final state
             (and conv buffer), detached: LongSSM's previous-state training, with no gradient
             across windows. The first window starts from zero and the logits of all windows
             are concatenated. LongSSM carries the state across batches of a contiguous text;
             here it is carried across windows of one training sequence (and the window length
             is ours), so any task can use it.
`tbptt: W` (the training window) also works with zero and random, for every MixerLM arch: the
training sequence is cut into windows of W tokens, each started from zero (or a fresh draw), as if
the model were trained on sequences of length W. So one experiment can compare the three initial
states on the same data and the same gradient window, LongSSM's comparison.
An arch offers the non-zero modes by listing them in its config's `train_states`; its mixer
then also has
    forward(x, state, return_state=True)  -> ((B, T, D), final state), from the initial `state`
                                             (None: zero), in the layout of init_state / step
    random_state(batch, device, std)       a Gaussian recurrent state (conv buffers zero)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from ..kernels.causal_conv import causal_conv1d
from .common import MLP, SeqInput, SeqIOConfig, check_int

TRAIN_STATES = ("zero", "random", "carried")


@dataclass
class MixerLMConfig(SeqIOConfig):
    n_layer: int = 2
    d_model: int = 128
    d_ff: int | None = None        # MLP width; default 4 * d_model; 0: no MLP (the Mamba paper's block)
    dropout: float = 0.0
    train_state: Literal["zero", "random", "carried"] = "zero"   # the initial state while training (module doc)
    train_state_scale: float = 1.0   # random: std of the Gaussian initial state
    tbptt: int | None = None         # the training window W: windows of W tokens, each from train_state
                                     # (carried: the previous window's state, gradients cut between windows)

    train_states: ClassVar[tuple[str, ...]] = ("zero",)   # the modes an arch supports (lru, mamba2: all)

    def __post_init__(self):
        self.check_io()
        check_int(self, "n_layer")
        check_int(self, "d_model")
        require(self.d_ff is None or self.d_ff >= 0, "d_ff", f"{self.d_ff} must be at least 0 (0: no MLP)")
        require(0.0 <= self.dropout < 1.0, "dropout", f"{self.dropout} must be in [0, 1)")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        self.check_train_state()

    def check_train_state(self) -> None:
        require(self.train_state in self.train_states, "train_state",
                f"{self.train_state!r} is not supported by this arch (it offers {', '.join(self.train_states)}; "
                "lru and mamba2 offer zero, random, carried)")
        if self.train_state == "carried":
            require(self.tbptt is not None, "tbptt", "is required with train_state: carried (the window length)")
        require(self.tbptt is None or self.tbptt >= 1, "tbptt", f"{self.tbptt} must be at least 1")
        require(self.train_state_scale > 0, "train_state_scale", f"{self.train_state_scale} must be above 0")
        require(self.train_state_scale == 1.0 or self.train_state == "random", "train_state_scale",
                f"applies to train_state: random only (train_state is {self.train_state!r})")


class RMSNorm(nn.Module):
    """x / rms(x) * w over the last dim (Zhang & Sennrich 2019); used per head and in Mamba-2's gate."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """softplus^-1(x) = x + log(1 - exp(-x)), for initialising a bias that goes through softplus."""
    return x + torch.log(-torch.expm1(-x))


def log_uniform(n: int, lo: float, hi: float, floor: float = 0.0) -> torch.Tensor:
    """n values exp(U(log lo, log hi)), at least `floor`: the step sizes Delta of S4/Mamba."""
    dt = torch.exp(torch.rand(n) * (math.log(hi) - math.log(lo)) + math.log(lo))
    return dt.clamp(min=floor) if floor > 0 else dt


def check_conjugate_pairs(cfg) -> None:
    """d_state counts complex modes that come in conjugate pairs (S4, S4D)."""
    require(cfg.d_state >= 2 and cfg.d_state % 2 == 0, "d_state",
            f"{cfg.d_state} must be an even number >= 2 (modes come in conjugate pairs)")


def check_dt_range(cfg) -> None:
    require(cfg.dt_min > 0, "dt_min", f"{cfg.dt_min} must be above 0")
    require(cfg.dt_max >= cfg.dt_min, "dt_max", f"{cfg.dt_max} must be at least dt_min={cfg.dt_min}")


class CausalConv(nn.Module):
    """Short causal depthwise convolution over time (Mamba's conv1d, H3's shift), with a step form
    that keeps the last width-1 inputs."""

    def __init__(self, channels: int, width: int, bias: bool = True):
        super().__init__()
        self.width = width
        self.conv = nn.Conv1d(channels, channels, width, groups=channels, padding=width - 1, bias=bias)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """(B, T, C) -> (B, T, C); with `state` (B, C, width-1), the inputs before x (None: zeros);
        with `return_state`, also the buffer after x, as `step` keeps it."""
        if state is None and not return_state:                                        # training's path
            return causal_conv1d(x, self.conv.weight, self.conv.bias)                 # (B, T, C)
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        window = torch.cat([state.to(x.dtype), x.transpose(1, 2)], dim=-1)            # (B, C, width-1+T)
        y = F.conv1d(window, self.conv.weight, self.conv.bias, groups=self.conv.groups).transpose(1, 2)
        return (y, window[..., window.shape[-1] - (self.width - 1):]) if return_state else y

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, self.conv.in_channels, self.width - 1, device=device)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = torch.cat([state, x_t[..., None]], dim=-1)                           # (B, C, width)
        y = (window * self.conv.weight[:, 0]).sum(-1)                                  # (B, C)
        if self.conv.bias is not None:
            y = y + self.conv.bias
        return y, window[..., 1:]


class Block(nn.Module):
    def __init__(self, cfg: MixerLMConfig, mixer: nn.Module):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.mixer = mixer
        self.drop = nn.Dropout(cfg.dropout)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, dropout=cfg.dropout) if cfg.d_ff else None
        self.ln2 = nn.LayerNorm(cfg.d_model) if cfg.d_ff else None

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mlp is None else x + self.mlp(self.ln2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(x + self.drop(self.mixer(self.ln1(x))))                      # (B, T, D)

    def forward_state(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """forward from the mixer's initial `state` (None: zero); also returns its final state."""
        y, state = self.mixer(self.ln1(x), state, return_state=True)
        return self._mlp(x + self.drop(y)), state                                     # (B, T, D)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        y, state = self.mixer.step(self.ln1(x_t), state)                               # (B, D)
        return self._mlp(x_t + y), state


class MixerLM(nn.Module):
    """Input -> n_layer pre-norm blocks (mixer + MLP) -> final norm -> readout."""

    mixer_cls: type | None = None   # set by each arch; built as mixer_cls(cfg, layer_idx)

    def __init__(self, cfg: MixerLMConfig, make_mixer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.cfg = cfg
        make_mixer = make_mixer or (lambda i: self.mixer_cls(cfg, i))
        self.inp = SeqInput(cfg, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, make_mixer(i)) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.out_size, bias=False)
        if self.inp.tokens:
            nn.init.normal_(self.inp.proj.weight, std=0.02)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        mode, W = (self.cfg.train_state, self.cfg.tbptt) if self.training else ("zero", None)
        h = self.inp(x)                                                                # (B, T, D)
        if W is None:
            hiddens = self._whole(h, mode)
        else:                                                                          # windows of W tokens
            states, windows = [None] * len(self.blocks), []
            for start in range(0, h.shape[1], W):
                if mode == "carried":
                    hid, states = self._run(h[:, start:start + W], states)
                    states = [_detach(s) for s in states]                              # truncated BPTT
                else:
                    hid = self._whole(h[:, start:start + W], mode)                     # each from zero / a draw
                windows.append(hid)
            hiddens = [torch.cat(layer, dim=1) for layer in zip(*windows)]
        logits = self.head(self.ln_f(hiddens[-1]))                                     # (B, T, V)
        return (logits, hiddens) if return_hidden else logits

    def _whole(self, h: torch.Tensor, mode: str) -> list:
        """Every layer's output over h, from zero states or (random) a fresh Gaussian draw."""
        if mode == "random":
            states = [b.mixer.random_state(h.shape[0], h.device, self.cfg.train_state_scale) for b in self.blocks]
            return self._run(h, states)[0]
        hiddens = []
        for block in self.blocks:
            h = block(h)
            hiddens.append(h)                                                          # (B, T, D)
        return hiddens

    def _run(self, h: torch.Tensor, states: list) -> tuple[list, list]:
        """The blocks from each layer's initial state: (every layer's output, final states)."""
        hiddens, finals = [], []
        for block, s in zip(self.blocks, states):
            h, s = block.forward_state(h, s)
            hiddens.append(h)
            finals.append(s)
        return hiddens, finals

    def init_state(self, batch_size: int) -> list:
        device = self.head.weight.device
        return [b.mixer.init_state(batch_size, device) for b in self.blocks]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """One position: x_t is (B,) token ids or (B, d_input); returns logits (B, V) and the state."""
        h = self.inp(x_t)                                                              # (B, D)
        new_state = []
        for block, s in zip(self.blocks, state):
            h, s = block.step(h, s)
            new_state.append(s)
        return self.head(self.ln_f(h)), new_state


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)                                      # tuple / list of tensors


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    return x.view(*x.shape[:-1], n_head, x.shape[-1] // n_head)                        # (..., H, K)


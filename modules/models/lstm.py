"""The LSTM of Greff et al. 2015, "LSTM: A Search Space Odyssey", with its eight variants as flags.

Vanilla LSTM (their section 2: forget gate, peepholes, tanh block input and output activations):
    z_t = g(W_z x_t + R_z y_{t-1} + b_z)                          block input
    i_t = sigma(W_i x_t + R_i y_{t-1} + p_i * c_{t-1} + b_i)      input gate
    f_t = sigma(W_f x_t + R_f y_{t-1} + p_f * c_{t-1} + b_f)      forget gate
    c_t = z_t * i_t + c_{t-1} * f_t                               cell
    o_t = sigma(W_o x_t + R_o y_{t-1} + p_o * c_t + b_o)          output gate (peeps at the new cell)
    y_t = h(c_t) * o_t                                            block output;  g = h = tanh
The variants, each one change to vanilla (see VARIANTS):
    NIG   no input gate           i_t = 1                      input_gate: false
    NFG   no forget gate          f_t = 1                      forget_gate: false
    NOG   no output gate          o_t = 1                      output_gate: false
    NIAF  no input activation     g(x) = x                     input_activation: false
    NOAF  no output activation    h(x) = x                     output_activation: false
    CIFG  coupled input/forget    f_t = 1 - i_t                coupled_input_forget: true
    NP    no peepholes            p_i = p_f = p_o = 0          peepholes: false
    FGR   full gate recurrence    every gate also reads all gates' activations at t-1
                                  (nine more matrices: i_t += R_ii i_{t-1} + R_fi f_{t-1} + R_oi o_{t-1}, ...)
                                                               full_gate_recurrence: true
Flags combine (NP + CIFG is close to a GRU), as long as the combination is well defined.
Layers stack as in rnn.py (`block: stack` is the network of the paper: one or more LSTM layers
and a linear readout).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import require
from ..kernels.lstm import Flags, lstm_recurrence
from ..kernels.lstm import usable as lstm_kernel_usable
from .rnn import RecurrentLM, RNNConfig, uniform_init

# Greff et al.'s variant names -> the config flags that give them
VARIANTS: dict[str, dict[str, bool]] = {
    "V": {},
    "NIG": {"input_gate": False},
    "NFG": {"forget_gate": False},
    "NOG": {"output_gate": False},
    "NIAF": {"input_activation": False},
    "NOAF": {"output_activation": False},
    "CIFG": {"coupled_input_forget": True},
    "NP": {"peepholes": False},
    "FGR": {"full_gate_recurrence": True},
}


@dataclass
class LSTMConfig(RNNConfig):
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True      # g = tanh (false: identity)
    output_activation: bool = True     # h = tanh (false: identity)
    coupled_input_forget: bool = False # f_t = 1 - i_t
    peepholes: bool = True
    full_gate_recurrence: bool = False
    forget_bias: float = 1.0           # initial b_f (Gers et al. 2000 start the forget gate open)

    def __post_init__(self):
        super().__post_init__()
        if self.coupled_input_forget:
            require(self.input_gate, "coupled_input_forget", "coupling needs the input gate (input_gate: true)")
            require(self.forget_gate, "coupled_input_forget",
                    "coupling replaces the forget gate by 1 - i_t; leave forget_gate: true")
        require(not self.full_gate_recurrence or self.sigmoid_gates, "full_gate_recurrence",
                "needs at least one gate")

    @property
    def sigmoid_gates(self) -> list[str]:
        """The gates that have their own weights, in the order of the packed projection."""
        gates = []
        if self.input_gate:
            gates.append("i")
        if self.forget_gate and not self.coupled_input_forget:
            gates.append("f")
        if self.output_gate:
            gates.append("o")
        return gates


class LSTMCell(nn.Module):
    """One LSTM layer; the state is (y, c) or, with full gate recurrence, (y, c, gates_{t-1})."""

    def __init__(self, d_in: int, hidden: int, cfg: LSTMConfig):
        super().__init__()
        self.cfg, self.hidden = cfg, hidden
        self.gates = cfg.sigmoid_gates                           # e.g. ["i", "f", "o"]
        n = 1 + len(self.gates)                                  # block input z, then the gates
        self.W = nn.Linear(d_in, n * hidden)                     # W x + b for [z, gates...]
        self.R = nn.Linear(hidden, n * hidden, bias=False)       # R y_{t-1}
        peeps = [g for g in self.gates if cfg.peepholes]
        self.p = nn.ParameterDict({g: nn.Parameter(torch.empty(hidden)) for g in peeps})
        G = len(self.gates) * hidden
        self.G = nn.Linear(G, G, bias=False) if cfg.full_gate_recurrence else None
        uniform_init(self, hidden)
        if "f" in self.gates:
            with torch.no_grad():
                self.W.bias[(1 + self.gates.index("f")) * hidden:][:hidden].fill_(cfg.forget_bias)

    def input_proj(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)                                                               # (..., n*H)

    @property
    def can_fuse(self) -> bool:
        """The standard LSTM (every gate, tanh activations, no peepholes, no gate recurrence) is
        the one torch runs natively; `fused` then computes a whole sequence in one call."""
        c = self.cfg
        return (c.input_gate and c.forget_gate and c.output_gate and c.input_activation and c.output_activation
                and not c.coupled_input_forget and not c.peepholes and not c.full_gate_recurrence)

    def fused(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """The layer on a whole sequence x (B, T, d_in) by torch.lstm (the same equations as
        `step`, our packed rows [z, i, f, o] reordered to torch's [i, f, g, o])."""
        H = self.hidden
        order = [1, 2, 0, 3]
        w_ih = self.W.weight.view(4, H, -1)[order].reshape(4 * H, -1)
        b_ih = self.W.bias.view(4, H)[order].reshape(4 * H)
        w_hh = self.R.weight.view(4, H, H)[order].reshape(4 * H, H)
        y0, c0 = state
        out, y, c = torch.lstm(x, (y0[None], c0[None]), [w_ih, w_hh, b_ih, torch.zeros_like(b_ih)],
                               True, 1, 0.0, self.training, False, True)
        return out, (y[0], c[0])                                                       # (B, T, H), state

    @property
    def flags(self) -> Flags:
        c = self.cfg
        return Flags(c.input_gate, c.forget_gate, c.output_gate, c.input_activation, c.output_activation,
                     c.coupled_input_forget, c.peepholes)

    def loop(self, u: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple] | None:
        """The layer's time loop on its input projection u (B, T, n*H) by the LSTM recurrence op
        (modules/kernels/lstm: a compiled loop on a CPU, forward and backward), or None where that
        op does not apply (full gate recurrence) or has no fast path here (a GPU, no compiler): the
        step loop runs then. The same equations as `step`."""
        # without the compiled loop (a GPU, no compiler) the op's fallback is a loop like `step`'s
        if self.G is not None or not lstm_kernel_usable(u):
            return None
        H = self.hidden
        zero = u.new_zeros(H)
        peep = torch.stack([self.p[g] if g in self.p else zero for g in ("i", "f", "o")])   # (3, H)
        y, (yT, cT) = lstm_recurrence(u, self.R.weight, peep, self.flags, state[0], state[1])
        return y, (yT, cT)

    def init_state(self, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        zeros = lambda width: torch.zeros(batch_size, width, device=device)  # noqa: E731
        state = (zeros(self.hidden), zeros(self.hidden))                               # y, c
        if self.G is not None:
            state = state + (zeros(len(self.gates) * self.hidden),)                   # gates at t-1
        return state

    def step(self, u: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        cfg = self.cfg
        y, c = state[0], state[1]                                                      # (B, H) each
        pre = u + self.R(y)                                                            # (B, n*H)
        z_pre, gate_pre = pre[:, : self.hidden], pre[:, self.hidden:]                  # (B, H), (B, n_gates*H)
        if self.G is not None:
            gate_pre = gate_pre + self.G(state[2])
        g = dict(zip(self.gates, gate_pre.split(self.hidden, dim=-1)))                 # pre-activations
        z = torch.tanh(z_pre) if cfg.input_activation else z_pre
        i = torch.sigmoid(g["i"] + self.p["i"] * c if "i" in self.p else g["i"]) if cfg.input_gate else None
        if cfg.coupled_input_forget:
            f = 1 - i
        elif cfg.forget_gate:
            f = torch.sigmoid(g["f"] + self.p["f"] * c if "f" in self.p else g["f"])
        else:
            f = None
        c = (z * i if i is not None else z) + (c * f if f is not None else c)          # (B, H)
        o = torch.sigmoid(g["o"] + self.p["o"] * c if "o" in self.p else g["o"]) if cfg.output_gate else None
        y = torch.tanh(c) if cfg.output_activation else c
        if o is not None:
            y = y * o                                                                  # (B, H)
        if self.G is None:
            return y, (y, c)
        acts = {"i": i, "f": f, "o": o}
        return y, (y, c, torch.cat([acts[k] for k in self.gates], dim=-1))


class LSTM(RecurrentLM):
    def __init__(self, cfg: LSTMConfig):
        super().__init__(cfg, lambda d_in, hidden: LSTMCell(d_in, hidden, cfg))

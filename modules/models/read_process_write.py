"""Pointer networks over sets: the Read-Process-and-Write model of Vinyals, Bengio & Kudlur 2016,
"Order Matters: Sequence to Sequence for Sets" (ICLR 2016, arXiv 1511.06391, Section 4.2 and
Figure 1), and its seq2seq baseline, the Ptr-Net of Vinyals, Fortunato & Jaitly 2015 (arXiv
1506.03134).

Both read a set of N elements x_i in R^{d_input}, (B, N, d_input), and write N pointers: at step
t the logits over the N input elements, (B, N_steps=N, N_elements=N).

read_process_write (arch `read_process_write`):
    read     m_i = MLP(x_i)                           the same small network on every element: no
                                                      recurrence over the inputs, so no input order
    process  P steps of an LSTM with no input that attends over the memories (the paper's eq. 3-7,
             the block later called Set2Set):
                 q_t   = LSTM(q*_{t-1})               state (h, c); q*_0 = 0
                 e_i,t = m_i . q_t                    content-based (dot-product) attention
                 a_i,t = softmax_i(e_i,t)
                 r_t   = sum_i a_i,t m_i
                 q*_t  = [q_t ; r_t]
             q*_P is invariant to any permutation of the memories (a softmax-weighted sum).
    write    a pointer-network LSTM decoder (Ptr-Net, eq. 3 of arXiv 1506.03134) started from q*_P:
                 (h_0, c_0) = (W_h q*_P, W_c q*_P)
                 d_t = LSTM(in_t, (h_{t-1}, c_{t-1}))  in_1 = a learned <go> vector, in_t = m_{y_{t-1}}
                 g_t = glimpse(d_t)                    `glimpses` rounds of additive attention over the
                                                       memories, each adding its readout to the query
                 u_i,t = v^T tanh(W_1 m_i + W_2 g_t)   the logits of step t over the elements
    The logits of the elements permute with the elements: the whole model is permutation
    equivariant in the elements and its decoded output set sequence is invariant.

ptr_net (arch `ptr_net`): the baseline seq2seq. An LSTM reads m_1 .. m_N in the given order; its
outputs e_i are the memories the decoder points at and its final state starts the decoder (the
same write block). Its output depends on the order the set is presented in.

Choices the paper does not pin down, stated here:
- The read block is Linear-ReLU-Linear; the decoder's initial state is a linear map of q*_P. With
  P = 0, q*_0 = 0 and the decoder starts from a learned constant state (the biases of W_h, W_c).
- Glimpses (Bello et al. 2016, arXiv 1611.09940, Section 3.2): q <- q + sum_i softmax_i(v_g^T
  tanh(W_g1 m_i + W_g2 q)) m_i. Bello et al. replace the query by the readout; we add it (a
  residual glimpse). With the replacing form, at initialization the readout is close to the mean
  of the memories at every step, so the logits barely depend on the step, and logits that do not
  depend on the step sit at a saddle of the loss at exactly ln N (each element is the answer of
  exactly one step, so the best step-independent guess is uniform): in a pilot Ptr-Net with one
  replacing glimpse stayed at ln 10 for 300 steps at N = 10.
- `mask_pointed` (default false) sets the logits of elements already pointed at to -inf, in
  training and decoding. The paper does not say it masks, and its accuracy falling steeply with N
  suggests it did not: with masking, ascending sorting reduces to "the least element left", which
  one fixed score decreasing in x_i solves exactly at every N. Without masking the decoder must
  find the element just above the one it last wrote, a comparison that gets finer as N grows.
- Training is teacher-forced (in_t is the target's element); evaluation decodes greedily (in_t is
  the element of the previous argmax). The paper's beam search is not used.
- Nothing keeps the greedy output a permutation unless `mask_pointed` is set; an output that
  repeats an element simply counts as wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import require
from .common import check_int


@dataclass
class PointerConfig:
    d_input: int = 1               # features per element; injected from the task's spec
    d_model: int = 64              # memory, LSTM and attention width
    glimpses: int = 1              # attention readouts added to the query before each pointer (0: d_t)
    mask_pointed: bool = False     # never point at an element twice (see the module docstring)

    def __post_init__(self):
        check_int(self, "d_input")
        check_int(self, "d_model")
        require(self.glimpses >= 0, "glimpses", f"{self.glimpses} must be at least 0")


@dataclass
class ReadProcessWriteConfig(PointerConfig):
    process_steps: int = 5         # P: attention steps of the process block

    def __post_init__(self):
        super().__post_init__()
        require(self.process_steps >= 0, "process_steps", f"{self.process_steps} must be at least 0")


@dataclass
class PtrNetConfig(PointerConfig):
    pass


class Read(nn.Module):
    """The same small network on every element: m_i = W_2 relu(W_1 x_i)."""

    def __init__(self, d_input: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_input, d_model), nn.ReLU(), nn.Linear(d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                                             # (B, N, D)


class Process(nn.Module):
    """P steps of an input-free LSTM with dot-product attention over the memories (eq. 3-7)."""

    def __init__(self, d_model: int, steps: int):
        super().__init__()
        self.steps = steps
        self.cell = nn.LSTMCell(2 * d_model, d_model)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        B, N, D = m.shape
        q_star = m.new_zeros(B, 2 * D)                                                 # q*_0
        h = c = m.new_zeros(B, D)
        for _ in range(self.steps):
            h, c = self.cell(q_star, (h, c))                                           # q_t = h: (B, D)
            a = torch.softmax(torch.einsum("bnd,bd->bn", m, h), dim=-1)                # (B, N)
            r = torch.einsum("bn,bnd->bd", a, m)                                       # (B, D)
            q_star = torch.cat([h, r], dim=-1)                                         # (B, 2D)
        return q_star


class Additive(nn.Module):
    """u_i = v^T tanh(W_1 m_i + W_2 q): additive attention (Bahdanau) as in Ptr-Net's eq. 3."""

    def __init__(self, d_model: int):
        super().__init__()
        self.W1 = nn.Linear(d_model, d_model, bias=False)
        self.W2 = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, 1, bias=False)

    def scores(self, Wm: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Wm = W_1 m (B, N, D), queries q (B, T, D) -> u (B, T, N)."""
        return self.v(torch.tanh(Wm[:, None] + self.W2(q)[:, :, None])).squeeze(-1)


class Write(nn.Module):
    """The pointer-network decoder: an LSTM whose every step points at one input element.

    Teacher-forced, every step's input is known in advance, so the LSTM runs over all steps in
    one call and the pointers of all steps are computed at once; greedy decoding runs the same
    LSTM one step at a time (a test checks that both give the same logits)."""

    def __init__(self, d_model: int, glimpses: int, mask_pointed: bool):
        super().__init__()
        self.rnn = nn.LSTM(d_model, d_model, batch_first=True)
        self.go = nn.Parameter(torch.empty(d_model).uniform_(-1, 1))
        self.glimpse = nn.ModuleList(Additive(d_model) for _ in range(glimpses))
        self.pointer = Additive(d_model)
        self.mask_pointed = mask_pointed

    def point(self, mem, Wm_g, Wm_p, q, pointed):
        """Logits (B, T, N) of decoder outputs q (B, T, D); pointed (B, T, N) or None."""
        for g, Wm in zip(self.glimpse, Wm_g):
            s = g.scores(Wm, q)
            if pointed is not None:
                s = s.masked_fill(pointed, float("-inf"))
            q = q + torch.softmax(s, dim=-1) @ mem                                     # (B, T, D)
        u = self.pointer.scores(Wm_p, q)                                               # (B, T, N)
        return u.masked_fill(pointed, float("-inf")) if pointed is not None else u

    def forward(self, mem: torch.Tensor, feed: torch.Tensor, state, targets: torch.Tensor | None = None):
        """mem (B, N, D): what is pointed at; feed (B, N, D): what step t+1 reads of the element
        step t chose; state (h, c), (B, D) each; targets (B, T) teacher-force, else greedy for N
        steps. Returns logits (B, T, N) and decoder outputs (B, T, D)."""
        B, N, D = mem.shape
        h, c = state[0][None].contiguous(), state[1][None].contiguous()               # (1, B, D)
        Wm_g = [g.W1(mem) for g in self.glimpse]                                      # (B, N, D) each
        Wm_p = self.pointer.W1(mem)
        go = self.go.expand(B, 1, D)
        if targets is not None:
            prev = feed.gather(1, targets[:, :-1, None].expand(-1, -1, D))             # (B, T-1, D)
            out, _ = self.rnn(torch.cat([go, prev], 1), (h, c))                        # (B, T, D)
            pointed = None
            if self.mask_pointed:                                                      # y_<t, per step
                hit = torch.nn.functional.one_hot(targets, N).cumsum(1) - torch.nn.functional.one_hot(targets, N)
                pointed = hit > 0                                                      # (B, T, N)
            return self.point(mem, Wm_g, Wm_p, out, pointed), out
        rows = torch.arange(B, device=mem.device)
        pointed = torch.zeros(B, 1, N, dtype=torch.bool, device=mem.device) if self.mask_pointed else None
        inp, logits, outs = go, [], []
        for _ in range(N):
            o, (h, c) = self.rnn(inp, (h, c))                                          # (B, 1, D)
            u = self.point(mem, Wm_g, Wm_p, o, pointed)                                # (B, 1, N)
            idx = u[:, 0].argmax(-1)                                                   # (B,)
            if pointed is not None:
                pointed = pointed.clone()
                pointed[rows, 0, idx] = True
            logits.append(u)
            outs.append(o)
            inp = feed[rows, idx][:, None]                                             # (B, 1, D)
        return torch.cat(logits, 1), torch.cat(outs, 1)


class ReadProcessWrite(nn.Module):
    def __init__(self, cfg: ReadProcessWriteConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.read = Read(cfg.d_input, D)
        self.process = Process(D, cfg.process_steps)
        self.init_h = nn.Linear(2 * D, D)
        self.init_c = nn.Linear(2 * D, D)
        self.write = Write(D, cfg.glimpses, cfg.mask_pointed)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, return_hidden: bool = False):
        """x (B, N, d_input) -> pointer logits (B, N, N); `targets` (B, N) teacher-forces the decoder."""
        m = self.read(x)                                                               # (B, N, D)
        q_star = self.process(m)                                                       # (B, 2D)
        state = (self.init_h(q_star), self.init_c(q_star))
        logits, dec = self.write(m, m, state, targets)
        return (logits, [m, dec]) if return_hidden else logits


class PtrNet(nn.Module):
    def __init__(self, cfg: PtrNetConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.read = Read(cfg.d_input, D)
        self.encoder = nn.LSTM(D, D, batch_first=True)
        self.write = Write(D, cfg.glimpses, cfg.mask_pointed)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, return_hidden: bool = False):
        """x (B, N, d_input), read in the order given -> pointer logits (B, N, N)."""
        m = self.read(x)                                                               # (B, N, D)
        e, (h, c) = self.encoder(m)                                                    # (B, N, D); (1, B, D)
        logits, dec = self.write(e, m, (h[0], c[0]), targets)
        return (logits, [e, dec]) if return_hidden else logits

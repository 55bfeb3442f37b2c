"""Encoder-decoder recurrent networks (GRU or LSTM, with or without attention), the models of
Lake & Baroni 2018, "Generalization without Systematicity: On the Compositional Skills of
Sequence-to-Sequence Recurrent Networks" (ICML 2018, arXiv 1711.00350, Section 3), which follow
Sutskever et al. 2014 and, with attention, Bahdanau et al. 2015 (arXiv 1409.0473).

The zoo's contract is a causal LM, forward(x) -> logits, so the model reads the task's whole
sequence `c_1 .. c_n PAD .. SEP a_1 .. a_m` and splits it at SEP (the column of the first SEP,
the same in every row; the scan task lays it out so; PADs in the command slot are skipped):

    encoder   h_j = RNN_enc(E_src c_j, h_{j-1}),  j = 1..n             (unidirectional, n_layer)
    decoder   s_0 = h_n (every layer's final state, the paper's "the encoder's final state")
              inputs y_0 = SEP, y_1 = a_1, ...  (teacher forcing: the true previous action)
    none      s_t = RNN_dec(E_tgt y_{t-1}, s_{t-1});   logits_t = W_o s_t
    bahdanau  e_tj = v^T tanh(W_q s_{t-1} + W_k h_j);  alpha_t = softmax_j(e_t);  c_t = sum_j alpha_tj h_j
              s_t = RNN_dec([E_tgt y_{t-1}; c_t], s_{t-1});   logits_t = W_o [s_t; c_t]
    luong     s_t = RNN_dec(E_tgt y_{t-1}, s_{t-1});  e_tj = s_t^T W_a h_j;  c_t as above
              logits_t = W_o tanh(W_c [s_t; c_t])     (Luong et al. 2015, "general" score, arXiv
              1508.04025, without input feeding: the decoder RNN runs over all positions at once,
              about 3x faster on a CPU than Bahdanau's step-by-step loop)

(s_{t-1} in Bahdanau's scores is the top layer's state; s_t in Luong's too.) The paper's
attention is Bahdanau's; `luong` is a cheaper variant offered for CPU budgets. Logits at the command positions are zero:
the model predicts actions only, and the task scores only SEP and after. forward is causal: the
output at position t depends on x[:t+1] only. `step()` reads one token at a time (encoder up
to SEP, then decoder), equals `forward` position by position, and is what greedy decoding uses.

Deviations, stated: Bahdanau's deep maxout output layer is a linear map of [s_t; c_t]; the
encoder is unidirectional (as in the paper, not Bahdanau's bidirectional one); dropout
(`dropout`) is applied to the embeddings, between layers and before the output map (the paper
only says "dropout applied at the 0.5 level"); separate source and target embeddings.
Per-layer hidden states (return_hidden) are the encoder layer's outputs at the command
positions (zero at PAD) followed by the decoder layer's states from SEP on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import ConfigError, require
from .common import SeqIOConfig, check_int


@dataclass
class Seq2SeqConfig(SeqIOConfig):
    cell: Literal["gru", "lstm"] = "gru"
    n_layer: int = 1
    d_model: int = 128                     # hidden units per layer, encoder and decoder
    d_embed: int | None = None             # embedding width; default d_model
    attention: Literal["none", "bahdanau", "luong"] = "bahdanau"
    dropout: float = 0.0
    sep_token: int | None = None           # where the encoder stops and the decoder starts (task spec)
    pad_token: int | None = None           # skipped by the encoder (task spec)

    def __post_init__(self):
        self.check_io()
        if self.vocab_size is None:
            raise ConfigError("d_input", "seq2seq_rnn reads tokens; give vocab_size (a token task declares it)")
        check_int(self, "n_layer")
        check_int(self, "d_model")
        require(self.d_embed is None or self.d_embed >= 1, "d_embed", f"{self.d_embed} must be at least 1")
        require(0.0 <= self.dropout < 1.0, "dropout", f"{self.dropout} must be in [0, 1)")
        require(self.sep_token is not None, "sep_token",
                "is required: the token that separates command and actions (the scan task declares it)")
        for key in ("sep_token", "pad_token"):
            v = getattr(self, key)
            require(v is None or 0 <= v < self.vocab_size, key, f"{v} must be a token id below vocab_size={self.vocab_size}")
        require(self.pad_token != self.sep_token, "pad_token", "must differ from sep_token")
        if self.d_embed is None:
            self.d_embed = self.d_model


class Seq2SeqRNN(nn.Module):
    step_is_forward = False   # step outputs zeros while it reads the command: no recurrence_gap

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        V, E, H, L = cfg.vocab_size, cfg.d_embed, cfg.d_model, cfg.n_layer
        self.lstm = cfg.cell == "lstm"
        self.attn = cfg.attention == "bahdanau"          # the step-by-step decoder
        self.luong = cfg.attention == "luong"
        rnn = nn.LSTM if self.lstm else nn.GRU
        self.src_emb = nn.Embedding(V, E)
        self.tgt_emb = nn.Embedding(V, E)
        # one single-layer module per layer, so every layer's states come back
        self.encoder = nn.ModuleList(rnn(E if i == 0 else H, H, batch_first=True) for i in range(L))
        if self.attn:
            cell = nn.LSTMCell if self.lstm else nn.GRUCell
            self.decoder = nn.ModuleList(cell(E + H if i == 0 else H, H) for i in range(L))
            self.W_q = nn.Linear(H, H, bias=False)
            self.W_k = nn.Linear(H, H)
            self.v = nn.Linear(H, 1, bias=False)
        else:
            self.decoder = nn.ModuleList(rnn(E if i == 0 else H, H, batch_first=True) for i in range(L))
        if self.luong:
            self.W_a = nn.Linear(H, H, bias=False)
            self.W_c = nn.Linear(2 * H, H, bias=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * H if self.attn else H, V)

    def _luong_out(self, s: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Luong's global attention on top-layer states s (B, T, H): the logits (B, T, V)."""
        e = torch.bmm(self.W_a(s), mem.transpose(1, 2))                                # (B, T, S)
        e = e.masked_fill(~mask[:, None], float("-inf"))
        c = torch.bmm(torch.softmax(e, dim=-1), mem)                                   # (B, T, H)
        return self.head(self.drop(torch.tanh(self.W_c(torch.cat([s, c], -1)))))

    # -- pieces shared by forward and step --------------------------------------------------

    def _zero_state(self, B: int, device) -> list:
        z = lambda: torch.zeros(B, self.cfg.d_model, device=device)  # noqa: E731
        return [(z(), z()) if self.lstm else z() for _ in range(self.cfg.n_layer)]

    def _attend(self, s_top: torch.Tensor, mem: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bahdanau's additive attention: the context c_t (B, H) from the query s_{t-1} (B, H)."""
        e = self.v(torch.tanh(keys + self.W_q(s_top)[:, None])).squeeze(-1)            # (B, S)
        e = e.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(e, dim=-1)                                               # (B, S)
        return torch.bmm(alpha[:, None], mem)[:, 0]                                    # (B, H)

    def _dec_cell_step(self, emb_t: torch.Tensor, state: list, mem, keys, mask):
        """One attention-decoder step: returns (logits (B, V), new state, per-layer outputs)."""
        top = state[-1][0] if self.lstm else state[-1]
        c = self._attend(top, mem, keys, mask)                                         # (B, H)
        inp = torch.cat([emb_t, c], -1)                                                # (B, E+H)
        new, outs = [], []
        for i, cell in enumerate(self.decoder):
            s = cell(inp, state[i])
            new.append(s)
            h = s[0] if self.lstm else s                                               # (B, H)
            outs.append(h)
            inp = self.drop(h)
        return self.head(torch.cat([inp, c], -1)), new, outs

    def _sep_column(self, x: torch.Tensor) -> int:
        is_sep = x == self.cfg.sep_token
        if not bool(is_sep.any(1).all()):
            raise ValueError("seq2seq_rnn: every sequence needs the separator token (sep_token) between "
                             "command and actions")
        col = is_sep.float().argmax(1)                                                 # first SEP per row
        if not bool((col == col[0]).all()):
            raise ValueError("seq2seq_rnn: the separator must sit in the same column of every row "
                             "(pad the commands to one length)")
        return int(col[0])

    # -- the parallel forward -----------------------------------------------------------------

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        if x.is_floating_point():
            raise TypeError("this model reads tokens (integer ids); got a float tensor")
        B, T = x.shape
        S = self._sep_column(x)
        src, tgt = x[:, :S], x[:, S:]                                                  # (B, S), (B, T-S)
        H = self.cfg.d_model
        mask = src != self.cfg.pad_token if self.cfg.pad_token is not None else torch.ones_like(src, dtype=torch.bool)
        lengths = mask.sum(1)                                                          # (B,)
        state = self._zero_state(B, x.device)
        enc_hid = []
        if S > 0 and bool((lengths > 0).all()):
            h = self.drop(self.src_emb(src))                                           # (B, S, E)
            final = []
            for i, rnn in enumerate(self.encoder):
                packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
                out, hn = rnn(packed)
                out = pad_packed_sequence(out, batch_first=True, total_length=S)[0]    # (B, S, H), 0 at PAD
                enc_hid.append(out)
                final.append((hn[0][0], hn[1][0]) if self.lstm else hn[0])
                h = self.drop(out)
            state = final
            mem = enc_hid[-1]
        elif S > 0:
            raise ValueError("seq2seq_rnn: a command is empty (only padding before the separator)")
        else:
            mem = torch.zeros(B, 0, H, device=x.device)
            enc_hid = [mem] * self.cfg.n_layer
        e = self.drop(self.tgt_emb(tgt))                                               # (B, T-S, E)
        if (self.attn or self.luong) and S == 0:
            raise ValueError("seq2seq_rnn with attention needs a command before the separator")
        if self.attn:
            keys = self.W_k(mem)                                                       # (B, S, H)
            steps, dec_hid = [], [[] for _ in range(self.cfg.n_layer)]
            # unbind, not e[:, t]: each e[:, t]'s backward fills a zero tensor of e's whole size
            for e_t in e.unbind(1):
                logit, state, outs = self._dec_cell_step(e_t, state, mem, keys, mask)
                steps.append(logit)
                for i, o in enumerate(outs):
                    dec_hid[i].append(o)
            dec_logits = torch.stack(steps, 1)                                         # (B, T-S, V)
            dec_hid = [torch.stack(d, 1) for d in dec_hid]
        else:
            h, dec_hid = e, []
            for i, rnn in enumerate(self.decoder):
                init = (state[i][0][None].contiguous(), state[i][1][None].contiguous()) if self.lstm else state[i][None].contiguous()
                out, _ = rnn(h, init)                                                  # (B, T-S, H)
                dec_hid.append(out)
                h = self.drop(out)
            dec_logits = self._luong_out(out, mem, mask) if self.luong else self.head(h)  # (B, T-S, V)
        logits = torch.cat([dec_logits.new_zeros(B, S, dec_logits.shape[-1]), dec_logits], 1)  # (B, T, V)
        if not return_hidden:
            return logits
        return logits, [torch.cat([a, b], 1) for a, b in zip(enc_hid, dec_hid)]

    # -- one token at a time ------------------------------------------------------------------

    def init_state(self, batch_size: int) -> dict:
        device = self.head.weight.device
        return {"phase": "encode", "rnn": self._zero_state(batch_size, device), "mem": [], "mask": []}

    def _rnn_step(self, rnn: nn.Module, inp: torch.Tensor, s):
        """A single-layer nn.GRU / nn.LSTM on one position: (B, D) -> (B, H), state."""
        if self.lstm:
            out, (h, c) = rnn(inp[:, None], (s[0][None].contiguous(), s[1][None].contiguous()))
            return out[:, 0], (h[0], c[0])
        out, h = rnn(inp[:, None], s[None].contiguous())
        return out[:, 0], h[0]

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One position: x_t (B,) token ids; returns logits (B, V) (zero while reading the command)."""
        B = x_t.shape[0]
        is_sep = x_t == self.cfg.sep_token
        if state["phase"] == "encode" and bool(is_sep.any()):
            if not bool(is_sep.all()):
                raise ValueError("seq2seq_rnn.step: the separator must come at the same step in every row")
            if (self.attn or self.luong) and not state["mem"]:
                raise ValueError("seq2seq_rnn with attention needs a command before the separator")
            mem = torch.stack(state["mem"], 1) if state["mem"] else None              # (B, S, H)
            state = {"phase": "decode", "rnn": state["rnn"], "mem": mem,
                     "mask": torch.stack(state["mask"], 1) if state["mask"] else None,
                     "keys": self.W_k(mem) if self.attn else None}
        rnn_state = state["rnn"]
        if state["phase"] == "encode":
            keep = x_t != self.cfg.pad_token if self.cfg.pad_token is not None else torch.ones_like(x_t, dtype=torch.bool)
            h, new = self.drop(self.src_emb(x_t)), []
            for i, rnn in enumerate(self.encoder):
                out, s = self._rnn_step(rnn, h, rnn_state[i])
                k = keep[:, None]
                s = (torch.where(k, s[0], rnn_state[i][0]), torch.where(k, s[1], rnn_state[i][1])) if self.lstm \
                    else torch.where(k, s, rnn_state[i])
                new.append(s)
                out = torch.where(k, out, torch.zeros_like(out))
                h = self.drop(out)
            mem = state["mem"] + [out]
            return (self.head.weight.new_zeros(B, self.cfg.vocab_size),
                    {"phase": "encode", "rnn": new, "mem": mem, "mask": state["mask"] + [keep]})
        e = self.drop(self.tgt_emb(x_t))                                               # (B, E)
        if self.attn:
            logits, new, _ = self._dec_cell_step(e, rnn_state, state["mem"], state["keys"], state["mask"])
        else:
            h, new = e, []
            for i, rnn in enumerate(self.decoder):
                out, s = self._rnn_step(rnn, h, rnn_state[i])
                new.append(s)
                h = self.drop(out)
            logits = self._luong_out(out[:, None], state["mem"], state["mask"])[:, 0] if self.luong else self.head(h)
        return logits, {**state, "rnn": new}

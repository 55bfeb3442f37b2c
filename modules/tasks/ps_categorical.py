"""Next-symbol prediction on piecewise-stationary categorical sources: the setting of Genewein et
al. 2023, "Memory-Based Meta-Learning on Non-Stationary Distributions" (ICML 2023, arXiv
2302.03067). A sequence model trained by log loss on sequences of such sources meta-learns to
predict like the Bayes-optimal predictor: on switching sources it beats the stationary KT
estimator, on stationary ones it matches it.

The source: K = n_symbols symbols; a distribution theta ~ Dirichlet(alpha, ..., alpha) holds from
the first symbol; before each later symbol a change point occurs with probability switch_prob
(the hazard), and theta is drawn afresh. Symbols s_t ~ Categorical(theta_t), t = 0 .. seq_len-1.

    x:  BOS s_0 ... s_{T-2}            y:  s_0 s_1 ... s_{T-1}          (every position scored)

Symbols are the tokens 0 .. K-1 and BOS is K (vocab_size K + 1); models output K logits (spec:
d_output = K), so a prediction is a distribution over the symbols. Training loss and `loss`: the
mean cross-entropy per symbol in nats.

Metrics over every symbol of `eval_size` sequences (nats per symbol):
  loss          the model's log loss
  kt_loss       the add-alpha estimator (n_c + alpha) / (t + K alpha), which at alpha = 1/2 is the
                Krichevsky-Trofimov estimator and for any alpha the Bayes predictor of a stationary
                source (switch_prob 0)
  ptw_loss      Partition Tree Weighting (Veness et al. 2013) over that estimator, depth
                `ptw_depth` (default ceil(log2 seq_len)): a mixture over dyadic partitions that
                knows no hazard
  bayes_loss    the Bayes predictor of this very source (its alpha and hazard known): an exact
                mixture over the time since the last change point (switching_refs.py)
  regret        loss - bayes_loss, the paper's yardstick per symbol (0: Bayes-optimal; positive in
                expectation, slightly negative on a finite sample only by chance)
  regret_vs_kt  loss - kt_loss (negative: the model beats KT, as on switching sources it should)
The references are facts about the data, not trained. chance(): the best predictor that ignores
the input is the uniform one (by symmetry every symbol's marginal is uniform at every position),
loss ln K; its regret and regret_vs_kt are ln K minus the Bayes and KT losses measured on
CHANCE_SEQUENCES sequences drawn from a fixed seed.

Eval axes: switch_prob (one model trained on switching data is scored on stationary data, 0,
and at other hazards; the Bayes predictor always uses the hazard evaluated), seq_len and alpha.

Probe labels, per input position t (the state has read BOS and s_0 .. s_{t-1}):
  since_switch   symbols read since the last change point, i.e. of the current segment (the run
                 length of s_{t-1}'s segment; 0 at t = 0): a value (ridge probe)
  bayes_p_max    the Bayes predictive probability of the most likely next symbol: a value
  source_argmax  the most probable symbol of the distribution that produced s_{t-1} (IGNORE at t = 0)
  position, target  t and s_t, as every token task gives

What is the paper's and what is ours. Checked against the authors' released code
(google-deepmind/nonstationary_mbml); the paper's own text was not at hand: categorical sources
with a Dirichlet(1/2) prior per segment (their categorical generator with PTW change points draws
Dirichlet(0.5, ..., 0.5)); KT, with +1/2 counts, as the stationary reference; PTW over KT with
depth ceil(log2 T) as a reference, with the recursion PTW_d = 1/2 KT + 1/2 PTW_{d-1}(first half)
PTW_{d-1}(second half) (also in Veness et al. 2013). Ours: the switching law. The paper draws
change points from the PTW prior (each dyadic node split with probability 1/2: log2(T)/2 change
points on average) and from Willems' (1996) live-and-die law (hazard 0.5 / (t - t_c + 1) after a
segment began at t_c), whose Bayes predictors are PTW and LAD; here change points come at a
constant hazard, whose Bayes predictor is the change-point mixture of bayes_loss, and switch_prob 0
gives a stationary source on which the same trained model is scored. Also ours: the BOS token and
scoring the first symbol (the authors' predictors, as far as their code shows, predict from the
second symbol on: their PTW's prediction before any symbol is dropped), the names, the default hazard 0.02 (about 5 change points in 256 symbols, near the PTW prior's 4) and
the probe labels. Not verified: the sequence lengths, alphabet sizes and priors of each of the
paper's experiments (e.g. whether binary sources use Beta(1/2, 1/2) or Beta(1, 1)), and how it
reports regret (summed over a sequence, in bits or nats); regret here is nats per symbol.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import require
from ..metrics import LOSS, Metric
from .sequence import CHANCE_SEED, EVAL_CHUNK, IGNORE, SequenceTask, check_pos
from .switching_refs import (
    bayes_switching_predict,
    kt_predict,
    log_loss,
    ptw_depth_for,
    ptw_predict,
)

CHANCE_SEQUENCES = 1024
REFERENCES = ("kt", "ptw", "bayes")


def sample_gamma(gen: torch.Generator, alpha: float, shape) -> torch.Tensor:
    """log of Gamma(alpha, 1) draws, float64, seeded by `gen` (Marsaglia & Tsang 2000: for alpha >= 1
    d (1 + c z)^3 accepted when log u < z^2/2 + d - d v + d log v; for alpha < 1 a Gamma(alpha + 1)
    draw times u^(1/alpha)). In logs, so that a tiny alpha does not underflow."""
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    n = math.prod(shape)
    out = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel():
        z = torch.randn(todo.numel(), generator=gen, dtype=torch.float64)
        u = torch.rand(todo.numel(), generator=gen, dtype=torch.float64)
        v = (1.0 + c * z) ** 3
        ok = v > 0
        ok &= torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp(min=1e-300))
        out[todo[ok]] = math.log(d) + torch.log(v[ok])
        todo = todo[~ok]
    if alpha < 1.0:
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        out = out + torch.log(u.clamp(min=1e-300)) / alpha
    return out.view(*shape)


@dataclass
class PSCategoricalTask(SequenceTask):
    n_symbols: int = 2             # K: the alphabet
    seq_len: int = 256             # T: symbols per sequence
    switch_prob: float = 0.02      # hazard: the chance of a change point before each symbol after the first
    alpha: float = 0.5             # Dirichlet concentration of each segment's distribution
    ptw_depth: int | None = None   # depth of the PTW reference; None: ceil(log2 seq_len)

    metrics: ClassVar[tuple[str, ...]] = ("loss", "regret", "regret_vs_kt", "kt_loss", "ptw_loss", "bayes_loss")
    metric_facts: ClassVar = {
        "loss": LOSS,
        "regret": Metric("lower", None, None, band=0.02),
        "regret_vs_kt": Metric("lower", None, None, band=0.02),
        **{f"{r}_loss": Metric("none", 0.0, None, trained=False) for r in REFERENCES},
    }
    eval_axes: ClassVar[tuple[str, ...]] = ("switch_prob", "seq_len", "alpha")
    probe_labels: ClassVar[dict[str, str]] = {"since_switch": "regression", "bayes_p_max": "regression",
                                              "source_argmax": "classification",
                                              "position": "classification", "target": "classification"}

    def __post_init__(self):
        super().__post_init__()
        check_pos(self, "seq_len")
        require(self.n_symbols >= 2, "n_symbols", f"{self.n_symbols} must be at least 2")
        require(0.0 <= self.switch_prob <= 1.0, "switch_prob", f"{self.switch_prob} must be in [0, 1]")
        require(self.alpha >= 0.01, "alpha", f"{self.alpha} must be at least 0.01")
        require(self.ptw_depth is None or (0 <= self.ptw_depth <= 30 and 2 ** self.ptw_depth >= self.seq_len),
                "ptw_depth", f"{self.ptw_depth}: a tree of depth d covers 2^d symbols; seq_len {self.seq_len} "
                             f"needs at least {ptw_depth_for(self.seq_len)}")

    @property
    def BOS(self) -> int:
        return self.n_symbols

    def spec(self) -> dict:
        return {"vocab_size": self.n_symbols + 1, "d_output": self.n_symbols}

    # ---- data -----------------------------------------------------------------------------------

    def draw(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        """Sequences with their latent source: s (B, T) symbols, theta (B, T, K) the distribution that
        produced each symbol, start (B, T) the position where its segment began, and x, y."""
        B, T, K = batch_size, self.seq_len, self.n_symbols
        switch = torch.rand(B, T, generator=gen) < self.switch_prob
        switch[:, 0] = True
        seg = switch.long().cumsum(1) - 1                                              # segment index, 0 ..
        pos = torch.arange(T)[None].expand(B, T)
        start = torch.where(switch, pos, 0).cummax(1).values                           # (B, T)
        logg = sample_gamma(gen, self.alpha, (B, T, K))                                # one draw per possible segment
        theta = torch.softmax(logg, -1).gather(1, seg[..., None].expand(B, T, K))      # (B, T, K) Dirichlet(alpha)
        u = torch.rand(B, T, 1, generator=gen, dtype=torch.float64)
        s = (u > theta.cumsum(-1)).sum(-1).clamp(max=K - 1)                           # (B, T) inverse-CDF draw
        x = torch.cat([torch.full((B, 1), self.BOS, dtype=torch.long), s[:, :-1]], 1)
        return {"x": x, "y": s, "s": s, "theta": theta, "start": start}

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        d = self.draw(gen, batch_size)
        return {"x": d["x"], "y": d["y"]}

    # ---- references -----------------------------------------------------------------------------

    def reference_probs(self, s: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: (B, T, K) predictive distributions} of the three references on symbols s."""
        K = self.n_symbols
        depth = self.ptw_depth if self.ptw_depth is not None else ptw_depth_for(self.seq_len)
        return {"kt": kt_predict(s, K, self.alpha),
                "ptw": ptw_predict(s, K, depth, self.alpha),
                "bayes": bayes_switching_predict(s, K, self.alpha, self.switch_prob)}

    def chance(self) -> dict[str, float]:
        ref = _reference_losses(self.n_symbols, self.seq_len, self.switch_prob, self.alpha)
        lnK = math.log(self.n_symbols)
        return {"loss": lnK, "regret": lnK - ref["bayes"], "regret_vs_kt": lnK - ref["kt"]}

    # ---- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        sums = {"loss": 0.0, **{r: 0.0 for r in REFERENCES}}
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            d = self.draw(gen, n)
            logits = model(d["x"].to(device)).float()                                  # (B, T, K)
            sums["loss"] += F.cross_entropy(logits.flatten(0, 1), d["y"].to(device).flatten(),
                                            reduction="sum").item()
            for name, p in self.reference_probs(d["s"]).items():
                sums[name] += log_loss(p, d["s"]).sum().item()
        per = self.eval_size * self.seq_len
        loss, kt, ptw, bayes = (sums[k] / per for k in ("loss", "kt", "ptw", "bayes"))
        return {"loss": loss, "regret": loss - bayes, "regret_vs_kt": loss - kt,
                "kt_loss": kt, "ptw_loss": ptw, "bayes_loss": bayes}

    # ---- probes ---------------------------------------------------------------------------------

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Evaluation sequences until `positions` positions, with the labels of the module docstring."""
        n = max(1, -(-positions // self.seq_len))
        d = self.draw(gen, n)
        s, T = d["s"], self.seq_len
        pos = torch.arange(T)[None].expand(n, T)
        prev_start = torch.cat([torch.zeros(n, 1, dtype=torch.long), d["start"][:, :-1]], 1)
        since = torch.where(pos == 0, 0, pos - prev_start).double()                   # symbols of s_{t-1}'s segment read
        p = bayes_switching_predict(s, self.n_symbols, self.alpha, self.switch_prob)
        prev_theta = torch.cat([d["theta"][:, :1], d["theta"][:, :-1]], 1)
        argmax = torch.where(pos == 0, IGNORE, prev_theta.argmax(-1))
        labels = {"since_switch": since, "bayes_p_max": p.max(-1).values,
                  "source_argmax": argmax, "position": pos.clone(), "target": d["y"]}
        return {"x": d["x"], "labels": labels, "label_kinds": dict(self.probe_labels),
                "vocab_size": self.spec()["vocab_size"]}


@functools.lru_cache(maxsize=64)
def _reference_losses(K: int, T: int, switch_prob: float, alpha: float) -> dict[str, float]:
    """Mean log loss per symbol of the KT and Bayes references on CHANCE_SEQUENCES sequences drawn
    from a fixed seed (the chance levels of regret and regret_vs_kt)."""
    task = PSCategoricalTask(n_symbols=K, seq_len=T, switch_prob=switch_prob, alpha=alpha)
    gen = torch.Generator().manual_seed(CHANCE_SEED)
    kt = bayes = 0.0
    left = CHANCE_SEQUENCES
    while left > 0:
        n = min(EVAL_CHUNK, left)
        left -= n
        s = task.draw(gen, n)["s"]
        kt += log_loss(kt_predict(s, K, alpha), s).sum().item()
        bayes += log_loss(bayes_switching_predict(s, K, alpha, switch_prob), s).sum().item()
    per = CHANCE_SEQUENCES * T
    return {"kt": kt / per, "bayes": bayes / per}

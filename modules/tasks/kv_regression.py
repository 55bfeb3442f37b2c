"""Key-value regression: associative recall of continuous values from continuous keys, the view of
Wang, Shi & Fox 2025, "Test-time regression: a unifying framework for designing sequence models
with associative memory". A sequence model's state is a memory fitted, as the tokens arrive, to
regress each value on its key; reading it with a query is the regression's prediction.

Each prompt stores n_pairs pairs, then asks for every stored key once, in a random order:

    tokens   [k_1, v_1, 0] ... [k_N, v_N, 0]  [k_q1, 0, 1] ... [k_qN, 0, 1]      width d_key + d_value + 1
    target   at query token j, the value v_qj stored with key k_qj; the pair tokens are not scored

Keys share a direction within a prompt, drawn anew for every prompt, so that no fixed projection
can undo it: with m, z_i ~ N(0, I_d / d),

    k_i = sqrt(rho) m + sqrt(1 - rho) z_i,  scaled to unit length, then by exp(key_norm_spread * u_i),
    u_i ~ U(-1, 1);   v_i ~ N(0, I_dv)

so two keys of a prompt have cosine about rho (0: nearly orthogonal for N << d). Training loss and
`mse`: the squared error per value dimension at the query tokens; the zero predictor (which ignores
the context) scores 1 = E v^2, the chance level.

Reference memories, fitted to the prompt's N pairs in float64 (K: N x d, V: N x dv) and read at each
query q; each is an associative memory of the paper's framework:
  hebbian  W = sum_i v_i k_i^T, prediction W q: linear attention (identity feature map, no
           normalizer): least squares that ignores the correlations between keys (K^T K taken as I)
  delta    one pass of the delta rule with step 1 / |k_i|^2 (DeltaNet's update with a normalized
           key and beta = 1): W <- W + (v_i - W k_i) k_i^T / |k_i|^2, one step of online regression
           per token
  ls       minimum-norm least squares, W = V^T (K^T)^+ (recursive least squares from a vanishing
           prior): with N <= d independent keys it recalls every stored value exactly
Metrics: mse (the model's), hebbian_mse, delta_mse, ls_mse (the references'); all per value dimension.
Eval axes: rho, n_pairs and key_norm_spread may change without retraining.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import require
from ..metrics import UNTRAINED, Metric
from .base import Task
from .sequence import check_pos

EVAL_CHUNK = 256                   # prompts per forward pass at evaluation
REFERENCES = ("hebbian", "delta", "ls")


@dataclass
class KVRegressionTask(Task):
    d_key: int = 16                # d: width of a key
    d_value: int = 8               # width of a value
    n_pairs: int = 8               # N: pairs stored per prompt (and queries asked)
    rho: float = 0.0               # correlation of the keys within a prompt, in [0, 1)
    key_norm_spread: float = 0.0   # key norms exp(s u), u ~ U(-1, 1); 0: unit keys
    eval_size: int = 1024          # prompts drawn for evaluate()

    metrics: ClassVar[tuple[str, ...]] = ("mse", *(f"{r}_mse" for r in REFERENCES))
    metric_facts: ClassVar = {
        "mse": Metric("lower", 0.0, None, band=0.05),
        **{f"{r}_mse": UNTRAINED for r in REFERENCES},
    }
    eval_axes: ClassVar[tuple[str, ...]] = ("rho", "n_pairs", "key_norm_spread")

    def __post_init__(self):
        check_pos(self, "d_key", "d_value", "n_pairs", "eval_size")
        require(0.0 <= self.rho < 1.0, "rho", f"{self.rho} must be in [0, 1): 1 makes every key the same")
        require(self.key_norm_spread >= 0.0, "key_norm_spread", f"{self.key_norm_spread} must not be negative")

    def chance(self) -> dict[str, float]:
        """mse of the zero predictor, which ignores the context: E v^2 per dimension = 1."""
        return {"mse": 1.0}

    def spec(self) -> dict:
        return {"d_input": self.d_key + self.d_value + 1, "d_output": self.d_value}

    # ---- data -----------------------------------------------------------------------------------

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        B, N, d, dv = batch_size, self.n_pairs, self.d_key, self.d_value
        m = torch.randn(B, 1, d, generator=gen) / math.sqrt(d)
        z = torch.randn(B, N, d, generator=gen) / math.sqrt(d)
        k = math.sqrt(self.rho) * m + math.sqrt(1.0 - self.rho) * z
        k = k / k.norm(dim=-1, keepdim=True)
        u = torch.rand(B, N, 1, generator=gen) * 2 - 1                  # drawn even at spread 0: same keys
        k = k * torch.exp(self.key_norm_spread * u)
        v = torch.randn(B, N, dv, generator=gen)
        order = torch.rand(B, N, generator=gen).argsort(dim=1)            # each key asked once
        kq = k.gather(1, order[..., None].expand(-1, -1, d))
        target = v.gather(1, order[..., None].expand(-1, -1, dv))
        inputs = torch.zeros(B, 2 * N, d + dv + 1)
        inputs[:, :N, :d], inputs[:, :N, d:d + dv] = k, v
        inputs[:, N:, :d], inputs[:, N:, -1] = kq, 1.0
        return {"inputs": inputs, "keys": k, "values": v, "queries": kq, "target": target}

    def predictions(self, model, inputs: torch.Tensor) -> torch.Tensor:
        """The model's output at the query tokens, (B, N, d_value)."""
        return model(inputs)[:, self.n_pairs:]

    def loss(self, model, batch) -> torch.Tensor:
        return ((self.predictions(model, batch["inputs"]).float() - batch["target"].float()) ** 2).mean()

    # ---- reference memories ---------------------------------------------------------------------

    @staticmethod
    def references(k: torch.Tensor, v: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each reference memory fitted to keys k (B, N, d) and values v (B, N, dv), read at the
        queries q (B, M, d): {name: (B, M, dv)}, float64."""
        k, v, q = k.double(), v.double(), q.double()
        W_heb = v.transpose(1, 2) @ k                                      # (B, dv, d)
        W = k.new_zeros(k.shape[0], v.shape[2], k.shape[2])
        for i in range(k.shape[1]):
            ki, vi = k[:, i], v[:, i]                                      # (B, d), (B, dv)
            err = vi - (W @ ki[..., None])[..., 0]
            W = W + err[..., None] * ki[:, None, :] / (ki * ki).sum(-1)[:, None, None]
        W_ls = v.transpose(1, 2) @ torch.linalg.pinv(k.transpose(1, 2))   # (B, dv, d)

        def read(M):
            return q @ M.transpose(1, 2)

        return {"hebbian": read(W_heb), "delta": read(W), "ls": read(W_ls)}

    # ---- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        sums = dict.fromkeys(self.metrics, 0.0)
        left = self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.batch(gen, n)
            t = b["target"].double()
            pred = self.predictions(model, b["inputs"].to(device)).double().cpu()
            sums["mse"] += float(((pred - t) ** 2).sum())
            for name, p in self.references(b["keys"], b["values"], b["queries"]).items():
                sums[f"{name}_mse"] += float(((p - t) ** 2).sum())
        per = self.eval_size * self.n_pairs * self.d_value
        return {name: s / per for name, s in sums.items()}

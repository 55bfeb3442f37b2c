"""Linear functionals with a memory: the synthetic targets of Wang & Li 2024, "StableSSM: Alleviating
the Curse of Memory in State-space Models through Stable Reparameterization", generated as the
authors' code does (radarFudan/StableSSM, src/data/components/lf/datagen.py, `LF_generate`).

    x_t = dt * eps_t,  eps_t ~ N(0, 1)                       (B, T, 1) white noise, T = seq_len
    y_t = sum_{s=0..t} rho(s dt) x_{t-s}                     a causal convolution, not normalized

with the memory kernel rho (`memory`):
    exp   rho(t) = e^-t                                      exponentially decaying memory
    pol   rho(t) = (1 + 0.1 t)^-1.1                          polynomially decaying memory
The authors' defaults are dt = 1 and T = 100. A causal model reads x (d_input 1) and predicts y at
every position (d_output 1); training loss and `mse`: the squared error averaged over positions.
`rel_mse` divides it by the mean square of the target, so the zero predictor (which ignores the
input) scores 1, its chance level. The zero predictor's `mse` is computed in closed form:
E y_t^2 = dt^2 sum_{s<=t} rho(s dt)^2, averaged over t.
Eval axis: seq_len (longer sequences than trained on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..config import require
from ..metrics import Metric
from .base import Task
from .sequence import check_pos

EVAL_CHUNK = 512                   # sequences per forward pass at evaluation
MEMORIES = ("exp", "pol")


def memory_kernel(memory: str, seq_len: int, dt: float) -> torch.Tensor:
    """rho(s dt) for s = 0..seq_len-1, float64."""
    t = torch.arange(seq_len, dtype=torch.float64) * dt
    if memory == "exp":
        return torch.exp(-t)
    return (1.0 + 0.1 * t) ** -1.1


@dataclass
class LinearFunctionalTask(Task):
    memory: Literal["exp", "pol"] = "exp"
    seq_len: int = 100
    dt: float = 1.0
    eval_size: int = 2048          # sequences drawn for evaluate()

    metrics: ClassVar[tuple[str, ...]] = ("mse", "rel_mse")
    metric_facts: ClassVar = {
        "mse": Metric("lower", 0.0, None, band=0.0),
        "rel_mse": Metric("lower", 0.0, None, band=0.05),
    }
    eval_axes: ClassVar[tuple[str, ...]] = ("seq_len",)

    def __post_init__(self):
        require(self.memory in MEMORIES, "memory", f"{self.memory!r}; allowed: {', '.join(MEMORIES)}")
        check_pos(self, "seq_len", "eval_size")
        require(self.dt > 0.0, "dt", f"{self.dt} must be positive")

    def kernel(self) -> torch.Tensor:
        return memory_kernel(self.memory, self.seq_len, self.dt)

    def target_power(self) -> float:
        """The mean over positions of E y_t^2: the zero predictor's mse."""
        r2 = self.kernel() ** 2
        return float((self.dt ** 2 * torch.cumsum(r2, 0)).mean())

    def chance(self) -> dict[str, float]:
        return {"mse": self.target_power(), "rel_mse": 1.0}

    def spec(self) -> dict:
        return {"d_input": 1, "d_output": 1}

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """y from x (B, T, 1): the causal convolution with the memory kernel, by FFT, float64."""
        T = x.shape[1]
        rho = memory_kernel(self.memory, T, self.dt)
        n = 2 * T
        y = torch.fft.irfft(torch.fft.rfft(x[..., 0].double(), n) * torch.fft.rfft(rho, n), n)[:, :T]
        return y[..., None]

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        x = self.dt * torch.randn(batch_size, self.seq_len, 1, generator=gen)
        return {"inputs": x, "target": self.targets(x).float()}

    def loss(self, model, batch) -> torch.Tensor:
        return ((model(batch["inputs"]).float() - batch["target"]) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, model, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        se, left = 0.0, self.eval_size
        while left > 0:
            n = min(EVAL_CHUNK, left)
            left -= n
            b = self.batch(gen, n)
            pred = model(b["inputs"].to(device)).double().cpu()
            se += float(((pred - b["target"].double()) ** 2).sum())
        mse = se / (self.eval_size * self.seq_len)
        return {"mse": mse, "rel_mse": mse / self.target_power()}

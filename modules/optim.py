"""Adam, AdamW and SGD as plain torch code.

Why not torch.optim: its optimizers import torch._dynamo on first use (about 2 s on a
laptop CPU), which is longer than a smoke-scale job's whole training. These follow
torch.optim's update rules exactly (tests compare them step by step) and expose the same
`param_groups`, `zero_grad`, `step`, `state_dict` and `load_state_dict`.
"""
from __future__ import annotations

import math

import torch


class Optimizer:
    def __init__(self, params, **defaults):
        self.defaults = defaults
        self.param_groups = [{"params": [p for p in params if p.requires_grad], **defaults}]
        self.state: dict[int, dict] = {}
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "lr": [g["lr"] for g in self.param_groups],
            "state": {i: {k: v.clone() for k, v in s.items()} for i, s in self.state.items()},
        }

    def load_state_dict(self, sd: dict) -> None:
        self.steps = sd["steps"]
        for g, lr in zip(self.param_groups, sd["lr"]):
            g["lr"] = lr
        self.state = {int(i): {k: v.clone() for k, v in s.items()} for i, s in sd["state"].items()}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015); with decoupled=True, AdamW (Loshchilov & Hutter 2019)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        t = self.steps
        for g in self.param_groups:
            b1, b2 = g["betas"]
            lr, wd, eps = g["lr"], g["weight_decay"], g["eps"]
            for i, p in enumerate(g["params"]):
                if p.grad is None:
                    continue
                grad = p.grad
                if wd and g["decoupled"]:
                    p.mul_(1 - lr * wd)
                elif wd:
                    grad = grad.add(p, alpha=wd)
                s = self.state.setdefault(i, {})
                if not s:
                    s["m"] = torch.zeros_like(p)
                    s["v"] = torch.zeros_like(p)
                m, v = s["m"], s["v"]
                m.lerp_(grad, 1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                bc1 = 1 - b1 ** t
                bc2 = 1 - b2 ** t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / bc1)


class SGD(Optimizer):
    def __init__(self, params, lr=1e-2, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for g in self.param_groups:
            for i, p in enumerate(g["params"]):
                if p.grad is None:
                    continue
                grad = p.grad
                if g["weight_decay"]:
                    grad = grad.add(p, alpha=g["weight_decay"])
                if g["momentum"]:
                    s = self.state.setdefault(i, {})
                    if "buf" not in s:
                        s["buf"] = grad.clone()
                    else:
                        s["buf"].mul_(g["momentum"]).add_(grad)
                    grad = s["buf"]
                p.add_(grad, alpha=-g["lr"])


def make_optimizer(params, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.0) -> Optimizer:
    if name == "adamw":
        return Adam(params, lr=lr, weight_decay=weight_decay, decoupled=True)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: adam, adamw, sgd")

"""The task interface shared by every data generator."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..metrics import Metric


class Task:
    """A seeded generator of training batches and an evaluator of metrics.

    Subclasses are dataclasses whose fields are the task's parameters (the catalogue's
    `task:` mapping). They declare:
      metrics    - names `evaluate` returns
      metric_facts - for each metric, its better side, range, whether training moves it and its
                   chance band (modules/metrics.py); the judge reads them from eval.json
      chance()   - per metric, the score of the best predictor that ignores what the task tests
                   (the majority answer, or a shortcut the task allows); {} where none is known
      eval_axes  - parameters that may vary at evaluation time without retraining
      spec()     - sizes a model needs (e.g. n_features, vocab_size), injected into model configs
      probe_labels - labels `probe_data` gives for probes: name -> "classification" or "regression"
    A `torch.Generator` seeded by an int gives the same batches on every machine: data is
    drawn on the CPU and moved to the device afterwards.
    """

    metrics: ClassVar[tuple[str, ...]] = ()
    eval_axes: ClassVar[tuple[str, ...]] = ()
    probe_labels: ClassVar[dict[str, str]] = {}
    metric_facts: ClassVar[dict[str, Metric]] = {}

    @classmethod
    def facts(cls) -> dict[str, dict]:
        """Every metric's facts as plain dicts; a metric without declared facts has no better side."""
        return {m: cls.metric_facts.get(m, Metric("none")).as_dict() for m in cls.metrics}

    def chance(self) -> dict[str, float]:
        """Chance level per metric (see the class docstring); computed once per task object."""
        return {}

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def batch(self, gen: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def probe_data(self, gen: torch.Generator, positions: int) -> dict:
        """Held-out sequences for probing hidden states, at least `positions` positions in all:
        {"x": (B, T) tokens, "labels": {name: (B, T)}, "label_kinds": {name: kind}, "vocab_size": V}."""
        raise NotImplementedError(f"task {type(self).__name__} gives no data for probes")

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, gen: torch.Generator, device: str = "cpu") -> dict[str, float]:
        raise NotImplementedError

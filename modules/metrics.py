"""What the judge must know about a metric, declared beside the task or probe that computes it.

Every metric a task (`Task.metric_facts`) or a probe kind (`ProbeKind.facts`) returns carries:

    better   "higher", "lower" or "none": the side more training moves it toward. A count such as
             the features a toy model represents, or a geometric property such as the rank of a
             positional basis, has none: training may move it either way.
    lo, hi   its range (None: unbounded on that side). Intervals are shown clipped to it.
    trained  whether training moves it at all. A generation speed or a reference predictor's score
             does not; such a metric is exempt from the budget rules.
    band     how close to chance the better end of a model's interval must come for the model to
             count as at chance ("learned nothing"), in the metric's own units.

The chance level itself depends on the task's parameters (the number of key-value pairs, the
vocabulary), so a task computes it (`Task.chance()`) and the evaluate step records it beside each
measured value. This module imports nothing heavy: the judge reads the facts from result files.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Better = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class Metric:
    better: Better = "higher"
    lo: float | None = None
    hi: float | None = None
    trained: bool = True
    band: float = 0.02

    def __post_init__(self):
        if self.better not in ("higher", "lower", "none"):
            raise ValueError(f"better: {self.better!r}; allowed: higher, lower, none")
        if self.band < 0:
            raise ValueError(f"band: {self.band} must not be negative")

    def as_dict(self) -> dict:
        return asdict(self)


# the common kinds, so a task's table reads as a list of names
FRACTION = Metric("higher", 0.0, 1.0, band=0.02)            # an accuracy: a share of things right
LOSS = Metric("lower", 0.0, None, band=0.02)                # cross-entropy in nats (or bits)
ERROR = Metric("lower", 0.0, None, band=0.0)                # a squared error; band set per task
COUNT = Metric("none", 0.0, None)                           # a count training may move either way
UNTRAINED = Metric("none", None, None, trained=False)       # a reference, not the model's skill

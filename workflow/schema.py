"""The catalogue entry as pydantic models: the structure of catalogue/<paper>.yaml.

This module checks shape and types only (unknown keys, wrong types, ranges, ids).
What refers to what (a claim's experiment, model, metric, sweep point; an arch or task
name; a model's hyperparameters) is checked in `catalogue/checks.py`, which knows the registries.
Every field has a description: they are the documentation of the format, and they end up
in the generated JSON Schema (schemas/catalogue.schema.json) that editors use.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9_]*$"
Id = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, max_length=64),
    Field(description="lowercase letters, digits and underscores; used in file paths"),
]
# An axis key is a dotted path into a job's config: task.<param>, model.<param> or train.<field>.
AxisKey = Annotated[str, StringConstraints(pattern=r"^(task|model|train)\.[a-z0-9_]+$")]
EvalAxisKey = Annotated[str, StringConstraints(pattern=r"^(task|model)\.[a-z0-9_]+$")]
SafeStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)]
Scalar = Union[bool, int, float, SafeStr]
Number = Annotated[float, Field(allow_inf_nan=False)]
Op = Literal[">=", ">", "<=", "<"]
SCALES = ("smoke", "small", "full")
CLAIM_KINDS = ("value", "threshold", "ordering", "trend", "ratio")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PaperMeta(Strict):
    id: Id = Field(description="the paper's id; must equal the catalogue file's name without .yaml")
    title: str = Field(min_length=1, max_length=300, description="the paper's title")
    year: int = Field(ge=1900, le=2100, description="year of publication")
    url: str | None = Field(None, max_length=500, description="where the paper is (arXiv abstract page)")
    authors: str | None = Field(None, max_length=500, description="authors, as one string")


class ModelTrain(Strict):
    """A model's own optimization settings, over the experiment's `train` (papers tune the learning
    rate per architecture). The length and batch of training stay the experiment's: every model of
    an experiment gets the same budget."""

    lr: float | None = Field(None, gt=0, description="peak learning rate of this model")
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    weight_decay: float | None = Field(None, ge=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    schedule: Literal["constant", "cosine", "linear"] | None = None
    warmup_steps: int | None = Field(None, ge=0)
    grad_clip: float | None = Field(None, gt=0)

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ModelSpec(BaseModel):
    """One model of an experiment. Keys other than id, arch and train are the arch's hyperparameters."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    id: Id = Field(description="the model's id within its experiment")
    arch: str = Field(description="architecture name from the model registry (modules/models)")
    train: ModelTrain | None = Field(
        None, description="this model's optimization settings over the experiment's train (lr, optimizer, "
                          "weight_decay, momentum, schedule, warmup_steps, grad_clip); they win over scale overrides")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskSpec(BaseModel):
    """The task generator. Keys other than name are the task's parameters."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    name: str = Field(description="task name from the task registry (modules/tasks)")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSpec(Strict):
    steps: int = Field(gt=0, description="optimizer steps")
    batch_size: int = Field(gt=0, description="examples per step")
    lr: float = Field(gt=0, description="peak learning rate")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description="optimizer")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (adamw) or L2 (adam, sgd)")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum")
    schedule: Literal["constant", "cosine", "linear"] = Field("constant", description="learning-rate decay after warmup")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    log_every: int | None = Field(None, gt=0, description="steps between logged losses (default: steps/100)")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast on CUDA (fp32 elsewhere)")
    min_steps: int | None = Field(
        None, gt=0, description="the budget the claims need: training shorter than this counts as under budget "
                                "whatever its loss does (for losses that plateau before they fall); not part "
                                "of a job's config, so setting it reruns nothing")
    converged_rel_drop: float = Field(
        0.02, ge=0,
        description="training counts as converged when the mean loss of the last 10% of steps is less than "
        "this fraction below the mean of the 10% before",
    )


class EvaluateSpec(Strict):
    metrics: list[str] = Field(description="metrics the task computes at each evaluation point (may be empty "
                                           "when the experiment's claims rest on its probes)")
    sweep: dict[EvalAxisKey, Annotated[list[Scalar], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="evaluation axes: task parameters varied at evaluation time, without retraining, and "
                    "model axes applied to the trained weights (model.perturb_state)",
    )


class ProbeSpec(Strict):
    id: Id
    kind: str = Field(description="probe kind from the probe registry (modules/probes/kinds.py)")
    target: str | None = Field(None, description="linear and sparse probes: the task label to decode (the task's probe_labels)")
    layers: Literal["all"] | list[Annotated[int, Field(ge=1)]] = Field(
        "all", description="block outputs to probe, 1 .. n_layer; all: every layer (the models must give n_layer)")
    positions: int = Field(20000, ge=64, le=2_000_000, description="held-out positions the probe reads")
    params: dict[str, Any] = Field(default_factory=dict, description="the kind's settings (offsets, ks, layer, l2, ...)")


class SelectBest(Strict):
    """Report, per seed and model, the point of some training axes where a metric is best (papers that
    tune the learning rate report the best run of their sweep, e.g. zoology's MQAR figures)."""

    over: list[AxisKey] = Field(min_length=1, description="training sweep axes to select over, e.g. [train.lr]")
    by: str = Field(description="the evaluate metric whose best value (by its better side) selects the point; "
                                "every metric of that seed and model is then read at that point")


class Experiment(Strict):
    id: Id = Field(description="the experiment's id within the paper")
    task: TaskSpec
    models: list[ModelSpec] = Field(min_length=1, description="models trained on the task, each at every sweep point")
    sweep: dict[AxisKey, Annotated[list[Scalar], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="training axes: dotted paths (task.x, model.x, train.x) to lists; the cartesian product is trained",
    )
    train: TrainSpec
    evaluate: EvaluateSpec
    probes: list[ProbeSpec] = Field(default_factory=list, description="probes on the trained models' hidden states")
    seeds: int = Field(1, ge=1, le=1000, description="independent training seeds per model and sweep point")
    select_best: SelectBest | None = Field(
        None, description="read every metric at the best point of these sweep axes, per seed and model; claims "
                          "and tables then do not address those axes, and the report says what was selected")


class Measure(Strict):
    experiment: Id = Field(description="the experiment measured")
    model: Id | None = Field(None, description="the model measured (not for ordering and ratio claims)")
    metric: str = Field(description="an evaluate metric of the experiment")
    at: dict[str, Scalar] = Field(
        default_factory=dict, description="fixes every sweep axis with more than one value that the claim does not range over"
    )


Note = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class OnlyAt(Strict):
    """Where a claim can be tested at all: a GPU kernel's speed, a paper-sized model. Elsewhere the claim
    stays in the report as not run, with the reason; it is never dropped."""

    scales: list[Literal["smoke", "small", "full"]] = Field(
        default_factory=lambda: list(SCALES), min_length=1,
        description="the scales at which the claim is judged (e.g. [full]); at the others it is not run, and "
        "an experiment that only such claims measure is not trained there")
    device: Literal["cpu", "cuda"] | None = Field(
        None, description="the device its measurements must come from (a speed of one kind of hardware): a "
        "result evaluated on another device leaves the claim not run")
    reason: Reason = Field(description="why the claim cannot be tested elsewhere; shown with its not-run verdict")

    @model_validator(mode="after")
    def _limits_something(self):
        if set(self.scales) == set(SCALES) and self.device is None:
            raise ValueError("limits nothing: give scales (e.g. [full]) or a device (cuda)")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError("scales: lists a scale twice")
        return self


class ClaimBase(Strict):
    id: Id
    text: str = Field(min_length=1, max_length=2000, description="the claim, in the paper's words where possible")
    source: str = Field(min_length=1, max_length=200, description="where the paper shows it: 'Figure 3', 'Table 2', 'Section 4'")
    measure: Measure
    note: Note | dict[Literal["smoke", "small", "full"], Note] | None = Field(
        None,
        description="the catalogue author's finding on this claim (e.g. why it is not reproduced: the paper, "
        "our budget or our setup); shown beside the verdict, never used to decide it. A string is shown at "
        "every scale, so it must not describe one scale's result; {smoke: ..., small: ..., full: ...} gives "
        "each scale its own",
    )
    requires: list[Id] = Field(
        default_factory=list,
        description="controls: ids of claims of this paper that must be reproduced at the same scale before "
        "this one is decided (e.g. the same model learning the in-distribution task); otherwise inconclusive",
    )
    no_control: Reason | None = Field(
        None, description="for a claim that something fails, drops or is worse and has no control: why none exists")
    ours: Reason | None = Field(
        None, description="the claim is not the paper's statement (a model or a range the paper never tested, a "
        "control it only presupposes): why it is here. Judged and shown apart, never counted as the paper's")
    our_bound: Reason | None = Field(
        None, description="the statement is the paper's, but its bound, margin or tolerance is ours (the paper "
        "gives no number): why this number. Flagged in the report; the claim still counts")
    only_at: OnlyAt | None = Field(
        None, description="the scales and the device at which the claim can be tested, and why: elsewhere it is "
        "not run, with that reason (e.g. {scales: [full], device: cuda, reason: a GPU kernel speed})")

    def note_for(self, scale: str) -> str | None:
        """The note shown beside this claim's verdict at `scale`."""
        if isinstance(self.note, dict):
            return self.note.get(scale)
        return self.note


class ValueClaim(ClaimBase):
    """The measured mean lies within tolerance of the paper's value."""

    kind: Literal["value"]
    paper: Number = Field(description="the paper's value")
    tolerance: float | None = Field(None, ge=0, allow_inf_nan=False, description="absolute tolerance")
    rel_tolerance: float | None = Field(None, ge=0, allow_inf_nan=False, description="tolerance relative to |paper|")

    @model_validator(mode="after")
    def _one_tolerance(self):
        if (self.tolerance is None) == (self.rel_tolerance is None):
            raise ValueError("give exactly one of tolerance or rel_tolerance")
        return self

    def bounds(self) -> tuple[float, float]:
        tol = self.tolerance if self.tolerance is not None else abs(self.paper) * self.rel_tolerance
        return self.paper - tol, self.paper + tol


class ThresholdClaim(ClaimBase):
    """The measured mean compared with a bound."""

    kind: Literal["threshold"]
    op: Op
    value: Number = Field(description="the bound")
    paper: Number | None = Field(None, description="the paper's own value, shown in the report")


class OrderingClaim(ClaimBase):
    """order[0] > order[1] > ... (by at least margin), on the same metric and point."""

    kind: Literal["ordering"]
    order: list[Id] = Field(min_length=2, description="model ids, the largest metric first")
    margin: float = Field(0.0, ge=0, allow_inf_nan=False)


class TrendClaim(ClaimBase):
    """The metric is monotone along a sweep or evaluation axis."""

    kind: Literal["trend"]
    along: str = Field(description="the axis the trend runs along (a sweep or evaluate.sweep key)")
    direction: Literal["increasing", "decreasing", "non_decreasing", "non_increasing"]
    statistic: Literal["steps", "spearman"] = Field(
        "steps",
        description="steps: every step along the axis must move in the direction (paired over seeds); "
        "spearman: the per-seed rank correlation between the axis and the metric must reach min_correlation",
    )
    margin: float = Field(0.0, ge=0, allow_inf_nan=False, description="steps: minimum change per step (strict directions)")
    allow_violations: int = Field(0, ge=0, description="steps: steps that may fail the direction")
    min_correlation: float = Field(0.9, gt=0, le=1, allow_inf_nan=False,
                                   description="spearman: the rank correlation the trend needs (its sign follows direction)")


class RatioClaim(ClaimBase):
    """metric(numerator) / metric(denominator) compared with a value."""

    kind: Literal["ratio"]
    numerator: Id
    denominator: Id
    op: Op
    value: Number
    paper: Number | None = Field(None, description="the paper's ratio, shown in the report")


Claim = Annotated[
    Union[ValueClaim, ThresholdClaim, OrderingClaim, TrendClaim, RatioClaim], Field(discriminator="kind")
]
# kind -> its claim model, read off the union above (the one list of claim models)
CLAIM_MODELS: dict[str, type[ClaimBase]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m for m in get_args(get_args(Claim)[0])
}


class Table(Strict):
    id: Id
    title: str = Field(min_length=1, max_length=300)
    source: str | None = Field(None, max_length=200, description="the paper's table or figure these values come from")
    experiment: Id
    metric: str
    rows: str = Field("model", description="'model' or an axis key")
    columns: str = Field(description="'model' or an axis key")
    at: dict[str, Scalar] = Field(default_factory=dict, description="fixes the other multi-valued axes")
    paper: dict[Scalar, dict[Scalar, Number]] = Field(
        default_factory=dict, description="the paper's values: {row: {column: value}}, shown beside the measured ones"
    )


class Paper(Strict):
    """A catalogue entry: one paper, the experiments its claims need, the claims, the tables."""

    paper: PaperMeta
    experiments: list[Experiment] = Field(min_length=1)
    scales: dict[Literal["smoke", "small", "full"], dict[str, Any]] = Field(
        default_factory=dict,
        description="per-scale overrides, dotted paths applied to every experiment "
        "(train.steps, seeds, task.x, evaluate.sweep, sweep: {axis: [values]}); "
        "experiments.<id>.<path> overrides one experiment. `small` is the default scale.",
    )
    claims: list[Claim] = Field(min_length=1)
    tables: list[Table] = Field(default_factory=list)

"""SimSiam around any sequence backbone of the zoo: Chen & He 2021, "Exploring Simple Siamese
Representation Learning" (CVPR 2021, arXiv 2011.10566), Figure 1, on sequences.

    feature  f(x)  = pool_t backbone(x)_t                  the last block's states (B, T, D),
                                                           averaged over time (`pool: mean`) or
                                                           read at the last position (`pool: last`)
    encoder  z     = proj(f(x))                            projection MLP, `proj_layers` fc layers
    predictor p    = h(z)                                  prediction MLP with a bottleneck
    loss (the task's, modules/tasks/siamese_views.py)
             L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2,   D(p, z) = -cos(p, z),
             sg = stop-gradient (`stop_grad: true`) or the identity (`stop_grad: false`)

Projection MLP (`proj_layers` = L fc layers, as in the authors' implementation): L - 1 times
Linear(no bias) -> BatchNorm -> ReLU at width `proj_hidden` (default: the backbone width D), then
Linear -> BatchNorm to `proj_dim` (the output fc has BN and no ReLU). `proj_out_bn` chooses that
last BN: `affine` (a learned gain and shift, torch's default BatchNorm1d), `plain` (no gain or
shift: the authors' code, `BatchNorm1d(dim, affine=False)`) or `none` (a biased Linear, no BN).
The default is `affine`: with `plain`, batch statistics rescale every channel of z to unit
variance while training, so a constant z is out of reach and a collapse has to happen before that
BN. In a pilot here (GRU of width 32, proj_dim 32, 1500 AdamW steps at lr 3e-3, batch 64), the
model without predictor collapsed with `affine` (output_std 0) and not with `plain` (0.8 / sqrt(d)).
The paper's ImageNet projector has 3 layers of width 2048; the default here is 2 layers, for
backbones a hundred times narrower.
Prediction MLP (`predictor`):
    mlp           Linear(proj_dim -> pred_hidden, no bias) -> BatchNorm -> ReLU -> Linear(-> proj_dim):
                  the paper's 2-layer bottleneck (2048 -> 512 -> 2048); pred_hidden defaults to
                  proj_dim // 4 (at least 1), the paper's ratio
    none          h = identity, p = z (the paper's Table 1, no predictor)
    fixed_random  the mlp, frozen at its random initialization (Table 1b): no trainable parameter.
                  Its BatchNorm still normalizes by the batch's statistics while training (and
                  tracks running ones for evaluation): BN has no parameter to freeze but its
                  affine one, which stays at gain 1, shift 0.

forward(x, return_hidden=False): x is one view, (B, T, d_input) floats or (B, T) tokens; returns
    {"feature": (B, D), "z": (B, proj_dim), "p": (B, proj_dim)}
and with return_hidden=True also the backbone's hidden states, one (B, T, D) per block (what the
engine's probes read). `stop_grad` is an attribute the task's loss reads; the model itself never
detaches. The backbone's own readout head is built (its config needs an output width, set to 1)
but never used: its parameters get no gradient.

Config: `backbone` names an arch of the registry (modules/models/__init__.py) and
`backbone_params` its hyperparameters (a mapping; the fields of that arch's config, less the
input and output sizes, which come from the task: `d_input` or `vocab_size` are filled in from
the task's spec beside this config's own fields). An error in them is reported with the key path
`backbone_params.<key>`. Not every arch can be a backbone: the set models (read_process_write,
ptr_net), seq2seq_rnn, the pretrained MiniLM and the feature-vector models (toy_autoencoder,
mlp_encoder) are refused.

Paper facts this wrapper and its task (siamese_views) are built to test, and what was checked:
  - Checked in the paper's opening pages (abstract, Section 1, Figure 1): an encoder f = backbone
    + projection MLP shared by the two views, a prediction MLP h on one side, a stop-gradient on
    the other; collapsing solutions exist for the loss and the structure, and the stop-gradient
    is essential to prevent them.
  - Taken from the authors' released implementation, not from the paper's text: the BN placement
    above, the 2048 -> 512 -> 2048 predictor, the plain (affine-free) BN at the projector's
    output; and, from an author's answer in that repository's issues, the kNN monitor (200
    nearest neighbours by the dot product of l2-normalized backbone features, votes weighted with
    temperature 0.2, after InstDisc), which the task's knn_accuracy follows with a smaller k.
  - NOT verified against the paper's text (its later sections could not be read): Section 4.1 /
    Figure 2 (with stop-gradient the per-channel std of z / ||z||_2 stays near 1/sqrt(d); without
    it the output collapses, std -> 0, and the accuracy falls to 0.1% against 67.7%) and Table 1
    (no predictor: 0.1%; a fixed random predictor: 1.5%, described as failing to converge rather
    than collapsing; a predictor whose lr is not decayed: 68.1%). Only the 68.1 is confirmed
    indirectly, as the top-1 of the authors' released model, which their notes call the last row
    of Table 1. A catalogue entry must quote these numbers from the paper itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError, require

# archs that are not one sequence -> (B, T, D) stack: refused as backbones
_NOT_BACKBONES = {
    "siamese": "is this wrapper itself",
    "toy_autoencoder": "reads feature vectors, not sequences",
    "mlp_encoder": "reads feature vectors, not sequences",
    "seq2seq_rnn": "is an encoder-decoder over a command SEP actions sequence",
    "read_process_write": "is a set-to-pointer model",
    "ptr_net": "is a set-to-pointer model",
    "pretrained_minilm": "is pretrained and frozen",
}
_IO_KEYS = ("d_input", "vocab_size", "d_output")


@dataclass
class SiameseConfig:
    backbone: str = "gru"                    # an arch of the registry
    backbone_params: dict | None = None      # its hyperparameters (not its input/output sizes)
    d_input: int | None = None               # continuous inputs (B, T, d_input); from the task
    vocab_size: int | None = None            # or tokens (B, T); from the task
    pool: Literal["mean", "last"] = "mean"   # the feature: time-mean or last state of the last block
    proj_dim: int = 64                       # d: width of z and p
    proj_layers: int = 2                     # fc layers of the projection MLP (paper: 3)
    proj_hidden: int | None = None           # width of its hidden layers; default the backbone width
    proj_out_bn: Literal["affine", "plain", "none"] = "affine"   # BN on the projector's output
    predictor: Literal["mlp", "none", "fixed_random"] = "mlp"
    pred_hidden: int | None = None           # the predictor's bottleneck; default proj_dim // 4
    stop_grad: bool = True                   # sg on the target branch of the loss

    def __post_init__(self):
        from . import ARCHS, build_config_for, get_arch

        require(isinstance(self.backbone, str) and self.backbone in ARCHS, "backbone",
                f"{self.backbone!r} is not a known architecture; known: {', '.join(sorted(ARCHS))}")
        require(self.backbone not in _NOT_BACKBONES, "backbone",
                f"{self.backbone!r} cannot be a backbone: it {_NOT_BACKBONES.get(self.backbone, '')}")
        params = {} if self.backbone_params is None else self.backbone_params
        require(isinstance(params, dict), "backbone_params",
                f"{self.backbone_params!r} must be a mapping of {self.backbone}'s hyperparameters")
        for key in _IO_KEYS:
            require(key not in params, f"backbone_params.{key}",
                    "is set by the task (the input size) or by the wrapper (the unused output width)")
        require((self.d_input is None) != (self.vocab_size is None), "d_input",
                "give exactly one of d_input (continuous inputs) and vocab_size (tokens); the task declares it")
        for key in ("d_input", "vocab_size", "proj_dim", "proj_layers", "proj_hidden", "pred_hidden"):
            v = getattr(self, key)
            require(v is None or v >= 1, key, f"{v} must be at least 1")
        require(self.proj_hidden is None or self.proj_layers >= 2, "proj_hidden",
                "applies with proj_layers of 2 or more (a 1-layer projector has no hidden layer)")
        require(self.pred_hidden is None or self.predictor != "none", "pred_hidden",
                "applies to predictor mlp or fixed_random only (predictor none is the identity)")
        if self.pred_hidden is None:
            self.pred_hidden = max(1, self.proj_dim // 4)
        model_cls, _ = get_arch(self.backbone)
        require(not getattr(model_cls, "pretrained", False), "backbone", f"{self.backbone!r} is pretrained and frozen")
        io = {"d_input": self.d_input, "vocab_size": self.vocab_size, "d_output": 1}
        try:
            self._backbone_cfg = build_config_for(self.backbone, params, {k: v for k, v in io.items() if v is not None})
        except ConfigError as e:
            raise ConfigError(f"backbone_params.{e.key}" if e.key else "backbone_params", e.message) from None


def _backbone_width(backbone: nn.Module, cfg) -> int:
    """D of the backbone's hidden states: its config's d_model, else measured on a dry run."""
    d = getattr(cfg, "d_model", None)
    if isinstance(d, int):
        return d
    x = torch.zeros(1, 4, dtype=torch.long) if getattr(cfg, "vocab_size", None) else torch.zeros(1, 4, cfg.d_input)
    was = backbone.training
    backbone.eval()
    with torch.no_grad():
        _, hiddens = backbone(x, return_hidden=True)
    backbone.train(was)
    return int(hiddens[-1].shape[-1])


def projection_mlp(d_in: int, hidden: int, d_out: int, layers: int, out_bn: str) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, d_out, bias=out_bn == "none"))           # BN after it has its own shift
    if out_bn != "none":
        mods.append(nn.BatchNorm1d(d_out, affine=out_bn == "affine"))
    return nn.Sequential(*mods)


def prediction_mlp(d: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, d))


class Siamese(nn.Module):
    def __init__(self, cfg: SiameseConfig):
        super().__init__()
        from . import get_arch

        self.cfg = cfg
        model_cls, _ = get_arch(cfg.backbone)
        self.backbone = model_cls(cfg._backbone_cfg)
        self.d_feature = _backbone_width(self.backbone, cfg._backbone_cfg)
        self.proj_dim = cfg.proj_dim
        self.stop_grad = cfg.stop_grad
        self.projector = projection_mlp(self.d_feature, cfg.proj_hidden or self.d_feature, cfg.proj_dim,
                                        cfg.proj_layers, cfg.proj_out_bn)
        if cfg.predictor == "none":
            self.predictor = nn.Identity()
        else:
            self.predictor = prediction_mlp(cfg.proj_dim, cfg.pred_hidden)
            if cfg.predictor == "fixed_random":
                self.predictor.requires_grad_(False)

    def features(self, x: torch.Tensor, return_hidden: bool = False):
        """The pooled backbone feature (B, D) of one view (and the backbone's hidden states)."""
        _, hiddens = self.backbone(x, return_hidden=True)
        h = hiddens[-1]                                                                # (B, T, D)
        f = h.mean(1) if self.cfg.pool == "mean" else h[:, -1]                         # (B, D)
        return (f, hiddens) if return_hidden else f

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        f, hiddens = self.features(x, return_hidden=True)
        z = self.projector(f)                                                          # (B, d)
        out = {"feature": f, "z": z, "p": self.predictor(z)}                           # p: (B, d)
        return (out, hiddens) if return_hidden else out

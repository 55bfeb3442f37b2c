"""The probe kinds a catalogue can name (`probes: [{id, kind, ...}]`), what each measures, on which
axes, and how a kind's result becomes addressable points.

Every probe reads the frozen hidden states of one trained model: layer l (1 .. n_layer) is the
output of block l, as `forward(x, return_hidden=True)` returns them, on `positions` positions of
held-out sequences drawn from the task (`Task.probe_data`). A kind declares
  params   its settings (the catalogue's `params:`), with defaults
  metrics  stat -> the probe axes it varies along: ("layer",), ("offset",), ("layer", "offset"),
           ("k",) or () for one number per model
  facts    stat -> its Metric (modules/metrics.py: better side, range, whether training moves it)
  chance   stat -> its chance level: a number, or the name of the stat that holds it (a probe's
           own baseline: the majority class, the bigram predictor), read at the same point or,
           failing that, at the point without the layer axis, or at the point without any axis
and `run` returns the points [{"at": {"probe.<axis>": v, ...}, "metrics": {stat: value}}] plus
the raw result (kept in the probe file for the report). A claim addresses a stat as the metric
"<probe id>.<stat>" and its axes as "probe.layer", "probe.offset", "probe.k".

Kinds:
  linear        a logistic (classes) or ridge (values) probe per layer for a task label `target`,
                with Hewitt & Liang's control task (the label re-drawn per input token type), the
                majority (or mean) baseline and the input baseline (the same probe on the one-hot
                of the last `window` input tokens); selectivity = score - control,
                input_gain = score - input_score
  sparse        Gurnee et al. 2023: the best k neurons of one layer (F ranking), score as k grows;
                gain = score - majority baseline; k_at_90 = the smallest k of `ks` whose gain reaches
                90% of the gain of the largest k (all neurons with the default ks): how few neurons
                carry the label (the 90% is ours: the paper's sparsity plots rise with k)
  sparse_layers the same at every probed layer: score and gain per (layer, k), k_at_90 per layer
  future_token  Pal et al. 2023 (Future Lens, direct vocabulary prediction): the token t+1+n from
                the state at t, per layer and offset n, against unigram and bigram baselines
  geometry      Song & Zhong 2023: mean / positional / context decomposition per layer (shares of
                the second moment, rank and smoothness of the positional part, position decoding from
                the raw state and from its context part); smoothness_gain = smoothness - that of
                shuffled positions, position_gap = position_raw - position_context (a linear probe
                finds the position in the context part at chance almost by construction: its
                per-position means are zero), pos_ctx_cos = mean |cos(pos_t, ctx_c)| over positions
                and sequences (Song & Zhong's incoherence), pos_ctx_cos_random = sqrt(2 / (pi D)),
                the same for random directions
  smoothing     Wang et al. 2025 (over-smoothing in SSMs, Figure 5: "the average pairwise differences
                among tokens" per layer): within each held-out sequence, the mean distance
                ||h_s - h_t|| over pairs of positions s < t (token_distance); the same divided by the
                mean norm ||h_t|| of the sequence's states (token_spread: scale-free, since a residual
                stream's norm grows with depth; ours); and the mean cosine of the pairs (token_cos).
                Averaged over sequences. No fit, no labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..metrics import FRACTION, UNTRAINED, Metric


@dataclass(frozen=True)
class ProbeKind:
    params: dict[str, Any]
    metrics: dict[str, tuple[str, ...]]
    needs_target: bool
    run: Callable = field(repr=False)
    facts: dict[str, Metric] = field(default_factory=dict)
    chance: dict[str, float | str] = field(default_factory=dict)


_FIT = {"test_fraction": 0.2, "l2": 1e-3, "max_iter": 100}


def _linear(hiddens, data, layers, target, kind, p, seed):
    from .linear import probe_layers

    r = probe_layers(hiddens, data["labels"][target], data["x"], kind=kind, seed=seed, window=p["window"], **_fit(p))
    pts = [{"at": {"probe.layer": l}, "metrics": {"score": r["score"][i], "control": r["control"][i],
                                                  "selectivity": r["selectivity"][i], "input_gain": r["input_gain"][i]}}
           for i, l in enumerate(layers)]
    best = max(range(len(layers)), key=lambda i: r["score"][i])
    pts.append({"at": {}, "metrics": {"baseline": r["baseline"], "input_score": r["input_score"], "best_layer": layers[best],
                                      "best_score": r["score"][best], "gain": r["score"][best] - r["baseline"]}})
    return pts, {**r, "layers": layers}


def _sparse_points(r: dict, ks: list, D: int, at: dict) -> list[dict]:
    """One layer's sparse-probe points at the catalogue's own k labels ("all" is D), and its k_at_90."""
    from .sparse import k_at

    by_k = dict(zip(r["k"], r["score"]))                   # resolved counts
    pts = []
    for k in ks:
        s = by_k[D if k == "all" else min(int(k), D)]
        pts.append({"at": {**at, "probe.k": k}, "metrics": {"score": s, "gain": s - r["baseline"]}})
    pts.append({"at": at, "metrics": {"k_at_90": k_at(r, 0.9)}})
    return pts


def _sparse(hiddens, data, layers, target, kind, p, seed):
    from .sparse import sparse_probe

    layer = p["layer"] if p["layer"] is not None else layers[-1]
    if layer not in layers:
        raise ValueError(f"params.layer: {layer} is not a probed layer ({layers})")
    r = sparse_probe(hiddens[layers.index(layer)], data["labels"][target], ks=p["ks"], seed=seed, **_fit(p))
    pts = _sparse_points(r, p["ks"], hiddens[0].shape[-1], {})
    pts[-1]["metrics"]["baseline"] = r["baseline"]
    return pts, {**r, "layer": layer}


def _sparse_layers(hiddens, data, layers, target, kind, p, seed):
    from .sparse import sparse_probe

    pts, raw = [], []
    for layer, H in zip(layers, hiddens):
        r = sparse_probe(H, data["labels"][target], ks=p["ks"], seed=seed, **_fit(p))
        pts += _sparse_points(r, p["ks"], H.shape[-1], {"probe.layer": layer})
        raw.append({**r, "layer": layer})
    pts.append({"at": {}, "metrics": {"baseline": raw[0]["baseline"]}})     # the same split at every layer
    return pts, {"layers": layers, "per_layer": raw}


def _future(hiddens, data, layers, target, kind, p, seed):
    from .future_token import future_token_probe

    r = future_token_probe(hiddens, data["x"], offsets=p["offsets"], vocab_size=data["vocab_size"], seed=seed,
                           **_fit(p))
    pts = []
    for j, n in enumerate(r["offsets"]):
        col = [r["accuracy"][i][j] for i in range(len(layers))]
        best = max(range(len(layers)), key=lambda i: col[i])
        for i, l in enumerate(layers):
            pts.append({"at": {"probe.layer": l, "probe.offset": n}, "metrics": {"accuracy": col[i]}})
        pts.append({"at": {"probe.offset": n}, "metrics": {
            "unigram": r["unigram"][j], "bigram": r["bigram"][j], "best_layer": layers[best],
            "best_accuracy": col[best], "gain": col[best] - r["bigram"][j]}})
    return pts, {**r, "layers": layers}


def pos_ctx_cos(H) -> float:
    """Song & Zhong's incoherence, as a mean: |cos| between every positional vector pos_t and every
    context vector ctx_c (the sequence's mean state minus the global mean); H is (N, T, D)."""
    from .geometry import components

    _, pos, ctx = components(H)
    c = ctx.mean(1)                                                                   # (N, D)
    a = pos / pos.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    b = c / c.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return float((a @ b.T).abs().mean())


def _geometry(hiddens, data, layers, target, kind, p, seed):
    import math

    from .geometry import decompose

    keys = ("mean_share", "pos_share", "ctx_share", "pos_var_share", "pos_rank", "pos_effective_rank",
            "smoothness", "smoothness_shuffled", "position_raw", "position_context", "position_chance")
    pts, raw = [], {"layers": layers, "per_layer": []}
    for l, h in zip(layers, hiddens):
        r = decompose(h, energy=p["energy"], seed=seed, **_fit(p))
        raw["per_layer"].append(r)
        pts.append({"at": {"probe.layer": l}, "metrics": {
            **{k: float(r[k]) for k in keys}, "smoothness_gain": float(r["smoothness"] - r["smoothness_shuffled"]),
            "position_gap": float(r["position_raw"] - r["position_context"]),
            "pos_ctx_cos": pos_ctx_cos(h), "pos_ctx_cos_random": math.sqrt(2 / (math.pi * h.shape[-1]))}})
    return pts, raw


def token_smoothness(H) -> dict[str, float]:
    """Mean pairwise distance, spread and cosine of the positions of each sequence of H (N, T, D)."""
    import torch

    H = H.double()
    N, T, _ = H.shape
    iu = torch.triu_indices(T, T, offset=1)
    dist = torch.cdist(H, H)[:, iu[0], iu[1]].mean(1)                                 # (N,)
    norm = H.norm(dim=-1)                                                             # (N, T)
    U = H / norm.clamp(min=1e-12)[..., None]
    cos = (U @ U.transpose(1, 2))[:, iu[0], iu[1]].mean(1)                            # (N,)
    spread = dist / norm.mean(1).clamp(min=1e-12)
    return {"token_distance": float(dist.mean()), "token_spread": float(spread.mean()),
            "token_cos": float(cos.mean())}


def _smoothing(hiddens, data, layers, target, kind, p, seed):
    if hiddens and hiddens[0].shape[1] < 2:
        raise ValueError("the smoothing probe needs sequences of at least 2 positions")
    per_layer = [token_smoothness(h) for h in hiddens]
    pts = [{"at": {"probe.layer": l}, "metrics": r} for l, r in zip(layers, per_layer)]
    return pts, {"layers": layers, "per_layer": per_layer}


def _fit(p: dict) -> dict:
    return {k: p[k] for k in _FIT}


SCORE = Metric("higher", None, 1.0)           # accuracy, or R^2 for a regression target (unbounded below)
GAIN = Metric("higher", -1.0, 1.0)             # a score minus its baseline
WHERE = Metric("none", 1.0, None)              # a layer index: no side is better
NEURONS = Metric("none", 1.0, None)            # a neuron count: how sparse a code is, not a skill
_GEOMETRY = ("mean_share", "pos_share", "ctx_share", "pos_var_share", "pos_rank", "pos_effective_rank", "smoothness",
             "smoothness_shuffled", "position_raw", "position_context", "position_chance", "smoothness_gain",
             "position_gap", "pos_ctx_cos", "pos_ctx_cos_random")

KINDS: dict[str, ProbeKind] = {
    "linear": ProbeKind(
        params={"window": 1, **_FIT},
        metrics={"score": ("layer",), "control": ("layer",), "selectivity": ("layer",), "input_gain": ("layer",),
                 "baseline": (), "input_score": (), "best_layer": (), "best_score": (), "gain": ()},
        needs_target=True, run=_linear,
        facts={"score": SCORE, "control": Metric("none", None, 1.0), "selectivity": GAIN, "baseline": UNTRAINED,
               "input_gain": Metric("higher", None, None), "input_score": UNTRAINED,
               "best_layer": WHERE, "best_score": SCORE, "gain": GAIN},
        chance={"score": "baseline", "best_score": "baseline", "gain": 0.0, "selectivity": 0.0, "input_gain": 0.0}),
    "sparse": ProbeKind(
        params={"ks": [1, 2, 4, 8, 16, "all"], "layer": None, **_FIT},
        metrics={"score": ("k",), "gain": ("k",), "k_at_90": (), "baseline": ()},
        needs_target=True, run=_sparse,
        facts={"score": SCORE, "gain": GAIN, "k_at_90": NEURONS, "baseline": UNTRAINED},
        chance={"score": "baseline", "gain": 0.0}),
    "sparse_layers": ProbeKind(
        params={"ks": [1, 2, 4, 8, 16, "all"], **_FIT},
        metrics={"score": ("layer", "k"), "gain": ("layer", "k"), "k_at_90": ("layer",), "baseline": ()},
        needs_target=True, run=_sparse_layers,
        facts={"score": SCORE, "gain": GAIN, "k_at_90": NEURONS, "baseline": UNTRAINED},
        chance={"score": "baseline", "gain": 0.0}),
    "future_token": ProbeKind(
        params={"offsets": [0, 1, 2, 3], **_FIT},
        metrics={"accuracy": ("layer", "offset"), "unigram": ("offset",), "bigram": ("offset",),
                 "best_layer": ("offset",), "best_accuracy": ("offset",), "gain": ("offset",)},
        needs_target=False, run=_future,
        # what the state adds beyond the current token: the bigram predictor reads that token only
        facts={"accuracy": FRACTION, "unigram": UNTRAINED, "bigram": UNTRAINED, "best_layer": WHERE,
               "best_accuracy": FRACTION, "gain": GAIN},
        chance={"accuracy": "bigram", "best_accuracy": "bigram", "gain": 0.0}),
    "geometry": ProbeKind(
        params={"energy": 0.95, **_FIT},
        metrics={k: ("layer",) for k in _GEOMETRY},
        needs_target=False, run=_geometry,
        # shares, ranks, smoothness and coherence describe the states' shape: training moves them,
        # but toward no side a priori; position decoding from the raw state is a skill
        facts={**{k: Metric("none") for k in _GEOMETRY}, "position_raw": FRACTION,
               "position_chance": UNTRAINED, "pos_ctx_cos_random": UNTRAINED, "smoothness_shuffled": UNTRAINED},
        chance={"position_raw": "position_chance"}),
    "smoothing": ProbeKind(
        params={},
        metrics={"token_distance": ("layer",), "token_spread": ("layer",), "token_cos": ("layer",)},
        needs_target=False, run=_smoothing,
        # how alike a sequence's states are: training moves it, toward no side a priori
        facts={"token_distance": Metric("none", 0.0, None), "token_spread": Metric("none", 0.0, None),
               "token_cos": Metric("none", -1.0, 1.0)}),
}


def facts_of(kind: str) -> dict[str, dict]:
    """Every stat of a kind with its facts as plain dicts (a stat without declared facts: no better side)."""
    k = KINDS[kind]
    return {stat: k.facts.get(stat, Metric("none")).as_dict() for stat in k.metrics}


def add_chance(kind: str, points: list[dict]) -> None:
    """Give each point a "chance" mapping for its stats, from the kind's chance table: a constant, or
    the value of another stat at the same point, at the point without the layer axis, or at the
    point without any axis (a baseline shared by every layer and k)."""
    table = KINDS[kind].chance

    def general(at: dict) -> dict:
        key = {k: v for k, v in at.items() if k != "probe.layer"}
        out: dict = {}
        for want in ({}, key):                      # the point without the layer axis wins over the one without any
            for pt in points:
                if pt["at"] == want:
                    out.update(pt["metrics"])
        return out

    for pt in points:
        ch = {}
        for stat in pt["metrics"]:
            ref = table.get(stat)
            if isinstance(ref, (int, float)):
                ch[stat] = float(ref)
            elif isinstance(ref, str):
                v = pt["metrics"].get(ref, general(pt["at"]).get(ref))
                if v is not None:
                    ch[stat] = float(v)
        pt["chance"] = ch


def kind_names() -> list[str]:
    return sorted(KINDS)


def resolve_params(kind: str, params: dict) -> dict:
    """The kind's defaults with the catalogue's params over them; KeyError names an unknown key."""
    k = KINDS[kind]
    unknown = sorted(set(params) - set(k.params))
    if unknown:
        raise KeyError(f"{unknown[0]!r} is not a parameter of probe kind {kind!r}; allowed: {', '.join(k.params)}")
    return {**k.params, **params}


def axis_values(kind: str, params: dict, layers: list[int]) -> dict[str, list]:
    """The probe axes of one probe: {"probe.layer": [...], "probe.offset": [...], "probe.k": [...]}."""
    p = resolve_params(kind, params)
    axes = {"layer": list(layers)}
    if kind == "future_token":
        axes["offset"] = list(p["offsets"])
    if kind in ("sparse", "sparse_layers"):
        axes["k"] = list(p["ks"])
    used = {a for dims in KINDS[kind].metrics.values() for a in dims}
    return {f"probe.{a}": v for a, v in axes.items() if a in used}


def hidden_states(model, x, layers: list[int], chunk: int = 256, device: str = "cpu") -> list:
    """The states of `layers` (1-based block outputs) for tokens x (B, T): one (B, T, D) per layer."""
    import torch

    outs: list[list] = [[] for _ in layers]
    for s in range(0, x.shape[0], chunk):
        with torch.no_grad():
            _, hs = model(x[s:s + chunk].to(device), return_hidden=True)
        if max(layers) > len(hs):
            raise ValueError(f"layer {max(layers)} asked for, but the model returns {len(hs)} layers")
        for j, l in enumerate(layers):
            outs[j].append(hs[l - 1].float().cpu())
    return [torch.cat(o) for o in outs]


def run_probe(kind: str, hiddens: list, data: dict, layers: list[int], target: str | None,
              params: dict, seed: int) -> tuple[list[dict], dict]:
    """Run one probe; returns (points, raw result)."""
    p = resolve_params(kind, params)
    label_kind = data["label_kinds"].get(target, "classification") if target is not None else None
    points, raw = KINDS[kind].run(hiddens, data, layers, target, label_kind, p, seed)
    add_chance(kind, points)
    return points, raw

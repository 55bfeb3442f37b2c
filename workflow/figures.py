"""The report's figures, as SVG with real text (sized in points: 9 pt shows as 12 CSS px at the
figure's natural size): one per claim, one per measured series, and the training curves.

Every figure says what it shows in words: a metric key such as `quote.input_gain` reads as
"input gain (probe quote)", an axis `task.n` as "n (task)". Categorical axes (a data split, a
model) are points, never joined by lines; integer axes (a layer, k) get integer ticks.
"""
from __future__ import annotations

import functools
import io
import math

FONT_PT = 9                      # the smallest text in a figure: 12 CSS px at natural size
SIZE = (4.6, 3.4)                # inches: 442 x 326 CSS px
VERDICT_COLORS = {"reproduced": "#1a7f37", "not_reproduced": "#cf222e", "inconclusive": "#9a6700",
                  "not_run": "#6e7781"}
_SCOPES = {"task": "task", "model": "model", "train": "training", "eval": "evaluation"}


def words(key: str | None) -> str:
    """A metric or axis key in words: 'quote.input_gain' -> 'input gain (probe quote)',
    'task.n' -> 'n (task)', 'probe.layer' -> 'layer', 'bits_per_char' -> 'bits per char'."""
    if not key:
        return ""
    if "." not in key:
        return key.replace("_", " ")
    head, rest = key.split(".", 1)
    if head == "probe":
        return rest.replace("_", " ")
    scope = _SCOPES.get(head)
    if scope:
        return f"{rest.replace('_', ' ').replace('.', ' ')} ({scope})"
    return f"{rest.replace('_', ' ')} (probe {head})"


def title_words(ident: str) -> str:
    """A snake_case claim id as a sentence: 'accuracy_falls_with_n' -> 'Accuracy falls with n'."""
    s = ident.replace("_", " ")
    return s[:1].upper() + s[1:]


@functools.cache
def _plt():
    """pyplot on the Agg backend with the report's style, set up once per process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "axes.labelsize": FONT_PT,
                         "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
                         "svg.fonttype": "none", "svg.hashsalt": "claimcheck",
                         "font.family": ["DejaVu Sans", "sans-serif"]})
    return plt


def _svg(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _integer_axis(ax, xs: list) -> None:
    from matplotlib.ticker import MaxNLocator

    if all(_is_num(x) and float(x).is_integer() for x in xs):
        if len(xs) <= 10:
            ax.set_xticks(sorted(set(xs)))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _uneven(xs: list) -> bool:
    """Sweeps such as 0.9, 0.99, 0.999 or 16, 1024, 65536 read best as evenly spaced categories."""
    xs = sorted(set(xs))
    if len(xs) < 3:
        return False
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    return max(gaps) > 20 * max(min(gaps), 1e-12)


def fmt(x) -> str:
    """A number to 4 significant digits, anything else as text, None as nothing (figures and report)."""
    if x is None:
        return ""
    return f"{x:.4g}" if _is_num(x) else str(x)


def _legend(ax) -> None:
    """Below the axes, so that it never hides a point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(3, len(handles)),
                  frameon=False, handlelength=1.6, columnspacing=1.0)


def _jitter(n: int, width: float = 0.12) -> list[float]:
    return [0.0] if n == 1 else [width * (2 * i / (n - 1) - 1) for i in range(n)]


def claim_figure(c: dict) -> bytes | None:
    """The claim's evidence: each seed as a dot, the mean with its 95% interval, the claim's bound
    and the paper's value as lines, chance where the result files give it. None when the claim was
    not measured."""
    spec = c.get("plot") or {}
    pts = spec.get("points") or []
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    color = VERDICT_COLORS.get(c.get("verdict"), "#0969da")
    xs = [p["x"] for p in pts]
    numeric = not spec.get("categorical", True) and all(_is_num(x) for x in xs)
    even = numeric and not _uneven(xs)
    pos = list(xs) if even else list(range(len(xs)))
    if numeric and len(pts) > 1:
        ax.plot(pos, [p["mean"] for p in pts], color=color, linewidth=1.2, zorder=2)
    step = (min(b - a for a, b in zip(sorted(pos), sorted(pos)[1:])) if len(pos) > 1 else 1.0) or 1.0
    for x, p in zip(pos, pts):
        seeds = p.get("seeds") or []
        ax.scatter([x + j * step for j in _jitter(len(seeds))], seeds, s=14, color=color, alpha=0.55,
                   linewidths=0, zorder=3, label="seeds" if x == pos[0] else None)
        ax.errorbar([x], [p["mean"]], yerr=[[p["mean"] - p["lo"]], [p["hi"] - p["mean"]]], fmt="_", markersize=14,
                    color="#1f2328", capsize=4, linewidth=1.2, zorder=4, label="mean, 95% interval" if x == pos[0] else None)
        if p.get("chance") is not None:
            ax.hlines(p["chance"], x - 0.3 * step, x + 0.3 * step, colors="#6e7781", linestyles=":", linewidth=1.4,
                      zorder=1, label="chance" if x == pos[0] else None)
    styles = {"paper": ("#8250df", "-."), "tolerance": ("#8250df", None)}
    for ln in spec.get("lines") or []:
        if ln.get("y") is None:
            continue
        col, ls = styles.get(ln["label"], ("#1f2328", "--"))
        if ln.get("to") is not None:
            ax.axhspan(ln["y"], ln["to"], color=col, alpha=0.08, linewidth=0, label="paper's tolerance")
        else:
            label = f"paper: {fmt(ln['y'])}" if ln["label"] == "paper" else ln["label"]
            ax.axhline(ln["y"], color=col, linestyle=ls, linewidth=1.1, label=label, zorder=1)
    if even:
        _integer_axis(ax, xs)
    else:
        ax.set_xticks(pos, [fmt(x) for x in xs], rotation=20 if len(xs) > 4 else 0)
        ax.set_xlim(min(pos) - 0.6, max(pos) + 0.6)
    ax.set_xlabel(words(spec.get("axis")) if spec.get("axis") else "")
    ax.set_ylabel(words(spec.get("y")))
    ax.set_title(title_words(c["id"]), loc="left")
    _legend(ax)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    return _svg(fig)


def series_figure(s: dict, paper: dict[str, list[tuple]]) -> bytes:
    """A metric along one axis, one colour per model: mean with its interval, seeds as dots, the
    paper's values as crosses. Numeric axes are joined by lines; categorical ones are points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    all_x = [pt["x"] for line in s["lines"] for pt in line["points"]]
    numeric = all(_is_num(x) for x in all_x)
    order = sorted(set(all_x)) if numeric else list(dict.fromkeys(all_x))
    even = numeric and not _uneven(all_x)
    where = (lambda x: x) if even else (lambda x: order.index(x))
    for line in s["lines"]:
        xs = [pt["x"] for pt in line["points"]]
        pos = [where(x) for x in xs]
        means = [pt["mean"] for pt in line["points"]]
        if numeric:
            (h,) = ax.plot(pos, means, marker="o", markersize=4, label=line["model"])
            ax.fill_between(pos, [pt["lo"] for pt in line["points"]], [pt["hi"] for pt in line["points"]],
                            color=h.get_color(), alpha=0.15, linewidth=0)
        else:
            h = ax.errorbar(pos, means, yerr=[[m - pt["lo"] for m, pt in zip(means, line["points"])],
                                              [pt["hi"] - m for m, pt in zip(means, line["points"])]],
                            fmt="o", markersize=5, capsize=3, label=line["model"]).lines[0]
        for x, pt in zip(pos, line["points"]):
            ax.scatter([x] * len(pt["seeds"]), pt["seeds"], s=9, color=h.get_color(), alpha=0.5, linewidths=0)
        for x, v in paper.get(line["model"], []):
            ax.scatter([where(x)], [v], marker="x", s=40, color=h.get_color(), zorder=5,
                       label=f"{line['model']} (paper)")
    if even:
        _integer_axis(ax, order)
    else:
        ax.set_xticks(range(len(order)), [fmt(x) for x in order], rotation=20 if len(order) > 4 else 0)
    fixed = ", ".join(f"{words(k)} = {fmt(v)}" for k, v in s["fixed"].items())
    ax.set_title(f"{words(s['metric'])} by {words(s['axis'])}", loc="left")
    ax.set_xlabel(words(s["axis"]) + (f"   [{fixed}]" if fixed else ""))
    ax.set_ylabel(words(s["metric"]))
    _legend(ax)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    return _svg(fig)


def curve_figure(experiment: str, model: str, curves: list[dict]) -> bytes:
    """Training loss against step for every fit of one model in one experiment: one colour per
    sweep point, one line per seed, the steps its claims need as a dashed line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    points = list(dict.fromkeys(cv["point"] for cv in curves))
    cmap = plt.get_cmap("viridis" if len(points) > 10 else "tab10")
    positive = all(v > 0 for cv in curves for v in cv["loss"] if v is not None and math.isfinite(v))
    for cv in curves:
        i = points.index(cv["point"])
        col = cmap(i / max(len(points) - 1, 1)) if len(points) > 10 else cmap(i % 10)
        first = cv is next(x for x in curves if x["point"] == cv["point"])
        label = (cv["point"] if cv["point"] != "base" else "loss") if first and len(points) <= 8 else None
        ax.plot(cv["steps"], cv["loss"], color=col, linewidth=1.0, alpha=0.8, label=label,
                linestyle="-" if cv.get("status") == "ok" else ":")
    need = max((cv.get("budget") or 0) for cv in curves)
    if need:
        ax.axvline(need, color="#1f2328", linestyle="--", linewidth=1.0, label=f"budget ({need:,} steps)")
    if positive:
        ax.set_yscale("log")
    ax.set_title(f"Training loss: {model} in {experiment}", loc="left")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    _legend(ax)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return _svg(fig)

"""Claim kinds: one class per kind, holding its reference checks, its measurement and the paper's
side of it as text. The judge (`judge.py`) applies the same evidence rules to every kind.

A kind turns a claim and the measurements into `Evidence`: one or more comparisons, each an
interval tested against the claim's boundary (satisfied, contradicted or uncertain), with the
records it rests on split by what more training would do to the comparison:
    favoured  records whose further training could only strengthen a pass (the winning side of an
              ordering, a model that must reach a bound on its metric's better side)
    opposed   records whose further training could weaken it (the losing side, a model claimed to fail)
A kind whose comparisons have no such sides (a value, a trend) marks them `neutral`: under-budget
training then decides nothing. Adding a kind is one class here and its pydantic model in schema.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .results import Measurements, NotRun, Record, interval

SATISFIED, CONTRADICTED, UNCERTAIN = "satisfied", "contradicted", "uncertain"


def compare(iv: dict, op: str, bound: float) -> str:
    """Does the whole interval satisfy `x op bound`, contradict it, or straddle it?"""
    lo, hi = iv["lo"], iv["hi"]
    if op == ">=":
        return SATISFIED if lo >= bound else CONTRADICTED if hi < bound else UNCERTAIN
    if op == ">":
        return SATISFIED if lo > bound else CONTRADICTED if hi <= bound else UNCERTAIN
    if op == "<=":
        return SATISFIED if hi <= bound else CONTRADICTED if lo > bound else UNCERTAIN
    if op == "<":
        return SATISFIED if hi < bound else CONTRADICTED if lo >= bound else UNCERTAIN
    raise ValueError(op)


def within(iv: dict, lo: float, hi: float) -> str:
    if iv["lo"] >= lo and iv["hi"] <= hi:
        return SATISFIED
    if iv["hi"] < lo or iv["lo"] > hi:
        return CONTRADICTED
    return UNCERTAIN


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def clip(iv: dict, lo: float | None, hi: float | None) -> dict:
    """The interval as shown: its ends inside the metric's range (the mean is never moved)."""
    out = dict(iv)
    if lo is not None:
        out["lo"] = max(out["lo"], lo)
    if hi is not None:
        out["hi"] = min(out["hi"], hi)
    return out


def fmt_interval(iv: dict, lo: float | None = None, hi: float | None = None) -> str:
    if iv["n"] == 1:
        return f"{_fmt(iv['mean'])} (1 seed)"
    shown = clip(iv, lo, hi)
    same = " (seeds identical)" if iv.get("sd", 1.0) == 0.0 else ""
    return f"{_fmt(iv['mean'])} [{_fmt(shown['lo'])}, {_fmt(shown['hi'])}]{same}"


def diff_range(fact: dict) -> tuple[float | None, float | None]:
    """The range of a difference of two values of a metric."""
    if fact.get("lo") is not None and fact.get("hi") is not None:
        span = fact["hi"] - fact["lo"]
        return -span, span
    return None, None


def spearman(xs: list, ys: list[float]) -> float:
    """Spearman rank correlation with average ranks for ties; 0 when a series is constant."""

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(list(xs)), ranks(list(ys))
    n = len(rx)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def _paired(a: list, b: list, fn) -> list[float]:
    """Per-seed combination of two measurements of the same seeds."""
    bd = {seed: v for seed, v, _ in b}
    return [fn(v, bd[seed]) for seed, v, _ in a if seed in bd]


def _strict_op(margin: float) -> tuple[str, float]:
    """'a exceeds b by at least margin': strictly greater when the margin is zero."""
    return (">=", margin) if margin > 0 else (">", 0.0)


def _recs(vals: list) -> list[Record]:
    return [r for _, _, r in vals]


@dataclass
class Comparison:
    """One interval tested against the claim's boundary."""

    what: str
    state: str
    favoured: list[Record] = field(default_factory=list)
    opposed: list[Record] = field(default_factory=list)
    neutral: bool = False             # no side: under-budget training decides nothing

    @property
    def records(self) -> list[Record]:
        return self.favoured + self.opposed


@dataclass
class Point:
    """One measured model at one point: what the chance rule looks at."""

    label: str
    iv: dict
    chance: float | None


@dataclass
class Evidence:
    comparisons: list[Comparison]
    measured: dict
    measured_text: str
    n: int
    points: list[Point]
    allow: int = 0                    # comparisons that may fail (a trend's allow_violations)
    flat: str = ""                    # a series that stays at a floor or ceiling: why it shows no trend
    required: list[Comparison] = field(default_factory=list)   # must hold whatever `allow` excuses
    plot: dict = field(default_factory=dict)   # what the claim's figure draws (see `plot_point`)


def plot_point(x, vals: list, metric: str | None = None) -> dict:
    """One point of a claim's figure: its x (a model, an axis value or a ratio's name), every seed's
    value, their interval and, when the result files give it, the chance level."""
    p = measured_point(str(x), vals, metric)
    return {"x": x, "seeds": [v for _, v, _ in vals], **p.iv, "chance": p.chance}


def bound_lines(c) -> list[dict]:
    """A threshold's or a ratio's lines: the claim's bound, and the paper's value where it gives one."""
    lines = [{"y": c.value, "label": f"claim: {c.op} {_fmt(c.value)}"}]
    if c.paper is not None:
        lines.append({"y": c.paper, "label": "paper"})
    return lines


def plot_spec(points: list[dict], axis: str | None = None, y: str | None = None, lines: list | None = None,
              categorical: bool = True) -> dict:
    """A claim's figure: its points along `axis` (None: one category per model or ratio), the metric
    (or quantity) on y, reference lines [{"y", "label"}] (a threshold, the paper's value, a band)."""
    return {"axis": axis, "y": y, "categorical": categorical, "points": points, "lines": lines or []}


def measured_point(label: str, vals: list, metric: str | None) -> Point:
    """A model's values at one point, with the chance level its result files give (the same for every seed)."""
    ch = [r.chance[metric] for _, _, r in vals if metric in r.chance]
    return Point(label, interval([v for _, v, _ in vals]), sum(ch) / len(ch) if ch else None)


class Kind:
    """A claim kind. Subclasses set `name` and implement `paper_text`, `says_worse` and `evidence`
    (and `models`, `check`, `free_axes` where the kind names models or axes of its own)."""

    name: ClassVar[str]
    needs_model: ClassVar[bool] = True           # measure.model names the model (value, threshold, trend)
    models_key: ClassVar[str] = "measure.model"  # where a claim of this kind names its models

    def paper_text(self, c) -> str:
        raise NotImplementedError

    def says_worse(self, c, up: bool) -> bool:
        """Whether the claim says that something fails, drops or is worse (`up`: higher is better);
        such a claim needs a control (`requires`) or the reason it has none (`no_control`)."""
        raise NotImplementedError

    def free_axes(self, c, axes: dict, where: str, problems: list[str]) -> set[str] | None:
        """The axes of the measured metric that `measure.at` leaves free for this claim; None when
        the claim's own keys are wrong, so that `at` cannot be checked."""
        return set()

    def models(self, c) -> list[tuple[str, str]]:
        """(catalogue key, model id) of every model the claim names."""
        return [("measure.model", c.measure.model)] if c.measure.model else []

    def check(self, c, model_ids: list[str], where: str, problems: list[str]) -> None:
        """The claim's models against its experiment's models."""
        m = c.measure
        if self.needs_model and m.model is None:
            problems.append(f"{where}.measure.model: is required for a {c.kind} claim; models: {', '.join(model_ids)}")
        if not self.needs_model and m.model is not None:
            problems.append(f"{where}.measure.model: not used by a {c.kind} claim; name the models in {self.models_key}")
        for key, mid in self.models(c):
            if mid not in model_ids:
                problems.append(f"{where}.{key}: {mid!r} is not a model of experiment {m.experiment!r}; "
                                f"models: {', '.join(model_ids)}")

    def evidence(self, c, ms: Measurements, fact: dict) -> Evidence:
        raise NotImplementedError


class ValueKind(Kind):
    """The measured mean lies within tolerance of the paper's value. More training may move a value
    either way, so under-budget training decides nothing."""

    name = "value"

    def says_worse(self, c, up):
        return False

    def paper_text(self, c) -> str:
        tol = f"± {_fmt(c.tolerance)}" if c.tolerance is not None else f"± {_fmt(100 * c.rel_tolerance)}%"
        return f"{_fmt(c.paper)} {tol}"

    def evidence(self, c, ms, fact):
        m = c.measure
        vals = ms.values(m.experiment, m.model, ms.full_point(m.experiment, m.at, metric=m.metric), m.metric)
        iv = interval([v for _, v, _ in vals])
        comp = Comparison(f"{m.model} within {self.paper_text(c)}", within(iv, *c.bounds()), opposed=_recs(vals),
                          neutral=True)
        lo, hi = c.bounds()
        plot = plot_spec([plot_point(m.model, vals, m.metric)], y=m.metric,
                         lines=[{"y": c.paper, "label": "paper"}, {"y": lo, "label": "tolerance", "to": hi}])
        return Evidence([comp], iv, fmt_interval(iv, fact["lo"], fact["hi"]), iv["n"],
                        [measured_point(m.model, vals, m.metric)], plot=plot)


class ThresholdKind(Kind):
    """The measured mean compared with a bound. A bound on the metric's better side ('accuracy >= 0.9')
    can only be strengthened by more training; one on its worse side ('accuracy <= 0.1': the model
    fails) can be undone by it."""

    name = "threshold"

    def says_worse(self, c, up):
        return c.op in (("<", "<=") if up else (">", ">="))

    def paper_text(self, c) -> str:
        return f"{c.op} {_fmt(c.value)}" + (f" (paper: {_fmt(c.paper)})" if c.paper is not None else "")

    def evidence(self, c, ms, fact):
        m = c.measure
        vals = ms.values(m.experiment, m.model, ms.full_point(m.experiment, m.at, metric=m.metric), m.metric)
        iv = interval([v for _, v, _ in vals])
        toward_better = (fact["better"] == "higher" and c.op in (">", ">=")) or \
                        (fact["better"] == "lower" and c.op in ("<", "<="))
        recs = _recs(vals)
        comp = Comparison(f"{m.model} {c.op} {_fmt(c.value)}", compare(iv, c.op, c.value),
                          favoured=recs if toward_better else [], opposed=[] if toward_better else recs,
                          neutral=fact["better"] == "none")
        plot = plot_spec([plot_point(m.model, vals, m.metric)], y=m.metric, lines=bound_lines(c))
        return Evidence([comp], iv, fmt_interval(iv, fact["lo"], fact["hi"]), iv["n"],
                        [measured_point(m.model, vals, m.metric)], plot=plot)


def _winner_loser(a: list, b: list, fact: dict) -> tuple[list, list]:
    """For 'a has the larger value than b': which side is the better model (whose training could only
    widen the gap) and which the worse one."""
    if fact["better"] == "lower":
        return _recs(b), _recs(a)
    return _recs(a), _recs(b)


class OrderingKind(Kind):
    """order[0] > order[1] > ... (by at least margin) on the same metric and point. Only the winning
    end of each pair may rest on under-budget training."""

    name = "ordering"
    needs_model = False
    models_key = "order"

    def says_worse(self, c, up):
        return True                          # its later models are worse

    def paper_text(self, c) -> str:
        return " > ".join(c.order) + (f" (by ≥ {_fmt(c.margin)})" if c.margin else "")

    def models(self, c):
        return [(f"order[{j}]", mid) for j, mid in enumerate(c.order)]

    def check(self, c, model_ids, where, problems):
        super().check(c, model_ids, where, problems)
        if len(set(c.order)) != len(c.order):
            problems.append(f"{where}.order: names a model twice")

    def evidence(self, c, ms, fact):
        m = c.measure
        point = ms.full_point(m.experiment, m.at, metric=m.metric)
        series = {mid: ms.values(m.experiment, mid, point, m.metric) for mid in c.order}
        op, bound = _strict_op(c.margin)
        comps, pairs = [], []
        lo, hi = diff_range(fact)
        for a, b in zip(c.order, c.order[1:]):
            iv = interval(_paired(series[a], series[b], lambda x, y: x - y))
            win, lose = _winner_loser(series[a], series[b], fact)
            comps.append(Comparison(f"{a} - {b}", compare(iv, op, bound), favoured=win, opposed=lose,
                                    neutral=fact["better"] == "none"))
            pairs.append({"pair": f"{a} - {b}", **iv})
        means = {mid: interval([v for _, v, _ in s]) for mid, s in series.items()}
        text = "; ".join(f"{p['pair']} = {fmt_interval(p, lo, hi)}" for p in pairs)
        plot = plot_spec([plot_point(mid, s, m.metric) for mid, s in series.items()], y=m.metric)
        return Evidence(comps, {"models": means, "differences": pairs}, text, min(p["n"] for p in pairs),
                        [measured_point(mid, s, m.metric) for mid, s in series.items()], plot=plot)


class RatioKind(Kind):
    """metric(numerator) / metric(denominator) compared with a value; judged per side, as an ordering:
    the side the claim says is better may rest on under-budget training, the other may not."""

    name = "ratio"
    needs_model = False
    models_key = "numerator/denominator"

    def says_worse(self, c, up):
        return c.op in (("<", "<=") if up else (">", ">="))

    def paper_text(self, c) -> str:
        return f"{c.numerator}/{c.denominator} {c.op} {_fmt(c.value)}" + (
            f" (paper: {_fmt(c.paper)})" if c.paper is not None else "")

    def models(self, c):
        return [("numerator", c.numerator), ("denominator", c.denominator)]

    def evidence(self, c, ms, fact):
        m = c.measure
        point = ms.full_point(m.experiment, m.at, metric=m.metric)
        num = ms.values(m.experiment, c.numerator, point, m.metric)
        den = ms.values(m.experiment, c.denominator, point, m.metric)
        if any(v == 0 for _, v, _ in den):
            raise NotRun(f"{m.metric} of {c.denominator} is zero; the ratio is undefined")
        iv = interval(_paired(num, den, lambda x, y: x / y))
        # 'num/den >= v' says the numerator is large: the better model when higher is better
        num_large = c.op in (">", ">=")
        win, lose = _winner_loser(num, den, fact) if num_large else _winner_loser(den, num, fact)
        comp = Comparison(f"{c.numerator}/{c.denominator} {c.op} {_fmt(c.value)}", compare(iv, c.op, c.value),
                          favoured=win, opposed=lose, neutral=fact["better"] == "none")
        by_seed = {seed: v for seed, v, _ in den}
        ratios = [(seed, v / by_seed[seed], r) for seed, v, r in num if seed in by_seed]
        plot = plot_spec([plot_point(f"{c.numerator} / {c.denominator}", ratios)], y=f"{m.metric} ratio",
                         lines=bound_lines(c))
        return Evidence([comp], iv, fmt_interval(iv), iv["n"],
                        [measured_point(c.numerator, num, m.metric), measured_point(c.denominator, den, m.metric)],
                        plot=plot)


class TrendKind(Kind):
    """The metric moves in one direction along a sweep or evaluation axis. Numbers run in increasing
    order, names (a categorical axis such as a data split) in the order the catalogue lists them.
    A non-strict direction still needs a real change from the first point to the last, and a series
    that stays at a floor or a ceiling (the metric's range ends, or chance) shows no trend. More
    training may reshape a series, so under-budget training decides nothing."""

    name = "trend"

    def says_worse(self, c, up):
        return c.direction in (("decreasing", "non_increasing") if up else ("increasing", "non_decreasing"))

    def free_axes(self, c, axes, where, problems):
        if c.along not in axes:
            problems.append(f"{where}.along: {c.along!r} is not an axis of experiment {c.measure.experiment!r}; "
                            f"axes: {', '.join(axes) or 'none'}")
            return None                      # which axes `at` must fix depends on a valid `along`
        if len(axes[c.along]) < 2:
            problems.append(f"{where}.along: axis {c.along!r} has one value; a trend needs at least two")
        return {c.along}

    def paper_text(self, c) -> str:
        if c.statistic == "spearman":
            sign = "≥ " if c.direction in ("increasing", "non_decreasing") else "≤ -"
            return f"{c.direction.replace('_', '-')} along {c.along} (Spearman ρ {sign}{_fmt(c.min_correlation)})"
        extra = f", up to {c.allow_violations} exception{'s' * (c.allow_violations != 1)}" if c.allow_violations else ""
        return f"{c.direction.replace('_', '-')} along {c.along}{extra}"

    def evidence(self, c, ms, fact):
        m = c.measure
        axis_values = list(ms.axes(m.experiment).for_metric(m.metric)[c.along])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in axis_values)
        if numeric:
            axis_values.sort()
        series = []
        for x in axis_values:
            pt = ms.full_point(m.experiment, m.at, {c.along: x}, metric=m.metric)
            series.append((x, ms.values(m.experiment, m.model, pt, m.metric)))
        if len(series) < 2:
            raise NotRun(f"axis {c.along} has fewer than two values at the {ms.scale} scale")
        up = c.direction in ("increasing", "non_decreasing")
        strict = c.direction in ("increasing", "decreasing")
        ivs = [interval([v for _, v, _ in vals]) for _, vals in series]
        means = " → ".join(_fmt(iv["mean"]) for iv in ivs)
        points = [measured_point(f"{m.model} at {c.along}={x}", vals, m.metric) for x, vals in series]
        measured = {"series": [{"at": x, **iv} for (x, _), iv in zip(series, ivs)]}
        plot = plot_spec([plot_point(x, vals, m.metric) for x, vals in series], axis=c.along, y=m.metric,
                         categorical=not numeric)
        flat = self._flat(points, fact)
        all_recs = [r for _, vals in series for _, _, r in vals]
        sign = (lambda y, x: y - x) if up else (lambda y, x: x - y)
        if c.statistic == "spearman":
            # a categorical axis is ranked in the catalogue's order, not alphabetically
            xs = [x for x, _ in series] if numeric else list(range(len(series)))
            per_seed = [dict((seed, v) for seed, v, _ in vals) for _, vals in series]
            seeds = sorted(set.intersection(*(set(d) for d in per_seed)))
            rhos = [spearman(xs, [d[s] for d in per_seed]) for s in seeds]
            iv = interval(rhos)
            state = compare(iv, ">=", c.min_correlation) if up else compare(iv, "<=", -c.min_correlation)
            measured["spearman"] = {**iv, "per_seed": rhos}
            comp = Comparison(f"Spearman ρ along {c.along}", state, opposed=all_recs, neutral=True)
            return Evidence([comp], measured, f"{means} (Spearman ρ {fmt_interval(iv, -1.0, 1.0)})", iv["n"], points,
                            flat=flat, plot=plot)
        comps, steps = [], []
        for (x0, a), (x1, b) in zip(series, series[1:]):
            diff = interval(_paired(b, a, sign))
            op, bound = _strict_op(c.margin) if strict else (">=", -c.margin)
            comps.append(Comparison(f"{x0} → {x1}", compare(diff, op, bound), opposed=_recs(a) + _recs(b), neutral=True))
            steps.append({"from": x0, "to": x1, "state": comps[-1].state, **diff})
        required = []
        if not strict:
            # 'non-increasing' still claims a drop somewhere: the first point to the last must move,
            # and allow_violations does not excuse this one
            x0, a = series[0]
            x1, b = series[-1]
            whole = interval(_paired(b, a, sign))
            op, bound = _strict_op(c.margin)
            required.append(Comparison(f"{x0} → {x1} (overall)", compare(whole, op, bound),
                                       opposed=_recs(a) + _recs(b), neutral=True))
            measured["overall"] = {"from": x0, "to": x1, "state": required[-1].state, **whole}
        measured["steps"] = steps
        ok = sum(s["state"] == SATISFIED for s in steps)
        text = f"{means} ({ok}/{len(steps)} steps {c.direction.replace('_', '-')})"
        n = min(s["n"] for s in steps)
        return Evidence(comps, measured, text, n, points, allow=c.allow_violations, flat=flat, required=required,
                        plot=plot)

    @staticmethod
    def _flat(points: list[Point], fact: dict) -> str:
        """Why a series shows no trend because every point sits at one end, or "" when it does not."""
        band = fact.get("band") or 0.0

        def at(iv: dict, end: float | None) -> bool:
            return end is not None and abs(iv["lo"] - end) <= band and abs(iv["hi"] - end) <= band

        for end, word in ((fact.get("lo"), "floor"), (fact.get("hi"), "ceiling")):
            if all(at(p.iv, end) for p in points):
                return f"the series stays at the {word} ({_fmt(end)}) at every point"
        if fact.get("better") in ("higher", "lower") and all(at_chance(p, fact) for p in points):
            return "the series stays at chance at every point"
        return ""


def at_chance(p: Point, fact: dict) -> bool:
    """The better end of the interval lies within the metric's chance band of the chance level."""
    if p.chance is None or fact.get("better") not in ("higher", "lower"):
        return False
    band = fact.get("band") or 0.0
    if fact["better"] == "higher":
        return p.iv["hi"] <= p.chance + band
    return p.iv["lo"] >= p.chance - band


KINDS: dict[str, Kind] = {k.name: k for k in (ValueKind(), ThresholdKind(), OrderingKind(), RatioKind(), TrendKind())}


def kind_of(c) -> Kind:
    return KINDS[c.kind]

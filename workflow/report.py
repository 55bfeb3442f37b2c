"""Reports: the paper's claims and tables beside the reproduced ones, with verdicts.

    python -m workflow.report paper --verdicts results/smoke/x/verdicts.json --out-dir reports/smoke/x
    python -m workflow.report index --scale smoke --out reports/smoke/index.html VERDICTS...

A paper's report is reports/<scale>/<paper>/index.html (self-contained: CSS and figures
inline), report.md and figures/*.png. Every string from a catalogue is HTML-escaped
(Jinja2 autoescape).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path

from jinja2 import Environment

from .jobs import read_json

COLORS = {"reproduced": "#1a7f37", "not_reproduced": "#cf222e", "inconclusive": "#9a6700", "not_run": "#6e7781"}
LABELS = {"reproduced": "reproduced", "not_reproduced": "not reproduced", "inconclusive": "inconclusive", "not_run": "not run"}
FLAG_LABELS = {"under_budget": "under budget", "one_seed": "one seed", "control": "control not reproduced",
               "chance": "at chance", "our_bound": "bound ours"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem 0;font-size:.92rem} th,td{border:1px solid #d0d7de;padding:.35rem .55rem;vertical-align:top}
th{background:#f6f8fa;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.verdict{font-weight:600;color:#fff;border-radius:4px;padding:.1rem .45rem;white-space:nowrap}
.meta{color:#57606a;font-size:.9rem} .note{color:#57606a;font-size:.85rem} code{font-size:.85rem}
.paper{color:#57606a} .figs{display:flex;flex-wrap:wrap;gap:1rem} .figs figure{margin:0} .figs img{max-width:380px}
.counts span{margin-right:1rem}
"""

PAPER_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ p.paper.title }} ({{ p.scale }})</title><style>{{ css }}</style></head>
<body>
<h1>{{ p.paper.title }}</h1>
<div class="meta">{% if p.paper.authors %}{{ p.paper.authors }}, {% endif %}{{ p.paper.year }}{% if p.paper.url %} ·
 <a href="{{ p.paper.url }}">{{ p.paper.url }}</a>{% endif %}</div>
<p class="meta">Scale <b>{{ p.scale }}</b> · git <code>{{ p.git_sha[:12] }}</code>{% if p.git_dirty %} (uncommitted changes){% endif %}
 · judged {{ p.date }} · {{ p.jobs.total }} training jobs, {{ '%.0f' % p.compute_s }} s of compute
{% if tracking %} · MLflow experiment <code>{{ tracking.experiment }}</code> at <code>{{ tracking.uri }}</code>{% endif %}</p>
{% if tracking and tracking.uri and tracking.uri.startswith('sqlite') %}<p class="note">Run links open in a local MLflow UI:
 <code>mlflow ui --backend-store-uri {{ tracking.uri }}</code> from the repository root.</p>{% endif %}
{% if tracking and tracking.error %}<p class="note">MLflow logging failed: {{ tracking.error }}. The results are complete on disk;
 log them with <code>python -m workflow.tracking sync --scale {{ p.scale }}</code>.</p>{% endif %}
<p class="counts">{% for v, n in p.counts.items() %}<span><span class="verdict" style="background:{{ colors[v] }}">{{ labels[v] }}</span> {{ n }}</span>{% endfor %}</p>

{% macro claims_table(rows) %}<table><tr><th>claim</th><th>source</th><th>paper</th><th>measured (mean [95% interval])</th><th>seeds</th><th>verdict</th><th>runs</th></tr>
{% for c in rows %}<tr id="claim-{{ c.id }}">
<td><b>{{ c.id }}</b> <span class="note">({{ c.kind }})</span><br>{{ c.text }}<br><span class="note">{{ c.metric }} in {{ c.experiment }}{% if c.at %} at {% for k, v in c.at.items() %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}</span>{% if c.ours %}<br><span class="note">Ours: {{ c.ours }}</span>{% endif %}</td>
<td>{{ c.source }}</td><td class="num">{{ c.paper_value }}{% if c.our_bound %}<br><span class="note">bound ours: {{ c.our_bound }}</span>{% endif %}</td>
<td class="num">{{ c.measured_text or '' }}{% if c.reason %}<br><span class="note">{{ c.reason }}</span>{% endif %}{% if c.note %}<br><span class="note">Note: {{ c.note }}</span>{% endif %}{% if c.selection %}<br><span class="note">{{ c.selection.text }}</span>{% endif %}</td>
<td class="num">{{ c.n_seeds }}</td>
<td><span class="verdict" style="background:{{ colors[c.verdict] }}">{{ labels[c.verdict] }}</span>{% for f in c.flags or [] %}<br><span class="note">{{ flag_labels.get(f, f) }}</span>{% endfor %}{% if c.requires %}<br><span class="note">controls: {{ c.requires|join(', ') }}</span>{% endif %}</td>
<td class="note">{% for r in c.runs %}{% if run_url %}<a href="{{ run_url(r) }}">{{ r[:8] }}</a>{% else %}<code>{{ r[:8] }}</code>{% endif %} {% endfor %}</td>
</tr>{% endfor %}</table>{% endmacro %}
<h2>Claims</h2>
{{ claims_table(p.claims|selectattr('origin', 'ne', 'ours')|list) }}
<p class="note">Verdicts: reproduced when the whole 95% interval over seeds satisfies the claim, not reproduced when it
contradicts it, inconclusive when it straddles the boundary or the evidence cannot decide: training under budget
where more of it could change the verdict, one seed, a flat series at a floor or ceiling, a model that learned
nothing (at chance) without a reproduced control, or a control not reproduced. Not run when a job it needs failed,
diverged or is missing at this scale.</p>
{% set ours = p.claims|selectattr('origin', 'eq', 'ours')|list %}{% if ours %}
<h2>Claims that are ours</h2>
<p class="note">Statements the paper does not make (a model or range it never tested, a control it presupposes):
judged by the same rules, never counted in the paper's verdicts above.
{% if p.counts_ours %}{% for v, n in p.counts_ours.items() %}{% if n %}{{ labels[v] }} {{ n }}. {% endif %}{% endfor %}{% endif %}</p>
{{ claims_table(ours) }}{% endif %}

{% for t in p.tables %}
<h2>{{ t.title }}</h2>
<p class="note">{{ t.metric }} in {{ t.experiment }}; rows: {{ t.rows_axis }}, columns: {{ t.columns_axis }}.
{% if t.source %}Paper values: {{ t.source }}.{% endif %} Each cell: <span class="paper">paper</span> | reproduced mean ± 95% half-width.</p>
<table><tr><th>{{ t.rows_axis }} \\ {{ t.columns_axis }}</th>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in t.rows %}{% set ri = loop.index0 %}<tr><th>{{ r }}</th>{% for cell in t.cells[ri] %}<td class="num">
{% if cell.paper is not none %}<span class="paper">{{ fmt(cell.paper) }}</span> | {% endif %}
{% if cell.not_run %}<span class="note" title="{{ cell.not_run }}">not run</span>{% else %}{{ fmt(cell.mean) }} ± {{ fmt((cell.hi - cell.lo) / 2) }}{% if not cell.converged %}*{% endif %}{% endif %}
</td>{% endfor %}</tr>{% endfor %}</table>
{% if t.any_unconverged %}<p class="note">* under budget: trained fewer steps than the claims need, or its loss was still falling at the end.</p>{% endif %}
{% endfor %}

{% if figures %}<h2>Figures</h2><p class="note">Mean over seeds, with each seed as a dot and the 95% interval shaded.</p>
<div class="figs">{% for f in figures %}<figure><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.b64 }}"><figcaption class="note">{{ f.title }}</figcaption></figure>{% endfor %}</div>{% endif %}

<h2>Settings at this scale</h2>
{% for eid, e in p.experiments.items() %}<p><b>{{ eid }}</b>: task <code>{{ e.task }}</code>; {{ e.seeds }} seed(s);
train <code>{{ e.train }}</code>; sweep <code>{{ e.sweep }}</code>{% if e.eval_sweep %}; evaluation sweep <code>{{ e.eval_sweep }}</code>{% endif %}</p>
<ul>{% for m in e.models %}<li><code>{{ m }}</code></li>{% endfor %}</ul>{% endfor %}
{% if p.provenance %}<h2>Provenance</h2>
<p class="note">Every distinct value over the {{ p.provenance.jobs }} finished training jobs (each job folder's manifest.json, also MLflow tags).</p>
<table>
<tr><th>git commit</th><td><code>{{ p.provenance.git_sha|join(', ') }}</code> (uncommitted changes: {{ p.provenance.git_dirty|join(', ') }})</td></tr>
<tr><th>hosts</th><td>{{ p.provenance.host|join(', ') }}</td></tr>
<tr><th>devices</th><td>{{ p.provenance.device|join(', ') }}</td></tr>
<tr><th>Python</th><td>{{ p.provenance.python|join(', ') }}</td></tr>
<tr><th>packages</th><td>{% for k, v in p.provenance.packages.items() %}{{ k }} {{ v|join('/') }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
<tr><th>ran</th><td>{{ p.provenance.first_start }} to {{ p.provenance.last_end }}</td></tr>
</table>{% endif %}
{% if p.jobs.failed %}<h2>Jobs without results</h2><ul>{% for f in p.jobs.failed %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reproductions ({{ scale }})</title><style>{{ css }}</style></head>
<body><h1>Reproductions at scale {{ scale }}</h1>
<p class="meta">{{ papers|length }} paper(s) · generated {{ date }}</p>
<table><tr><th>paper</th><th>year</th>{% for v in labels %}<th>{{ labels[v] }}</th>{% endfor %}<th>claims</th></tr>
{% for p in papers %}<tr><td><a href="{{ p.paper.id }}/index.html">{{ p.paper.title }}</a><br><span class="note">{{ p.paper.id }}</span></td>
<td>{{ p.paper.year }}</td>{% for v in labels %}<td class="num"><span style="color:{{ colors[v] }};font-weight:600">{{ p.counts[v] }}</span></td>{% endfor %}
<td class="num">{{ p.claims|length }}</td></tr>{% endfor %}</table></body></html>
"""


def fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


def _env() -> Environment:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(colors=COLORS, labels=LABELS, fmt=fmt, css=CSS)
    return env


def warm() -> None:
    """What the fork server runs once so that every report step it forks inherits it: pyplot with
    the Agg backend, imported (~0.35 s a report step otherwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def make_figures(p: dict, out_dir: Path) -> list[dict]:
    """One PNG per (experiment, axis, fixed point, metric): mean per model, seeds as dots. The folder
    exists even when nothing varies along any axis (no figure): it is the rule's declared output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not p["series"]:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figs = []
    for i, s in enumerate(p["series"]):
        fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
        numeric = all(isinstance(pt["x"], (int, float)) and not isinstance(pt["x"], bool)
                      for line in s["lines"] for pt in line["points"])
        for line in s["lines"]:
            xs = [pt["x"] for pt in line["points"]]
            xpos = list(range(len(xs))) if not numeric or _categorical(s) else xs
            means = [pt["mean"] for pt in line["points"]]
            (h,) = ax.plot(xpos, means, marker="o", label=line["model"])
            ax.fill_between(xpos, [pt["lo"] for pt in line["points"]], [pt["hi"] for pt in line["points"]],
                            color=h.get_color(), alpha=0.15, linewidth=0)
            for x, pt in zip(xpos, line["points"]):
                ax.scatter([x] * len(pt["seeds"]), pt["seeds"], s=8, color=h.get_color(), alpha=0.6)
            paper = _paper_points(p, s, line["model"])
            if paper:
                px = [xpos[xs.index(x)] for x, _ in paper]
                ax.scatter(px, [v for _, v in paper], marker="x", s=50, color=h.get_color(), zorder=5,
                           label=f"{line['model']} (paper)")
            if not numeric or _categorical(s):
                ax.set_xticks(xpos, [fmt(x) for x in xs], rotation=30, fontsize=8)
        fixed = ", ".join(f"{k}={v}" for k, v in s["fixed"].items())
        title = f"{s['metric']} vs {s['axis']}" + (f" ({fixed})" if fixed else "")
        ax.set_xlabel(s["axis"])
        ax.set_ylabel(s["metric"])
        ax.set_title(f"{s['experiment']}" + (f" ({fixed})" if fixed else ""), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        name = f"{i:02d}-{s['experiment']}-{s['metric']}-{s['axis']}.png".replace("/", "_")
        (out_dir / name).write_bytes(buf.getvalue())
        figs.append({"title": title, "file": f"figures/{name}", "b64": base64.b64encode(buf.getvalue()).decode()})
    return figs


def _paper_points(p: dict, s: dict, model: str) -> list[tuple]:
    """The paper's values for this model along this series' axis, from a catalogue table."""
    from .catalogue import fmt_value

    xs = [pt["x"] for line in s["lines"] if line["model"] == model for pt in line["points"]]
    for t in p["tables"]:
        if (t["experiment"], t["metric"], t["rows_axis"], t["columns_axis"]) != (s["experiment"], s["metric"], "model", s["axis"]):
            continue
        if model not in t["rows"] or s["fixed"]:  # other axes fixed: the table may be at another point
            continue
        row = t["cells"][t["rows"].index(model)]
        out = []
        for label, cell in zip(t["columns"], row):
            x = next((x for x in xs if fmt_value(x) == label), None)
            if x is not None and cell.get("paper") is not None:
                out.append((x, cell["paper"]))
        return out
    return []


def _categorical(s: dict) -> bool:
    """Sweeps such as sparsity 0.9, 0.99, 0.999 read best as evenly spaced categories."""
    xs = sorted({pt["x"] for line in s["lines"] for pt in line["points"]})
    if len(xs) < 3:
        return True
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    return max(gaps) > 20 * max(min(gaps), 1e-12)


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(p: dict, tracking: dict | None) -> str:
    lines = [f"# {p['paper']['title']} ({p['paper']['year']})", ""]
    lines.append(f"Scale **{p['scale']}** · git `{p['git_sha'][:12]}`{' (uncommitted changes)' if p.get('git_dirty') else ''}"
                 f" · judged {p['date']} · {p['jobs']['total']} training jobs")
    if tracking:
        lines.append(f"MLflow experiment `{tracking.get('experiment')}` at `{tracking.get('uri')}`")
    lines += ["", " · ".join(f"{LABELS[v]}: {n}" for v, n in p["counts"].items()), "", "## Claims", "",
              "| claim | source | paper | measured | seeds | verdict | notes |", "|---|---|---|---|---|---|---|"]
    def row(c):
        flags = ", ".join(FLAG_LABELS.get(f, f) for f in c.get("flags", []))
        return "| " + " | ".join(_md_escape(x) for x in (
            f"**{c['id']}**: {c['text']}", c["source"], c["paper_value"], c.get("measured_text", ""),
            c["n_seeds"], LABELS[c["verdict"]] + (f" ({flags})" if flags else ""),
            "; ".join(x for x in (c.get("ours") and f"Ours: {c['ours']}",
                                  c.get("our_bound") and f"Bound ours: {c['our_bound']}", c.get("reason"),
                                  c.get("note") and f"Note: {c['note']}",
                                  c["runs"] and "runs " + ", ".join(r[:8] for r in c["runs"])) if x))) + " |"

    lines += [row(c) for c in p["claims"] if c.get("origin", "paper") != "ours"]
    ours = [c for c in p["claims"] if c.get("origin") == "ours"]
    if ours:
        lines += ["", "## Claims that are ours", "",
                  "Statements the paper does not make: judged by the same rules, never counted as the paper's.", "",
                  "| claim | source | paper | measured | seeds | verdict | notes |", "|---|---|---|---|---|---|---|"]
        lines += [row(c) for c in ours]
    for t in p["tables"]:
        lines += ["", f"## {t['title']}", "", f"{t['metric']}; paper | reproduced (mean ± 95% half-width)"
                  + (f"; paper values: {t['source']}" if t.get("source") else ""), ""]
        lines.append("| " + " | ".join([f"{t['rows_axis']} \\ {t['columns_axis']}"] + t["columns"]) + " |")
        lines.append("|" + "---|" * (len(t["columns"]) + 1))
        for r, row in zip(t["rows"], t["cells"]):
            cells = []
            for cell in row:
                paper = f"{fmt(cell['paper'])} \\| " if cell["paper"] is not None else ""
                val = "not run" if "not_run" in cell else f"{fmt(cell['mean'])} ± {fmt((cell['hi'] - cell['lo']) / 2)}"
                cells.append(paper + val)
            lines.append("| " + " | ".join([_md_escape(r)] + cells) + " |")
    return "\n".join(lines) + "\n"


def render_paper(verdicts: Path, out_dir: Path, tracking_file: Path | None = None) -> Path:
    p = read_json(verdicts)
    tracking = read_json(tracking_file) if tracking_file and Path(tracking_file).exists() else None
    for t in p["tables"]:
        t["any_unconverged"] = any(not c.get("converged", True) for row in t["cells"] for c in row if "mean" in c)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = make_figures(p, out_dir / "figures")
    run_url = None
    if tracking and tracking.get("experiment_id"):
        # a server's own address, else where `mlflow ui` listens by default
        uri = str(tracking.get("uri", ""))
        base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
        eid = tracking["experiment_id"]
        run_url = lambda r: f"{base}/#/experiments/{eid}/runs/{r}"  # noqa: E731
    for c in p["claims"]:
        c.setdefault("origin", "paper")
    html = _env().from_string(PAPER_HTML).render(p=p, figures=figures, tracking=tracking, run_url=run_url,
                                                 flag_labels=FLAG_LABELS)
    (out_dir / "index.html").write_text(html)
    (out_dir / "report.md").write_text(render_markdown(p, tracking))
    return out_dir / "index.html"


def render_index(verdict_files: list[Path], scale: str, out: Path) -> Path:
    from .jobs import now

    papers = sorted((read_json(f) for f in verdict_files), key=lambda p: p["paper"]["id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_env().from_string(INDEX_HTML).render(papers=papers, scale=scale, date=now()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workflow.report", description="render reports")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("paper")
    pp.add_argument("--verdicts", required=True, type=Path)
    pp.add_argument("--runs", type=Path, default=None, help="runs.json of the tracking step")
    pp.add_argument("--out-dir", required=True, type=Path)
    ip = sub.add_parser("index")
    ip.add_argument("--scale", required=True)
    ip.add_argument("--out", required=True, type=Path)
    ip.add_argument("verdicts", nargs="*", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "paper":
        path = render_paper(args.verdicts, args.out_dir, args.runs)
    else:
        path = render_index(args.verdicts, args.scale, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

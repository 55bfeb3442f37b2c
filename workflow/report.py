"""Reports: the paper's claims and tables beside the reproduced ones, with verdicts.

    python -m workflow.report paper --verdicts results/smoke/x/verdicts.json --runs results/smoke/x/runs.json \
        --out-dir reports/smoke/x [--ui http://127.0.0.1:5000]
    python -m workflow.report index --scale smoke --out reports/smoke/index.html VERDICTS...

A paper's report is reports/<scale>/<paper>/: index.html (self-contained: CSS and figures inline),
report.md (the same sections, figures as image links), figures/*.svg, and the exports
verdicts.json (the judge's record, each claim joined with its MLflow run ids) and claims.csv. The
index is reports/<scale>/index.html with every claim of every selected paper (sortable and
filterable in the page), the cross-paper leaderboard, and reports/<scale>/claims.csv.

The judge decides every verdict; this module only shows them. Every string from a catalogue is
HTML-escaped (Jinja2 autoescape).
"""
from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import sys
from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader

from .figures import fmt, words
from .steps import read_json, write_json

COLORS = {"reproduced": "#1a7f37", "not_reproduced": "#cf222e", "inconclusive": "#9a6700", "not_run": "#6e7781"}
LABELS = {"reproduced": "reproduced", "not_reproduced": "not reproduced", "inconclusive": "inconclusive", "not_run": "not run"}
FLAG_LABELS = {"under_budget": "under budget", "one_seed": "one seed", "control": "control not reproduced",
               "chance": "at chance", "our_bound": "bound ours", "only_at": "other scale or device"}
DEFAULT_UI = "http://127.0.0.1:5000"       # where `mlflow ui` listens unless told otherwise
# MLflow 3's UI picks its GenAI or model-training view from this URL parameter (else a choice kept in
# the browser, GenAI by default), whatever the experiment's mlflow.experimentKind tag says
TRAINING_VIEW = "?workflowType=machine_learning"
CSV_FIELDS = ("scale", "paper", "claim", "origin", "kind", "verdict", "flags", "paper_value", "paper_number",
              "measured", "mean", "lo", "hi", "n_seeds", "difference", "reason", "source")
TEMPLATES = Path(__file__).parent / "templates"
MAX_SERIES_FIGURES = 48      # series figures drawn per report; the rest are listed (their data: verdicts.json)


def signed(x) -> str:
    return "" if x is None else f"{x:+.3g}"


def settings_text(obj) -> str:
    """Settings as YAML (block style, keys in their order), not Python reprs."""
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=False, allow_unicode=True, width=100).strip()


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(colors=COLORS, labels=LABELS, flag_labels=FLAG_LABELS, fmt=fmt, signed=signed,
                       words=words, settings_text=settings_text)
    return env


def warm() -> None:
    """What the fork server runs once so that every report step it forks inherits it: pyplot with
    the Agg backend, imported (~0.35 s a report step otherwise)."""
    from .figures import _plt

    _plt()


def _b64(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def _slug(*parts) -> str:
    s = "-".join(str(p) for p in parts)
    return "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in s)[:120]


def make_figures(p: dict, out_dir: Path) -> dict[str, list[dict]]:
    """Every figure of a report, written to out_dir as SVG: {"claims": [...], "series": [...],
    "curves": [...]}, each {"title", "file" (relative to the report), "src" (inline), "anchor"}. The
    folder exists even with no figure: it is the report rule's declared output."""
    from . import figures as F

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        if old.is_file():
            old.unlink()
    out: dict[str, list[dict]] = {"claims": [], "series": [], "curves": []}

    def save(group, name, title, svg, anchor, **extra):
        (out_dir / name).write_bytes(svg)
        out[group].append({"title": title, "file": f"figures/{name}", "src": _b64(svg), "anchor": anchor, **extra})

    for c in p["claims"]:
        svg = F.claim_figure(c)
        if svg:
            save("claims", f"claim-{_slug(c['id'])}.svg", F.title_words(c["id"]), svg, f"fig-{c['id']}",
                 claim=c["id"], verdict=c["verdict"])
    series = list(enumerate(p.get("series") or []))
    # the series of a metric a claim or a table reads first, then the rest, in order; at most
    # MAX_SERIES_FIGURES drawn (probe axes multiply: a sweep of widths, layers and k gives hundreds)
    asked = {(c["experiment"], c["metric"]) for c in p["claims"]} | {
        (t["experiment"], t["metric"]) for t in p.get("tables") or [] if "experiment" in t and "metric" in t}
    series.sort(key=lambda e: (e[1]["experiment"], e[1]["metric"]) not in asked)
    out["series_left"] = []
    for n, (i, s) in enumerate(series):
        fixed = ", ".join(f"{F.words(k)} = {fmt(v)}" for k, v in s["fixed"].items())
        title = f"{F.words(s['metric'])} by {F.words(s['axis'])} in {s['experiment']}" + (f" ({fixed})" if fixed else "")
        if n >= MAX_SERIES_FIGURES:
            out["series_left"].append(title)
            continue
        svg = F.series_figure(s, _paper_points(p, s))
        save("series", f"series-{i:02d}-{_slug(s['experiment'], s['metric'], s['axis'])}.svg", title, svg, f"series-{i}")
    groups: dict[tuple, list] = {}
    for cv in p.get("curves") or []:
        groups.setdefault((cv["experiment"], cv["model"]), []).append(cv)
    for (exp, model), cvs in groups.items():
        if not any(cv["steps"] for cv in cvs):
            continue
        under = sum(bool(cv.get("under_budget")) for cv in cvs)
        save("curves", f"loss-{_slug(exp, model)}.svg", f"Training loss: {model} in {exp}",
             F.curve_figure(exp, model, cvs), f"loss-{exp}-{model}", fits=len(cvs), under=under)
    return out


def _paper_points(p: dict, s: dict) -> dict[str, list[tuple]]:
    """The paper's values along a series' axis, per model, from a catalogue table on that axis."""
    from .catalogue import fmt_value

    out: dict[str, list[tuple]] = {}
    if s["fixed"]:                       # other axes fixed: the table may be at another point
        return out
    for t in p["tables"]:
        if (t["experiment"], t["metric"], t["rows_axis"], t["columns_axis"]) != (s["experiment"], s["metric"], "model", s["axis"]):
            continue
        for line in s["lines"]:
            if line["model"] not in t["rows"]:
                continue
            row = t["cells"][t["rows"].index(line["model"])]
            for label, cell in zip(t["columns"], row):
                x = next((pt["x"] for pt in line["points"] if fmt_value(pt["x"]) == label), None)
                if x is not None and cell.get("paper") is not None:
                    out.setdefault(line["model"], []).append((x, cell["paper"]))
    return out


def join_runs(p: dict, runs: dict | None) -> None:
    """Each claim's MLflow run ids, from the tracking step's job -> run map (verdicts never wait
    for MLflow: the join happens here)."""
    mapping = (runs or {}).get("runs") or {}
    for c in p["claims"]:
        c["runs"] = [mapping[j] for j in c.get("jobs", []) if j in mapping]
    p["runs"] = mapping


def ui_base(tracking: dict | None, ui: str | None) -> str | None:
    """The MLflow UI address for links: the tracking server itself, else the `--ui` setting (the
    `tracking_ui` config key), else where `mlflow ui` listens by default."""
    if not tracking or not tracking.get("experiment_id"):
        return None
    uri = str(tracking.get("uri", ""))
    if uri.startswith("http"):
        return uri.rstrip("/")
    return (ui or DEFAULT_UI).rstrip("/")


def claim_rows(p: dict) -> list[dict]:
    """One flat row per claim for claims.csv and the index."""
    rows = []
    for c in p["claims"]:
        m = c.get("measured") if isinstance(c.get("measured"), dict) else {}
        rows.append({"scale": p["scale"], "paper": p["paper"]["id"], "claim": c["id"], "origin": c.get("origin", "paper"),
                     "kind": c["kind"], "verdict": c["verdict"], "flags": " ".join(c.get("flags") or []),
                     "paper_value": c["paper_value"], "paper_number": c.get("paper"),
                     "measured": c.get("measured_text") or "", "mean": m.get("mean"), "lo": m.get("lo"),
                     "hi": m.get("hi"), "n_seeds": c.get("n_seeds"), "difference": c.get("difference"),
                     "reason": c.get("reason") or "", "source": c.get("source") or ""})
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in CSV_FIELDS})
    path.write_text(buf.getvalue())


def _prepare(p: dict) -> None:
    for c in p["claims"]:
        c.setdefault("origin", "paper")
        c.setdefault("runs", [])
        c.setdefault("difference", None)
    for t in p["tables"]:
        cells = [c for row in t["cells"] for c in row]
        t["any_unconverged"] = any(not c.get("converged", True) for c in cells if "mean" in c)
        t["has_paper"] = any(c.get("paper") is not None for c in cells)


def _md_escape(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(p: dict, figures: dict, tracking: dict | None, base: str | None) -> str:
    """The report in Markdown: the same sections as the HTML, figures as image links."""
    L = [f"# {p['paper']['title']} ({p['paper']['year']})", ""]
    L.append("[All papers](../index.html) · [verdicts.json](verdicts.json) · [claims.csv](claims.csv) · "
             "[HTML report](index.html)" + (f" · [MLflow experiment]({base}/#/experiments/{tracking['experiment_id']}{TRAINING_VIEW})"
                                             if base else ""))
    n_copied = p["jobs"].get("copied", 0)
    copied = f" ({n_copied} copied from a job of the same config)" if n_copied else ""
    L += ["", f"Scale **{p['scale']}** · git `{p['git_sha'][:12]}`{' (uncommitted changes)' if p.get('git_dirty') else ''}"
          f" · judged {p['date']} · {p['jobs']['total']} training jobs{copied}, {p.get('compute_s', 0):.0f} s of compute"]
    if tracking:
        L.append(f"MLflow experiment `{tracking.get('experiment')}` at `{tracking.get('uri')}`")
    L += ["", " · ".join(f"{LABELS[v]}: {n}" for v, n in p["counts"].items()), ""]
    head = ["| claim | verdict | paper | ours | ours − paper |", "|---|---|---|---|---|"]

    def row(c):
        flags = ", ".join(FLAG_LABELS.get(f, f) for f in c.get("flags", []))
        verdict = f"**{LABELS[c['verdict']]}**" + (f" ({flags})" if flags else "") + (f": {c['reason']}" if c.get("reason") else "")
        claim = f"**{c['id']}**: {c['text']} ({c['source']})"
        extras = [x for x in (c.get("ours") and f"Ours: {c['ours']}", c.get("our_bound") and f"Bound ours: {c['our_bound']}",
                              c.get("note") and f"Note: {c['note']}", c.get("requires") and "controls: " + ", ".join(c["requires"]),
                              c.get("runs") and "runs " + ", ".join(r[:8] for r in c["runs"])) if x]
        ours = (c.get("measured_text") or "") + (f" ({c['n_seeds']} seeds)" if c.get("n_seeds") else "")
        return "| " + " | ".join(_md_escape(x) for x in (claim + ("; " + "; ".join(extras) if extras else ""), verdict,
                                                         c["paper_value"], ours, signed(c.get("difference")))) + " |"

    L += ["## Claims", ""] + head + [row(c) for c in p["claims"] if c["origin"] != "ours"]
    ours = [c for c in p["claims"] if c["origin"] == "ours"]
    if ours:
        L += ["", "## Claims that are ours", "",
              "Statements the paper does not make: judged by the same rules, never counted as the paper's.", ""]
        L += head + [row(c) for c in ours]
    if figures["claims"]:
        L += ["", "## The evidence for each claim", ""]
        L += [f"![{f['title']}]({f['file']})" for f in figures["claims"]]
    for t in p["tables"]:
        L += ["", f"## {t['title']}", ""]
        if t["has_paper"]:
            L.append(f"{t['metric']} in {t['experiment']}; each cell: paper \\| reproduced (mean ± 95% half-width)"
                     + (f"; paper values: {t['source']}" if t.get("source") else ""))
        else:
            L.append(f"{t['metric']} in {t['experiment']}; the paper gives no numbers for this table; each cell: reproduced "
                     f"mean ± 95% half-width" + (f" ({t['source']})" if t.get("source") else ""))
        L += ["", "| " + " | ".join([f"{t['rows_axis']} \\ {t['columns_axis']}"] + t["columns"]) + " |",
              "|" + "---|" * (len(t["columns"]) + 1)]
        for r, cells in zip(t["rows"], t["cells"]):
            out = []
            for cell in cells:
                paper = f"{fmt(cell['paper'])} \\| " if cell.get("paper") is not None else ""
                val = "not run" if "not_run" in cell else f"{fmt(cell['mean'])} ± {fmt((cell['hi'] - cell['lo']) / 2)}" + \
                      ("*" if not cell.get("converged", True) else "")
                out.append(paper + val)
            L.append("| " + " | ".join([_md_escape(r)] + out) + " |")
        if t["any_unconverged"]:
            L += ["", "\\* under budget: trained fewer steps than the claims need, or its loss was still falling at the end."]
    if figures["curves"]:
        L += ["", "## Training curves", ""] + [f"![{f['title']}]({f['file']})" for f in figures["curves"]]
    if figures["series"]:
        L += ["", "## Every measured series", ""] + [f"![{f['title']}]({f['file']})" for f in figures["series"]]
    if figures.get("series_left"):
        L += ["", f"{len(figures['series_left'])} more series are not drawn (their values are in verdicts.json, "
                  f"`series`): " + "; ".join(_md_escape(t) for t in figures["series_left"]) + "."]
    L += ["", "## Settings at this scale", ""]
    for eid, e in p["experiments"].items():
        L += [f"### {eid}", "", "```yaml", settings_text(e), "```", ""]
    prov = p.get("provenance")
    if prov:
        L += ["## Provenance", "", f"Every distinct value over the {prov['jobs']} finished training jobs.", "",
              f"- git commit: `{', '.join(prov['git_sha'])}` (uncommitted changes: {', '.join(prov['git_dirty'])})",
              f"- hosts: {', '.join(prov['host'])}", f"- devices: {', '.join(prov['device'])}",
              f"- Python: {', '.join(prov['python'])}",
              "- packages: " + ", ".join(f"{k} {'/'.join(v)}" for k, v in prov["packages"].items()),
              f"- ran: {prov['first_start']} to {prov['last_end']}"]
    if p.get("runs"):
        L += ["", "## Runs", ""]
        for job, rid in sorted(p["runs"].items()):
            L.append(f"- `{job}`: " + (f"[{rid[:8]}]({base}/#/experiments/{tracking['experiment_id']}/runs/{rid}{TRAINING_VIEW})"
                                       if base else f"`{rid}`"))
    if p["jobs"].get("failed"):
        L += ["", "## Jobs without results", ""] + [f"- {f}" for f in p["jobs"]["failed"]]
    return "\n".join(L) + "\n"


def render_paper(verdicts: Path, out_dir: Path, runs_file: Path | None = None, ui: str | None = None) -> Path:
    p = read_json(verdicts)
    tracking = read_json(runs_file) if runs_file and Path(runs_file).exists() else None
    join_runs(p, tracking)
    _prepare(p)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = make_figures(p, out_dir / "figures")
    base = ui_base(tracking, ui)
    exp = f"{base}/#/experiments/{tracking['experiment_id']}" if base else None
    html = _env().get_template("paper.html.j2").render(
        p=p, figures=figures, tracking=tracking, exp_url=exp and exp + TRAINING_VIEW,
        run_url=(lambda r: f"{exp}/runs/{r}{TRAINING_VIEW}") if exp else None,
        claim_fig={f["claim"]: f for f in figures["claims"]})
    (out_dir / "index.html").write_text(html)
    (out_dir / "report.md").write_text(render_markdown(p, figures, tracking, base))
    write_json(out_dir / "verdicts.json", p)
    write_csv(claim_rows(p), out_dir / "claims.csv")
    return out_dir / "index.html"


_SKIP_TASK_KEYS = {"eval_size", "eval_batch"}     # how much is evaluated, not what


def leaderboard(papers: list[dict]) -> list[dict]:
    """For each task, metric and evaluation point, every architecture's measured value across papers,
    side by side and never averaged: a group holds only results whose task settings are identical,
    and shows two or more architectures."""
    groups: dict[str, dict] = {}
    for p in papers:
        for pt in p.get("points") or []:
            e = p["experiments"].get(pt["experiment"])
            if e is None:
                continue
            task = {k: v for k, v in e["task"].items() if k not in _SKIP_TASK_KEYS}
            where = {k: v for k, v in pt["at"].items() if not k.startswith(("model.", "train."))}
            for k, v in where.items():
                if k.startswith("task."):
                    task[k[5:]] = v
            at = {k: v for k, v in where.items() if not k.startswith("task.")}
            model = next((m for m in e["models"] if m["id"] == pt["model"]), {"arch": "?"})
            own = {k: v for k, v in pt["at"].items() if k.startswith(("model.", "train."))}
            key = json.dumps([task, pt["metric"], at], sort_keys=True, default=str)
            g = groups.setdefault(key, {"task": task, "metric": pt["metric"], "at": at, "rows": []})
            g["rows"].append({"paper": p["paper"]["id"], "model": pt["model"], "arch": model.get("arch"),
                              "size": ", ".join(f"{k} {model[k]}" for k in ("n_layer", "d_model", "d_state") if k in model),
                              "steps": e["train"].get("steps"), "own": own, "mean": pt["mean"], "lo": pt["lo"],
                              "hi": pt["hi"], "n": pt["n"], "converged": pt.get("converged", True)})
    out = []
    for g in groups.values():
        if len({r["arch"] for r in g["rows"]}) < 2:
            continue
        g["papers"] = sorted({r["paper"] for r in g["rows"]})
        g["rows"].sort(key=lambda r: -r["mean"])
        settings = ", ".join(f"{k} {fmt(v)}" for k, v in g["task"].items() if k != "name")
        g["title"] = f"{g['task'].get('name', '?')}" + (f" ({settings})" if settings else "") + f": {g['metric']}"
        out.append(g)
    out.sort(key=lambda g: (-len(g["papers"]), g["title"]))
    return out


def render_index(verdict_files: list[Path], scale: str, out: Path) -> Path:
    from .steps import now

    papers = sorted((read_json(f) for f in verdict_files), key=lambda p: p["paper"]["id"])
    for p in papers:
        _prepare(p)
    rows = [r for p in papers for r in claim_rows(p)]
    totals = {v: sum(r["verdict"] == v and r["origin"] == "paper" for r in rows) for v in LABELS}
    totals_ours = {v: sum(r["verdict"] == v and r["origin"] == "ours" for r in rows) for v in LABELS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_env().get_template("index.html.j2").render(
        papers=papers, rows=rows, totals=totals, totals_ours=totals_ours, scale=scale, date=now(),
        boards=leaderboard(papers)))
    write_csv(rows, out.parent / "claims.csv")
    return out


CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1400) -> Path:
    """A PNG of a report page as headless Chromium draws it at `width` CSS px (the README's pictures)."""
    import shutil
    import subprocess
    import tempfile

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("screenshot: no chromium found; install it (Debian: apt-get install chromium) and rerun")
    if not page.exists():
        raise SystemExit(f"screenshot: {page} does not exist; make the reports first (snakemake --cores all --config scale=smoke)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="claimcheck-chromium-") as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={out.resolve()}", page.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"screenshot: chromium failed ({proc.returncode}): {proc.stderr[-500:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workflow.report", description="render reports")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("paper", help="one paper's report from its verdicts.json")
    pp.add_argument("--verdicts", required=True, type=Path)
    pp.add_argument("--runs", type=Path, default=None, help="runs.json of the tracking step (run ids, the MLflow experiment)")
    pp.add_argument("--out-dir", required=True, type=Path)
    pp.add_argument("--ui", default=None, help=f"the MLflow UI's address for links when the store is not a server "
                                               f"(default {DEFAULT_UI}; the config key tracking_ui)")
    ip = sub.add_parser("index", help="the cross-paper index of one scale")
    ip.add_argument("--scale", required=True)
    ip.add_argument("--out", required=True, type=Path)
    ip.add_argument("verdicts", nargs="*", type=Path)
    sp = sub.add_parser("screenshot", help="PNGs of the index and one paper's report, as a browser draws them "
                                           "(the README's pictures; needs chromium)")
    sp.add_argument("--scale", default="smoke")
    sp.add_argument("--paper", default=None, help="the paper whose report to draw (default: the first in the folder)")
    sp.add_argument("--reports", type=Path, default=None, help="the reports folder (default reports/<scale>)")
    sp.add_argument("--out", type=Path, default=Path("docs/img"))
    sp.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)
    if args.cmd == "screenshot":
        reports = args.reports or Path("reports") / args.scale
        paper = args.paper or next((d.name for d in sorted(reports.iterdir()) if (d / "index.html").exists()), "")
        for page, name in ((reports / "index.html", "index.png"), (reports / paper / "index.html", "report.png")):
            print(f"wrote {screenshot(page, args.out / name, args.width)}", file=sys.stderr)
        return 0
    if args.cmd == "paper":
        path = render_paper(args.verdicts, args.out_dir, args.runs, args.ui)
    else:
        path = render_index(args.verdicts, args.scale, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

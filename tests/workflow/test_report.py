"""Report rendering: escaping, the claims table verdict first, a figure per claim, training curves,
paper values beside ours, navigation and exports, settings as YAML, Markdown with the same
sections, and the cross-paper index (every claim, sortable and filterable, and the leaderboard)."""
from __future__ import annotations

import csv
import json
import re

from workflow.figures import title_words, words
from workflow.steps import write_json
from workflow.judge import judge_paper
from workflow.report import leaderboard, render_index, render_paper

from .fakes import make_paper, plant

EVIL = "<script>alert('x')</script>"


def build(tmp_path, monkeypatch, tables=None):
    monkeypatch.chdir(tmp_path)
    extra = {} if tables is None else {"tables": tables}
    lp = make_paper(tmp_path, claims=[
        {"id": "c1", "text": f"loss is small {EVIL}", "source": "Figure <i>2</i>", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.0}},
         "op": "<", "value": 2.0, "paper": 0.9},
        {"id": "c2", "text": "a beats b", "source": "Table 1", "kind": "ordering",
         "measure": {"experiment": "exp", "metric": "loss", "at": {"task.sparsity": 0.9}}, "order": ["b", "a"],
         "requires": ["c1"]},
        {"id": "c3", "text": "a is small at a sparsity the paper never tried", "source": "Figure 2", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.5}},
         "op": "<", "value": 2.0, "ours": "the paper never tries this sparsity"},
        {"id": "c4", "text": "loss grows with sparsity", "source": "Figure 3", "kind": "trend",
         "measure": {"experiment": "exp", "model": "a", "metric": "loss"}, "along": "task.sparsity",
         "direction": "increasing", "requires": ["c1"]},
    ], **extra)
    plant(tmp_path, lp, "small", lambda m, p, s: {"loss": {"a": 1.0, "b": 2.0}[m] + 0.1 * s + p["task.sparsity"],
                                                   "features_represented": 3.0})
    write_json(tmp_path / "runs.json", {"uri": "sqlite:///mlflow.db", "experiment": "fake/small", "experiment_id": "7",
                                        "runs": {j.dir: f"run{i:030d}" for i, j in enumerate(lp.jobs("small"))}})
    v = judge_paper(lp.path, "small", tmp_path)
    write_json(tmp_path / "verdicts.json", v)
    return v


def test_verdicts_wait_for_no_mlflow_and_carry_what_the_report_draws(tmp_path, monkeypatch):
    v = build(tmp_path, monkeypatch)
    assert [c["verdict"] for c in v["claims"]] == ["reproduced"] * 4
    assert "runs" not in v and all("runs" not in c for c in v["claims"])     # joined by the report, not the judge
    c1 = v["claims"][0]
    assert c1["paper"] == 0.9 and abs(c1["difference"] - (c1["measured"]["mean"] - 0.9)) < 1e-12
    assert len(c1["plot"]["points"][0]["seeds"]) == 3
    assert {"y": 2.0, "label": "claim: < 2"} in c1["plot"]["lines"]
    trend = v["claims"][3]["plot"]
    assert trend["axis"] == "task.sparsity" and not trend["categorical"] and [p["x"] for p in trend["points"]] == [0.0, 0.5, 0.9]
    assert v["claims"][1]["difference"] is None                                 # an ordering has no paper number
    assert len(v["curves"]) == len(v["curves"]) > 0 and v["curves"][0]["steps"] == [2, 4, 6, 8, 10]
    assert any(p["metric"] == "loss" and p["model"] == "a" and p["n"] == 3 for p in v["points"])


def test_paper_report_escapes_and_shows_everything(tmp_path, monkeypatch):
    v = build(tmp_path, monkeypatch)
    out = render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json", ui="http://localhost:5001")
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A &lt;b&gt;fake&lt;/b&gt; paper" in html and "Figure &lt;i&gt;2&lt;/i&gt;" in html
    assert '<meta name="viewport"' in html
    # the claims table: verdict second, paper, ours, difference; fixed layout so it fits the window
    head = re.search(r'<table class="claims">.*?</thead>', html, re.S).group(0)
    assert [h for h in re.findall(r"<th[^>]*>([^<]*)</th>", head)] == [
        "claim", "verdict", "paper", "ours (mean [95% interval])", "ours − paper"]
    assert "white-space:nowrap}" not in html.split("table.claims")[1].split("}")[0]
    assert "+0.2" in html                                       # c1: ours (1.1) minus the paper's 0.9
    # one SVG per claim, per series and per fit group, inline and as files
    figs = sorted(p.name for p in (tmp_path / "rep/figures").iterdir())
    assert sum(f.startswith("claim-") for f in figs) == 4
    assert sum(f.startswith("series-") for f in figs) == len(v["series"]) > 0
    assert [f for f in figs if f.startswith("loss-")] == ["loss-exp-a.svg", "loss-exp-b.svg"]
    assert html.count("data:image/svg+xml;base64,") == len(figs)
    assert 'href="#fig-c1"' in html and 'id="fig-c1"' in html
    svg = (tmp_path / "rep/figures/claim-c4.svg").read_text()
    assert "sparsity (task)<" in svg and ">C4<" in svg and "task.sparsity" not in svg     # words, not keys
    # the table puts the paper's value beside the measured one; a table without them says so
    assert '<span class="paper">1</span> | 1.1 ± 0.2484' in html
    # navigation and exports
    for href in ("../index.html", "verdicts.json", "claims.csv", "report.md", "figures/",
                 "http://localhost:5001/#/experiments/7?workflowType=machine_learning"):
        assert f'href="{href}"' in html
    # run ids joined here; links open MLflow 3's model-training view, not its GenAI one
    assert "http://localhost:5001/#/experiments/7/runs/run00000" in html and "workflowType=machine_learning" in html
    exported = json.loads((tmp_path / "rep/verdicts.json").read_text())
    assert exported["claims"][0]["runs"] and exported["runs"]
    rows = list(csv.DictReader((tmp_path / "rep/claims.csv").open()))
    assert [r["claim"] for r in rows] == ["c1", "c2", "c3", "c4"] and rows[0]["paper_number"] == "0.9"
    assert rows[2]["origin"] == "ours" and rows[0]["verdict"] == "reproduced"
    # settings as YAML, not Python reprs
    settings = html.split('id="settings"')[1]
    assert "steps: 10" in settings and "{&#39;" not in settings and "{'" not in settings
    # claims that are ours sit apart, after the paper's, with their reason; controls are named
    assert html.index("Claims that are ours") < html.index('id="claim-c3"')
    assert html.index('id="claim-c2"') < html.index("Claims that are ours")
    assert "Ours: the paper never tries this sparsity" in html and 'href="#claim-c1">c1</a>' in html


def test_series_figures_are_capped_with_the_asked_ones_first_and_the_rest_listed(tmp_path, monkeypatch):
    import workflow.report as R

    v = build(tmp_path, monkeypatch)
    extra = [{**v["series"][0], "metric": f"other_{i}", "fixed": {}} for i in range(5)]   # no claim reads these
    v["series"] = extra + v["series"]
    write_json(tmp_path / "verdicts.json", v)
    monkeypatch.setattr(R, "MAX_SERIES_FIGURES", len(v["series"]) - 3)
    out = render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json")
    figs = sorted(p.name for p in (tmp_path / "rep/figures").iterdir() if p.name.startswith("series-"))
    assert len(figs) == len(v["series"]) - 3
    n_loss = sum(x["metric"] == "loss" for x in v["series"])
    assert n_loss and sum("-loss-" in f for f in figs) == n_loss              # every series a claim reads, drawn
    html = out.read_text()
    listed = html.split("3 more series are not drawn")[1].split("</p>")[0]
    assert "other 4 by" in listed and "features represented by" in listed and "loss" not in listed.lower()
    md = (tmp_path / "rep/report.md").read_text()
    assert "3 more series are not drawn" in md


def test_markdown_has_the_html_sections(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch)
    render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json")
    md = (tmp_path / "rep/report.md").read_text()
    assert "| 1 \\| 1.1 ± 0.2484 |" in md
    assert "| claim | verdict | paper | ours | ours − paper |" in md
    assert md.index("## Claims that are ours") < md.index("**c3**")
    for section in ("## The evidence for each claim", "## Training curves", "## Every measured series",
                    "## Settings at this scale", "## Runs"):
        assert section in md
    assert "![C4](figures/claim-c4.svg)" in md
    assert "```yaml" in md and "steps: 10" in md
    assert "http://127.0.0.1:5000/#/experiments/7/runs/run" in md              # the default UI address
    for link in re.findall(r"\]\(([^)#]+)\)", md):
        if not link.startswith("http"):
            assert (tmp_path / "rep" / link).exists() or link == "../index.html", link


def test_a_table_without_paper_values_does_not_promise_them(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch, tables=[{"id": "t", "title": "T", "experiment": "exp", "metric": "loss",
                                          "rows": "model", "columns": "task.sparsity"}])
    html = render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json").read_text()
    t = html.split('id="table-t"')[1]
    assert "The paper gives no numbers for this table" in t and "Each cell: <span" not in t


def test_index_lists_every_claim_with_totals_filters_and_exports(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch)
    out = render_index([tmp_path / "verdicts.json"], "small", tmp_path / "index.html")
    html = out.read_text()
    assert 'href="fake/index.html"' in html and "A &lt;b&gt;fake&lt;/b&gt; paper" in html
    assert html.count('<tr data-paper="fake"') == 4 and 'href="fake/index.html#claim-c2"' in html
    assert 'id="q"' in html and 'id="fv"' in html and "sortable" in html and "<script>" in html
    assert 'href="claims.csv"' in html and 'href="fake/verdicts.json"' in html
    totals = html.split('id="totals"')[1].split("</div>")[0]
    assert "reproduced</span> 3" in totals                       # the paper's three; c3 is ours
    rows = list(csv.DictReader((tmp_path / "claims.csv").open()))
    assert len(rows) == 4 and {r["paper"] for r in rows} == {"fake"}


def test_leaderboard_sets_architectures_side_by_side_at_equal_settings_only():
    def paper(pid, arch, task, mean):
        return {"paper": {"id": pid}, "experiments": {"e": {"task": task, "train": {"steps": 5},
                                                            "models": [{"id": "m", "arch": arch, "d_model": 8}]}},
                "points": [{"experiment": "e", "model": "m", "at": {}, "metric": "accuracy", "mean": mean,
                            "lo": mean, "hi": mean, "n": 1}]}

    copy = {"name": "copy", "seq_len": 20, "eval_size": 100}
    boards = leaderboard([paper("p1", "transformer", copy, 0.9), paper("p2", "mamba", {**copy, "eval_size": 50}, 0.4),
                          paper("p3", "lstm", {**copy, "seq_len": 40}, 0.2)])
    assert len(boards) == 1                     # seq_len 40 is another setting: never compared
    g = boards[0]
    assert [r["arch"] for r in g["rows"]] == ["transformer", "mamba"] and g["papers"] == ["p1", "p2"]
    assert leaderboard([paper("p1", "lstm", copy, 0.9), paper("p2", "lstm", copy, 0.4)]) == []   # one architecture


def test_words_turn_keys_into_labels():
    assert words("quote.input_gain") == "input gain (probe quote)"
    assert words("task.n") == "n (task)" and words("probe.layer") == "layer"
    assert words("bits_per_char") == "bits per char" and words("model.process_steps") == "process steps (model)"
    assert title_words("accuracy_falls_with_n") == "Accuracy falls with n"

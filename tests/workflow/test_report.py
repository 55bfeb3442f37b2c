"""Report rendering: escaping, tables side by side, figures, the index."""
from __future__ import annotations

import json

from workflow.jobs import write_json
from workflow.judge import judge_paper
from workflow.report import render_index, render_paper

from .fakes import make_paper, plant

EVIL = "<script>alert('x')</script>"


def build(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lp = make_paper(tmp_path, claims=[
        {"id": "c1", "text": f"loss is small {EVIL}", "source": "Figure <i>2</i>", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.0}},
         "op": "<", "value": 2.0},
        {"id": "c2", "text": "a beats b", "source": "Table 1", "kind": "ordering",
         "measure": {"experiment": "exp", "metric": "loss", "at": {"task.sparsity": 0.9}}, "order": ["b", "a"],
         "requires": ["c1"]},
        {"id": "c3", "text": "a is small at a sparsity the paper never tried", "source": "Figure 2", "kind": "threshold",
         "measure": {"experiment": "exp", "model": "a", "metric": "loss", "at": {"task.sparsity": 0.5}},
         "op": "<", "value": 2.0, "ours": "the paper never tries this sparsity"},
    ])
    plant(tmp_path, lp, "small", lambda m, p, s: {"loss": {"a": 1.0, "b": 2.0}[m] + 0.1 * s + p["task.sparsity"],
                                                   "features_represented": 3.0})
    write_json(tmp_path / "runs.json", {"uri": "sqlite:///mlflow.db", "experiment": "fake/small",
                                        "runs": {j.dir: f"run{i:030d}" for i, j in enumerate(lp.jobs("small"))}})
    v = judge_paper(lp.path, "small", tmp_path, tmp_path / "runs.json")
    write_json(tmp_path / "verdicts.json", v)
    return v


def test_paper_report_escapes_and_shows_everything(tmp_path, monkeypatch):
    v = build(tmp_path, monkeypatch)
    assert [c["verdict"] for c in v["claims"]] == ["reproduced", "reproduced", "reproduced"]
    assert v["counts"]["reproduced"] == 2 and v["counts_ours"]["reproduced"] == 1
    out = render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json")
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A &lt;b&gt;fake&lt;/b&gt; paper" in html and "Figure &lt;i&gt;2&lt;/i&gt;" in html
    assert html.count("data:image/png;base64,") == len(v["series"]) > 0
    assert (tmp_path / "rep/figures").is_dir() and len(list((tmp_path / "rep/figures").glob("*.png"))) == len(v["series"])
    # the table puts the paper's value beside the measured one
    assert '<span class="paper">1</span> | 1.1 ± 0.2484' in html
    assert "run00000" in html                                    # run ids of the claims
    md = (tmp_path / "rep/report.md").read_text()
    assert "| 1 \\| 1.1 ± 0.2484 |" in md
    assert "**c1**" in md and "reproduced" in md
    # claims that are ours sit apart, after the paper's, with their reason; controls are named
    assert html.index("Claims that are ours") < html.index('id="claim-c3"')
    assert html.index('id="claim-c2"') < html.index("Claims that are ours")
    assert "Ours: the paper never tries this sparsity" in html and "controls: c1" in html
    assert md.index("## Claims that are ours") < md.index("**c3**")


def test_index_lists_papers_with_counts(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch)
    out = render_index([tmp_path / "verdicts.json"], "small", tmp_path / "index.html")
    html = out.read_text()
    assert 'href="fake/index.html"' in html and "A &lt;b&gt;fake&lt;/b&gt; paper" in html
    v = json.loads((tmp_path / "verdicts.json").read_text())
    assert v["counts"]["reproduced"] == 2


def test_a_paper_with_nothing_to_plot_still_gets_its_figures_folder(tmp_path, monkeypatch):
    """The report rule declares figures/ as an output: it must exist with no figure in it."""
    v = build(tmp_path, monkeypatch)
    v["series"] = []
    write_json(tmp_path / "verdicts.json", v)
    render_paper(tmp_path / "verdicts.json", tmp_path / "rep", tmp_path / "runs.json")
    assert (tmp_path / "rep/figures").is_dir() and not list((tmp_path / "rep/figures").iterdir())

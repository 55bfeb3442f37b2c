"""Committed verdict summaries and the README's catalogue table generated from them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.summary import END, START, save, summarize, table, update_readme

ROOT = Path(__file__).resolve().parents[2]


def verdicts(pid="p", scale="small"):
    claim = {"id": "c", "kind": "threshold", "origin": "paper", "verdict": "reproduced", "flags": ["under_budget"],
             "paper_value": ">= 0.9", "measured_text": "0.95 [0.93, 0.97]", "n_seeds": 3, "reason": "under budget",
             "measured": {"big": "not kept"}}
    return {"paper": {"id": pid, "title": "T"}, "scale": scale, "date": "2026-12-04T12:00:00", "git_sha": "abcdef123456",
            "git_dirty": False, "counts": {"reproduced": 1, "not_reproduced": 0, "inconclusive": 1, "not_run": 0},
            "counts_ours": {"reproduced": 0, "not_reproduced": 0, "inconclusive": 1, "not_run": 0},
            "claims": [claim, {**claim, "id": "d", "verdict": "inconclusive", "flags": ["one_seed"]},
                       {**claim, "id": "e", "origin": "ours", "verdict": "inconclusive", "flags": []}]}


def test_save_keeps_verdicts_and_flags_only_and_the_table_counts_them(tmp_path):
    for pid in ("b", "a"):
        f = tmp_path / "results" / "small" / pid / "verdicts.json"
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps(verdicts(pid)))
    saved = save("small", [], tmp_path)
    assert [p.name for p in saved] == ["a.json", "b.json"]
    s = json.loads(saved[0].read_text())
    assert "measured" not in s["claims"][0] and s["claims"][0]["flags"] == ["under_budget"]
    rows = table(tmp_path).splitlines()
    assert rows[2] == "| `a` | small | 2 | 1 | 0 | 1 | 0 | 1 | 1 | 0 / 0 / 1 / 0 | 2026-12-04, `abcdef12` |"
    with pytest.raises(SystemExit) as e:
        save("small", ["nope"], tmp_path)
    assert "snakemake --cores all nope --config scale=small" in str(e.value)
    assert summarize(verdicts())["counts_ours"]["inconclusive"] == 1


def test_update_readme_rewrites_between_the_markers_and_check_reports_a_stale_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\n\nafter\n")
    assert update_readme(readme, tmp_path, check=True) is False
    assert "old" in readme.read_text()                                  # --check writes nothing
    assert update_readme(readme, tmp_path) is False
    assert update_readme(readme, tmp_path, check=True) is True
    assert readme.read_text().endswith(f"{END}\n\nafter\n")


def test_the_readme_table_matches_the_committed_summaries():
    assert update_readme(ROOT / "README.md", ROOT, check=True), \
        "README.md's catalogue table differs from summaries/: run python -m workflow.summary table"

"""The previous release's job records, rewritten once so that its finished jobs do not rerun
(workflow/launch/records.py). The end-to-end check on a real run is in tests/e2e/test_smoke_pipeline.py."""
from __future__ import annotations

import json
from base64 import urlsafe_b64encode
from pathlib import Path

from workflow.launch import records
from workflow.launch.records import UPGRADES, output_of, upgrade, upgraded

FIT = "results/small/p/e/m/task.x=1/seed0"


def old_record(rule: str, output: str) -> dict:
    params = ["''", "'{\"a\": 1}'"] + ([repr(str(Path(output).parent))] if UPGRADES[rule][2] else [])
    return {"rule": rule, "code": UPGRADES[rule][0], "params": params, "record_format_version": 6,
            "shellcmd": f"python -m workflow.run {rule} --x", "input": [], "incomplete": False}


def write(metadata: Path, output: str, record: dict, piece: int = 0) -> Path:
    b64 = urlsafe_b64encode(output.encode()).decode()
    parts = [b64] if not piece else [b64[i:i + piece] for i in range(0, len(b64), piece)]
    path = metadata.joinpath(*["@" + p for p in parts[:-1]], parts[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_a_record_names_its_output_even_when_its_name_is_cut_into_pieces(tmp_path):
    out = f"{FIT}/eval.json"
    assert output_of(write(tmp_path, out, {}), tmp_path) == out
    assert output_of(write(tmp_path, out, {}, piece=10), tmp_path) == out


def test_the_previous_text_becomes_this_one_and_the_fit_folder_leaves_the_params():
    rec = upgraded(old_record("evaluate", f"{FIT}/eval.json"), f"{FIT}/eval.json")
    assert rec["code"] == UPGRADES["evaluate"][1]
    assert rec["params"] == ["''", "'{\"a\": 1}'"]            # the folder is derived now: Snakemake records it not
    assert rec["shellcmd"] == "python -m workflow.launch evaluate --x"
    rec = upgraded(old_record("judge", "results/small/p/verdicts.json"), "results/small/p/verdicts.json")
    assert rec["code"] == UPGRADES["judge"][1] and rec["params"] == ["''", "'{\"a\": 1}'"]


def test_any_other_record_is_left_as_it_is():
    out = f"{FIT}/train.json"
    assert upgraded({**old_record("train", out), "code": "python -m workflow.run train --older"}, out) is None
    assert upgraded({**old_record("train", out), "record_format_version": 5}, out) is None
    assert upgraded({**old_record("train", out), "rule": "somebody_elses"}, out) is None
    # the folder that should leave the params is not there: not the previous release's record
    assert upgraded({**old_record("train", out), "params": ["''"]}, out) is None
    assert upgraded(old_record("train", out), None) is None


def test_upgrade_rewrites_once_and_then_only_reads_its_stamp(tmp_path):
    meta = tmp_path / ".snakemake" / "metadata"
    paths = {rule: write(meta, f"{FIT}/{rule}.json", old_record(rule, f"{FIT}/{rule}.json")) for rule in UPGRADES}
    other = write(meta, f"{FIT}/other.json", {"rule": "train", "code": "something else", "record_format_version": 6})
    said = []
    assert upgrade(tmp_path / ".snakemake", log=said.append) == len(UPGRADES)
    assert "7 of Snakemake's job records" in said[0]
    for rule, path in paths.items():
        assert json.loads(path.read_text())["code"] == UPGRADES[rule][1]
    assert json.loads(other.read_text())["code"] == "something else"
    assert (tmp_path / ".snakemake" / records.STAMP).read_text().strip() == records.VERSION
    path = paths["train"]
    path.write_text(json.dumps(old_record("train", f"{FIT}/train.json")))
    assert upgrade(tmp_path / ".snakemake", log=said.append) == 0          # stamped: not looked at again
    assert json.loads(path.read_text())["code"] == UPGRADES["train"][0]
    assert list(meta.rglob(".*.tmp")) == []


def test_a_fresh_clone_has_nothing_to_upgrade(tmp_path):
    assert upgrade(tmp_path / ".snakemake", log=print) == 0
    assert (tmp_path / ".snakemake" / records.STAMP).exists()

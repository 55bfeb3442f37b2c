"""The probe stage without Snakemake: a trained model's hidden states are probed once for every
probe of its experiment, the probe file's points become measurements addressed by probe axes,
and the judge and tables read them."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from workflow import schema as S
from workflow.catalogue import load_paper
from workflow.judge import judge_claim, judge_table, series
from workflow.results import collect

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

DOC = {
    "paper": {"id": "probe_fake", "title": "Probes", "year": 2024},
    "experiments": [{
        "id": "chars",
        "task": {"name": "python_source", "seq_len": 32, "eval_size": 16, "files": 30},
        "models": [{"id": "tf", "arch": "transformer", "n_layer": 2, "n_head": 2, "d_model": 16, "pos": "learned",
                    "max_len": 32}],
        "train": {"steps": 30, "batch_size": 8, "lr": 3e-3},
        "evaluate": {"metrics": ["bits_per_char"]},
        "probes": [
            {"id": "quote", "kind": "linear", "target": "in_string", "positions": 1500},
            {"id": "col", "kind": "linear", "target": "column", "positions": 1500},
            {"id": "cells", "kind": "sparse", "target": "indent", "positions": 1500, "params": {"ks": [1, "all"]}},
            {"id": "lens", "kind": "future_token", "positions": 1500, "params": {"offsets": [0, 2]}},
            {"id": "geo", "kind": "geometry", "layers": [2], "positions": 1500},
        ],
        "seeds": 1,
    }],
    "claims": [{"id": "c", "text": "t", "source": "Figure 1", "kind": "threshold",
                "measure": {"experiment": "chars", "model": "tf", "metric": "quote.score", "at": {"probe.layer": 2}},
                "op": ">", "value": 0.0}],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    path = tmp / "catalogue" / "probe_fake.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(DOC, sort_keys=False))
    lp = load_paper(path)
    (job,) = lp.jobs("small")
    d = tmp / job.dir
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=tmp, env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=300)
    for args in (("workflow.train", "--config", json.dumps(job.config), "--out", str(d), "--device", "cpu"),
                 ("workflow.evaluate", "--dir", str(d), "--config", json.dumps(job.eval_config), "--device", "cpu"),
                 ("workflow.probe", "--dir", str(d), "--config", json.dumps(job.probe_config), "--device", "cpu")):
        p = run(*args)
        assert p.returncode == 0, p.stderr[-3000:]
    return tmp, lp, job


def test_probe_file_has_every_probe_with_its_axes(trained):
    tmp, lp, job = trained
    pr = json.loads((tmp / job.dir / "probe.json").read_text())
    assert pr["status"] == "ok" and set(pr["probes"]) == {"quote", "col", "cells", "lens", "geo"}
    quote = pr["probes"]["quote"]["points"]
    assert [p["at"] for p in quote] == [{"probe.layer": 1}, {"probe.layer": 2}, {}]
    assert set(quote[0]["metrics"]) == {"quote.score", "quote.control", "quote.selectivity", "quote.input_gain"}
    assert 0 <= quote[0]["metrics"]["quote.score"] <= 1
    lens_at = [p["at"] for p in pr["probes"]["lens"]["points"]]
    assert {"probe.layer": 2, "probe.offset": 2} in lens_at and {"probe.offset": 0} in lens_at
    assert [p["at"] for p in pr["probes"]["geo"]["points"]] == [{"probe.layer": 2}]
    # each stat's chance level (a constant, or the probe's own baseline) and facts reach the judge
    assert quote[0]["chance"]["quote.score"] == quote[-1]["metrics"]["quote.baseline"]
    assert quote[-1]["chance"]["quote.gain"] == 0.0 and "quote.control" not in quote[0]["chance"]
    assert pr["probes"]["quote"]["metric_facts"]["quote.score"]["better"] == "higher"
    assert pr["probes"]["lens"]["metric_facts"]["lens.best_layer"]["better"] == "none"
    for pid, res in pr["probes"].items():                       # one file per probe as well
        one = json.loads((tmp / job.dir / f"probe-{pid}.json").read_text())
        assert one["id"] == pid and one["points"] == res["points"] and one["kind"] == res["kind"]
    assert job.probe_config["layers"] == [1, 2]


def test_judge_reads_probe_metrics_on_their_axes(trained):
    tmp, lp, job = trained
    ms = collect(lp, "small", tmp)
    out = judge_claim(lp.spec.claims[0], ms)
    # one seed decides nothing; the value still reaches the judge
    assert out["verdict"] == "inconclusive" and out["n_seeds"] == 1 and "one seed" in out["reason"]
    trend = S.TrendClaim.model_validate({
        "id": "t", "text": "t", "source": "s", "kind": "trend", "along": "probe.offset", "direction": "decreasing",
        "measure": {"experiment": "chars", "model": "tf", "metric": "lens.accuracy", "at": {"probe.layer": 1}}})
    assert judge_claim(trend, ms)["verdict"] != "not_run"
    scalar = S.ThresholdClaim.model_validate({
        "id": "s", "text": "t", "source": "s", "kind": "threshold", "op": ">=", "value": 1,
        "measure": {"experiment": "chars", "model": "tf", "metric": "quote.best_layer"}})
    got = judge_claim(scalar, ms)
    assert got["measured"]["mean"] in (1, 2) and got["verdict"] == "inconclusive"   # layers are 1 and 2; one seed
    # the evaluation metric and the probes' scalars share the point {}: both are there
    plain = S.ThresholdClaim.model_validate({
        "id": "p", "text": "t", "source": "s", "kind": "threshold", "op": ">", "value": 0,
        "measure": {"experiment": "chars", "model": "tf", "metric": "bits_per_char"}})
    got = judge_claim(plain, ms)
    assert got["measured"]["mean"] > 0 and got["verdict"] == "inconclusive"
    table = S.Table.model_validate({"id": "x", "title": "x", "experiment": "chars", "metric": "cells.score",
                                    "rows": "model", "columns": "probe.k"})
    t = judge_table(table, ms)
    assert t["columns"] == ["1", "all"] and all("mean" in c for c in t["cells"][0])
    metrics = {s["metric"] for s in series(ms)}
    assert {"quote.score", "lens.accuracy", "cells.score"} <= metrics


def test_a_failed_training_is_not_probed(trained, tmp_path):
    tmp, lp, job = trained
    d = tmp_path / "job"
    d.mkdir()
    (d / "train.json").write_text(json.dumps({"status": "diverged", "diverged_at": 3, "config_hash": "x"}))
    p = subprocess.run([sys.executable, "-m", "workflow.probe", "--dir", str(d), "--config", "{}", "--device", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0
    pr = json.loads((d / "probe.json").read_text())
    assert pr["status"] == "not_run" and "diverged at step 3" in pr["reason"]

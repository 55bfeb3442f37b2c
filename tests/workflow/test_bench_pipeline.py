"""`python -m bench pipeline`: the parts that read job records and Snakemake's files, and a
small DAG-scale run end to end (it prints ratios; nothing here times anything against a limit)."""
from __future__ import annotations

import json

from bench import cli as bench
from bench import pipeline as bp


def test_compute_and_rule_times_are_read_from_the_job_records(tmp_path):
    job = tmp_path / "results/smoke/p/e/m/default/seed0"
    job.mkdir(parents=True)
    (job / "train.json").write_text(json.dumps({"compute_s": 2.0}))
    (job / "eval.json").write_text(json.dumps({"compute_s": 0.5}))
    other = tmp_path / "results/smoke/p/e/m/default/seed1"
    other.mkdir(parents=True)
    (other / "train.json").write_text(json.dumps({"compute_s": 4.0}))
    (other / "probe.json").write_text(json.dumps({"compute_s": 1.0}))
    (other / "eval.json").write_text("{not json")                   # half-written: skipped, not a crash
    c = bp._compute_of(tmp_path / "results/smoke")
    assert c == {"train": 6.0, "evaluate": 0.5, "probe": 1.0, "total": 7.5, "train_jobs": 2, "median_train_s": 3.0}
    b = tmp_path / "benchmarks/smoke/p"
    (b / "e").mkdir(parents=True)
    head = "s\th:m:s\tmax_rss\n"
    (b / "track.tsv").write_text(head + "1.5\t0:00:01\t100\n")
    (b / "e" / "train.tsv").write_text(head + "2.0\t0:00:02\t100\n")
    (b / "train.tsv").write_text(head + "3.0\t0:00:03\t100\n")
    (b / "empty.tsv").write_text(head)
    assert bp._bench_times(tmp_path / "benchmarks") == {"track": 1.5, "train": 5.0}


def test_job_count_is_read_from_a_dry_run():
    out = "Job stats:\njob         count\n--------  -------\nall             1\nmake           40\ntotal          41\n"
    assert bp._count_jobs(out) == 41
    assert bp._count_jobs("Nothing to be done.") is None


def test_dag_scale_runs_on_a_generated_catalogue(tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    assert bench.main(["pipeline", "--parts", "dag", "--dag-jobs", "60", "--dag-repeats", "2", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["dag"]["rows"][0]
    # the generated catalogue expands to about the asked number of jobs; the plain Snakefile to as many
    assert 40 <= row["jobs"] <= 80
    assert row["engine_cold_s"] > 0 and row["plain_s"] > 0 and row["ratio_warm"] > 0
    assert row["engine_rss_mb"] > 10 and row["plain_rss_mb"] > 10
    assert row["repeats"] == 2 and all(len(v) == 2 for v in row["samples_s"].values())
    assert abs(row["engine_cold_s"] - min(row["samples_s"]["cold"])) < 1e-3
    assert "dag" in capsys.readouterr().out

"""`python -m bench catalogue | verdicts | compare`: where a run's time goes, what moved between two
runs, and the side-by-side wall time of two commits (these read and run; they time nothing
against a limit)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import catalogue as BC
from bench import cli as bench
from bench import compare as CMP
from bench import verdicts as V

ROOT = Path(__file__).resolve().parents[2]

TOY = {"model": {"activation": "relu", "arch": "toy_autoencoder", "hidden": 5}, "seed": 0,
       "task": {"importance_decay": 0.7, "n_features": 20, "name": "superposition", "sparsity": 0.9},
       "train": {"batch_size": 64, "lr": 0.001, "steps": 100}}
HEAD = "s\th:m:s\tmax_rss\n"


def _job(root, scale, rel, cfg, steps, compute_s, walls):
    d = root / "results" / scale / rel
    d.mkdir(parents=True)
    (d / "train.json").write_text(json.dumps({"status": "ok", "steps_done": steps, "compute_s": compute_s,
                                              "config": cfg}))
    b = root / "benchmarks" / scale / rel
    b.mkdir(parents=True)
    for kind, wall in walls.items():
        (b / f"{kind}.tsv").write_text(HEAD + f"{wall}\t0:00:01\t100\n")


def _fake_run(root):
    _job(root, "smoke", "p1/e/toy/default/seed0", TOY, 100, 0.5, {"train": 1.0, "evaluate": 0.5})
    _job(root, "smoke", "p1/e/toy/default/seed1", {**TOY, "seed": 1}, 100, 1.5, {"train": 2.0, "evaluate": 0.5})
    _job(root, "smoke", "p2/e/mlp/default/seed0",
         {**TOY, "model": {"arch": "mlp_encoder"}, "task": {"name": "no_such_task"}}, 50, 1.0, {"train": 3.0})
    for p, wall in (("p1", 1.0), ("p2", 0.5)):
        (root / "benchmarks/smoke" / p / "report.tsv").write_text(HEAD + f"{wall}\t0:00:01\t100\n")


def test_catalogue_splits_time_by_kind_paper_and_arch(tmp_path):
    _fake_run(tmp_path)
    r = BC.summarize(tmp_path, "smoke", flops=False)
    assert r["job_s"] == pytest.approx(8.5)
    assert {k: v["job_s"] for k, v in r["kinds"].items()} == {"train": 6.0, "evaluate": 1.0, "report": 1.5}
    assert sum(v["share"] for v in r["kinds"].values()) == pytest.approx(1.0)
    toy = next(a for a in r["archs"] if a["arch"] == "toy_autoencoder")
    assert toy["train_jobs"] == 2 and toy["steps"] == 200
    assert toy["steps_per_s"] == pytest.approx(200 / 2.0)          # steps over the loops' own seconds
    assert toy["share"] == pytest.approx((3.0 + 1.0) / 8.5)        # its train and evaluate jobs
    assert [p["paper"] for p in r["papers"]] == ["p1", "p2"]        # the most time first
    assert r["papers"][0]["job_s"] == pytest.approx(5.0)
    assert "matmul_flop_per_s" not in toy and r["peak"] is None
    md = BC.table(r)
    assert "| toy_autoencoder | 1 | 2 | 100 |" in md and "| train | 3 | 6.0 s | 70.6% |" in md


def test_a_copied_fit_counts_its_job_time_but_not_its_steps(tmp_path):
    """A fit copied from a job of the same config (rules/train.smk, copy_fit) ran no steps: the
    architecture's steps and steps/s are the job it copies; its seconds of job time still count."""
    _fake_run(tmp_path)
    _job(tmp_path, "smoke", "p3/e/toy/default/seed0", TOY, 100, 0.5, {"train": 0.1, "evaluate": 0.5})
    rec = tmp_path / "results/smoke/p3/e/toy/default/seed0/train.json"
    rec.write_text(json.dumps({**json.loads(rec.read_text()), "copy_of": "results/smoke/p1/e/toy/default/seed0"}))
    r = BC.summarize(tmp_path, "smoke", flops=False)
    toy = next(a for a in r["archs"] if a["arch"] == "toy_autoencoder")
    assert toy["train_jobs"] == 2 and toy["steps"] == 200 and toy["steps_per_s"] == pytest.approx(200 / 2.0)
    assert toy["share"] == pytest.approx((3.0 + 1.0 + 0.6) / 9.1)


def test_flops_are_counted_per_config_and_held_against_the_peak(tmp_path):
    _fake_run(tmp_path)
    logs = []
    r = BC.summarize(tmp_path, "smoke", flops=True, log=logs.append)
    toy = next(a for a in r["archs"] if a["arch"] == "toy_autoencoder")
    per_step = BC.step_flops(TOY)
    assert per_step > 0
    assert toy["matmul_flop_per_s"] == pytest.approx(per_step * 200 / 2.0)
    assert toy["fraction_of_peak"] == pytest.approx(toy["matmul_flop_per_s"] / r["peak"]["flop_per_s"])
    assert r["peak"]["threads"] == 1 and r["peak"]["flop_per_s"] > 1e8
    # a config this checkout cannot build is named, and its arch has no FLOP figure rather than a wrong one
    assert any("p2/e/mlp/default/seed0" in m and "FLOPs not counted" in m for m in logs)
    assert "matmul_flop_per_s" not in next(a for a in r["archs"] if a["arch"] == "mlp_encoder")


def test_step_flops_grow_with_the_batch():
    one = BC.step_flops(TOY)
    two = BC.step_flops({**TOY, "train": {**TOY["train"], "batch_size": 128}})
    assert two == pytest.approx(2 * one)


def test_catalogue_without_a_run_says_what_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["catalogue", "--scale", "small", "--root", str(tmp_path), "--no-flops"])
    assert "snakemake --cores all --config scale=small" in capsys.readouterr().err


def _verdicts(folder, paper, claims):
    d = folder / paper
    d.mkdir(parents=True, exist_ok=True)
    (d / "verdicts.json").write_text(json.dumps({"claims": [
        {"id": cid, "verdict": v, "measured_text": m, "reason": ""} for cid, v, m in claims]}))


def test_verdict_diff_names_what_moved_and_what_one_side_lacks(tmp_path, capsys):
    a, b = tmp_path / "a/results/small", tmp_path / "b"
    _verdicts(a, "p1", [("c1", "reproduced", "1.0"), ("c2", "inconclusive", "0.5"), ("c3", "reproduced", "2")])
    _verdicts(a, "p2", [("x", "reproduced", "1")])
    _verdicts(b, "p1", [("c1", "not_reproduced", "0.1"), ("c2", "inconclusive", "0.6"), ("c4", "reproduced", "3")])
    d = V.diff(V.load_side(tmp_path / "a", "small"), V.load_side(b, "small"), values=True)
    assert d["compared"] == 2
    assert [(r["claim"], r["A"], r["B"]) for r in d["moved"]] == [("c1", "reproduced", "not_reproduced")]
    assert [(r["claim"], r["A_measured"], r["B_measured"]) for r in d["values"]] == [("c2", "0.5", "0.6")]
    assert {(r["paper"], r["claim"], r["side"]) for r in d["only"]} == {("p1", "c3", "A"), ("p1", "c4", "B"),
                                                                       ("p2", None, "A")}
    assert bench.main(["verdicts", str(tmp_path / "a"), str(b)]) == 1
    assert "p1.c1: reproduced -> not_reproduced" in capsys.readouterr().out
    assert bench.main(["verdicts", str(b), str(b)]) == 0


def test_verdict_diff_reads_committed_summaries_and_refuses_an_empty_folder(tmp_path, capsys):
    s = tmp_path / "summaries"
    s.mkdir()
    (s / "p1.json").write_text(json.dumps({"paper": "p1", "claims": [{"id": "c1", "verdict": "reproduced"}]}))
    assert V.load_side(s, "small") == {"p1": {"c1": {"id": "c1", "verdict": "reproduced"}}}
    (tmp_path / "empty").mkdir()
    assert bench.main(["verdicts", str(s), str(tmp_path / "empty")]) == 2
    assert "no verdicts found" in capsys.readouterr().err


SNAKEFILE = """
SCALE = config.get("scale", "small")
rule p1:
    output: f"results/{SCALE}/p1/verdicts.json"
    shell: "python -c 'import json, sys; v = open(\\"verdict.txt\\").read().strip(); "
           "json.dump({{\\"claims\\": [{{\\"id\\": \\"c\\", \\"verdict\\": v}}]}}, open(sys.argv[1], \\"w\\"))' {output}"
"""


def _commit(repo, verdict, extra_paper=None):
    (repo / "verdict.txt").write_text(verdict + "\n")
    if extra_paper:
        (repo / "catalogue" / f"{extra_paper}.yaml").write_text(f"paper:\n  id: {extra_paper}\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", verdict],
                   check=True)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_compare_runs_two_commits_in_turn_and_diffs_their_verdicts(tmp_path):
    """Two commits of a tiny project with a real Snakefile: each side runs in its own worktree from
    empty outputs, the rounds alternate which side goes first, and the moved verdict is found."""
    repo = tmp_path / "repo"
    (repo / "catalogue").mkdir(parents=True)
    (repo / "catalogue/p1.yaml").write_text("paper:\n  id: p1\n")
    (repo / "Snakefile").write_text(SNAKEFILE)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    base = _commit(repo, "reproduced")
    head = _commit(repo, "inconclusive", extra_paper="p9")
    logs = []
    order = []

    def runner(tree, scale, papers, cores, log):
        order.append(tree.name)
        return CMP.run_side(tree, scale, papers, cores, log)

    out = CMP.compare(repo, base, head, scale="smoke", rounds=2, cores=1, log=logs.append, runner=runner)
    assert order == ["base", "head", "head", "base"]
    assert out["papers"] == ["p1"] and any("only the head commit has p9" in m for m in logs)
    assert out["base"] == base and out["head"] == head
    assert out["ratio_head_over_base"] == pytest.approx(out["median_wall_s"]["head"] / out["median_wall_s"]["base"])
    assert [(r["A"], r["B"]) for r in out["verdicts"]["moved"]] == [("reproduced", "inconclusive")]
    assert "head / base wall time" in CMP.text(out)
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(listed.strip().splitlines()) == 1                   # the worktrees are gone


def test_compare_names_a_paper_a_commit_lacks_and_a_failed_run_keeps_its_log(tmp_path):
    repo = tmp_path / "repo"
    (repo / "catalogue").mkdir(parents=True)
    (repo / "catalogue/p1.yaml").write_text("paper:\n  id: p1\n")
    (repo / "Snakefile").write_text("rule p1:\n    output: 'x'\n    shell: 'exit 3'\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    sha = _commit(repo, "reproduced")
    with pytest.raises(CMP.CompareError, match="p7 not in the base commit's catalogue"):
        CMP.compare(repo, sha, sha, scale="smoke", papers=["p7"], workdir=tmp_path / "w1", log=lambda s: None)
    logs = []
    with pytest.raises(CMP.CompareError, match="failed .exit 1.; its log: .*base-round1.log"):
        CMP.compare(repo, sha, sha, scale="smoke", workdir=tmp_path / "w2", log=logs.append)
    assert (tmp_path / "w2/base-round1.log").exists() and any("kept" in m for m in logs)


def test_cli_lists_the_new_parts():
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True).stdout
    for part in ("catalogue", "compare", "verdicts"):
        assert part in out


# --- python -m bench pack ----------------------------------------------------------------------

def test_pack_gradients_are_each_seeds_own_and_kernels_without_vmap_rules_are_named(tmp_path, capsys):
    """The packed ensemble's first gradients match each seed trained alone (the measurement would
    mean nothing otherwise); an arch whose kernel has no vmap rule is listed, not crashed on."""
    from bench import pack

    out = pack.bench_pack(["toy_autoencoder", "transformer", "mamba"], seeds=2, B=2, T=8, d_model=16, n_layer=1,
                          vocab=11, repeats=1, budget_s=1.0, log=lambda s: None)
    rows = {r["arch"]: r for r in out["archs"]}
    for arch in ("toy_autoencoder", "transformer"):
        assert rows[arch]["sequential_s"] > 0 and rows[arch]["packed_s"] > 0
        assert rows[arch]["ratio"] == pytest.approx(rows[arch]["sequential_s"] / rows[arch]["packed_s"])
        assert rows[arch]["grad_rel_gap"] < 1e-4, rows[arch]
    assert "autograd.Function" in rows["mamba"]["unsupported"]
    assert bench.main(["pack", "--archs", "toy_autoencoder", "--seeds", "2", "--out", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["archs"][0]["seeds"] == 2
    with pytest.raises(SystemExit):
        bench.main(["pack", "--archs", "no_such_arch"])
    with pytest.raises(SystemExit):
        bench.main(["pack", "--seeds", "1"])
    assert "no_such_arch" in capsys.readouterr().err


SNAKEFILE_2 = SNAKEFILE + """
rule p2:
    output: f"results/{SCALE}/p2/verdicts.json"
    shell: "python -c 'import json, sys; json.dump({{\\"claims\\": [{{\\"id\\": \\"d\\", \\"verdict\\": \\"reproduced\\"}}]}}, open(sys.argv[1], \\"w\\"))' {output}"
"""


def _two_paper_repo(tmp_path):
    """A tiny project of two papers at two commits (p1's verdict moves): (repo, base, head)."""
    repo = tmp_path / "repo"
    (repo / "catalogue").mkdir(parents=True)
    for p in ("p1", "p2"):
        (repo / f"catalogue/{p}.yaml").write_text(f"paper:\n  id: {p}\n")
    (repo / "Snakefile").write_text(SNAKEFILE_2)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    base = _commit(repo, "reproduced")
    head = _commit(repo, "inconclusive")
    return repo, base, head


def test_compare_per_paper_takes_turns_by_paper_and_goes_on_after_a_stop(tmp_path):
    """Paper by paper, each paper's sides alternating who goes first; a run that stops (here: the
    runner raises on its third call) leaves the state, and the same command with the same work folder
    goes on with the runs not yet timed (after removing the Snakemake locks the stopped run left;
    refused while another comparison holds the folder), then sums the walls and diffs every paper's
    verdicts."""
    repo, base, head = _two_paper_repo(tmp_path)
    calls = []

    def runner(tree, scale, papers, cores, log, clean=True):
        calls.append((papers[0], tree.name, clean))
        if len(calls) == 3:
            raise CMP.CompareError("stopped")
        CMP.run_side(tree, scale, papers, cores, log, clean=clean)
        return {"base": 10.0, "head": 6.0}[tree.name] * (2 if papers[0] == "p2" else 1)

    logs = []
    work = tmp_path / "work"
    with pytest.raises(CMP.CompareError, match="stopped"):
        CMP.compare(repo, base, head, scale="smoke", workdir=work, log=logs.append, runner=runner, per_paper=True)
    assert any("goes on where this one stopped" in m for m in logs)
    assert json.loads((work / CMP.STATE).read_text())["runs"][1]["side"] == "head"
    stale = work / "head" / ".snakemake" / "locks" / "0.output.lock"     # what a killed Snakemake leaves
    stale.parent.mkdir(parents=True)
    stale.write_text("results/smoke/p2\n")
    held = CMP.hold_workdir(work)                                         # a comparison still running there
    with pytest.raises(CMP.CompareError, match="another `bench compare`, or a run one started, is using"):
        CMP.compare(repo, base, head, scale="smoke", workdir=work, log=logs.append, runner=runner, per_paper=True)
    assert stale.exists() and len(calls) == 3
    held.close()
    out = CMP.compare(repo, base, head, scale="smoke", workdir=work, log=logs.append, runner=runner, per_paper=True)
    assert not stale.exists() and any("removed the Snakemake locks" in m and "head" in m for m in logs)
    assert calls == [("p1", "base", False), ("p1", "head", False), ("p2", "head", False),
                     ("p2", "head", False), ("p2", "base", False)]
    assert any("resuming: 2 run(s)" in m for m in logs)
    assert out["median_wall_s"] == {"base": 30.0, "head": 18.0} and out["ratio_head_over_base"] == pytest.approx(0.6)
    assert [(r["paper"], r["A"], r["B"]) for r in out["verdicts"]["moved"]] == [("p1", "reproduced", "inconclusive")]
    assert "p2: base 20.0 s, head 12.0 s, 0.600" in CMP.text(out)
    with pytest.raises(CMP.CompareError, match="another comparison"):
        CMP.compare(repo, head, base, scale="smoke", workdir=work, log=logs.append, runner=runner, per_paper=True)


def test_a_comparison_stopped_in_its_first_run_goes_on(tmp_path):
    """The state is written before the first run, so a comparison killed during it (no run timed
    yet) is taken up by the same command rather than refused for its existing worktrees."""
    repo, base, head = _two_paper_repo(tmp_path)
    calls = []

    def runner(tree, scale, papers, cores, log, clean=True):
        calls.append((papers[0], tree.name))
        if len(calls) == 1:
            raise CMP.CompareError("killed")
        return 5.0

    work = tmp_path / "work"
    with pytest.raises(CMP.CompareError, match="killed"):
        CMP.compare(repo, base, head, scale="smoke", workdir=work, log=lambda s: None, runner=runner, per_paper=True)
    assert json.loads((work / CMP.STATE).read_text())["runs"] == []
    out = CMP.compare(repo, base, head, scale="smoke", workdir=work, log=lambda s: None, runner=runner,
                      per_paper=True)
    assert calls[:3] == [("p1", "base"), ("p1", "base"), ("p1", "head")] and out["ratio_head_over_base"] == 1.0


def test_a_deleted_work_folder_can_be_used_again(tmp_path):
    """Deleting a kept work folder leaves git's entries of its worktrees; the next comparison in the
    same place clears them rather than failing on git's 'missing but already registered'."""
    import shutil

    repo, base, head = _two_paper_repo(tmp_path)
    work = tmp_path / "work"

    def runner(tree, scale, papers, cores, log, clean=True):
        return 5.0

    CMP.compare(repo, base, head, scale="smoke", workdir=work, keep=True, log=lambda s: None, runner=runner)
    shutil.rmtree(work)
    out = CMP.compare(repo, base, head, scale="smoke", workdir=work, log=lambda s: None, runner=runner)
    assert out["ratio_head_over_base"] == 1.0


def test_a_run_left_going_keeps_the_work_folder_held(tmp_path, monkeypatch):
    """A comparison killed while its Snakemake runs leaves that Snakemake going: the work folder's
    lock passes to each run, so going on is refused until the run has ended (and its locks, which
    a resume removes, are its own until then)."""
    import os
    import signal
    import time

    fake = tmp_path / "snakemake"                   # a run that leaves a process going after it returns
    fake.write_text("#!/bin/sh\nsleep 60 &\necho $! > pid\n")
    fake.chmod(0o755)
    monkeypatch.setattr(CMP, "snakemake_exe", lambda: str(fake))
    work = tmp_path / "w"
    tree = work / "head"
    tree.mkdir(parents=True)
    held = CMP.hold_workdir(work)
    CMP.run_side(tree, "smoke", ["p1"], 1, work / "head.log", clean=False)
    held.close()
    pid = int((tree / "pid").read_text())
    try:
        with pytest.raises(CMP.CompareError, match="or a run one started, is using"):
            CMP.hold_workdir(work)
    finally:
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):                            # the lock goes with the process
        try:
            CMP.hold_workdir(work).close()
            break
        except CMP.CompareError:
            time.sleep(0.05)
    else:
        pytest.fail("the work folder stayed held after its last run ended")


def test_papers_that_share_fits_take_their_turns_together(tmp_path, monkeypatch):
    """The head's shared fits join papers into one run a side (a paper run alone trains the fits it
    shares itself, so a per-paper comparison would not see the saving); the others run alone, in
    the catalogue's order, and the totals are per unit."""
    assert CMP.paper_units(["a", "b", "c", "d", "e"], [("d", "b"), ("e", "d"), ("x", "a")]) == \
        [["a"], ["b", "d", "e"], ["c"]]
    assert CMP.paper_units(["a", "b"], []) == [["a"], ["b"]]
    repo, base, head = _two_paper_repo(tmp_path)
    assert CMP.shared_pairs(repo, "smoke") == []                   # a project without the engine shares nothing
    monkeypatch.setattr(CMP, "shared_pairs", lambda tree, scale: [("p2", "p1")])
    calls, logs = [], []

    def runner(tree, scale, papers, cores, log, clean=True):
        calls.append((tuple(papers), tree.name))
        CMP.run_side(tree, scale, papers, cores, log, clean=clean)
        return {"base": 10.0, "head": 7.0}[tree.name]

    out = CMP.compare(repo, base, head, scale="smoke", workdir=tmp_path / "w", log=logs.append, runner=runner,
                      per_paper=True)
    assert calls == [(("p1", "p2"), "base"), (("p1", "p2"), "head")]
    assert any("p1, p2 share fits at the head" in m for m in logs)
    assert out["per_paper_walls"] == {"p1+p2": {"base": 10.0, "head": 7.0, "ratio": pytest.approx(0.7)}}
    assert len(out["verdicts"]["moved"]) == 1                      # both papers' verdicts were diffed


def test_the_catalogue_shares_fits_between_the_papers_it_says():
    """This checkout's own shared fits at small join the GPT papers and the two Mamba papers (the
    pairs rules/common.smk copies), so `--per-paper` runs each group as one."""
    pairs = CMP.shared_pairs(ROOT, "small")
    units = [u for u in CMP.paper_units(CMP.paper_ids(ROOT), pairs) if len(u) > 1]
    assert ["mamba2_ssd", "ssm_recency"] in units
    assert any({"future_lens", "hidden_geometry"} <= set(u) for u in units)

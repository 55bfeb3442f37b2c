"""A fit that another job trains alike is copied, not trained again (workflow/train.py, copy_fit;
rules/train.smk); which jobs share a fit is shared_fits (workflow/catalogue/model.py)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from workflow.catalogue import Job, shared_fits
from workflow.train import main

CFG = {"task": {"name": "superposition", "n_features": 12, "sparsity": 0.9},
       "model": {"arch": "toy_autoencoder", "hidden": 3},
       "train": {"steps": 40, "batch_size": 64, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01,
                 "momentum": 0.0, "schedule": "cosine", "warmup_steps": 4, "grad_clip": 1.0, "log_every": 5,
                 "converged_rel_drop": 0.02}, "seed": 3}


def job(paper, exp, seed, cfg=CFG):
    return Job(paper, "small", exp, "m", {}, seed, {**cfg, "seed": seed})


def test_shared_fits_names_each_copy_and_its_source():
    other = {**CFG, "train": {**CFG["train"], "lr": 1e-3}}
    jobs = [job("b_paper", "e", 0), job("a_paper", "e", 0), job("a_paper", "f", 0), job("a_paper", "e", 1),
            job("c_paper", "e", 0, other)]
    copies = shared_fits(jobs)
    src = "results/small/a_paper/e/m/default/seed0"
    assert copies == {"results/small/a_paper/f/m/default/seed0": src, "results/small/b_paper/e/m/default/seed0": src}
    random.Random(0).shuffle(jobs)
    assert shared_fits(jobs) == copies          # the first folder in sorted order, whatever the order given


def test_the_catalogue_shares_fits_only_of_equal_configs(root):
    from workflow.catalogue import load_catalogue

    papers = load_catalogue(sorted((root / "catalogue").glob("*.yaml")))
    for scale in ("smoke", "small"):
        jobs = {j.dir: j for lp in papers.values() for j in lp.jobs(scale)}
        copies = shared_fits(jobs.values())
        assert copies, scale
        for dst, src in copies.items():
            assert jobs[dst].config == jobs[src].config and src < dst and src not in copies


def test_a_copy_is_the_fit_it_copies(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert main(["--config", json.dumps(CFG), "--out", str(src), "--device", "cpu", "--attempt", "a"]) == 0
    assert main(["--config", json.dumps(CFG), "--out", str(dst), "--copy-of", str(src), "--attempt", "b"]) == 0
    assert f"as {src}, which trains it: copied its fit (status ok, 40 steps)" in capsys.readouterr().err
    a, b = (json.loads((d / "train.json").read_text()) for d in (src, dst))
    assert b.pop("copy_of") == str(src) and b.pop("copied")
    assert b.pop("attempt") == "b" and a.pop("attempt") == "a"      # the copy's own retry token
    assert a == b                                                    # steps, losses, compute, provenance
    assert (dst / "model.pt").read_bytes() == (src / "model.pt").read_bytes()
    assert json.loads((dst / "manifest.json").read_text())["copy_of"] == str(src)


def test_a_copy_of_another_config_or_of_nothing_is_refused(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert main(["--config", json.dumps(CFG), "--out", str(src), "--device", "cpu"]) == 0
    other = {**CFG, "seed": 4}
    assert main(["--config", json.dumps(other), "--out", str(dst), "--copy-of", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"{src}/train.json is the fit of another config" in err and "rerun" in err
    assert main(["--config", json.dumps(CFG), "--out", str(dst), "--copy-of", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert f"cannot copy the fit in {tmp_path / 'none'}" in err and "run that fit first" in err
    assert not (dst / "train.json").exists() and not (dst / "model.pt").exists()


def test_a_copy_needs_no_torch(tmp_path, root):
    """copy_fit is a local rule: on a cluster it runs on the login node, in a process that has not
    imported torch (the fork server's local preload), and should not have to."""
    src = tmp_path / "src"
    assert main(["--config", json.dumps(CFG), "--out", str(src), "--device", "cpu"]) == 0
    code = ("import sys, json; from workflow.train import main; "
            f"rc = main(['--config', json.dumps({CFG!r}), '--out', {str(tmp_path / 'dst')!r}, '--copy-of', {str(src)!r}]); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.split() == ["0", "False"], out.stderr

"""The prepared GPU check (bench/gpu.py) runs its parts on a CPU at toy sizes: what a GPU user will
run is exercised here, so that a lent GPU's few minutes are not spent on a broken script."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import gpu as G


def test_every_part_runs_and_reports_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    logs = []
    r = G.run(["toy_superposition", "mamba2_ssd"], steps=4, budget_s=240, out_path=out, device="cpu",
              fits_per_paper=1, share_ks=(1, 2), scale="smoke", log=logs.append)
    assert json.loads(out.read_text())["papers"] == ["toy_superposition", "mamba2_ssd"]
    assert r["device"]["peak_fp32"]["flop_per_s"] > 0 and "peak_bf16" not in r["device"]
    fits = {f["paper"]: f for f in r["fits"]}
    assert set(fits) == {"toy_superposition", "mamba2_ssd"}
    m = fits["mamba2_ssd"]
    assert m["status"] == "ok" and m["steps"] == 4 and m["steps_per_s"] > 0
    assert m["flop_per_s"] == pytest.approx(m["flop_per_step"] * m["steps_per_s"])
    assert m["busy_share"] is None                         # no GPU: no busy share, and it says why
    assert [s["k"] for s in r["sharing"]] == [1, 2]
    assert all(len(s["steps_per_s_each"]) == s["k"] for s in r["sharing"])
    c = r["compile"]                                      # the smallest fit, eager and compiled
    assert c["mode"] == "default" and c["eager"]["compiled"] is None and c["compiled"]["compiled"] == "default"
    assert c["eager_over_compiled"] == pytest.approx(c["eager"]["compute_s"] / c["compiled"]["compute_s"])
    k = r["kernels"]
    assert set(k["found"]) == {"mamba_ssm", "fla"}
    assert k["ours"]["scan"]["fwd"] > 0 and k["ours"]["scan"]["fwd_bwd"] > 0
    assert k["ratio_ours_over_libraries"]["scan"]["fwd"] > 0
    assert any(line.startswith("kernels:") for line in logs)


def test_an_unknown_paper_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_paper.yaml"):
        G.pick_fits(["no_such_paper"], 1, "smoke")


def test_without_a_gpu_the_cli_says_how_to_check_the_script(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = subprocess.run([sys.executable, "-m", "bench", "gpu", "--out", str(tmp_path / "g.json")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--device cpu" in res.stderr


def test_the_shell_script_is_executable_and_bounded():
    from pathlib import Path

    sh = Path(G.ROOT) / "bench" / "gpu_check.sh"
    text = sh.read_text()
    assert sh.stat().st_mode & 0o111
    assert "timeout 450" in text and "--no-index" in text
    assert subprocess.run(["bash", "-n", str(sh)]).returncode == 0

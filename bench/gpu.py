"""The GPU check: one prepared run for a machine with a GPU, about 8 minutes at its defaults.

    python -m bench gpu [--papers mamba2_ssd akyurek_icl] [--steps 200] [--budget-s 420]
    bench/gpu_check.sh [OUT_DIR]          (installs wheels carried in $WHEELS first, then runs this)

What it measures, in order, each part bounded by what is left of `--budget-s` (a part that fails
records its error and the others go on; the JSON is written after every part):
  device   the GPU, torch and CUDA versions; the GPU's own matmul peak, fp32 (TF32 off) and bf16.
  fits     for each paper, one seed-0 job of each (experiment, model) at the full scale, at most
           `--fits-per-paper`, trained for `--steps` steps on the GPU (workflow/train.py, the
           engine's loop, steps capped): steps/s, counted TFLOP/s (FlopCounterMode on one step:
           matmuls, convolutions, attention) and its share of the fp32 peak, and the GPU's busy
           share (nvidia-smi's utilization, sampled every 100 ms while the fit trains).
  sharing  k = 1, 2, 4 processes training the same small fit at once on GPU 0, as
           `gpu_jobs_per_device: k` runs them: the summed steps/s and the busy share per k.
  compile  the smallest of those fits eager and through torch.compile (the run-time setting `compile`;
           reduce-overhead, i.e. CUDA graphs, on a GPU), compiling included: does it pay within a job?
  kernels  `python -m bench kernels --device cuda` (fwd and fwd_bwd) with our kernels only (CLAIMCHECK_TORCH_KERNELS=1)
           and with mamba-ssm and flash-linear-attention where installed (they are optional: the
           JSON says which were found); each op's fast-path time in both, and their ratio.
On a machine without a GPU, `--device cpu` runs the same parts at toy sizes (the tests do) and
says that it measured no GPU.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_PAPERS = ["mamba2_ssd", "akyurek_icl"]   # an SSM and a transformer paper with sizeable full-scale models
ROOT = Path(__file__).resolve().parent.parent


class Sampler:
    """nvidia-smi's utilization and memory of one GPU, sampled every `ms` milliseconds in the background."""

    def __init__(self, gpu: str = "0", ms: int = 100):
        self.samples: list[tuple[float, float]] = []
        self.proc = None
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return
        self.proc = subprocess.Popen([exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                      "-i", gpu, "-lms", str(ms)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.strip().split(","))
            except ValueError:
                continue
            self.samples.append((util, mem))

    def stop(self) -> dict:
        if self.proc is None:
            return {"busy_share": None, "samples": 0, "why": "no nvidia-smi on this machine"}
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)
        if not self.samples:
            return {"busy_share": None, "samples": 0, "why": "nvidia-smi gave no samples"}
        return {"busy_share": statistics.mean(u for u, _ in self.samples) / 100.0, "samples": len(self.samples),
                "memory_mib_max": max(m for _, m in self.samples)}


def device_part(device: str) -> dict:
    import torch

    from .kernels import matmul_peak

    out = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}
    if device == "cuda":
        out["name"] = torch.cuda.get_device_name(0)
        out["memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
        torch.backends.cuda.matmul.allow_tf32 = False
    out["peak_fp32"] = matmul_peak(device)
    if device == "cuda":
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        from .kernels import _time

        t = _time(lambda: a @ b, "cuda", 7, 10.0)
        out["peak_bf16"] = {"n": n, "seconds": t, "flop_per_s": 2 * n ** 3 / t}
    return out


def pick_fits(papers: list[str], per_paper: int, scale: str = "full") -> list:
    """Seed-0 jobs at `scale`, one per (experiment, model), at most `per_paper` a paper, distinct archs first."""
    from workflow.catalogue import load_paper

    chosen = []
    for pid in papers:
        path = ROOT / "catalogue" / f"{pid}.yaml"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such catalogue entry (`ls catalogue/` lists them)")
        seen, archs, mine = set(), set(), []
        jobs = [j for j in load_paper(path).jobs(scale) if j.seed == 0]
        for j in jobs:
            if (j.experiment, j.model) in seen:
                continue
            seen.add((j.experiment, j.model))
            arch = j.config["model"]["arch"]
            if arch == "pretrained_minilm":
                continue
            mine.append((arch in archs, j))
            archs.add(arch)
        mine.sort(key=lambda t: t[0])                 # new archs first, catalogue order within
        chosen += [j for _, j in mine[:per_paper]]
    return chosen


def fit_part(job, steps: int, device: str, work: Path, log=print, compile_mode: str | None = None) -> dict:
    from workflow.train import train

    from .catalogue import step_flops

    cfg = json.loads(json.dumps(job.config))
    cfg["train"]["steps"] = steps
    cfg["train"]["warmup_steps"] = min(cfg["train"].get("warmup_steps") or 0, steps // 2)
    out = work / f"{job.paper}-{job.experiment}-{job.model}"
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler() if device == "cuda" else None
    rec = train(cfg, out, device=device, label=f"{job.paper}/{job.experiment}/{job.model}", log=lambda s: None,
                ckpt_every_seconds=1e9, compile_mode=compile_mode)
    busy = sampler.stop() if sampler else {"busy_share": None, "why": "not a GPU run"}
    flops = step_flops(cfg, device=device)
    sps = rec["steps_done"] / rec["compute_s"] if rec["compute_s"] else None
    row = {"paper": job.paper, "experiment": job.experiment, "model": job.model, "arch": cfg["model"]["arch"],
           "params": rec.get("n_params"), "batch_size": cfg["train"]["batch_size"], "steps": rec["steps_done"],
           "status": rec["status"], "compute_s": rec["compute_s"], "steps_per_s": sps,
           "flop_per_step": flops, "flop_per_s": flops * sps if flops and sps else None,
           "compiled": rec.get("compiled"), **({"compile_note": rec["compile_note"]} if rec.get("compile_note") else {}),
           **busy}
    shutil.rmtree(out, ignore_errors=True)
    return row


def compile_part(job, steps: int, device: str, work: Path, log=print) -> dict:
    """The same fit eager and through torch.compile (reduce-overhead: CUDA graphs on a GPU; the default
    mode on a CPU), each for `steps` steps; the compiled fit's time includes its compiling, so the
    ratio says whether compiling pays for itself within a job of that length."""
    mode = "reduce-overhead" if device == "cuda" else "default"
    eager = fit_part(job, steps, device, work, log)
    compiled = fit_part(job, steps, device, work, log, compile_mode=mode)
    # a fit whose compiling failed trained eagerly (its compile_note says why): no ratio to report
    ratio = eager["compute_s"] / compiled["compute_s"] if compiled.get("compiled") and compiled["compute_s"] else None
    log(f"  {job.paper}/{job.model}: eager {eager['compute_s']:.1f} s, compile={mode} {compiled['compute_s']:.1f} s "
        f"(compiling included), eager / compiled {ratio:.2f}" if ratio else f"  compile: {compiled}")
    return {"mode": mode, "eager": eager, "compiled": compiled, "eager_over_compiled": ratio}


def sharing_part(job, steps: int, ks: list[int], device: str, work: Path, budget_s: float) -> list[dict]:
    """k processes training the same fit at once, each holding a slot of GPU 0 (gpu_jobs_per_device: k)."""
    cfg = json.loads(json.dumps(job.config))
    cfg["train"]["steps"] = steps
    rows = []
    t_end = time.monotonic() + budget_s
    for k in ks:
        if time.monotonic() > t_end:
            rows.append({"k": k, "skipped": "out of budget"})
            continue
        run_dir = work / f"share-{k}"
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "CLAIMCHECK_GPUS": "0", "CLAIMCHECK_GPU_JOBS_PER_DEVICE": str(k)}
        sampler = Sampler() if device == "cuda" else None
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "workflow.train", "--config", json.dumps(cfg),
                                   "--out", str(run_dir / f"p{i}"), "--device", device, "--threads", "1",
                                   "--checkpoint-seconds", "1e9"], cwd=run_dir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(k)]
        errs = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - t0
        busy = sampler.stop() if sampler else {"busy_share": None}
        recs = []
        for i, p in enumerate(procs):
            f = run_dir / f"p{i}" / "train.json"
            if p.returncode or not f.exists():
                rows.append({"k": k, "error": (errs[i] or "")[-500:]})
                break
            recs.append(json.loads(f.read_text()))
        else:
            rows.append({"k": k, "wall_s": wall, "steps_per_s_summed": sum(r["steps_done"] / r["compute_s"] for r in recs),
                         "steps_per_s_each": [r["steps_done"] / r["compute_s"] for r in recs], **busy})
        shutil.rmtree(run_dir, ignore_errors=True)
    return rows


def kernels_part(device: str, work: Path, timeout_s: float, tiny: bool = False) -> dict:
    """Our kernels alone against the optional CUDA libraries, op by op."""
    import importlib.util

    found = {m: importlib.util.find_spec(m) is not None for m in ("mamba_ssm", "fla")}
    sizes = ["-B", "1", "-T", "16", "--repeats", "1", "--ref-repeats", "1"] if tiny else []
    out = {"found": found}
    for name, extra in (("ours", {"CLAIMCHECK_TORCH_KERNELS": "1"}), ("with_libraries", {})):
        dest = work / f"kernels-{name}.json"
        env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            res = subprocess.run([sys.executable, "-m", "bench", "kernels", "--device", device, "--out", str(dest), *sizes],
                                 env=env, capture_output=True, text=True, timeout=timeout_s / 2)
        except subprocess.TimeoutExpired:
            out[name] = {"error": f"timed out after {timeout_s / 2:.0f} s"}
            continue
        if res.returncode or not dest.exists():
            out[name] = {"error": (res.stderr or res.stdout)[-1000:]}
            continue
        out[name] = {r["op"]: {m: r[m]["fast_ms"] for m in ("fwd", "fwd_bwd") if m in r}
                     for r in json.loads(dest.read_text())["ops"]}
    if isinstance(out.get("ours"), dict) and isinstance(out.get("with_libraries"), dict) \
            and "error" not in out["ours"] and "error" not in out["with_libraries"]:
        out["ratio_ours_over_libraries"] = {
            op: {m: t / out["with_libraries"][op][m] for m, t in modes.items() if out["with_libraries"].get(op, {}).get(m)}
            for op, modes in out["ours"].items()}
    return out


def run(papers: list[str], steps: int, budget_s: float, out_path: Path, device: str = "cuda",
        fits_per_paper: int = 2, share_ks: tuple[int, ...] = (1, 2, 4), scale: str = "full", log=print) -> dict:
    t_end = time.monotonic() + budget_s
    work = Path(tempfile.mkdtemp(prefix="claimcheck-gpu-"))
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "papers": papers, "steps": steps, "scale": scale,
                    "budget_s": budget_s}

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2, default=str))

    def part(name, fn):
        left = t_end - time.monotonic()
        if left <= 5:
            result[name] = {"skipped": "out of budget"}
            log(f"{name}: skipped, out of budget")
            return
        t = time.perf_counter()
        try:
            result[name] = fn(left)
        except Exception as e:  # noqa: BLE001 - a part that fails is recorded; the others still run
            result[name] = {"error": f"{type(e).__name__}: {e}"}
        log(f"{name}: {time.perf_counter() - t:.1f} s")
        save()

    try:
        part("device", lambda left: device_part(device))
        if device == "cuda" and isinstance(result.get("device"), dict) and "error" not in result["device"]:
            d = result["device"]
            log(f"  {d.get('name')}: fp32 {d['peak_fp32']['flop_per_s'] / 1e12:.1f} TFLOP/s, "
                f"bf16 {d['peak_bf16']['flop_per_s'] / 1e12:.1f} TFLOP/s")
        jobs = pick_fits(papers, fits_per_paper, scale)

        def fits(left):
            rows = []
            for j in jobs:
                if time.monotonic() > t_end - 0.4 * left:        # leave room for the parts after
                    rows.append({"paper": j.paper, "model": j.model, "skipped": "out of budget"})
                    continue
                try:
                    r = fit_part(j, steps, device, work, log)
                except Exception as e:  # noqa: BLE001
                    r = {"paper": j.paper, "model": j.model, "error": f"{type(e).__name__}: {e}"}
                rows.append(r)
                if "steps_per_s" in r:
                    peak = result.get("device", {}).get("peak_fp32", {}).get("flop_per_s")
                    frac = r["flop_per_s"] / peak if r.get("flop_per_s") and peak else None
                    r["fraction_of_fp32_peak"] = frac
                    log(f"  {j.paper}/{j.model} ({r['arch']}, {r['params']:,} params): {r['steps_per_s']:.1f} steps/s, "
                        f"{(r['flop_per_s'] or 0) / 1e12:.3f} TFLOP/s"
                        + (f" ({100 * frac:.2f}% of peak)" if frac else "")
                        + (f", GPU busy {100 * r['busy_share']:.0f}%" if r.get("busy_share") is not None else ""))
            return rows

        part("fits", fits)
        small = min(jobs, key=lambda j: j.config["model"].get("d_model", 0)) if jobs else None
        if small is not None:
            part("sharing", lambda left: sharing_part(small, steps, list(share_ks), device, work, 0.6 * left))
            part("compile", lambda left: compile_part(small, steps, device, work, log))
        part("kernels", lambda left: kernels_part(device, work, left, tiny=device != "cuda"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        save()
    return result

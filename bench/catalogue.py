"""Where a catalogue run's time goes: per paper, per architecture and per step kind, with each
architecture's achieved FLOP/s as a fraction of this machine's own single-thread matmul peak.

    python -m bench catalogue --scale small                  # reads results/small and benchmarks/small
    python -m bench catalogue --scale smoke --root /path/to/a/checkout --no-flops

It reads a finished run, it does not start one: the job times are Snakemake's `benchmark:` files
(benchmarks/<scale>/...: wall seconds of each train, evaluate, probe, track, judge and report
job), the training figures are each job's own train.json (steps done, `compute_s`: the loop's own
time, without start-up, model build or saving; a fit copied from a job of the same config,
rules/train.smk's copy_fit, counts its job time but not its steps, which the job it copies ran). Every job runs on one thread (the rules'
`threads: 1`), so the peak it is held against is one thread's: the median of timed 1024 x 1024
fp32 matmuls, measured in the same run.

FLOPs per training step are counted with torch's FlopCounterMode on one step (forward and
backward) of each distinct model and task config (seeds share it): matmuls, convolutions and
attention. Element-wise work and the scan kernels (a selective scan, an LRU's recurrence, an
LSTM's gates beyond their matmuls) are not counted, so for a recurrent or scan-heavy model the
fraction is a floor: its counted math runs at that fraction of peak, and the rest of its step is
work the counter does not see. The table says "matmul FLOP/s" for that reason.
"""
from __future__ import annotations

import collections
import json
import time
from pathlib import Path

KINDS = {"train": "train", "evaluate": "evaluate", "probe": "probe", "track": "track", "judge": "judge",
         "report": "report", "report_index": "report"}


def read_jobs(root: Path, scale: str) -> list[dict]:
    """Every benchmark file of the run: {paper, kind, job (its directory under the paper), wall_s}."""
    base = root / "benchmarks" / scale
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: no benchmark files; run `snakemake --cores all --config scale={scale}` "
                                f"there first (each job writes its wall time under benchmarks/{scale}/)")
    jobs = []
    for f in sorted(base.rglob("*.tsv")):
        rel = f.relative_to(base)
        kind = KINDS.get(f.stem)
        if kind is None:
            continue
        lines = f.read_text().splitlines()
        if len(lines) < 2:
            continue
        wall = float(lines[1].split("\t")[0])
        paper = rel.parts[0] if len(rel.parts) > 1 else "(index)"
        jobs.append({"paper": paper, "kind": kind, "job": str(rel.parent), "wall_s": wall})
    return jobs


def read_training(root: Path, scale: str) -> list[dict]:
    """Every train.json of the run: paper, job, arch, steps done, loop seconds, and its config."""
    base = root / "results" / scale
    out = []
    for f in sorted(base.rglob("train.json")):
        rec = json.loads(f.read_text())
        cfg = rec.get("config")
        if not isinstance(cfg, dict):
            continue
        rel = f.parent.relative_to(base)
        copy = bool(rec.get("copy_of"))   # a copy of a fit another job trained: its steps are that job's
        out.append({"paper": rel.parts[0], "job": str(rel), "arch": cfg["model"]["arch"],
                    "steps": 0 if copy else int(rec.get("steps_done") or 0),
                    "compute_s": 0.0 if copy else float(rec.get("compute_s") or 0.0),
                    "pretrained": bool(rec.get("pretrained")), "copy": copy, "config": cfg})
    return out


def matmul_peak(n: int = 1024, repeats: int = 7) -> dict:
    """One thread's fp32 matmul FLOP/s (bench/kernels.py's measure, on one thread: a job's)."""
    import torch

    from .kernels import matmul_peak as peak

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return peak("cpu", n, repeats)
    finally:
        torch.set_num_threads(old)


def step_flops(cfg: dict, device: str = "cpu") -> float | None:
    """Counted FLOPs of one training step (forward + backward) of a job config; None when it cannot
    be built here (a pretrained model is never trained)."""
    import torch

    from modules.models import build_model
    from modules.tasks import build_task
    from workflow.schema import TrainSpec

    t_cfg = TrainSpec.model_validate(cfg["train"]).model_dump()
    task = build_task(cfg["task"]["name"], {k: v for k, v in cfg["task"].items() if k != "name"})
    torch.manual_seed(0)
    model = build_model(cfg["model"]["arch"], {k: v for k, v in cfg["model"].items() if k != "arch"}, task.spec())
    if getattr(model, "pretrained", False):
        return None
    model.to(device).train()
    batch = {k: v.to(device) for k, v in task.batch(torch.Generator().manual_seed(0), t_cfg["batch_size"]).items()}
    from .kernels import flop_counter

    counter = flop_counter()
    with counter:
        loss = task.loss(model, batch)
        loss.backward()
    return float(counter.get_total_flops())


def _key(cfg: dict) -> str:
    return json.dumps({k: v for k, v in cfg.items() if k not in ("seed", "provenance")}, sort_keys=True, default=str)


def summarize(root: Path, scale: str, flops: bool = True, log=print) -> dict:
    jobs = read_jobs(root, scale)
    training = read_training(root, scale)
    total = sum(j["wall_s"] for j in jobs) or 1.0
    by_kind = collections.Counter()
    n_kind = collections.Counter()
    by_paper: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for j in jobs:
        by_kind[j["kind"]] += j["wall_s"]
        n_kind[j["kind"]] += 1
        by_paper[j["paper"]][j["kind"]] += j["wall_s"]
    train_wall = {(j["paper"], j["job"]): j["wall_s"] for j in jobs if j["kind"] == "train"}
    eval_wall = {(j["paper"], j["job"]): j["wall_s"] for j in jobs if j["kind"] in ("evaluate", "probe")}
    peak = matmul_peak() if flops else None
    cache: dict[str, float | None] = {}
    arch = collections.defaultdict(lambda: {"train_jobs": 0, "steps": 0, "compute_s": 0.0, "train_wall_s": 0.0,
                                            "eval_wall_s": 0.0, "flop": 0.0, "flop_compute_s": 0.0, "papers": set()})
    paper_steps = collections.Counter()
    for r in training:
        a = arch[r["arch"]]
        jkey = (r["paper"], r["job"])
        a["train_jobs"] += not r.get("copy")
        a["steps"] += r["steps"]
        a["compute_s"] += r["compute_s"]
        a["train_wall_s"] += train_wall.get(jkey, 0.0)
        a["eval_wall_s"] += eval_wall.get(jkey, 0.0)
        a["papers"].add(r["paper"])
        paper_steps[r["paper"]] += r["steps"]
        if flops and r["steps"] and not r["pretrained"]:
            k = _key(r["config"])
            if k not in cache:
                try:
                    cache[k] = step_flops(r["config"])
                except Exception as e:  # noqa: BLE001 - a config this checkout cannot build is named, not fatal
                    log(f"  {r['job']}: FLOPs not counted ({type(e).__name__}: {e})")
                    cache[k] = None
            if cache[k] is not None:
                a["flop"] += cache[k] * r["steps"]
                a["flop_compute_s"] += r["compute_s"]
    archs = []
    for name, a in arch.items():
        row = {"arch": name, "papers": sorted(a["papers"]), "train_jobs": a["train_jobs"], "steps": a["steps"],
               "compute_s": a["compute_s"], "train_wall_s": a["train_wall_s"], "eval_wall_s": a["eval_wall_s"],
               "share": (a["train_wall_s"] + a["eval_wall_s"]) / total,
               "steps_per_s": a["steps"] / a["compute_s"] if a["compute_s"] else None}
        if flops and a["flop_compute_s"]:
            row["matmul_flop_per_s"] = a["flop"] / a["flop_compute_s"]
            row["fraction_of_peak"] = row["matmul_flop_per_s"] / peak["flop_per_s"]
        archs.append(row)
    archs.sort(key=lambda r: -r["share"])
    papers = [{"paper": p, "job_s": sum(c.values()), **{f"{k}_s": v for k, v in c.items()},
               "share": sum(c.values()) / total, "train_steps": paper_steps[p]}
              for p, c in by_paper.items()]
    papers.sort(key=lambda r: -r["job_s"])
    return {"scale": scale, "root": str(root), "date": time.strftime("%Y-%m-%d"), "job_s": total,
            "kinds": {k: {"job_s": v, "jobs": n_kind[k], "share": v / total} for k, v in by_kind.most_common()},
            "papers": papers, "archs": archs, "peak": peak}


def _fmt_s(s: float) -> str:
    return f"{s:,.0f} s" if s >= 10 else f"{s:.1f} s"


def table(r: dict) -> str:
    """The summary as Markdown tables (the throughput document's form)."""
    out = [f"Job time of the {r['scale']} run under {r['root']}: {_fmt_s(r['job_s'])} summed over jobs.", ""]
    out += ["| step kind | jobs | job time | share |", "|---|---:|---:|---:|"]
    for k, v in r["kinds"].items():
        out.append(f"| {k} | {v['jobs']} | {_fmt_s(v['job_s'])} | {100 * v['share']:.1f}% |")
    peak = r.get("peak")
    out += ["", "| arch | papers | train jobs | steps/s | train + eval/probe time | share |"
            + (" matmul FLOP/s | of peak |" if peak else ""),
            "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if peak else "")]
    for a in r["archs"]:
        sps = f"{a['steps_per_s']:,.0f}" if a["steps_per_s"] else "-"
        line = (f"| {a['arch']} | {len(a['papers'])} | {a['train_jobs']} | {sps} | "
                f"{_fmt_s(a['train_wall_s'] + a['eval_wall_s'])} | {100 * a['share']:.1f}% |")
        if peak:
            if "matmul_flop_per_s" in a:
                line += f" {a['matmul_flop_per_s'] / 1e9:.2f} G | {100 * a['fraction_of_peak']:.1f}% |"
            else:
                line += " - | - |"
        out.append(line)
    out += ["", "| paper | job time | train | evaluate | probe | report | share |", "|---|---:|---:|---:|---:|---:|---:|"]
    for p in r["papers"]:
        out.append(f"| {p['paper']} | {_fmt_s(p['job_s'])} | {_fmt_s(p.get('train_s', 0))} | "
                   f"{_fmt_s(p.get('evaluate_s', 0))} | {_fmt_s(p.get('probe_s', 0))} | {_fmt_s(p.get('report_s', 0))} | "
                   f"{100 * p['share']:.1f}% |")
    if peak:
        out += ["", f"Peak: one thread's {peak['n']} x {peak['n']} fp32 matmul, {peak['flop_per_s'] / 1e9:.2f} GFLOP/s "
                    f"(median of 7, measured in this run). FLOPs counted: matmuls, convolutions, attention."]
    return "\n".join(out)

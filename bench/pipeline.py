"""Throughput of the engine around the math, as ratios measured in one run on one machine.

    python -m bench pipeline [--parts overhead fixed dag loop logging kernels] [--papers ...]
                                      [--dag-jobs 1000 10000] [--dag-repeats 3] [--out results/bench/pipeline.json]

overhead  wall time of `snakemake --cores C --config scale=smoke` on a fresh copy of the repository,
          divided by the sum of the compute the jobs measured inside themselves (train, evaluate
          and probe loops: `compute_s` of train.json, eval.json, probe.json). Run with the fork
          server (the default) and without it (`forkserver=false`), so the table shows what it
          buys. With C cores a perfectly packed run would reach 1/C; the column `x cores` gives
          wall x C / compute, for which 1.0 is perfect packing.
fixed     the cost of one job step before it computes anything: a bare `python -c pass`; a
          train job of one step (`train.steps=1`) as a fresh process (python start, imports, model
          build, writing its record: wall time minus its own compute_s), and the same through the
          fork server; both as a share of the median smoke train job's compute. And the tracking
          set-up per run: the MLflow collector's (track rule's) time divided by the runs it logged.
dag       `snakemake -n` (dry run: DAG building, no jobs) on generated catalogues that expand to
          about N jobs, against a plain Snakefile of N trivial jobs: seconds, peak memory and
          their ratio; with a cold catalogue cache (the registry checks run, in a background process
          beside the DAG) and warm; each the fastest of --dag-repeats runs, taking turns.
loop      tokens/s of the engine's training loop (workflow.train.train, as a job runs it) against
          a bare torch loop over the same task batches, model and optimizer.
logging   the share of all job time spent in MLflow. Jobs never call MLflow themselves; one
          collector step per paper (rule track) logs every run after training, and the report step
          attaches the report to the parent runs. Both record the seconds they spent inside MLflow
          (imports, client and store set-up, calls; `mlflow_s` in runs.json and report-tracking.json),
          summed over all jobs' time from Snakemake's benchmark files. Also printed: the whole track
          steps' time as a share (it adds the steps' start, reading the records, waiting for the lock).
kernels   the kernel ratios of `python -m bench kernels` for the ops with targets.

Everything here prints and writes JSON; nothing gates CI. A shared machine moves wall-clock
times; the JSON records the load average before and after each part.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what a run needs of the repository (the pipeline bench and the end-to-end tests copy it)
COPY = ["Snakefile", "config.yaml", "rules", "envs", "schemas", "catalogue", "workflow", "modules", "profiles"]


def _load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def copy_repo(dst: Path, catalogue: bool = True) -> Path:
    """What a run needs of the repository, copied to dst (made if missing); without `catalogue`, an
    empty catalogue/ for the caller to fill."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        if name == "catalogue" and not catalogue:
            (dst / name).mkdir(parents=True, exist_ok=True)
            continue
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, dst / name)
    return dst


def _env(cwd: Path, **extra) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(cwd), **extra}
    for k in ("MLFLOW_TRACKING_URI", "CLAIMCHECK_FORKSERVER"):
        env.pop(k, None)
    return env


def _timed(cmd: list[str], cwd: Path, env: dict, timeout: float = 7200) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS in MB of the command or its largest waited-for descendant, result)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fo, stderr=fe, text=True)
        deadline = time.time() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                raise TimeoutError(f"{' '.join(cmd[:4])} ran past {timeout} s")
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        res = subprocess.CompletedProcess(cmd, proc.returncode, fo.read(), fe.read())
    return wall, usage.ru_maxrss / 1024, res      # ru_maxrss is in KB on Linux


def _compute_of(results: Path) -> dict:
    """Sum of in-job compute per kind, and each train job's compute."""
    sums = {"train": 0.0, "evaluate": 0.0, "probe": 0.0}
    per_train = []
    for kind, name in (("train", "train.json"), ("evaluate", "eval.json"), ("probe", "probe.json")):
        for f in results.rglob(name):
            try:
                c = json.loads(f.read_text()).get("compute_s")
            except (OSError, ValueError):
                continue
            if c:
                sums[kind] += c
                if kind == "train":
                    per_train.append(c)
    return {**sums, "total": sum(sums.values()), "train_jobs": len(per_train),
            "median_train_s": statistics.median(per_train) if per_train else None}


def _bench_times(bench_dir: Path) -> dict:
    """Seconds per rule from Snakemake's benchmark files (benchmarks/<scale>/.../<rule>.tsv)."""
    out: dict[str, float] = {}
    for f in bench_dir.rglob("*.tsv"):
        lines = f.read_text().splitlines()
        if len(lines) < 2:
            continue
        head, row = lines[0].split("\t"), lines[1].split("\t")
        try:
            s = float(row[head.index("s")])
        except (ValueError, IndexError):
            continue
        out[f.stem] = out.get(f.stem, 0.0) + s
    return out


def bench_overhead(papers: list[str] | None, cores: int, modes=("on", "off"), log=print) -> dict:
    rows = []
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="claimcheck-bench-") as tmp:
            repo = copy_repo(Path(tmp) / "repo")
            cfg = ["scale=smoke", f"forkserver={'true' if mode == 'on' else 'false'}"]
            if papers:
                cfg.append(f"papers=[{','.join(papers)}]")
            load0 = _load()
            wall, _, proc = _timed([sys.executable, "-m", "snakemake", "--cores", str(cores), "--config", *cfg], repo, _env(repo))
            if proc.returncode != 0:
                raise RuntimeError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            comp = _compute_of(repo / "results" / "smoke")
            rules = _bench_times(repo / "benchmarks" / "smoke")
            row = {"forkserver": mode, "cores": cores, "wall_s": wall, "compute_s": comp, "rule_s": rules,
                   "mlflow_s": _mlflow_seconds(repo / "results" / "smoke"),
                   "ratio": wall / comp["total"], "ratio_x_cores": wall * cores / comp["total"],
                   "load_before": load0, "load_after": _load()}
            rows.append(row)
            log(f"overhead  forkserver {mode:<3}  wall {wall:7.1f} s  in-job compute {comp['total']:7.1f} s  "
                f"({comp['train_jobs']} train jobs)  ratio {row['ratio']:.2f}  x cores {row['ratio_x_cores']:.2f}")
    return {"papers": papers or "all", "rows": rows, "target_ratio": 1.25}


def bench_fixed(overhead: dict | None, log=print) -> dict:
    """The fixed cost of one job step, from a fresh process and from the fork server."""
    from workflow.catalogue import load_catalogue
    from workflow.launch.forkserver import request

    with tempfile.TemporaryDirectory(prefix="claimcheck-fixed-") as tmp:
        tmp = Path(tmp)
        env = _env(ROOT)
        bare = [_timed([sys.executable, "-c", "pass"], tmp, env)[0] for _ in range(3)]
        (tmp / "catalogue").mkdir()
        (tmp / "catalogue" / "dagscale.yaml").write_text(DAG_PAPER.format(values="8", seeds=1))
        lp = next(iter(load_catalogue([tmp / "catalogue" / "dagscale.yaml"]).values()))
        cfg = json.loads(json.dumps(lp.jobs("smoke")[0].config))   # a toy-superposition-sized job
        cfg["train"]["steps"] = 1
        cfg["train"]["log_every"] = 1

        def one(tag: str, i: int, sock: str | None) -> float:
            out = tmp / f"{tag}{i}"
            e = {**env, **({"CLAIMCHECK_FORKSERVER": sock} if sock else {})}
            wall, _, proc = _timed([sys.executable, "-m", "workflow.launch", "train", "--config", json.dumps(cfg),
                                    "--out", str(out), "--device", "cpu"], tmp, e)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            return wall - json.loads((out / "train.json").read_text())["compute_s"]

        direct = [one("d", i, None) for i in range(3)]
        sock = str(tmp / "fs.sock")
        server = subprocess.Popen([sys.executable, "-m", "workflow.launch.forkserver", "serve", "--socket", sock,
                                   "--idle-timeout", "120"], cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while request(sock, "ping") is None and time.time() < deadline:
                time.sleep(0.1)
            served = [one("s", i, sock) for i in range(5)]
        finally:
            request(sock, "stop")
            server.wait(timeout=60)
    med_job = None
    track = None
    if overhead:
        on = next((r for r in overhead["rows"] if r["forkserver"] == "on"), overhead["rows"][0])
        med_job = on["compute_s"]["median_train_s"]
        n_runs = on["compute_s"]["train_jobs"]
        if "track" in on["rule_s"] and n_runs:
            track = on["rule_s"]["track"] / n_runs
    res = {"python_start_s": statistics.median(bare), "direct_s": statistics.median(direct),
           "forkserver_s": statistics.median(served), "median_smoke_train_compute_s": med_job,
           "tracking_per_run_s": track}
    share = (lambda s: s / (s + med_job)) if med_job else (lambda s: None)
    res["direct_share"] = share(res["direct_s"])
    res["forkserver_share"] = share(res["forkserver_s"])
    log(f"fixed     python start {res['python_start_s']:.3f} s; a job step's fixed cost: fresh process "
        f"{res['direct_s']:.2f} s, through the fork server {res['forkserver_s']:.2f} s"
        + (f" (of a median smoke train job of {med_job:.2f} s compute: {100 * res['direct_share']:.0f}% -> "
           f"{100 * res['forkserver_share']:.0f}%)" if med_job else "")
        + (f"; MLflow tracking {track:.3f} s per run" if track is not None else ""))
    return res


DAG_PAPER = """paper: {{id: dagscale, title: DAG scale benchmark, year: 2024}}
experiments:
  - id: sweep
    task: {{name: superposition, n_features: 8, sparsity: 0.9}}
    models: [{{id: m, arch: toy_autoencoder, hidden: 2}}]
    sweep: {{task.n_features: [{values}]}}
    train: {{steps: 10, batch_size: 8, lr: 0.001}}
    evaluate: {{metrics: [loss]}}
    seeds: {seeds}
scales: {{smoke: {{}}, small: {{}}, full: {{}}}}
claims:
  - id: low_loss
    text: a benchmark claim
    source: none
    kind: threshold
    measure: {{experiment: sweep, model: m, metric: loss, at: {{task.n_features: 8}}}}
    op: "<="
    value: 1.0
"""

PLAIN = """N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule make:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""


def _count_jobs(stdout: str) -> int | None:
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return None


def bench_dag(sizes=(1000, 10000), repeats: int = 3, log=print) -> dict:
    """Each figure is the fastest of `repeats` runs (engine cold, engine warm and plain taking turns),
    so that another process's burst on a shared machine does not land on one side only."""
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="claimcheck-dag-") as tmp:
            tmp = Path(tmp)
            repo = copy_repo(tmp / "repo", catalogue=False)
            # each train job adds an evaluate job; a paper adds track, judge and report, plus the index
            trains = max(1, (n - 5) // 2)
            seeds = 10
            points = max(1, trains // seeds)
            values = ", ".join(str(8 + i) for i in range(points))
            (repo / "catalogue" / "dagscale.yaml").write_text(DAG_PAPER.format(values=values, seeds=seeds))
            env = _env(repo)
            cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules", "--config", f"max_jobs={10 * n}"]
            plain = tmp / "plain"
            plain.mkdir()
            pcmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules"]
            samples: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "plain": []}
            jobs = None
            for _ in range(max(1, repeats)):
                (repo / ".snakemake" / "catalogue-validated").unlink(missing_ok=True)   # cold: validate again
                cold, cold_mb, p1 = _timed(cmd, repo, env)
                if p1.returncode:
                    raise RuntimeError(f"dry run failed:\n{p1.stderr[-3000:]}")
                warm, warm_mb, p2 = _timed(cmd, repo, env)
                jobs = jobs or _count_jobs(p2.stdout + p2.stderr) or _count_jobs(p1.stdout + p1.stderr)
                (plain / "Snakefile").write_text(PLAIN.format(n=jobs or n))
                base, base_mb, p3 = _timed(pcmd, plain, _env(plain))
                if p3.returncode:
                    raise RuntimeError(f"plain dry run failed:\n{p3.stderr[-3000:]}")
                samples["cold"].append((cold, cold_mb))
                samples["warm"].append((warm, warm_mb))
                samples["plain"].append((base, base_mb))
        cold, warm, base = (min(t for t, _ in samples[k]) for k in ("cold", "warm", "plain"))
        row = {"target_jobs": n, "jobs": jobs, "engine_cold_s": cold, "engine_warm_s": warm, "plain_s": base,
               "ratio_cold": cold / base, "ratio_warm": warm / base, "repeats": max(1, repeats),
               "samples_s": {k: [round(t, 3) for t, _ in v] for k, v in samples.items()},
               "engine_rss_mb": max(mb for k in ("cold", "warm") for _, mb in samples[k]),
               "plain_rss_mb": max(mb for _, mb in samples["plain"])}
        rows.append(row)
        log(f"dag       {jobs} jobs: engine {cold:.1f} s cold / {warm:.1f} s warm, plain Snakefile {base:.1f} s: "
            f"ratio {row['ratio_cold']:.2f} / {row['ratio_warm']:.2f} (fastest of {row['repeats']})")
    return {"rows": rows, "target_ratio": 1.5}


def bench_loop(log=print) -> dict:
    """The engine's loop against a bare torch loop, same model, task batches and optimizer."""
    import torch

    from modules.models import build_model
    from modules.tasks import build_task

    from workflow.train import make_optimizer, train

    torch.set_num_threads(1)
    cases = [
        ("copy, transformer d=64 2 layers, T<=42", {
            "task": {"name": "copy", "n_symbols": 26, "min_len": 1, "max_len": 20},
            "model": {"arch": "transformer", "n_layer": 2, "n_head": 4, "d_model": 64, "pos": "rope"},
            "train": {"steps": 150, "batch_size": 32}}),
        ("superposition, toy autoencoder (a smoke-sized job)", {
            "task": {"name": "superposition", "n_features": 20, "sparsity": 0.9},
            "model": {"arch": "toy_autoencoder", "hidden": 5},
            "train": {"steps": 2000, "batch_size": 256}}),
    ]
    rows = []
    for name, base in cases:
        cfg = {"task": base["task"], "model": base["model"], "seed": 0,
               # no schedule and no clipping, so that both loops do the same math and the ratio is
               # the engine's own cost: its per-step lr update, loss read-out (NaN check, history),
               # checkpoint clock and progress lines
               "train": {"lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.01, "momentum": 0.0,
                         "schedule": "constant", "warmup_steps": 0, "grad_clip": None, "log_every": None,
                         "converged_rel_drop": 0.02, **base["train"]}}
        steps, bs = cfg["train"]["steps"], cfg["train"]["batch_size"]
        engine, bare = [], []

        def run_engine():
            with tempfile.TemporaryDirectory() as tmp:
                rec = train(cfg, Path(tmp), "cpu", log=lambda s: None)
            engine.append(rec["compute_s"])

        def run_bare():
            task = build_task(cfg["task"]["name"], {k: v for k, v in cfg["task"].items() if k != "name"})
            torch.manual_seed(0)
            model = build_model(cfg["model"]["arch"], {k: v for k, v in cfg["model"].items() if k != "arch"},
                                task.spec())
            opt = make_optimizer(model.parameters(), cfg["train"])
            gen = torch.Generator().manual_seed(0)
            model.train()
            t0 = time.perf_counter()
            for _ in range(steps):
                batch = task.batch(gen, bs)
                loss = task.loss(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            bare.append(time.perf_counter() - t0)

        # taking turns, each going first as often: whichever runs first in a repeat meets colder
        # caches and allocator (until 2026-12-05 the engine always ran first)
        for r in range(4):
            for run in ((run_engine, run_bare) if r % 2 == 0 else (run_bare, run_engine)):
                run()
        e, b = statistics.median(engine), statistics.median(bare)
        row = {"case": name, "steps": steps, "engine_s": e, "bare_s": b, "ratio": b / e,
               "engine_steps_per_s": steps / e, "bare_steps_per_s": steps / b}
        rows.append(row)
        log(f"loop      {name}: engine {steps / e:,.0f} steps/s, bare torch {steps / b:,.0f} steps/s: "
            f"ratio {row['ratio']:.3f}")
    return {"rows": rows, "target_ratio": 0.95,
            "note": "same model, task batches, optimizer and math (constant lr, no clipping); the engine's loop "
                    "also sets the lr each step, reads the loss (NaN check, history) and keeps its checkpoint clock"}


def _mlflow_seconds(results: Path) -> dict:
    """Seconds inside MLflow, as the tracking steps recorded them: the collector (runs.json) and the
    report step's attachments (report-tracking.json), summed over papers."""
    out = {"track": 0.0, "report": 0.0, "papers": 0}
    for name, kind in (("runs.json", "track"), ("report-tracking.json", "report")):
        for f in results.glob(f"*/{name}"):
            try:
                s = json.loads(f.read_text()).get("mlflow_s")
            except (OSError, ValueError):
                continue
            if isinstance(s, (int, float)):
                out[kind] += s
                out["papers"] += kind == "track"
    return out


def bench_logging(overhead: dict | None, log=print) -> dict:
    if not overhead:
        return {"skipped": "needs the overhead run's benchmark files"}
    on = next((r for r in overhead["rows"] if r["forkserver"] == "on"), overhead["rows"][0])
    rules = on["rule_s"]
    total = sum(rules.values())
    calls = on.get("mlflow_s") or {"track": 0.0, "report": 0.0}
    in_mlflow = calls["track"] + calls["report"]
    share = in_mlflow / total if total else None
    step_share = rules.get("track", 0.0) / total if total else None
    log(f"logging   time inside MLflow {in_mlflow:.1f} s (collector {calls['track']:.1f} s, report attachments "
        f"{calls['report']:.1f} s) of {total:.1f} s of all jobs: {100 * share:.1f}%; the whole collector steps "
        f"(track) {rules.get('track', 0.0):.1f} s: {100 * step_share:.1f}%")
    return {"mlflow_s": in_mlflow, "mlflow_track_s": calls["track"], "mlflow_report_s": calls["report"],
            "track_s": rules.get("track", 0.0), "all_jobs_s": total, "share": share, "track_step_share": step_share,
            "target_share": 0.03}


def bench_kernel_targets(log=print) -> dict:
    import torch

    from . import kernels as bench

    torch.set_num_threads(1)
    return bench.bench_kernels(ops=list(bench.TARGETS) + ["linear_attn_chunked_c64"], log=lambda s: log(f"kernels   {s}"))


def run(what: list[str], papers: list[str] | None, cores: int, dag_sizes, out: Path, log=print,
        dag_repeats: int = 3) -> dict:
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()}, "load_start": _load()}
    overhead = None
    if "overhead" in what or "fixed" in what or "logging" in what:
        overhead = result["overhead"] = bench_overhead(papers, cores, log=log)
    if "fixed" in what:
        result["fixed"] = bench_fixed(overhead, log=log)
    if "logging" in what:
        result["logging"] = bench_logging(overhead, log=log)
    if "loop" in what:
        result["loop"] = bench_loop(log=log)
    if "dag" in what:
        result["dag"] = bench_dag(dag_sizes, repeats=dag_repeats, log=log)
    if "kernels" in what:
        result["kernels"] = bench_kernel_targets(log=log)
    result["load_end"] = _load()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {out}")
    return result

"""python -m bench kernels | archs | pipeline: benchmarks that print ratios, not timed tests.

    kernels   each kernel's loop reference against its fast path (bench/kernels.py)
    archs     training throughput of every registered sequence model (bench/kernels.py)
    pipeline  the engine around the math: overheads, the DAG, the loop, MLflow's share (bench/pipeline.py)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from modules.runtime import keep_freed_memory, malloc_tuning_state

from .kernels import HEADER, _scan_path, _write_json, bench_archs, bench_kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks that print ratios, not timed tests.")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("kernels", help="each kernel's loop reference against its fast path")
    p.add_argument("--out", type=Path, default=Path("results/bench/kernels.json"), help="JSON file to write")
    p.add_argument("--device", default="cpu", help="cpu or cuda (on cuda the fast ops use mamba-ssm/fla when installed)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 0 keeps torch's default. Default 1: the loop references are "
                        "single-threaded by nature, so one thread compares like with like, and on a shared "
                        "2-core machine a second thread's spin-waits made the fast ops up to 50x slower")
    p.add_argument("--repeats", type=int, default=7, help="timed runs of each fast op (median)")
    p.add_argument("--ref-repeats", type=int, default=3, help="timed runs of each loop reference (median)")
    p.add_argument("--ops", nargs="*", default=None, help="only these ops")
    for flag, default in (("B", 8), ("T", 1024), ("D", 64), ("H", 4), ("K", 16), ("N", 16)):
        p.add_argument(f"-{flag}", type=int, default=default, help=f"default {default}")
    a = sub.add_parser("archs", help="tokens/s of forward+backward for every registered arch")
    a.add_argument("--out", type=Path, default=Path("results/bench/archs.json"), help="JSON file to write")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default")
    a.add_argument("--steps", type=int, default=5, help="timed steps per arch (median), after one warm-up")
    a.add_argument("--archs", nargs="*", default=None, help="only these archs (default: every registered one)")
    for flag, default in (("B", 8), ("T", 256), ("d-model", 128), ("n-layer", 2), ("vocab", 64)):
        a.add_argument(f"--{flag}" if len(flag) > 1 else f"-{flag}", type=int, default=default, help=f"default {default}")
    pl = sub.add_parser("pipeline", help="orchestration overhead, fixed cost per job, DAG scale, training loop, "
                                         "logging share and kernel targets (bench/pipeline.py)")
    parts = ["overhead", "fixed", "dag", "loop", "logging", "kernels"]
    pl.add_argument("--parts", dest="what_parts", nargs="*", choices=parts, default=parts, help="which parts (default: all)")
    pl.add_argument("--papers", nargs="*", default=None, help="overhead: only these papers (default: the whole catalogue)")
    pl.add_argument("--cores", type=int, default=2, help="overhead: snakemake --cores (default 2)")
    pl.add_argument("--dag-jobs", nargs="*", type=int, default=[1000, 10000], help="dag: job counts (default 1000 10000)")
    pl.add_argument("--dag-repeats", type=int, default=3,
                    help="dag: runs of each dry run, the fastest counts (default 3; a shared machine's bursts)")
    pl.add_argument("--out", type=Path, default=Path("results/bench/pipeline.json"), help="JSON file to write")
    for sp in (p, a):
        sp.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                        help="tuned (default): the malloc settings of the engine's jobs (modules/runtime.py); "
                             "default: glibc's own")
    args = parser.parse_args(argv)
    if args.what == "pipeline":
        from . import pipeline
        pipeline.run(args.what_parts, args.papers, args.cores, args.dag_jobs, args.out,
                     log=lambda s: print(s, flush=True), dag_repeats=args.dag_repeats)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "tuned":
        keep_freed_memory()
    if args.what == "archs":
        print(f"archs at B={args.B} T={args.T} d_model={args.d_model} n_layer={args.n_layer} vocab={args.vocab} "
              f"on {args.device}, forward+backward, {torch.get_num_threads()} threads, torch {torch.__version__}",
              flush=True)
        print(f"{'arch':<18} {'tokens/s':>12} {'step ms':>10} {'params':>10}", flush=True)
        try:
            result = bench_archs(args.archs, args.B, args.T, args.d_model, args.n_layer, args.vocab, args.device,
                                 args.steps, log=lambda s: print(s, flush=True))
        except ValueError as e:
            parser.error(str(e))
        result["config"]["malloc"] = malloc_tuning_state()
        _write_json(args.out, result)
        print(f"wrote {args.out}")
        return 0
    if args.D % args.H:
        parser.error(f"-D {args.D} must be divisible by -H {args.H} (SSD splits D into H heads)")
    print(f"kernels at B={args.B} T={args.T} D={args.D} H={args.H} K=V={args.K} N={args.N} on {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, malloc tuning {malloc_tuning_state()}", flush=True)
    print(f"scan: {_scan_path(args.device)}", flush=True)
    print(HEADER, flush=True)
    result = bench_kernels(args.B, args.T, args.D, args.H, args.K, args.N, args.device, args.repeats,
                           args.ref_repeats, ops=args.ops, log=lambda s: print(s, flush=True))
    result["config"]["malloc"] = malloc_tuning_state()
    _write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


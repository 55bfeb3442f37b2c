"""python -m bench kernels | archs | pipeline: benchmarks that print ratios, not timed tests.

    kernels   each kernel's loop reference against its fast path (bench/kernels.py)
    archs     training throughput of every registered sequence model (bench/kernels.py)
    pipeline  the engine around the math: overheads, the DAG, the loop, MLflow's share (bench/pipeline.py)
    catalogue where a finished run's time goes: per paper, architecture and step kind, with each
              architecture's matmul FLOP/s against one thread's peak (bench/catalogue.py)
    compare   a scale's wall time at this commit against another, side by side, and the verdict diff
              (bench/compare.py)
    verdicts  the verdicts of two runs diffed; exit 1 when one moved (bench/verdicts.py)
    pack      the seeds of a fit trained as one vectorized ensemble against one after another
              (bench/pack.py)
    gpu       the prepared GPU check: full-scale fits, busy share, TFLOP/s, GPU sharing, kernels
              against mamba-ssm and flash-linear-attention (bench/gpu.py, bench/gpu_check.sh)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from modules.runtime import keep_freed_memory, malloc_tuning_state

from .kernels import HEADER, _scan_path, _write_json, bench_archs, bench_kernels


def _sizes(parser: argparse.ArgumentParser, defaults) -> None:
    """The integer size flags of a model or kernel bench: one letter as -B, a word as --d-model."""
    for flag, default in defaults:
        parser.add_argument(f"--{flag}" if len(flag) > 1 else f"-{flag}", type=int, default=default,
                            help=f"default {default}")


def _say(line: str) -> None:
    print(line, flush=True)


def _write(path: Path, result: dict) -> None:
    _write_json(path, result)
    print(f"wrote {path}")


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
    _sizes(p, (("B", 8), ("T", 1024), ("D", 64), ("H", 4), ("K", 16), ("N", 16)))
    a = sub.add_parser("archs", help="tokens/s of forward+backward for every registered arch")
    a.add_argument("--out", type=Path, default=Path("results/bench/archs.json"), help="JSON file to write")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default")
    a.add_argument("--steps", type=int, default=5, help="timed steps per arch (median), after one warm-up")
    a.add_argument("--archs", nargs="*", default=None, help="only these archs (default: every registered one)")
    _sizes(a, (("B", 8), ("T", 256), ("d-model", 128), ("n-layer", 2), ("vocab", 64)))
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
    c = sub.add_parser("catalogue", help="where a finished run's time goes: per paper, architecture and step kind, "
                                         "and each architecture's FLOP/s against this machine's peak (bench/catalogue.py)")
    c.add_argument("--scale", default="small", choices=["smoke", "small", "full"], help="the run's scale (default small)")
    c.add_argument("--root", type=Path, default=Path("."),
                   help="the checkout that ran it: its results/<scale> and benchmarks/<scale> (default: here)")
    c.add_argument("--no-flops", dest="flops", action="store_false",
                   help="skip counting FLOPs and measuring the peak (the time shares only; seconds, not minutes)")
    c.add_argument("--out", type=Path, default=None, help="JSON file to write (default results/bench/catalogue-<scale>.json)")
    cm = sub.add_parser("compare", help="a scale's wall time at HEAD against another commit, runs taking turns, "
                                        "and the verdicts of both diffed (bench/compare.py)")
    cm.add_argument("--against", required=True, help="the base commit (any git revision)")
    cm.add_argument("--head", default="HEAD", help="the commit measured against it (default HEAD)")
    cm.add_argument("--scale", default="small", choices=["smoke", "small", "full"], help="default small")
    cm.add_argument("--papers", nargs="*", default=None, help="only these papers (default: every paper both catalogues hold)")
    cm.add_argument("--cores", type=int, default=2, help="snakemake --cores for each run (default 2)")
    cm.add_argument("--rounds", type=int, default=1, help="runs of each side, taking turns; the median counts (default 1)")
    cm.add_argument("--workdir", type=Path, default=None, help="where the two worktrees go (default a new temporary folder)")
    cm.add_argument("--keep", action="store_true", help="keep the worktrees, their results and logs")
    cm.add_argument("--per-paper", action="store_true",
                    help="take turns paper by paper (papers that share fits at the head as one run) and sum the walls; "
                         "resumable: the same command with the same --workdir goes on where a stopped one left off (the "
                         "Snakemake locks that one left are removed; a folder another comparison, or a run one "
                         "started, is using is refused)")
    cm.add_argument("--out", type=Path, default=None, help="JSON file (default results/bench/compare-<scale>.json)")
    vd = sub.add_parser("verdicts", help="diff the verdicts of two runs: a checkout, a results/<scale> folder or a "
                                         "summaries/<scale> folder each; exit 1 when a verdict moved (bench/verdicts.py)")
    vd.add_argument("a", type=Path, help="side A")
    vd.add_argument("b", type=Path, help="side B")
    vd.add_argument("--scale", default="small", choices=["smoke", "small", "full"],
                    help="the scale to read in a checkout (default small)")
    vd.add_argument("--values", action="store_true", help="also list measured values that changed with the verdict held")
    pk = sub.add_parser("pack", help="S seeds' training steps one after another against one vmap ensemble step "
                                     "(bench/pack.py)")
    pk.add_argument("--archs", nargs="*", default=None,
                    help="default: toy_autoencoder transformer lstm mamba s4d lru gla")
    pk.add_argument("--seeds", type=int, default=3, help="seeds packed (default 3, the catalogue's usual count)")
    pk.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default")
    pk.add_argument("--device", default="cpu", help="cpu or cuda")
    _sizes(pk, (("B", 32), ("T", 64), ("d-model", 64), ("n-layer", 2), ("vocab", 64)))
    pk.add_argument("--out", type=Path, default=Path("results/bench/pack.json"), help="JSON file to write")
    gp = sub.add_parser("gpu", help="the prepared GPU check, about 8 minutes (bench/gpu.py)")
    gp.add_argument("--papers", nargs="*", default=None, help="papers whose fits to train (default mamba2_ssd akyurek_icl)")
    gp.add_argument("--steps", type=int, default=200, help="training steps of each fit (default 200)")
    gp.add_argument("--fits-per-paper", type=int, default=2, help="fits of each paper, distinct archs first (default 2)")
    gp.add_argument("--scale", default="full", choices=["smoke", "small", "full"], help="whose configs (default full)")
    gp.add_argument("--budget-s", type=float, default=420.0, help="seconds for all parts together (default 420)")
    gp.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cuda (default); cpu runs the same parts without a GPU, for a check of the script itself")
    gp.add_argument("--out", type=Path, default=Path("results/bench/gpu.json"), help="JSON file to write")
    args = parser.parse_args(argv)
    if args.what == "gpu":
        from . import gpu as G

        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("torch sees no GPU here; run it on a GPU machine (bench/gpu_check.sh), or give --device cpu "
                         "to check the script itself")
        try:
            G.run(args.papers or G.DEFAULT_PAPERS, args.steps, args.budget_s, args.out, args.device,
                  args.fits_per_paper, scale=args.scale, log=_say)
        except FileNotFoundError as e:
            parser.error(str(e))
        print(f"wrote {args.out}")
        return 0
    if args.what == "pack":
        from . import pack

        if args.seeds < 2:
            parser.error("--seeds must be at least 2 (one seed has nothing to pack)")
        if args.threads:
            torch.set_num_threads(args.threads)
        keep_freed_memory()
        print(f"pack: {args.seeds} seeds at B={args.B} T={args.T} d_model={args.d_model} n_layer={args.n_layer} on "
              f"{args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
        try:
            result = pack.bench_pack(args.archs or pack.DEFAULT_ARCHS, args.seeds, args.B, args.T, args.d_model,
                                     args.n_layer, args.vocab, args.device, log=_say)
        except ValueError as e:
            parser.error(str(e))
        _write(args.out, result)
        return 0
    if args.what == "verdicts":
        from . import verdicts as V

        try:
            d = V.diff(V.load_side(args.a, args.scale), V.load_side(args.b, args.scale), values=args.values)
        except V.Unreadable as e:
            print(f"python -m bench verdicts: {e}", file=sys.stderr)
            return 2
        print(V.text(d, (str(args.a), str(args.b))))
        return 1 if d["moved"] else 0
    if args.what == "compare":
        from . import compare as C

        if args.rounds < 1 or args.cores < 1:
            parser.error("--rounds and --cores must be at least 1")
        try:
            out = C.compare(Path("."), args.against, args.head, args.scale, args.papers, args.cores, args.rounds,
                            args.workdir, args.keep, log=_say, per_paper=args.per_paper)
        except C.CompareError as e:
            print(f"python -m bench compare: {e}", file=sys.stderr)
            return 2
        print(C.text(out), flush=True)
        dest = args.out or Path(f"results/bench/compare-{args.scale}.json")
        _write(dest, out)
        return 0
    if args.what == "catalogue":
        from . import catalogue

        torch.set_num_threads(1)
        try:
            result = catalogue.summarize(args.root, args.scale, flops=args.flops, log=_say)
        except FileNotFoundError as e:
            parser.error(str(e))
        print(catalogue.table(result), flush=True)
        out = args.out or Path(f"results/bench/catalogue-{args.scale}.json")
        _write(out, result)
        return 0
    if args.what == "pipeline":
        from . import pipeline
        pipeline.run(args.what_parts, args.papers, args.cores, args.dag_jobs, args.out,
                     log=_say, dag_repeats=args.dag_repeats)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "tuned":
        keep_freed_memory()
    if args.what == "archs":
        print(f"archs at B={args.B} T={args.T} d_model={args.d_model} n_layer={args.n_layer} vocab={args.vocab} "
              f"on {args.device}, forward+backward, {torch.get_num_threads()} threads, torch {torch.__version__}",
              flush=True)
        print(f"{'arch':<18} {'tokens/s':>12} {'step ms':>10} {'params':>10} {'GFLOP/s':>9} {'of peak':>8}"
              "   (matmul FLOPs; a scan model's share is a floor)", flush=True)
        try:
            result = bench_archs(args.archs, args.B, args.T, args.d_model, args.n_layer, args.vocab, args.device,
                                 args.steps, log=_say)
        except ValueError as e:
            parser.error(str(e))
        result["config"]["malloc"] = malloc_tuning_state()
        _write(args.out, result)
        return 0
    if args.D % args.H:
        parser.error(f"-D {args.D} must be divisible by -H {args.H} (SSD splits D into H heads)")
    print(f"kernels at B={args.B} T={args.T} D={args.D} H={args.H} K=V={args.K} N={args.N} on {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, malloc tuning {malloc_tuning_state()}", flush=True)
    print(f"scan: {_scan_path(args.device)}", flush=True)
    print(HEADER, flush=True)
    result = bench_kernels(args.B, args.T, args.D, args.H, args.K, args.N, args.device, args.repeats,
                           args.ref_repeats, ops=args.ops, log=_say)
    result["config"]["malloc"] = malloc_tuning_state()
    _write(args.out, result)
    return 0


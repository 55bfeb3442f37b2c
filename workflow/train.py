"""Train one model on one task: one job of the DAG.

    python -m workflow.train --config '<resolved job config as JSON>' --out results/.../seed0

Writes <out>/train.json (status, loss history, convergence, timing, provenance) and
<out>/model.pt (final weights). A non-finite loss stops training and records
status "diverged" with the step; that is a result, not a crash, so the DAG goes on and the
judge marks the claims that need this job "not run".

    python -m workflow.train --config '<the same config>' --out results/.../seed0 --copy-of <DIR>

copies the fit in DIR (a job of the same resolved config and seed, which trains it) in place of
training: its train.json, with `copy_of: DIR`, and its model.pt (rules/train.smk, copy_fit).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from .steps import failure_line, now, pick_device, provenance, write_json


def make_optimizer(params, train: dict):
    from modules.optim import make_optimizer as make

    return make(params, train["optimizer"], train["lr"], train["weight_decay"], train["momentum"])


def lr_factor(step: int, train: dict) -> float:
    """Multiplier of the peak lr at `step` (0-based): linear warmup, then the schedule."""
    warm, total = train["warmup_steps"], train["steps"]
    if warm and step < warm:
        return (step + 1) / warm
    if train["schedule"] == "constant":
        return 1.0
    frac = (step - warm) / max(1, total - warm)
    if train["schedule"] == "cosine":
        return 0.5 * (1 + math.cos(math.pi * frac))
    return 1.0 - frac  # linear


def convergence(losses: list[float], rel_drop: float) -> tuple[bool, float | None]:
    """Converged when the last 10% of logged losses average less than `rel_drop` below the
    10% before them. Returns (converged, relative drop)."""
    n = len(losses)
    w = max(1, n // 10)
    if n < 2 * w or n < 4:
        return False, None
    prev = sum(losses[-2 * w:-w]) / w
    last = sum(losses[-w:]) / w
    if prev <= 0:
        return True, 0.0
    drop = (prev - last) / abs(prev)
    return drop < rel_drop, drop


class Interrupted(Exception):
    """SIGTERM, SIGUSR1 or Ctrl-C arrived; a checkpoint was written (exit code `code`)."""

    def __init__(self, step: int, code: int):
        super().__init__(f"interrupted at step {step}; checkpoint written")
        self.step = step
        self.code = code


_SIGNAL: list[int] = []


def _on_signal(signum, frame):  # noqa: ARG001
    _SIGNAL.append(signum)


COMPILE_ENV = "CLAIMCHECK_COMPILE"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_mode_from_env() -> str | None:
    """The run-time setting `compile` as the jobs see it (rules/launch.smk's hooks set it): None
    (off), or a torch.compile mode. An unknown value is an error that names the setting."""
    import os

    raw = os.environ.get(COMPILE_ENV, "").strip()
    if raw in ("", "false", "False", "0"):
        return None
    mode = "default" if raw in ("true", "True", "1") else raw
    if mode not in COMPILE_MODES:
        raise ValueError(f"{COMPILE_ENV}={raw!r} (the run-time setting `compile`): use false, true or one of "
                         f"{', '.join(COMPILE_MODES)}")
    return mode


def train(cfg: dict, out: Path, device: str = "cpu", label: str = "", log=print, progress=None,
          ckpt_every_steps: int | None = None, ckpt_every_seconds: float = 60.0, stop_after: int | None = None,
          compile_mode: str | None = None) -> dict:
    """Run the training loop of one job config; return the train.json record.

    Checkpoints go to out/ckpt every `ckpt_every_steps` steps (or every `ckpt_every_seconds`),
    and when SIGTERM/SIGUSR1 arrives (then Interrupted is raised). A run resumes from the
    newest valid checkpoint of the same config. `stop_after` stops with a checkpoint after
    that many steps, as a signal would (for tests). `compile_mode` (None: eager) trains through
    `torch.compile(model, mode=compile_mode)`; when compiling fails at the first step, the job says
    why and trains eagerly (the record's `compiled` says which it did).
    """
    import torch

    from . import checkpoint
    from .catalogue import config_hash

    from modules.models import build_model
    from modules.tasks import build_task

    from .schema import TrainSpec

    # the catalogue's schema is the one home of the train settings' defaults: a config written by
    # hand (a test, a bench) gets the same ones as a catalogue entry
    t_cfg = TrainSpec.model_validate(cfg["train"]).model_dump()
    task_params = {k: v for k, v in cfg["task"].items() if k != "name"}
    task = build_task(cfg["task"]["name"], task_params)
    model_params = {k: v for k, v in cfg["model"].items() if k != "arch"}
    seed = int(cfg["seed"])

    torch.manual_seed(seed)                     # model init
    model = build_model(cfg["model"]["arch"], model_params, task.spec()).to(device)
    gen = torch.Generator().manual_seed(seed)   # data stream, on the CPU: same on every machine
    if getattr(model, "pretrained", False):     # loaded, never trained: nothing to optimize or save
        log(f"{label}: {cfg['model']['arch']} is pretrained; not trained (train settings ignored)")
        torch.save({}, out / "model.pt")
        return {"status": "ok", "diverged_at": None, "steps_done": 0, "final_loss": None, "converged": True,
                "pretrained": True, "loss_rel_drop_last_10pct": None, "history": {"step": [], "loss": [], "lr": []},
                "compute_s": 0.0, "resumed_from_step": None, "precision_used": "fp32", "compiled": None,
                "n_params": sum(p.numel() for p in model.parameters())}
    opt = make_optimizer(model.parameters(), t_cfg)
    steps = t_cfg["steps"]
    log_every = t_cfg["log_every"] or max(1, steps // 100)
    report_every = max(1, steps // 10)

    hist_step, hist_loss, hist_lr = [], [], []
    acc, acc_n = 0.0, 0
    status, diverged_at = "ok", None
    start, resumed_from = 0, None
    chash = config_hash(cfg)
    ckpt_dir = out / "ckpt"
    state = checkpoint.load_latest(ckpt_dir, chash, log=lambda m: log(f"{label}: {m}"))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        start = resumed_from = state["step"]
        hist_step, hist_loss, hist_lr = state["hist_step"], state["hist_loss"], state["hist_lr"]
        acc, acc_n = state["acc"], state["acc_n"]

    def snapshot(step_done: int) -> None:
        checkpoint.save(ckpt_dir, step_done, {
            "config_hash": chash, "step": step_done, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "data_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "hist_step": hist_step, "hist_loss": hist_loss, "hist_lr": hist_lr, "acc": acc, "acc_n": acc_n,
        })

    import contextlib

    bf16 = t_cfg["precision"] == "bf16" and device == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if t_cfg["precision"] == "bf16" and not bf16:
        log(f"{label}: precision bf16 applies on CUDA only; training in fp32 on {device}")
    t0 = time.perf_counter()
    last_ckpt = t0
    model.train()
    # the model the steps call: compiled, it shares the module's parameters, so the optimizer, the
    # checkpoints and model.pt (all of `model`) are the same as in eager training
    fwd, compiled, compile_note = model, False, None
    if compile_mode is not None:
        import torch._dynamo

        # a graph that fails to compile later (a new batch shape) runs eagerly rather than ending the job
        torch._dynamo.config.suppress_errors = True
        fwd, compiled = torch.compile(model, mode=compile_mode), True
        rng = torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    f_set = None                                 # the lr factor the optimizer holds
    on_cpu = torch.device(device).type == "cpu"  # batches are made on the CPU: nothing to move
    for step in range(start, steps):
        f = lr_factor(step, t_cfg)
        if f != f_set:                           # a constant schedule sets it once (a step is ~0.3 ms at smoke)
            for g in opt.param_groups:
                g["lr"] = t_cfg["lr"] * f
            f_set = f
        batch = task.batch(gen, t_cfg["batch_size"])
        if not on_cpu:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        opt.zero_grad(set_to_none=True)
        try:
            with autocast:
                loss = task.loss(fwd, batch)
            loss.backward()
        except Exception as e:  # noqa: BLE001 - a compiler's error, at the first compiled step only
            if not (compiled and step == start):
                raise
            # the same step eagerly, from the random state it started with; if that fails too, the
            # error is the model's, not the compiler's, and it is the one the job reports
            torch.set_rng_state(rng[0])
            if rng[1] is not None:
                torch.cuda.set_rng_state_all(rng[1])
            fwd, compiled = model, False
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = task.loss(fwd, batch)
            loss.backward()
            compile_note = f"torch.compile(mode={compile_mode!r}) failed, trained eagerly: {failure_line(e)}"
            log(f"{label}: {compile_note}")
        if t_cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg["grad_clip"])
        opt.step()
        lv = loss.item()
        if not math.isfinite(lv):
            status, diverged_at = "diverged", step + 1
            log(f"{label}: loss is {lv} at step {step + 1}; stopping (status: diverged)")
            break
        acc += lv
        acc_n += 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            hist_step.append(step + 1)
            hist_loss.append(acc / acc_n)
            hist_lr.append(t_cfg["lr"] * f)
            acc, acc_n = 0.0, 0
            if progress is not None:
                progress(step + 1, steps, hist_loss[-1])
        done = step + 1
        if _SIGNAL or (stop_after is not None and done >= stop_after):
            snapshot(done)
            code = 128 + _SIGNAL[0] if _SIGNAL else 143
            log(f"{label}: stopping at step {done} on {'signal ' + str(_SIGNAL[0]) if _SIGNAL else 'request'}; "
                "checkpoint written, a rerun resumes here")
            raise Interrupted(done, code)
        now_t = time.perf_counter()
        if done < steps and ((ckpt_every_steps and done % ckpt_every_steps == 0)
                             or (not ckpt_every_steps and now_t - last_ckpt >= ckpt_every_seconds)):
            snapshot(done)
            last_ckpt = now_t
        if progress is None and ((step + 1) % report_every == 0 or step + 1 == steps):
            t = time.perf_counter()
            rate = (step + 1 - start) / (t - t0)
            eta = (steps - step - 1) / rate if rate > 0 else float("nan")
            shown = hist_loss[-1] if hist_loss else acc / max(acc_n, 1)  # log_every may exceed steps/10
            log(f"{label}: step {step + 1:>7}/{steps} ({100 * (step + 1) / steps:3.0f}%)  loss {shown:.6g}  "
                f"{rate:8.1f} steps/s  eta {eta:5.1f}s")
    compute_s = time.perf_counter() - t0
    converged, drop = convergence(hist_loss, t_cfg["converged_rel_drop"])
    torch.save(model.state_dict(), out / "model.pt")  # also when diverged: the declared output exists
    return {
        "status": status,
        "diverged_at": diverged_at,
        "steps_done": (diverged_at or steps),
        "final_loss": hist_loss[-1] if hist_loss else None,
        "converged": converged if status == "ok" else False,
        "loss_rel_drop_last_10pct": drop,
        "history": {"step": hist_step, "loss": hist_loss, "lr": hist_lr},
        "compute_s": compute_s,
        "resumed_from_step": resumed_from,
        "precision_used": "bf16" if bf16 else "fp32",
        "compiled": compile_mode if compiled else None,
        **({"compile_note": compile_note} if compile_note else {}),
        "n_params": sum(p.numel() for p in model.parameters()),
    }


def _inject_fault(label: str) -> None:
    """Fault injection for the fault tests: CLAIMCHECK_INJECT_FAULT="raise:<label part>" makes the
    matching jobs raise; "sleep:<seconds>" makes every job wait first (a long job to interrupt)."""
    import os

    fault = os.environ.get("CLAIMCHECK_INJECT_FAULT", "")
    kind, _, arg = fault.partition(":")
    if kind == "raise" and arg and arg in label:
        raise RuntimeError(f"injected fault in {label}")
    if kind == "sleep" and arg:
        time.sleep(float(arg))


def _write_record(out: Path, record: dict) -> None:
    """train.json, and manifest.json beside it (undeclared: the provenance next to the outputs)."""
    manifest = {**record.get("provenance", {}), "config_hash": record.get("config_hash"),
                "status": record.get("status"), "wall_s": record.get("wall_s"),
                **({"copy_of": record["copy_of"]} if record.get("copy_of") else {})}
    write_json(out / "manifest.json", manifest)
    write_json(out / "train.json", record)


def copy_fit(src: Path, cfg: dict, out: Path, attempt: str, label: str, log=print) -> int:
    """Make this job's fit a copy of `src`'s, which trains the same config (rules/train.smk, copy_fit).
    The record is src's (its steps, losses, compute and provenance: where the fit was computed), with
    `copy_of` naming src and this job's own retry token; model.pt is a byte copy. No torch: a local step."""
    import shutil

    from .catalogue import config_hash

    want = config_hash(cfg)
    try:
        rec = json.loads((src / "train.json").read_text())
    except (OSError, ValueError) as e:
        log(f"{label}: cannot copy the fit in {src}: {e}; run that fit first "
            f"(snakemake {src}/train.json), or remove --copy-of to train this one")
        return 1
    if rec.get("config_hash") != want:
        log(f"{label}: {src}/train.json is the fit of another config (config_hash {rec.get('config_hash')!r}, "
            f"this job's {want!r}); rerun {src} (snakemake --forcerun {src}/train.json), or train this job itself")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.pt.copying"
    shutil.copyfile(src / "model.pt", tmp)
    tmp.replace(out / "model.pt")
    rec = {**rec, "attempt": attempt, "copy_of": str(src), "copied": now()}
    _write_record(out, rec)
    log(f"{label}: the same config (config_hash {want}) as {src}, which trains it: copied its fit "
        f"(status {rec.get('status')}, {rec.get('steps_done')} steps) in place of training it again")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.train", description="train one job of the DAG")
    p.add_argument("--config", required=True, help="the job's resolved config, as JSON")
    p.add_argument("--out", required=True, type=Path, help="the job's folder (train.json and model.pt go here)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--label", default="", help="how log lines name this job")
    p.add_argument("--attempt", default="", help="retry token from the Snakefile (recorded; see rules/common.smk)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0, help="seconds between checkpoints")
    p.add_argument("--checkpoint-steps", type=int, default=None, help="steps between checkpoints (overrides seconds)")
    p.add_argument("--compile", default=None, choices=["false", "true", *COMPILE_MODES],
                   help="train through torch.compile (true: its default mode; reduce-overhead adds CUDA graphs); "
                        f"default: the run-time setting `compile`, which the Snakefile passes as {COMPILE_ENV}")
    p.add_argument("--copy-of", type=Path, default=None, metavar="DIR",
                   help="copy the fit in DIR, whose config must be this one, in place of training (rules/train.smk)")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    started = now()
    t_wall = time.perf_counter()
    cfg = json.loads(args.config)
    if args.copy_of is not None:
        return copy_fit(args.copy_of, cfg, args.out, args.attempt, args.label or str(args.out),
                        log=lambda s: print(s, file=sys.stderr, flush=True))
    gpu = None
    if args.device in ("auto", "cuda"):
        from .launch.gpu import claim_gpu

        gpu = claim_gpu(log=lambda s: print(s, file=sys.stderr, flush=True))
    import torch

    torch.set_num_threads(max(1, args.threads))
    device = pick_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    label = args.label or str(args.out)
    where = f"{device} (GPU {gpu})" if gpu is not None and device == "cuda" else device
    print(f"{label}: training on {where}, {cfg['train']['steps']} steps", file=sys.stderr, flush=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    import signal

    signal.signal(signal.SIGTERM, _on_signal)   # SLURM preemption, `kill`: checkpoint, then exit
    signal.signal(signal.SIGUSR1, _on_signal)   # SLURM's --signal=USR1@<seconds> before the time limit
    if args.compile is None:
        try:
            mode = compile_mode_from_env()
        except ValueError as e:
            p.error(str(e))
    else:
        mode = {"false": None, "true": "default"}.get(args.compile, args.compile)
    kw = dict(ckpt_every_steps=args.checkpoint_steps, ckpt_every_seconds=args.checkpoint_seconds,
              stop_after=args.stop_after, compile_mode=mode)
    try:
        _inject_fault(label)
        if sys.stderr.isatty():  # a person watching: a live bar; in a log file: a line every 10%
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TextColumn("loss {task.fields[loss]:.5g}"), TimeRemainingColumn(), transient=False) as bar:
                tid = bar.add_task(label, total=cfg["train"]["steps"], loss=float("nan"))
                record = train(cfg, args.out, device, label, log=log,
                               progress=lambda step, total, loss: bar.update(tid, completed=step, loss=loss), **kw)
        else:
            record = train(cfg, args.out, device, label, log=log, **kw)
    except Interrupted as e:
        return e.code
    except KeyboardInterrupt:
        log(f"{label}: interrupted (Ctrl-C); the newest checkpoint in {args.out / 'ckpt'} is kept")
        return 130
    except Exception as e:  # noqa: BLE001 - a failed job is a result the report must show
        last = failure_line(e)
        record = {"status": "failed", "error": last, "diverged_at": None, "steps_done": None, "final_loss": None,
                  "converged": False, "history": {"step": [], "loss": [], "lr": []}, "compute_s": None}
        (args.out / "model.pt").unlink(missing_ok=True)
        torch.save({}, args.out / "model.pt")   # the declared output exists; eval.json will say why it is empty
        log(f"{label}: FAILED: {last}")
    from .catalogue import config_hash

    record = {
        **record,
        "attempt": args.attempt,
        "config": cfg,
        "config_hash": config_hash(cfg),
        "provenance": {**provenance(device), "start": started, "end": now()},
        "wall_s": time.perf_counter() - t_wall,
    }
    _write_record(args.out, record)
    if record["status"] != "failed":
        print(f"{label}: {record['status']}, final loss {record['final_loss']}, converged={record['converged']}, "
              f"{record['compute_s']:.1f}s of compute", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

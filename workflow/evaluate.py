"""Evaluate one trained model at every point of its experiment's evaluation sweep.

    python -m workflow.evaluate --dir results/.../seed0 --config '{"metrics": [...], "sweep": {...}}'

Reads <dir>/train.json and <dir>/model.pt; writes <dir>/eval.json:
    {"status": "ok", "points": [{"at": {"task.length": 64}, "metrics": {...}, "chance": {...}}, ...],
     "metric_facts": {metric: {"better", "lo", "hi", "trained", "band"}},
     "device": "cpu" | "cuda", "device_name": "<the processor or GPU>"}
When training diverged, eval.json says so ("status": "not_run", with the reason) instead
of failing, so the judge can name the cause.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path

from .steps import device_fields, failure_line, job_parser, load_weights, now, pick_device, read_json, untrained_reason, write_json

EVAL_SEED_OFFSET = 1_000_003  # evaluation data never overlaps a training stream


def evaluate(cfg: dict, ecfg: dict, model_path: Path, device: str = "cpu") -> list[dict]:
    import torch

    from modules.models import MODEL_METRIC_SEQUENCES, MODEL_METRICS, apply_eval_axes, build_model, measure_model_metric
    from modules.tasks import build_task

    task_params = {k: v for k, v in cfg["task"].items() if k != "name"}
    base_task = build_task(cfg["task"]["name"], task_params)
    model = build_model(cfg["model"]["arch"], {k: v for k, v in cfg["model"].items() if k != "arch"}, base_task.spec())
    load_weights(model, model_path, device)
    model.to(device).eval()
    sweep = ecfg["sweep"]
    keys = list(sweep)
    points = []
    perturbed = False
    for combo in itertools.product(*(sweep[k] for k in keys)):
        at = dict(zip(keys, combo))
        task = build_task(cfg["task"]["name"], {**task_params, **{k[5:]: v for k, v in at.items() if k.startswith("task.")}})
        gen = torch.Generator().manual_seed(EVAL_SEED_OFFSET + int(cfg["seed"]))
        model_at = {k[6:]: v for k, v in at.items() if k.startswith("model.")}
        if perturbed:
            # a model axis changed the weights in place: every point starts from the trained ones
            load_weights(model, model_path, device)
            model.to(device).eval()
            perturbed = False
        if any(model_at.values()):
            # its own generator, so that the task's evaluation data stay those of the unperturbed point,
            # and the same direction at every beta of a seed
            apply_eval_axes(model, model_at, torch.Generator().manual_seed(EVAL_SEED_OFFSET + 7919 * int(cfg["seed"]) + 1))
            perturbed = True
        if not ecfg["metrics"]:          # an experiment judged on its probes only
            points.append({"at": at, "metrics": {}})
            continue
        values = task.evaluate(model, gen, device)
        own = [m for m in ecfg["metrics"] if m in MODEL_METRICS and m not in values]
        for m in own:
            x = task.eval_batch(torch.Generator().manual_seed(EVAL_SEED_OFFSET + int(cfg["seed"])),
                                MODEL_METRIC_SEQUENCES[m])["x"]
            values = {**values, m: measure_model_metric(m, model, x.to(device))}
        missing = [m for m in ecfg["metrics"] if m not in values]
        if missing:
            raise RuntimeError(f"task {cfg['task']['name']!r} returned no {missing}")
        chance = task.chance()
        points.append({
            "at": at,
            "metrics": {m: (values[m] if math.isfinite(values[m]) else None) for m in ecfg["metrics"]},
            # the input-blind predictor's score at this point (the judge's "learned nothing" test)
            "chance": {m: chance[m] for m in ecfg["metrics"] if m in chance and math.isfinite(chance[m])},
        })
    return points


def metric_facts(cfg: dict) -> dict:
    """The facts of the task's metrics and of the model metrics (better side, range, trained, band):
    the judge reads them here."""
    from modules.models import model_metric_facts
    from modules.tasks import get_task_class

    return {**model_metric_facts(), **get_task_class(cfg["task"]["name"]).facts()}


def main(argv: list[str] | None = None) -> int:
    args = job_parser("python -m workflow.evaluate", "evaluate one trained model", "the evaluation config (metrics, sweep) as JSON").parse_args(argv)
    started = now()
    tr = read_json(args.dir / "train.json")
    cfg = tr["config"]
    ecfg = json.loads(args.config)
    out = {"config_hash": tr["config_hash"], "eval_config": ecfg, "start": started, "attempt": args.attempt}
    reason = untrained_reason(tr)
    if reason:
        write_json(args.dir / "eval.json", {**out, "status": "not_run", "reason": reason, "points": []})
        print(f"{args.dir}: not evaluated: {reason}", file=sys.stderr)
        return 0
    if args.device in ("auto", "cuda"):
        from .launch.gpu import claim_gpu

        claim_gpu(log=lambda s: print(s, file=sys.stderr, flush=True))
    import torch

    torch.set_num_threads(max(1, args.threads))
    device = pick_device(args.device)
    t0 = time.perf_counter()
    try:
        points = evaluate(cfg, ecfg, args.dir / "model.pt", device)
    except Exception as e:  # noqa: BLE001 - a failed job is a result the report must show
        last = failure_line(e)
        write_json(args.dir / "eval.json", {**out, "status": "failed", "reason": last, "points": [], "end": now()})
        print(f"{args.dir}: evaluation FAILED: {last}", file=sys.stderr)
        return 0
    write_json(args.dir / "eval.json", {**out, "status": "ok", "points": points, "metric_facts": metric_facts(cfg),
                                        **device_fields(device),
                                        "compute_s": time.perf_counter() - t0, "end": now()})
    for pt in points:
        at = ", ".join(f"{k}={v}" for k, v in pt["at"].items()) or "default"
        vals = "  ".join(f"{k}={v:.4g}" if v is not None else f"{k}=nan" for k, v in pt["metrics"].items())
        print(f"{args.dir} [{at}]: {vals}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Probe the frozen hidden states of one trained model: every probe of its experiment in one job.

    python -m workflow.probe --dir results/.../seed0 --config '{"probes": [...], "layers": [...]}'

Reads <dir>/train.json and <dir>/model.pt; draws held-out probe data from the task once, runs the
model once with return_hidden=True (the states of every probed layer are computed once per
checkpoint, not per probe), runs each probe (modules.probes.kinds) and writes <dir>/probe.json:
    {"status": "ok", "probes": {<id>: {"kind", "points": [{"at": {"probe.layer": 1}, "metrics":
     {"<id>.score": ...}}], "result": <the probe's raw output>}}, "positions", "compute_s"}
and one <dir>/probe-<id>.json per probe with the same record (for reading one probe alone).
When training did not finish, probe.json says so ("status": "not_run") instead of failing.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from .steps import device_fields, failure_line, job_parser, load_weights, now, pick_device, read_json, untrained_reason, write_json

PROBE_SEED_OFFSET = 2_000_003   # probe data never overlaps training or evaluation streams


def probe(cfg: dict, pcfg: dict, model_path: Path, device: str = "cpu", log=print) -> dict:
    import torch

    from modules.models import build_model
    from modules.probes.kinds import facts_of, hidden_states, run_probe
    from modules.tasks import build_task

    task = build_task(cfg["task"]["name"], {k: v for k, v in cfg["task"].items() if k != "name"})
    model = build_model(cfg["model"]["arch"], {k: v for k, v in cfg["model"].items() if k != "arch"}, task.spec())
    load_weights(model, model_path, device)
    model.to(device).eval()
    seed = int(cfg["seed"])
    positions = max(p["positions"] for p in pcfg["probes"])
    t0 = time.perf_counter()
    data = task.probe_data(torch.Generator().manual_seed(PROBE_SEED_OFFSET + seed), positions)
    layers = pcfg["layers"]
    hiddens = hidden_states(model, data["x"], layers, device=device)              # one (B, T, D) per layer
    log(f"hidden states of layers {layers}: {tuple(data['x'].shape)} positions in {time.perf_counter() - t0:.1f}s")
    out = {}
    for p in pcfg["probes"]:
        t1 = time.perf_counter()
        n_seq = max(2, -(-p["positions"] // data["x"].shape[1]))
        sub = {**data, "x": data["x"][:n_seq], "labels": {k: v[:n_seq] for k, v in data["labels"].items()}}
        hs = [h[:n_seq] for h in hiddens]
        use = [layers.index(l) for l in p["layers"]]
        points, raw = run_probe(p["kind"], [hs[i] for i in use], sub, p["layers"], p.get("target"), p["params"], seed)
        for pt in points:
            pt["metrics"] = {f"{p['id']}.{k}": (float(v) if v is not None and math.isfinite(float(v)) else None)
                             for k, v in pt["metrics"].items()}
            pt["chance"] = {f"{p['id']}.{k}": v for k, v in pt.get("chance", {}).items() if math.isfinite(v)}
        out[p["id"]] = {"kind": p["kind"], "target": p.get("target"), "points": points, "result": raw,
                        "metric_facts": {f"{p['id']}.{k}": v for k, v in facts_of(p["kind"]).items()}}
        log(f"probe {p['id']} ({p['kind']}): {len(points)} points in {time.perf_counter() - t1:.1f}s")
    return out


def main(argv: list[str] | None = None) -> int:
    args = job_parser("python -m workflow.probe", "probe one trained model's hidden states", "the probe config (probes, layers) as JSON").parse_args(argv)
    started = now()
    tr = read_json(args.dir / "train.json")
    pcfg = json.loads(args.config)
    out = {"config_hash": tr["config_hash"], "probe_config": pcfg, "start": started, "attempt": args.attempt}
    reason = untrained_reason(tr)
    if reason:
        write_json(args.dir / "probe.json", {**out, "status": "not_run", "reason": reason, "probes": {}})
        print(f"{args.dir}: not probed: {reason}", file=sys.stderr)
        return 0
    if args.device in ("auto", "cuda"):
        from .launch.gpu import claim_gpu

        claim_gpu(log=lambda s: print(s, file=sys.stderr, flush=True))
    import torch

    torch.set_num_threads(max(1, args.threads))
    device = pick_device(args.device)
    t0 = time.perf_counter()
    try:
        probes = probe(tr["config"], pcfg, args.dir / "model.pt", device,
                       log=lambda s: print(f"{args.dir}: {s}", file=sys.stderr, flush=True))
    except Exception as e:  # noqa: BLE001 - a failed job is a result the report must show
        last = failure_line(e)
        write_json(args.dir / "probe.json", {**out, "status": "failed", "reason": last, "probes": {}, "end": now()})
        print(f"{args.dir}: probing FAILED: {last}", file=sys.stderr)
        return 0
    for pid, res in probes.items():     # one file per probe too (undeclared; probe.json is the job's output)
        write_json(args.dir / f"probe-{pid}.json", {"config_hash": tr["config_hash"], "id": pid, **res})
    write_json(args.dir / "probe.json", {**out, "status": "ok", "probes": probes, **device_fields(device),
                                         "compute_s": time.perf_counter() - t0, "end": now()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

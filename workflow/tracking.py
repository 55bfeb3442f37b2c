"""Log finished jobs to MLflow from their result files.

Jobs never import MLflow (about 3 s per process here, more than a smoke job's math):
they write train.json and eval.json, and one tracking step per paper logs every job's run
in one process, with batched calls. Logging is idempotent: a job whose files were already
logged (same job folder, same result hash) is found by its tags and not logged twice, so
the step can be rerun, and a failed or unreachable tracking store loses nothing: the
files stay, the step records the error, and `sync` logs the missing runs later.

    python -m workflow.tracking log  --paper catalogue/x.yaml --scale smoke --out results/smoke/x/runs.json
    python -m workflow.tracking sync [--scale smoke] [PAPER ...]     # log whatever is on disk and missing

MLflow layout: one experiment per paper and scale ("<paper>/<scale>"), tagged as model
development (`mlflow.experimentKind`, so MLflow 3's UI opens its training view, not the GenAI
one) and described (title, paper link, verdict counts) once the report exists; a parent run per
catalogue experiment; one child run per trained model (a train job and its evaluation) with
flattened params, the loss history, the evaluation metrics, the JSON files and the trained model
as artifacts, the job's own start and end times, and tags paper, experiment, model, seed, scale,
point, git sha, dirty flag and config hash. After the report, every claim's verdict and measured
value reach the child runs it rests on (tags `claim.<id>.verdict`, `claim.<id>.measured`). The
tracking URI is MLFLOW_TRACKING_URI when set, else config.yaml's tracking_uri.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .catalogue import CatalogueError, catalogue_files, load_paper
from .steps import write_json

DEFAULT_URI = "sqlite:///mlflow.db"
EXPERIMENT_KIND = "custom_model_development"     # what MLflow 3's UI reads from mlflow.experimentKind
MODEL_ARTIFACT_MAX = 64 * 2**20                  # a larger model.pt is linked (tag model_path), not copied


def _quiet_mlflow() -> None:
    """MLflow's log chatter down to warnings, and its usage telemetry off unless the user set
    MLFLOW_DISABLE_TELEMETRY: it sends events to a remote endpoint (unreachable on offline
    cluster nodes) and cost about 0.1 s per collector job here."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _cache_schema_head()


def _cache_schema_head():
    """Opening a SQL store makes MLflow check the database's schema against the newest of its
    migrations, which it finds by loading all ~70 alembic migration scripts: 40 ms in every
    collector job. That newest revision is a constant of the installed MLflow, so keep it
    after the first look. A guarded patch of a private function: where MLflow lacks it, nothing
    changes (returns None); else returns the cached function."""
    try:
        import mlflow.store.db.utils as db_utils
    except ImportError:
        return None
    fn = getattr(db_utils, "_get_latest_schema_revision", None)
    if fn is not None and not getattr(fn, "_claimcheck_cached", False):
        fn = functools.cache(fn)
        fn._claimcheck_cached = True
        db_utils._get_latest_schema_revision = fn
    return fn


def warm() -> None:
    """What the fork server runs once so that every collector job it forks inherits it."""
    fn = _cache_schema_head()
    if fn is not None:
        fn()


def tracking_uri(configured: str | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_URI


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, bool)) or v is None else str(v)
    return out


def _run_ends(values: list) -> list[int]:
    """Indices of the first and last entry of every run of equal values. A learning rate that
    is constant for stretches (no schedule, a warm-up's end, step decay) is logged at those
    points only; MLflow's charts join them with straight lines, so the curve is the same (a
    constant lr: 2 points instead of one per logged step). A schedule that changes every step
    keeps every point. The whole history stays in the train.json artifact."""
    n = len(values)
    return [i for i in range(n) if i in (0, n - 1) or values[i] != values[i - 1] or values[i] != values[i + 1]]


def _metric_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


MLFLOW_S = [0.0]   # seconds this process spent inside MLflow (imports, client and store set-up, calls)


@contextlib.contextmanager
def _in_mlflow():
    t0 = time.perf_counter()
    try:
        yield
    finally:
        MLFLOW_S[0] += time.perf_counter() - t0


def _client(uri: str):
    """An MlflowClient; its first use of a store sets the store up (a new sqlite store: its schema)."""
    with _in_mlflow():
        _quiet_mlflow()
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=uri)


def _retry(fn, tries: int = 4, delay: float = 0.5):
    for i in range(tries):
        try:
            with _in_mlflow():
                return fn()
        except Exception:  # noqa: BLE001 - MLflow raises many kinds; the last one propagates
            if i == tries - 1:
                raise
            time.sleep(delay * 2 ** i)


def _stage(folder: str | Path, files: list[Path]) -> None:
    """Hard links to `files` in `folder` (copies where links are not possible), for one artifact call."""
    Path(folder).mkdir(exist_ok=True)
    for f in files:
        try:
            os.link(f, Path(folder) / f.name)
        except OSError:
            shutil.copy2(f, Path(folder) / f.name)


class Tracker:
    """Idempotent logging of job folders into one MLflow experiment."""

    def __init__(self, uri: str, experiment_name: str):
        self.uri = uri
        self.client = _client(uri)
        exp = _retry(lambda: self.client.get_experiment_by_name(experiment_name))
        if exp is None:
            kwargs = {}
            if uri.startswith("sqlite:"):
                # beside the store, like `mlflow server`'s default, rather than ./mlruns
                kwargs["artifact_location"] = (Path.cwd() / "mlartifacts" / experiment_name.replace("/", "-")).as_uri()
            self.exp_id = _retry(lambda: self.client.create_experiment(
                experiment_name, tags={"mlflow.experimentKind": EXPERIMENT_KIND}, **kwargs))
            self._existing = {}   # a new experiment has no runs: nothing to search
        else:
            self.exp_id = exp.experiment_id
            self._existing = None
            if exp.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND:
                _retry(lambda: self.client.set_experiment_tag(self.exp_id, "mlflow.experimentKind", EXPERIMENT_KIND))

    def existing(self) -> dict[tuple[str, str], str]:
        """(job_key, result_hash) -> run id of every complete run already in the experiment.
        A run left RUNNING (logging died half-way) is not complete: it is deleted and redone."""
        if self._existing is None:
            self._existing = {}
            token = None
            while True:
                page = _retry(lambda: self.client.search_runs([self.exp_id], max_results=5000, page_token=token))
                for r in page:
                    key = r.data.tags.get("job_key")
                    if not key:
                        continue
                    if r.info.status == "RUNNING" and r.data.tags.get("result_hash") != "parent":
                        rid = r.info.run_id
                        _retry(lambda: self.client.delete_run(rid))
                        continue
                    self._existing[(key, r.data.tags.get("result_hash", ""))] = r.info.run_id
                token = page.token
                if not token:
                    break
        return self._existing

    def parent(self, key: str, name: str, tags: dict, span: tuple[int, int] | None = None) -> str:
        """The experiment's parent run; `span` (its jobs' first start, last end) sets its times, so
        that its duration is its jobs' and not the instant the collector made it."""
        found = self.existing().get((key, "parent"))
        if found:
            if span:
                _retry(lambda: self.client.set_terminated(found, "FINISHED", end_time=span[1]))
            return found
        run = _retry(lambda: self.client.create_run(self.exp_id, run_name=name, start_time=span[0] if span else None,
                                                    tags={**tags, "job_key": key, "result_hash": "parent"}))
        _retry(lambda: self.client.set_terminated(run.info.run_id, "FINISHED", end_time=span[1] if span else None))
        self.existing()[(key, "parent")] = run.info.run_id
        return run.info.run_id

    def _artifact_repo(self, run):
        """The run's artifact store, from the artifact URI that create_run returned: what
        client.log_artifacts builds after fetching the run again (one more store query a run).
        None if this MLflow lacks the function; the caller then uses client.log_artifacts."""
        try:
            with _in_mlflow():
                from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

                return get_artifact_repository(run.info.artifact_uri, tracking_uri=self.uri)
        except (ImportError, TypeError):
            return None

    def log_job(self, job, job_dir: Path, parent_id: str, tr_text: str | None = None) -> str:
        """One job's run (found, or made); `tr_text` is its train.json when the caller has read it."""
        from mlflow.entities import Metric, Param

        tr_text = tr_text if tr_text is not None else (job_dir / "train.json").read_text()
        ev_path = job_dir / "eval.json"
        ev_text = ev_path.read_text() if ev_path.exists() else ""
        pr_path = job_dir / "probe.json"
        pr_text = pr_path.read_text() if pr_path.exists() else ""
        rhash = hashlib.sha256((tr_text + ev_text + pr_text).encode()).hexdigest()[:16]
        found = self.existing().get((job.dir, rhash))
        if found:
            return found
        tr = json.loads(tr_text)
        ev = json.loads(ev_text) if ev_text else {"status": "missing", "points": []}
        prov = tr.get("provenance", {})
        tags = {
            "paper": job.paper, "experiment": job.experiment, "model": job.model, "seed": str(job.seed),
            "scale": job.scale, "point": job.point_name, "git_sha": str(prov.get("git_sha")),
            "git_dirty": str(prov.get("git_dirty")), "config_hash": tr.get("config_hash", ""),
            "job_key": job.dir, "result_hash": rhash, "status": tr.get("status", ""),
            "eval_status": ev.get("status", ""), "converged": str(tr.get("converged")),
            "host": str(prov.get("host")), "device": str(prov.get("device")),
            "start": str(prov.get("start")), "end": str(prov.get("end")),
            **{f"version.{k}": str(v) for k, v in (prov.get("packages") or {}).items()},
            "mlflow.parentRunId": parent_id, "mlflow.source.git.commit": str(prov.get("git_sha")),
        }
        if tr.get("copy_of"):       # a fit of the same config, trained by another job (rules/train.smk)
            tags["copy_of"] = str(tr["copy_of"])
        model = job_dir / "model.pt"
        if model.exists():
            tags["model_path"] = str(model.resolve())
        start_ms, end_ms = job_times(tr, job_dir)
        run = _retry(lambda: self.client.create_run(
            self.exp_id, run_name=f"{job.model}/{job.point_name}/seed{job.seed}", tags=tags, start_time=start_ms))
        rid = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in flatten(tr["config"]).items()]
        metrics = []
        h = tr.get("history", {})
        steps, losses, lrs = h.get("step", []), h.get("loss", []), h.get("lr", [])
        for step, loss in zip(steps, losses):
            metrics.append(Metric("train/loss", loss, start_ms, step))
        for i in _run_ends(lrs[:len(steps)]):
            metrics.append(Metric("train/lr", lrs[i], start_ms, steps[i]))
        for name in ("final_loss", "compute_s", "wall_s", "steps_done", "n_params"):
            if isinstance(tr.get(name), (int, float)):
                metrics.append(Metric(f"train/{name}", float(tr[name]), start_ms, 0))
        for pt in ev.get("points", []):
            suffix = "".join(f"/{k}={v}" for k, v in pt["at"].items())
            for m, v in pt["metrics"].items():
                if v is not None:
                    metrics.append(Metric(_metric_name(f"eval/{m}{suffix}"), float(v), start_ms, 0))
        for res in (json.loads(pr_text).get("probes", {}) if pr_text else {}).values():
            for pt in res.get("points", []):
                suffix = "".join(f"/{k}={v}" for k, v in pt["at"].items())
                for m, v in pt["metrics"].items():
                    if v is not None:
                        metrics.append(Metric(_metric_name(f"probe/{m}{suffix}"), float(v), start_ms, 0))
        # as few calls as MLflow's batch limits allow (100 params, 1,000 entries per call): for a
        # smoke or small job, one
        while params or metrics:
            p_chunk, params = params[:100], params[100:]
            m_chunk, metrics = metrics[:1000 - len(p_chunk)], metrics[1000 - len(p_chunk):]
            _retry(lambda: self.client.log_batch(rid, params=p_chunk, metrics=m_chunk))
        # the result files in one artifact call (each call looks the run up again), from a staging
        # folder of hard links (copies where links are not possible)
        files = [job_dir / f for f in ("train.json", "eval.json", "probe.json") if (job_dir / f).exists()]
        if model.exists() and model.stat().st_size <= MODEL_ARTIFACT_MAX:
            files.append(model)
        with tempfile.TemporaryDirectory(prefix="claimcheck-artifacts-") as stage:
            _stage(stage, files)
            repo = self._artifact_repo(run)
            _retry(lambda: repo.log_artifacts(stage) if repo else self.client.log_artifacts(rid, stage))
        status = "FINISHED" if tr.get("status") == "ok" and ev.get("status") == "ok" else "FAILED"
        _retry(lambda: self.client.set_terminated(rid, status, end_time=end_ms))
        self.existing()[(job.dir, rhash)] = rid
        return rid


def _epoch_ms(stamp) -> int | None:
    """'2026-12-04T13:20:56+0000' -> milliseconds since the epoch; None when absent or unreadable."""
    from datetime import datetime

    try:
        return int(datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)
    except ValueError:
        return None


def job_times(tr: dict, job_dir: Path) -> tuple[int, int]:
    """A run's start and end: its training job's own, from the provenance it recorded (the end as
    start + wall time, finer than the stamps' seconds); failing that, train.json's modification
    time less the wall time."""
    wall_ms = int(1000 * (tr.get("wall_s") or 0))
    prov = tr.get("provenance") or {}
    start = _epoch_ms(prov.get("start"))
    if start is None:
        end = int((job_dir / "train.json").stat().st_mtime * 1000)
        return end - wall_ms, end
    return start, start + wall_ms if wall_ms else (_epoch_ms(prov.get("end")) or start)


def log_paper(paper_path: Path, scale: str, uri: str, root: Path = Path(".")) -> dict:
    """Log every finished job of a paper at a scale; returns {"runs": {job_dir: run_id}, ...}."""
    lp = load_paper(paper_path, registry_checks=False)   # the run validated the catalogue when it started
    jobs = [j for j in lp.jobs(scale) if (root / j.dir / "train.json").exists()]
    result = {"uri": _display_uri(uri), "experiment": f"{lp.id}/{scale}", "runs": {}, "parents": {}, "error": None}
    if not jobs:
        return result
    t0, in_mlflow0 = time.perf_counter(), MLFLOW_S[0]
    with _lock(root / "results" / ".tracking.lock"):
        tracker = Tracker(uri, f"{lp.id}/{scale}")
        result["experiment_id"] = tracker.exp_id
        spans: dict[str, tuple[int, int]] = {}      # each experiment's first start and last end
        texts: dict[str, str] = {}                   # each train.json, read once
        for job in jobs:
            try:
                texts[job.dir] = (root / job.dir / "train.json").read_text()
                start, end = job_times(json.loads(texts[job.dir]), root / job.dir)
            except (OSError, ValueError):
                continue
            lo, hi = spans.get(job.experiment, (start, end))
            spans[job.experiment] = (min(lo, start), max(hi, end))
        for job in jobs:
            pkey = f"{lp.id}/{scale}/{job.experiment}"
            if pkey not in result["parents"]:
                result["parents"][pkey] = tracker.parent(pkey, job.experiment, {
                    "paper": lp.id, "experiment": job.experiment, "scale": scale}, spans.get(job.experiment))
            result["runs"][job.dir] = tracker.log_job(job, root / job.dir, result["parents"][pkey], texts.get(job.dir))
    result["seconds"] = time.perf_counter() - t0
    result["mlflow_s"] = MLFLOW_S[0] - in_mlflow0   # this paper's own (`sync` logs several in one process)
    return result


def log_report(runs_file: Path, verdicts_file: Path, report_dir: Path) -> int:
    """Attach the paper's report, figures and verdicts to its experiments' parent runs, and tag
    each parent run with its claims' verdicts. Returns the number of parent runs updated."""
    runs = json.loads(Path(runs_file).read_text())
    if runs.get("error") or not runs.get("parents"):
        return 0
    verdicts = json.loads(Path(verdicts_file).read_text())
    client = _client(tracking_uri(None) if os.environ.get("MLFLOW_TRACKING_URI") else runs["uri"])
    from mlflow.entities import RunTag

    n = 0
    # one staging folder of links for every parent: report/verdicts.json, index.html, report.md, figures/
    with tempfile.TemporaryDirectory(prefix="claimcheck-report-") as stage:
        _stage(stage, [Path(verdicts_file)] + [report_dir / f for f in ("index.html", "report.md") if (report_dir / f).exists()])
        figures = report_dir / "figures"
        if figures.is_dir():
            _stage(Path(stage) / "figures", [f for f in sorted(figures.iterdir()) if f.is_file()])
        for key, run_id in runs["parents"].items():
            experiment = key.rsplit("/", 1)[1]
            tags = [RunTag(f"claim.{c['id']}", c["verdict"]) for c in verdicts["claims"] if c["experiment"] == experiment]
            for i in range(0, len(tags), 1000):   # one call for all of them (MLflow takes 1,000 entries a batch)
                _retry(lambda: client.log_batch(run_id, tags=tags[i:i + 1000]))
            _retry(lambda: client.log_artifacts(run_id, stage, "report"))
            n += 1
    # every claim's verdict and measured value on the child runs it rests on
    per_run: dict[str, list] = {}
    for c in verdicts["claims"]:
        for job in c.get("jobs") or []:
            rid = runs.get("runs", {}).get(job)
            if rid:
                per_run.setdefault(rid, []).extend([
                    RunTag(f"claim.{c['id']}.verdict", c["verdict"]),
                    RunTag(f"claim.{c['id']}.measured", (c.get("measured_text") or "")[:5000])])
    for rid, tags in per_run.items():
        for i in range(0, len(tags), 1000):
            _retry(lambda: client.log_batch(rid, tags=tags[i:i + 1000]))
    if runs.get("experiment_id"):
        eid = runs["experiment_id"]
        _retry(lambda: client.set_experiment_tag(eid, "mlflow.note.content", describe(verdicts)))
        _retry(lambda: client.set_experiment_tag(eid, "mlflow.experimentKind", EXPERIMENT_KIND))
    return n


def describe(verdicts: dict) -> str:
    """The experiment's description (Markdown, shown by the MLflow UI): the paper, its link, the
    verdict counts at this scale and where the report is."""
    p = verdicts["paper"]
    counts = ", ".join(f"{v.replace('_', ' ')} {n}" for v, n in verdicts["counts"].items())
    ours = verdicts.get("counts_ours") or {}
    lines = [f"**{p['title']}**" + (f" ({p.get('authors')}, {p.get('year')})" if p.get("authors") else f" ({p.get('year')})"),
             "", f"Paper: {p['url']}" if p.get("url") else "", "",
             f"Scale {verdicts['scale']}: the paper's claims: {counts}."]
    if any(ours.values()):
        lines.append("Claims that are ours: " + ", ".join(f"{v.replace('_', ' ')} {n}" for v, n in ours.items() if n) + ".")
    lines += ["", f"Report: reports/{verdicts['scale']}/{p['id']}/index.html (git {str(verdicts.get('git_sha', ''))[:12]})"]
    return "\n".join(x for x in lines if x is not None)


def _display_uri(uri: str) -> str:
    """The URI without credentials, for files and reports."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.tracking", description="log result files to MLflow")
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("log", help="log one paper's jobs at one scale (the DAG's tracking step)")
    lg.add_argument("--paper", required=True, type=Path)
    lg.add_argument("--scale", required=True)
    lg.add_argument("--uri", default=None, help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    lg.add_argument("--out", required=True, type=Path, help="runs.json: job folder -> run id")
    rp = sub.add_parser("report", help="attach a paper's report and verdicts to its MLflow parent runs")
    rp.add_argument("--runs", required=True, type=Path, help="runs.json of the tracking step")
    rp.add_argument("--verdicts", required=True, type=Path)
    rp.add_argument("--dir", required=True, type=Path, help="the paper's report folder")
    sv = sub.add_parser("server", help="start a shared MLflow server (foreground; Ctrl-C stops it)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; 0.0.0.0 opens it to the network)")
    sv.add_argument("--port", type=int, default=5000)
    sv.add_argument("--store", default="sqlite:///mlflow-server.db",
                    help="backend store URI: sqlite:///file.db, or postgresql://user@host/db for many writers")
    sv.add_argument("--artifacts", default="mlartifacts-server", help="folder the server keeps artifacts in")
    sv.add_argument("--workers", type=int, default=2, help="server worker processes")
    sy = sub.add_parser("sync", help="log every result on disk that MLflow lacks")
    sy.add_argument("papers", nargs="*", help="paper ids (default: all in catalogue/)")
    sy.add_argument("--scale", action="append", choices=["smoke", "small", "full"], help="default: every scale with results")
    sy.add_argument("--uri", default=None)
    args = p.parse_args(argv)
    MLFLOW_S[0] = 0.0   # this command's own (a forked step starts with its server's count)
    # an unreachable server should cost seconds, not MLflow's default minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    uri = tracking_uri(getattr(args, "uri", None))
    if args.cmd == "log":
        try:
            result = log_paper(args.paper, args.scale, uri)
            print(f"MLflow: {len(result['runs'])} runs of {result['experiment']} at {result['uri']}"
                  f" ({result.get('seconds', 0):.1f}s)", file=sys.stderr)
        except CatalogueError:
            raise
        except Exception as e:  # noqa: BLE001 - tracking must never cost a result
            result = {"uri": _display_uri(uri), "runs": {}, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
            print(f"warning: MLflow logging failed ({result['error']}); the results are safe in results/. "
                  f"Log them later with: python -m workflow.tracking sync --scale {args.scale}", file=sys.stderr)
        write_json(args.out, result)
        return 0
    if args.cmd == "server":
        cmd = ["mlflow", "server", "--host", args.host, "--port", str(args.port), "--backend-store-uri", args.store,
               "--artifacts-destination", str(Path(args.artifacts).resolve()), "--serve-artifacts",
               "--workers", str(args.workers)]
        print(f"MLflow server on http://{args.host}:{args.port} (store {args.store}); point jobs at it with\n"
              f"  export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}", file=sys.stderr, flush=True)
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        cmd[0] = str(mlflow_bin) if mlflow_bin.exists() else "mlflow"
        os.execvp(cmd[0], cmd)
    if args.cmd == "report":
        done = {"parents": 0, "error": None}
        try:
            done["parents"] = log_report(args.runs, args.verdicts, args.dir)
            print(f"MLflow: report attached to {done['parents']} parent run(s)", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - the report on disk is what matters
            done["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
            print(f"warning: could not attach the report to MLflow ({done['error']})", file=sys.stderr)
        # beside runs.json: what this step spent inside MLflow (python -m bench pipeline adds it up)
        write_json(Path(args.runs).with_name("report-tracking.json"), {**done, "mlflow_s": MLFLOW_S[0]})
        return 0
    papers = args.papers or [f.stem for f in catalogue_files()]
    failed = 0
    for pid in papers:
        path = Path("catalogue") / f"{pid}.yaml"
        scales = args.scale or [s for s in ("smoke", "small", "full") if (Path("results") / s / pid).exists()]
        for scale in scales:
            try:
                result = log_paper(path, scale, uri)
            except Exception as e:  # noqa: BLE001
                print(f"{pid}/{scale}: failed: {e}", file=sys.stderr)
                failed += 1
                continue
            out = Path("results") / scale / pid / "runs.json"
            if out.parent.exists():
                write_json(out, result)
            print(f"{pid}/{scale}: {len(result['runs'])} runs in MLflow", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

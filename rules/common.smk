# Helpers for the rules: the catalogue, the job table, input functions, targets. No rules here.
import json
import os
import re
import sys
from pathlib import Path

from workflow.catalogue import CatalogueError, check_job_cap, load_catalogue_deferred, shared_fits
from workflow.runconfig import select_papers
from workflow.console import print_problems

SCALE = config["scale"]
RESERVED = {"all", "train", "copy_fit", "evaluate", "probe", "track", "judge", "report", "report_index"}

# The registry checks of a catalogue that changed since it last passed (they import torch and build
# every task: seconds) run in a background process while Snakemake builds the DAG; onstart waits for
# them before any job, and a dry run or a run with nothing to do at exit (CATALOGUE_CHECKS). Where no
# hook runs (a job's own Snakemake, --no-hooks) they run here, first.
CATALOGUE_CHECKS = None
try:
    PAPERS, CATALOGUE_CHECKS = load_catalogue_deferred(
        sorted(Path("catalogue").glob("*.yaml")), cache=Path(".snakemake/catalogue-validated"),
        defer=not workflow.remote_exec and not getattr(workflow.execution_settings, "no_hooks", False))
    if CATALOGUE_CHECKS is not None:
        import atexit

        atexit.register(CATALOGUE_CHECKS.stop_on_problems, at_exit=True)
    if not PAPERS:
        raise CatalogueError(["catalogue/: no catalogue entries (*.yaml); add one, see docs/catalogue.md"])
    SELECTED = select_papers(config, list(PAPERS))
    for _pid, _lp in PAPERS.items():
        if _pid in RESERVED:
            raise CatalogueError([f"{_lp.path}: paper.id: {_pid!r} is the name of a rule; choose another id"])
    check_job_cap({p: PAPERS[p] for p in SELECTED}, [SCALE], config["max_jobs"])
except CatalogueError as _e:
    print_problems(_e.problems)
    sys.exit(1)

# paper -> its Jobs at this scale
JOBS_OF = {pid: lp.jobs(SCALE) for pid, lp in PAPERS.items()}


# A fit (one train job and the evaluate and probe jobs of its model) is one wildcard, its folder below
# results/<scale>/ (Job.dir): <paper>/<experiment>/<model>/<point>/seed<seed>. Snakemake substitutes
# every wildcard into every path, log, benchmark and param template of every job, so one wildcard in
# place of five takes ~4% off a 10,000-job DAG (`python -m bench pipeline --parts dag`).
wildcard_constraints:
    scale="smoke|small|full",
    paper="[a-z0-9][a-z0-9_]*",
    fit="[a-z0-9][a-z0-9_]*/[a-z0-9][a-z0-9_]*/[a-z0-9][a-z0-9_]*/[^/]+/seed[0-9]+",


# results/<scale>/<fit> -> Job, for every paper at this scale
JOB_AT = {job.dir: job for jobs in JOBS_OF.values() for job in jobs}

# Fits that several jobs would train alike (the same resolved config and seed, in two papers or two
# experiments): the folder of each copy -> the folder that trains it (workflow/catalogue/model.py,
# shared_fits). Over every paper at this scale, not the selected ones, so that the choice never moves
# between runs. The rule copy_fit (rules/train.smk) makes exactly these folders' outputs; its
# wildcard constraint lists them ("(?!)", which matches nothing, when there are none).
COPY_OF = shared_fits(JOB_AT.values())
_PREFIX = f"results/{SCALE}/"
COPY_FITS = "|".join(re.escape(d[len(_PREFIX):]) for d in sorted(COPY_OF)) or "(?!)"


def _job(w):
    job = JOB_AT.get(f"results/{w.scale}/{w.fit}")
    if job is None:
        paper = w.fit.split("/", 1)[0]
        where = PAPERS[paper].path if paper in PAPERS else "catalogue/"
        raise ValueError(f"no job {w.fit} in {where} at scale {w.scale}: ask for a result of an experiment, "
                         f"model, sweep point and seed that it lists (`snakemake -n {paper}` lists them), "
                         f"or add them there")
    return job


# The rules' other params are wildcard templates, not functions: at 10,000 jobs each input
# function costs Snakemake a signature inspection per call (`python -m bench pipeline
# --parts dag`). A job's folder is the template "results/{scale}/{fit}", which is Job.dir.
def train_config_json(w):
    """The train job's resolved config: a change to it reruns exactly this job."""
    return _job(w).config_json


def copy_source(w):
    """What a copied fit is made from: the record and model of the fit it shares (COPY_OF)."""
    src = COPY_OF[f"results/{w.scale}/{w.fit}"]
    return {"json": f"{src}/train.json", "model": f"{src}/model.pt"}


def copy_source_dir(wildcards, input):
    """The shared fit's folder, from the copy's first input (derived: not a param of its own)."""
    return os.path.dirname(input[0])


def eval_config_json(w):
    return json.dumps(_job(w).eval_config, sort_keys=True)


def probe_config_json(w):
    return json.dumps(_job(w).probe_config, sort_keys=True)


def fit_dir(wildcards, output):
    """A fit's folder, from its first output: where the step reads its model and writes its record."""
    return os.path.dirname(output[0])


def _attempt(w, name):
    """A retry token: a job whose record says "failed" gets a new token, which changes its params,
    so Snakemake reruns it next time; a finished job keeps the token it ran with."""
    try:
        with open(f"{_job(w).dir}/{name}", "rb") as f:  # (no Path: this runs for every job at DAG time)
            rec = json.loads(f.read())
    except (OSError, ValueError):
        return ""
    if rec.get("status") == "failed":
        return f"retry-after-{rec.get('end') or rec.get('provenance', {}).get('end', 'failure')}"
    return rec.get("attempt", "")


def train_attempt(w):
    return _attempt(w, "train.json")


def eval_attempt(w):
    return _attempt(w, "eval.json")


def probe_attempt(w):
    return _attempt(w, "probe.json")


def paper_file(w):
    return str(PAPERS[w.paper].path)  # relative to the working directory, as loaded


def paper_evals(w):
    """Every result file of the paper: evaluations, and probes where the experiment has any."""
    jobs = JOBS_OF[w.paper] if w.scale == SCALE else PAPERS[w.paper].jobs(w.scale)
    return [f"{job.dir}/eval.json" for job in jobs] + [f"{job.dir}/probe.json" for job in jobs if job.probe_config]


def paper_claims(w):
    """What the judge decides from: claims, tables and paper metadata, not the experiments."""
    spec = PAPERS[w.paper].spec
    return json.dumps({"paper": spec.paper.model_dump(), "claims": [c.model_dump() for c in spec.claims],
                       "tables": [t.model_dump() for t in spec.tables]}, sort_keys=True, default=str)


def selected_verdicts(w):
    return [f"results/{w.scale}/{p}/verdicts.json" for p in SELECTED]


def all_targets():
    return [f"reports/{SCALE}/{p}/index.html" for p in SELECTED] + [f"reports/{SCALE}/index.html"]


# Snakemake inspects an input function's signature (inspect.signature, ~25 us) at every call, to
# see which arguments it takes; at 10,000 jobs that is 100,000 calls. Tell it once, through the
# hook Snakemake itself reads (snakemake.common.overwrite_function_params); without the hook, as before.
try:
    from snakemake.common import overwrite_function_params as _fix_params
except ImportError:
    _fix_params = None
if _fix_params is not None:
    import inspect as _inspect

    for _f in (fit_dir, train_config_json, copy_source, copy_source_dir, eval_config_json, probe_config_json,
               train_attempt, eval_attempt, probe_attempt, paper_file, paper_evals, paper_claims, selected_verdicts):
        _fix_params(_f, _inspect.signature(_f).parameters)
    try:  # and of its own Resource.evaluate, which it inspects for every resource of every job
        from snakemake.resources import Resource as _Resource

        _fix_params(_Resource.evaluate, _inspect.signature(_Resource.evaluate).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        pass

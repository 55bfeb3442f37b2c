"""Load, validate and expand catalogue entries.

    load_paper(path)              -> LoadedPaper (or CatalogueError naming file, key path, fix)
    LoadedPaper.experiment(id, scale) -> the experiment with the scale's overrides applied
    LoadedPaper.jobs(scale)       -> one Job per (experiment, model, sweep point, seed)

CLI:  python -m workflow.catalogue check [FILES]    validate and print a summary
      python -m workflow.catalogue schema           print the JSON Schema of the format

One concern per module, each importing only those before it:
    errors    CatalogueError
    yamlio    safe YAML reading (caps on size, aliases and nodes; duplicate keys are errors)
    messages  pydantic's errors as the catalogue's messages (key path, fix)
    model     the job model: Axes, points and values, Job, job and evaluation configs, config_hash,
              the fits that jobs share
    checks    registry checks (taking the switch as an argument), references, controls
    scales    per-scale overrides, applied and checked again
    load      load_paper, LoadedPaper, the catalogue with its validation cache, background checks
    cli       the command line (python -m workflow.catalogue)
"""
from __future__ import annotations

from .checks import metric_fact, says_worse
from .errors import CatalogueError
from .load import (
    CATALOGUE_DIR,
    LoadedPaper,
    PendingChecks,
    catalogue_files,
    check_job_cap,
    json_schema,
    load_catalogue,
    load_catalogue_deferred,
    load_paper,
)
from .messages import fmt_path
from .model import (
    Axes,
    Job,
    axes_of,
    config_hash,
    eval_settings,
    find_value,
    fmt_value,
    job_config,
    metrics_of,
    point_name,
    probe_settings,
    probe_layers,
    probe_metrics,
    shared_fits,
)
from .scales import OVERRIDABLE, apply_overrides, resolve_scale
from .yamlio import MAX_ALIASES, MAX_FILE_BYTES, MAX_NODES, _FastLoader, _Loader, read_yaml

__all__ = [
    "CATALOGUE_DIR", "MAX_ALIASES", "MAX_FILE_BYTES", "MAX_NODES", "OVERRIDABLE", "Axes", "CatalogueError", "Job",
    "LoadedPaper", "PendingChecks", "_FastLoader", "_Loader", "apply_overrides", "axes_of", "catalogue_files",
    "check_job_cap", "config_hash", "eval_settings", "find_value", "fmt_path", "fmt_value", "job_config",
    "json_schema", "load_catalogue", "load_catalogue_deferred", "load_paper", "metric_fact", "metrics_of",
    "point_name", "probe_settings", "probe_layers", "probe_metrics", "read_yaml", "resolve_scale", "says_worse",
    "shared_fits",
]

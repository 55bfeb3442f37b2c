"""Snakemake's records of finished jobs, brought up to date when a release changes a rule's command.

Snakemake keeps a record of every output it made (.snakemake/metadata/): the rule's shell text (its
"code") and the job's params, among others. A job whose rule's shell text, or whose non-file params,
differ from its record runs again. A release of the rules that only renames a command, or moves a
value from one directive to another, would so rerun every finished training job; at full scale
that is days of compute for numbers that cannot change. `upgrade` rewrites those records, once per
working directory, from the exact shell text of the previous release to the current one (a record
with any other text is left as it is), so that Snakemake finds them current. It runs while the
Snakefile is read (rules/launch.smk), before Snakemake looks at the records.

The change it carries (this release):
- every rule runs `python -m workflow.launch <step>` (was `python -m workflow.run <step>`);
- train, evaluate and probe read `device` and `checkpoint_seconds` from their resources (run-time
  settings, which never rerun a job) instead of from `config` in the shell text;
- their fit folder is derived from the output (`fit_dir`); Snakemake keeps no record of a derived
  param, so the folder's value leaves the recorded params.
A job whose rule or params changed for another reason still reruns: only these exact texts match.
The records are Snakemake's file store (record format 6, Snakemake 9); with any other store this
does nothing and the jobs rerun, as they would without it.
"""
from __future__ import annotations

import json
import os
from base64 import urlsafe_b64decode
from pathlib import Path

VERSION = "1"   # bump when UPGRADES changes, so that every working directory is looked at again
STAMP = "claimcheck-records"

_FIT = " --threads {threads} --attempt={params.attempt:q} > {log:q} 2>&1"
_REPORT = ("python -m workflow.{m} report paper --verdicts {{input.verdicts:q}} --runs {{input.runs:q}}"
           " --out-dir {{params.outdir:q}} --ui {{params.ui:q}} > {{log:q}} 2>&1"
           " && python -m workflow.{m} tracking report --runs {{input.runs:q}} --verdicts {{input.verdicts:q}}"
           " --dir {{params.outdir:q}} >> {{log:q}} 2>&1")

# rule -> (the previous release's shell text, this release's, whether the fit folder left the params)
UPGRADES: dict[str, tuple[str, str, bool]] = {
    "train": (
        "python -m workflow.run train --config {params.config:q} --out {params.outdir:q}"
        " --device {config[device]} --threads {threads} --label {params.label:q} --attempt={params.attempt:q}"
        " --checkpoint-seconds {config[checkpoint_seconds]} > {log:q} 2>&1",
        "python -m workflow.launch train --config {params.config:q} --out {params.outdir:q}"
        " --device {resources.device} --threads {threads} --label {params.label:q} --attempt={params.attempt:q}"
        " --checkpoint-seconds {resources.checkpoint_seconds} > {log:q} 2>&1",
        True),
    "evaluate": (
        "python -m workflow.run evaluate --dir {params.dir:q} --config {params.config:q} --device {config[device]}" + _FIT,
        "python -m workflow.launch evaluate --dir {params.dir:q} --config {params.config:q} --device {resources.device}" + _FIT,
        True),
    "probe": (
        "python -m workflow.run probe --dir {params.dir:q} --config {params.config:q} --device {config[device]}" + _FIT,
        "python -m workflow.launch probe --dir {params.dir:q} --config {params.config:q} --device {resources.device}" + _FIT,
        True),
    "judge": (
        "python -m workflow.run judge --paper {params.paper:q} --scale {wildcards.scale} --out {output:q} > {log:q} 2>&1",
        "python -m workflow.launch judge --paper {params.paper:q} --scale {wildcards.scale} --out {output:q} > {log:q} 2>&1",
        False),
    "track": (
        "python -m workflow.run tracking log --paper {params.paper:q} --scale {wildcards.scale} --uri {params.uri:q}"
        " --out {output:q} > {log:q} 2>&1",
        "python -m workflow.launch tracking log --paper {params.paper:q} --scale {wildcards.scale} --uri {params.uri:q}"
        " --out {output:q} > {log:q} 2>&1",
        False),
    "report": (_REPORT.format(m="run"), _REPORT.format(m="launch"), False),
    "report_index": (
        "python -m workflow.run report index --scale {wildcards.scale} --out {output.html:q} {input:q} > {log:q} 2>&1",
        "python -m workflow.launch report index --scale {wildcards.scale} --out {output.html:q} {input:q} > {log:q} 2>&1",
        False),
}


def output_of(record_path: Path, metadata: Path) -> str | None:
    """The output file a record is about: its path below metadata/ is that file's name in urlsafe
    base64, cut into pieces that each fit a file name (all but the last start with '@')."""
    parts = record_path.relative_to(metadata).parts
    try:
        return urlsafe_b64decode("".join(p.removeprefix("@") for p in parts)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def upgraded(record: dict, output: str | None) -> dict | None:
    """The record as this release's rules would have written it, or None when it is not one the
    previous release's rules wrote (another rule, another text, another record format)."""
    up = UPGRADES.get(record.get("rule") or "")
    if up is None or record.get("code") != up[0] or record.get("record_format_version") != 6:
        return None
    _, new, fit_dir_left = up
    rec = dict(record, code=new)
    if fit_dir_left:
        if output is None or not isinstance(record.get("params"), list):
            return None
        folder = repr(os.path.dirname(output))
        if folder not in record["params"]:
            return None
        rec["params"] = [p for p in record["params"] if p != folder]
    if isinstance(rec.get("shellcmd"), str):
        rec["shellcmd"] = rec["shellcmd"].replace("python -m workflow.run ", "python -m workflow.launch ")
    return rec


def upgrade(state: str | Path = ".snakemake", log=print) -> int:
    """Rewrite the previous release's records under `state` (Snakemake's folder) once; returns how
    many it rewrote. Safe to call on every run: after the first it only reads the stamp."""
    state = Path(state)
    stamp = state / STAMP
    try:
        if stamp.read_text().strip() == VERSION:
            return 0
    except OSError:
        pass
    metadata = state / "metadata"
    n = 0
    if metadata.is_dir():
        for root, _dirs, files in os.walk(metadata):
            for name in files:
                path = Path(root) / name
                try:
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if not isinstance(record, dict):
                    continue
                rec = upgraded(record, output_of(path, metadata))
                if rec is None:
                    continue
                tmp = path.with_name(f".{name}.tmp")
                tmp.write_text(json.dumps(rec))
                os.replace(tmp, path)
                n += 1
    if n:
        log(f"claimcheck: {n} of Snakemake's job records (.snakemake/metadata) now name this release's commands "
            f"(python -m workflow.launch; run-time settings as resources): their finished jobs do not rerun "
            f"for it (workflow/launch/records.py)")
    try:
        state.mkdir(exist_ok=True)
        stamp.write_text(VERSION + "\n")
    except OSError:
        pass
    return n

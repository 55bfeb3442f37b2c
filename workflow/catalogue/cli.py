"""python -m workflow.catalogue check|schema|registry-check."""
from __future__ import annotations

import json
from pathlib import Path

from .. import schema as S
from .errors import CatalogueError
from .load import _answer, check_job_cap, json_schema, load_catalogue


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workflow.catalogue", description="Load, validate and expand catalogue entries.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="validate catalogue files and print a summary")
    chk.add_argument("files", nargs="*", type=Path, help="catalogue files (default: catalogue/*.yaml)")
    chk.add_argument("--max-jobs", type=int, default=None, help="fail when a scale expands to more jobs than this")
    sub.add_parser("schema", help="print the JSON Schema of a catalogue entry")
    reg = sub.add_parser("registry-check", help="(used by the Snakefile) check files against the model and task "
                                                "registries in the background; write the problems as JSON")
    reg.add_argument("files", nargs="+", type=Path)
    reg.add_argument("--out", type=Path, required=True, help="JSON file for {\"problems\": [...]}")
    reg.add_argument("--cache", type=Path, default=None, help="validation cache to write when the files pass")
    reg.add_argument("--key", default=None, help="the validation key the caller computed for the files")
    args = parser.parse_args(argv)
    if args.cmd == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.cmd == "registry-check":
        _answer(args.files, args.out, args.cache, args.key)
        return 0
    from rich.console import Console
    from rich.table import Table

    from ..console import print_problems

    try:
        papers = load_catalogue(args.files or None)
        if args.max_jobs is not None:
            check_job_cap(papers, list(S.SCALES), args.max_jobs)
    except CatalogueError as e:
        print_problems(e.problems)
        return 1
    table = Table(title=f"{len(papers)} catalogue entr{'y' if len(papers) == 1 else 'ies'}: valid")
    for col in ("paper", "experiments", "claims", "tables", *(f"jobs ({s})" for s in S.SCALES)):
        if col == "paper":
            table.add_column(col, no_wrap=True, min_width=max(len(p) for p in papers) if papers else 5)
        else:
            table.add_column(col, justify="right")
    for pid, lp in papers.items():
        table.add_row(pid, str(len(lp.spec.experiments)), str(len(lp.spec.claims)), str(len(lp.spec.tables)),
                      *(str(lp.n_jobs(s)) for s in S.SCALES))
    Console().print(table)
    return 0




"""What the user sees in the terminal: catalogue problems, and the verdicts at the end."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

STYLE = {"reproduced": "bold green", "not_reproduced": "bold red", "inconclusive": "bold yellow", "not_run": "dim"}


def print_problems(problems: list[str], what: str = "catalogue") -> None:
    err = Console(stderr=True, soft_wrap=True)
    n = len(problems)
    err.print(f"[bold red]The {what} has {n} problem{'s' * (n != 1)}; nothing was run.[/]")
    for p in problems:
        err.print(f"[red]error[/] {escape(p)}", markup=True, highlight=False)


def print_verdicts(scale: str, papers: list[str], root: Path = Path(".")) -> None:
    """A table of every claim's verdict, per paper that has verdicts at `scale`."""
    import sys

    # logs and pipes get a wide table rather than rich's default of 80 columns
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    console.print(f"[bold]Verdicts at scale {scale}[/]")
    for pid in papers:
        f = root / "results" / scale / pid / "verdicts.json"
        if not f.exists():
            continue
        v = json.loads(f.read_text())
        counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in v["counts"].items() if n)
        ours = sum((v.get("counts_ours") or {}).values())
        counts += f" (and {ours} claim{'s' * (ours != 1)} of ours)" if ours else ""
        table = Table(title=f"{pid}: {counts}", title_justify="left")
        table.add_column("claim", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        table.add_column("paper")
        table.add_column("measured: mean [95% interval]")
        table.add_column("why")
        for c in sorted(v["claims"], key=lambda c: c.get("origin") == "ours"):
            flags = ", ".join(f.replace("_", " ") for f in c.get("flags", []))
            verdict = c["verdict"].replace("_", " ") + (f" ({flags})" if flags else "")
            cid = c["id"] + (" (ours)" if c.get("origin") == "ours" else "")
            table.add_row(escape(cid), f"[{STYLE[c['verdict']]}]{verdict}[/]", escape(c["paper_value"]),
                          escape(c.get("measured_text") or ""), escape(c.get("reason") or ""))
        console.print(table)
        console.print(f"  report: {root / 'reports' / scale / pid / 'index.html'}")
    console.print(f"All papers: {root / 'reports' / scale / 'index.html'}")

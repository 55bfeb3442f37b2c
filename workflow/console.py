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
    """A table of every claim's verdict for the papers that have verdicts at `scale`."""
    table = Table(title=f"Verdicts at scale {scale}", show_lines=False)
    for col in ("paper", "claim", "paper value", "measured", "verdict"):
        table.add_column(col, overflow="fold")
    found = 0
    for pid in papers:
        f = root / "results" / scale / pid / "verdicts.json"
        if not f.exists():
            continue
        found += 1
        v = json.loads(f.read_text())
        for c in v["claims"]:
            verdict = c["verdict"].replace("_", " ") + (" (under budget)" if c.get("under_budget") else "")
            table.add_row(pid, c["id"], c["paper_value"], c.get("measured_text") or c.get("reason", ""),
                          f"[{STYLE[c['verdict']]}]{verdict}[/]")
    if found:
        Console(stderr=True).print(table)
        Console(stderr=True).print(f"Reports: {root / 'reports' / scale / 'index.html'}")

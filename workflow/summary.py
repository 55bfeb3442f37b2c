"""Committed verdict summaries, and the README's catalogue table generated from them.

results/ is not in git, so what a scale's run concluded is kept as one small file per paper and
scale, summaries/<scale>/<paper>.json (every claim's verdict, flags, origin and measured value),
and the README's catalogue table is generated from those files:

    python -m workflow.summary save --scale small               # results/small/*/verdicts.json -> summaries/small/
    python -m workflow.summary save --scale small my_paper      # one paper
    python -m workflow.summary table                            # rewrite the README's table
    python -m workflow.summary table --check                    # exit 1 when the README is stale (a test runs this)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .steps import write_json

SUMMARIES = Path("summaries")
README = Path("README.md")
START, END = "<!-- catalogue-table:start -->", "<!-- catalogue-table:end -->"
VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_run")
CLAIM_KEYS = ("id", "kind", "origin", "verdict", "flags", "paper_value", "measured_text", "n_seeds", "reason")


def summarize(verdicts: dict) -> dict:
    """The part of a paper's verdicts.json worth keeping in git."""
    return {
        "paper": verdicts["paper"]["id"], "title": verdicts["paper"]["title"], "scale": verdicts["scale"],
        "date": verdicts["date"], "git_sha": verdicts.get("git_sha"), "git_dirty": verdicts.get("git_dirty"),
        "counts": verdicts["counts"], "counts_ours": verdicts.get("counts_ours", {v: 0 for v in VERDICTS}),
        "claims": [{k: c.get(k) for k in CLAIM_KEYS} for c in verdicts["claims"]],
    }


def save(scale: str, papers: list[str], root: Path = Path(".")) -> list[Path]:
    files = sorted((root / "results" / scale).glob("*/verdicts.json"))
    if papers:
        files = [f for f in files if f.parent.name in papers]
        missing = sorted(set(papers) - {f.parent.name for f in files})
        if missing:
            raise SystemExit(f"no results/{scale}/<paper>/verdicts.json for {', '.join(missing)}; run "
                             f"snakemake --cores all {' '.join(missing)} --config scale={scale} first")
    if not files:
        raise SystemExit(f"no results/{scale}/*/verdicts.json: run snakemake --cores all --config scale={scale} first")
    out = []
    for f in files:
        s = summarize(json.loads(f.read_text()))
        path = root / SUMMARIES / scale / f"{s['paper']}.json"
        write_json(path, s)
        out.append(path)
    return out


def _flag_count(claims: list[dict], flag: str) -> int:
    return sum(flag in (c.get("flags") or []) for c in claims)


def table(root: Path = Path(".")) -> str:
    """The README's catalogue table: one row per paper and scale, from summaries/."""
    rows = []
    for path in sorted((root / SUMMARIES).glob("*/*.json")):
        rows.append(json.loads(path.read_text()))
    order = {"smoke": 0, "small": 1, "full": 2}
    rows.sort(key=lambda s: (s["paper"], order.get(s["scale"], 9)))
    lines = [
        "| paper | scale | paper's claims | reproduced | not reproduced | inconclusive | not run "
        "| under budget | one seed | claims that are ours (r / nr / i / n) | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        paper = [c for c in s["claims"] if c.get("origin", "paper") != "ours"]
        ours = s["counts_ours"]
        mine = " / ".join(str(ours.get(v, 0)) for v in VERDICTS) if sum(ours.values()) else "none"
        lines.append("| " + " | ".join([
            f"`{s['paper']}`", s["scale"], str(len(paper)), *(str(s["counts"].get(v, 0)) for v in VERDICTS),
            str(_flag_count(paper, "under_budget")), str(_flag_count(paper, "one_seed")), mine,
            f"{s['date'][:10]}, `{(s.get('git_sha') or '')[:8]}`{'+' if s.get('git_dirty') else ''}",
        ]) + " |")
    if not rows:
        lines.append("| (no summaries yet: `python -m workflow.summary save --scale small`) |" + " |" * 10)
    return "\n".join(lines)


def update_readme(readme: Path = README, root: Path = Path("."), check: bool = False) -> bool:
    """Put the generated table between the README's markers; True when it was already current."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} markers; add them where the catalogue table goes")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table(root)}\n{END}{tail}"
    if new == text:
        return True
    if not check:
        readme.write_text(new)
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.summary", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("save", help="copy each paper's verdicts at a scale into summaries/<scale>/<paper>.json")
    sv.add_argument("--scale", required=True, choices=("smoke", "small", "full"))
    sv.add_argument("papers", nargs="*", help="paper ids (default: every paper with results at the scale)")
    tb = sub.add_parser("table", help="regenerate the README's catalogue table from summaries/")
    tb.add_argument("--check", action="store_true", help="only check: exit 1 when the README's table is stale")
    args = p.parse_args(argv)
    if args.cmd == "save":
        for path in save(args.scale, args.papers):
            print(path)
        return 0
    current = update_readme(check=args.check)
    if args.check and not current:
        print(f"{README}: the catalogue table differs from summaries/; run python -m workflow.summary table",
              file=sys.stderr)
        return 1
    print(f"{README}: catalogue table {'current' if current else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Diff the verdicts of two runs: did a change (a faster kernel, packed seeds) move any claim?

    python -m bench verdicts A B [--scale small] [--values]

A and B are each one of:
  - a checkout that ran the scale (its results/<scale>/<paper>/verdicts.json are read),
  - a results folder of one scale (results/small: <paper>/verdicts.json under it),
  - a summaries folder (summaries/small: <paper>.json, the committed verdict summaries).
Every claim of every paper the two share is compared: a changed verdict is listed with both
reasons; `--values` also lists claims whose measured value changed while the verdict held. Papers
or claims only one side has are listed apart. Exit status: 0 when no verdict moved, 1 when one
did (a script can gate on it), 2 on bad input.
"""
from __future__ import annotations

import json
from pathlib import Path


class Unreadable(ValueError):
    """A side that holds no verdicts; str() names the path and what was looked for."""


def load_side(path: Path, scale: str) -> dict[str, dict[str, dict]]:
    """{paper: {claim id: claim record}} of one side."""
    path = Path(path)
    if not path.exists():
        raise Unreadable(f"{path}: no such file or folder")
    if (path / "results" / scale).is_dir():
        path = path / "results" / scale
    files: dict[str, Path] = {}
    for f in sorted(path.glob("*/verdicts.json")):
        files[f.parent.name] = f
    if not files:
        for f in sorted(path.glob("*.json")):
            files[f.stem] = f
    out: dict[str, dict[str, dict]] = {}
    for paper, f in files.items():
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise Unreadable(f"{f}: not a verdicts file ({e})") from None
        claims = rec.get("claims") if isinstance(rec, dict) else None
        if not isinstance(claims, list):
            continue
        out[paper] = {c["id"]: c for c in claims if isinstance(c, dict) and "id" in c and "verdict" in c}
    if not out:
        raise Unreadable(f"{path}: no verdicts found (looked for results/{scale}/<paper>/verdicts.json, "
                         f"<paper>/verdicts.json and summaries' <paper>.json)")
    return out


def diff(a: dict[str, dict[str, dict]], b: dict[str, dict[str, dict]], values: bool = False) -> dict:
    """What moved between two sides: verdicts, optionally measured values, and what only one side has."""
    moved, changed_values, only = [], [], []
    for paper in sorted(set(a) | set(b)):
        if paper not in a or paper not in b:
            only.append({"paper": paper, "claim": None, "side": "A" if paper in a else "B"})
            continue
        ca, cb = a[paper], b[paper]
        for cid in list(ca) + [c for c in cb if c not in ca]:
            if cid not in ca or cid not in cb:
                only.append({"paper": paper, "claim": cid, "side": "A" if cid in ca else "B"})
                continue
            x, y = ca[cid], cb[cid]
            row = {"paper": paper, "claim": cid, "A": x["verdict"], "B": y["verdict"],
                   "A_measured": x.get("measured_text"), "B_measured": y.get("measured_text"),
                   "A_reason": x.get("reason", ""), "B_reason": y.get("reason", "")}
            if x["verdict"] != y["verdict"]:
                moved.append(row)
            elif values and x.get("measured_text") != y.get("measured_text"):
                changed_values.append(row)
    shared = sum(len(set(a[p]) & set(b[p])) for p in set(a) & set(b))
    return {"compared": shared, "moved": moved, "values": changed_values, "only": only}


def text(d: dict, names: tuple[str, str] = ("A", "B")) -> str:
    na, nb = names
    lines = [f"{d['compared']} claims compared; {len(d['moved'])} verdicts moved"
             + (f", {len(d['values'])} measured values changed with the verdict held" if d["values"] else "")]
    for r in d["moved"]:
        lines.append(f"  {r['paper']}.{r['claim']}: {r['A']} -> {r['B']}")
        lines.append(f"      {na}: {r['A_measured']}; {r['A_reason'] or '(no reason)'}")
        lines.append(f"      {nb}: {r['B_measured']}; {r['B_reason'] or '(no reason)'}")
    for r in d["values"]:
        lines.append(f"  {r['paper']}.{r['claim']} ({r['A']}): {r['A_measured']} -> {r['B_measured']}")
    for r in d["only"]:
        what = f"{r['paper']}.{r['claim']}" if r["claim"] else f"{r['paper']} (the whole paper)"
        lines.append(f"  only in {na if r['side'] == 'A' else nb}: {what}")
    return "\n".join(lines)

"""The wall time of a catalogue run at one commit against another, side by side, and the verdicts
of both diffed.

    python -m bench compare --against de07e96 --scale small                 # the whole catalogue
    python -m bench compare --against de07e96 --scale smoke --papers toy_superposition --rounds 3

Each side is a git worktree of its commit (`--against`: the base; `--head`, default HEAD: the
change), made in a scratch folder (`--workdir`, default a new temporary one) and run there from
empty outputs with this environment's Python and Snakemake, each side's own code first on the
import path (PYTHONPATH). "Side by side" means the runs take turns on this machine, never run at
once: round 1 runs the base then the head, round 2 the head then the base, and so on, so a drift
in the machine's speed falls on both. The papers are those both commits' catalogues hold (or
`--papers`); the ones only one side has are named and left out. Uncommitted changes are not
compared: commit them first (the command says so when the checkout is dirty).

It prints each run's wall time, the ratio head / base of the median walls, and the verdict diff of
the last round (bench/verdicts.py), and writes results/bench/compare-<scale>.json. The whole
small scale takes hours a side on 2 cores: the command prints each run as it starts and ends.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import verdicts as V


class CompareError(RuntimeError):
    """A comparison that cannot be made; str() says why and what to do."""


def _git(repo: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if res.returncode:
        raise CompareError(f"git {' '.join(args)} in {repo}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout.strip()


def paper_ids(tree: Path) -> list[str]:
    import yaml

    ids = []
    for f in sorted((tree / "catalogue").glob("*.yaml")):
        try:
            ids.append(str(yaml.safe_load(f.read_text())["paper"]["id"]))
        except Exception:  # noqa: BLE001 - a file that is not an entry is not a paper
            continue
    return ids


def snakemake_exe() -> str:
    exe = Path(sys.executable).parent / "snakemake"
    return str(exe) if exe.exists() else (shutil.which("snakemake") or "snakemake")


def run_side(tree: Path, scale: str, papers: list[str], cores: int, log: Path) -> float:
    """One timed run of a side from empty outputs; its wall seconds. A failed run raises, naming its log."""
    subprocess.run(["git", "-C", str(tree), "clean", "-fdxq"], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    cmd = [snakemake_exe(), "--cores", str(cores), *papers, "--config", f"scale={scale}"]
    t = time.perf_counter()
    with open(log, "w") as fh:
        res = subprocess.run(cmd, cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    if res.returncode:
        raise CompareError(f"the run in {tree} failed (exit {res.returncode}); its log: {log}")
    return wall


def compare(repo: Path, against: str, head: str = "HEAD", scale: str = "small", papers: list[str] | None = None,
            cores: int = 2, rounds: int = 1, workdir: Path | None = None, keep: bool = False, log=print,
            runner=run_side) -> dict:
    repo = Path(_git(repo, "rev-parse", "--show-toplevel"))
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        log("note: this checkout has uncommitted changes; they are not compared (each side is a commit)")
    shas = {side: _git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}") for side, ref in (("base", against), ("head", head))}
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="claimcheck-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    trees = {side: work / side for side in ("base", "head")}
    made = []
    ok = False
    try:
        for side, tree in trees.items():
            if tree.exists():
                raise CompareError(f"{tree} exists; give an empty --workdir")
            _git(repo, "worktree", "add", "--detach", str(tree), shas[side])
            made.append(tree)
        ids = {side: paper_ids(tree) for side, tree in trees.items()}
        both = [p for p in ids["head"] if p in ids["base"]]
        if papers:
            missing = {side: [p for p in papers if p not in ids[side]] for side in trees}
            bad = [f"{', '.join(v)} not in the {side} commit's catalogue" for side, v in missing.items() if v]
            if bad:
                raise CompareError("; ".join(bad))
            chosen = list(papers)
        else:
            chosen = both
            for side in trees:
                alone = [p for p in ids[side] if p not in both]
                if alone:
                    log(f"only the {side} commit has {', '.join(alone)}: left out")
        if not chosen:
            raise CompareError("the two commits' catalogues share no paper")
        log(f"{scale} scale of {len(chosen)} papers, {rounds} round(s), --cores {cores}; "
            f"base {shas['base'][:10]} vs head {shas['head'][:10]} in {work}")
        runs = []
        for r in range(rounds):
            order = ("base", "head") if r % 2 == 0 else ("head", "base")
            for side in order:
                logf = work / f"{side}-round{r + 1}.log"
                log(f"round {r + 1}: {side} starts ({time.strftime('%H:%M:%S')})")
                wall = runner(trees[side], scale, chosen, cores, logf)
                runs.append({"round": r + 1, "side": side, "wall_s": wall, "log": str(logf)})
                log(f"round {r + 1}: {side} took {wall:,.1f} s")
        med = {side: statistics.median(x["wall_s"] for x in runs if x["side"] == side) for side in trees}
        out = {"scale": scale, "papers": chosen, "cores": cores, "rounds": rounds, "base": shas["base"],
               "head": shas["head"], "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
               "median_wall_s": med, "ratio_head_over_base": med["head"] / med["base"]}
        try:
            out["verdicts"] = V.diff(V.load_side(trees["base"], scale), V.load_side(trees["head"], scale))
        except V.Unreadable as e:
            out["verdicts"] = None
            log(f"verdicts not compared: {e}")
        ok = True
        return out
    finally:
        if made and not ok:
            log(f"kept {work} (its worktrees and logs) for a look; remove with `git worktree remove --force` on each")
        if ok and not keep:
            for tree in made:
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)
            if workdir is None:
                shutil.rmtree(work, ignore_errors=True)


def text(out: dict) -> str:
    m = out["median_wall_s"]
    lines = [f"{out['scale']} scale, {len(out['papers'])} papers, median of {out['rounds']} round(s):",
             f"  base {out['base'][:10]}: {m['base']:,.1f} s", f"  head {out['head'][:10]}: {m['head']:,.1f} s",
             f"  head / base wall time: {out['ratio_head_over_base']:.3f}"]
    if out.get("verdicts") is not None:
        lines.append(V.text(out["verdicts"], ("base", "head")))
    return "\n".join(lines)

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

`--per-paper` takes turns paper by paper instead (paper 1: base then head; paper 2: head then base;
...), each paper's run from its own empty outputs, and the ratio is that of the summed walls: the
scale as its papers run one after another. It keeps its state in the work folder
(`per-paper.json`, written after every run), so the same command with the same `--workdir` goes on
where a killed or timed-out one stopped (the paper it was running starts again from empty outputs,
and the Snakemake locks the stopped run left are removed): a comparison of hours can be made in
parts, and one killed in its first run goes on too. A second comparison in a folder that one is
using is refused, and so is going on while a run of a killed comparison still runs (each run's
Snakemake holds the folder's lock as well). It prints the running totals after every paper.
Papers that share a fit at the head (a job of one trains a model that a job of the other copies,
rules/train.smk) take their turns together, as one run of both, so that the head's saving shows as
it does in a run of the whole scale; a paper run alone trains the fits it shares itself.
"""
from __future__ import annotations

import fcntl
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


OUTPUT_DIRS = ("results", "logs", "benchmarks", "reports")     # where a paper's run writes, under <dir>/<scale>/<paper>


def clear_papers(tree: Path, scale: str, papers: list[str]) -> None:
    """Empty outputs for these papers only (the other papers' results stay for the verdict diff)."""
    for d in OUTPUT_DIRS:
        for p in papers:
            shutil.rmtree(tree / d / scale / p, ignore_errors=True)


def _side_env(tree: Path) -> dict:
    """This environment with the side's own code first on the import path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}


def run_side(tree: Path, scale: str, papers: list[str], cores: int, log: Path, clean: bool = True) -> float:
    """One timed run of a side from empty outputs (`clean`: the whole worktree's; else these papers'
    only); its wall seconds. A failed run raises, naming its log."""
    if clean:
        subprocess.run(["git", "-C", str(tree), "clean", "-fdxq"], check=True)
    else:
        clear_papers(tree, scale, papers)
    env = _side_env(tree)
    cmd = [snakemake_exe(), "--cores", str(cores), *papers, "--config", f"scale={scale}"]
    t = time.perf_counter()
    with open(log, "w") as fh:
        res = subprocess.run(cmd, cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT,
                             close_fds=False)       # the work folder's lock passes on (hold_workdir)
    wall = time.perf_counter() - t
    if res.returncode:
        raise CompareError(f"the run in {tree} failed (exit {res.returncode}); its log: {log}")
    return wall


STATE = "per-paper.json"
LOCK = ".compare.lock"


def hold_workdir(work: Path):
    """Hold `work` for this comparison: an exclusive lock on a file in it, whose descriptor is
    inheritable, so that each run's Snakemake holds it too and the lock lasts until this process and
    any run it started have ended, however they end (a Snakemake left running by a killed comparison
    keeps it). Another comparison in the same folder is refused. Close the returned file to let go."""
    fh = open(work / LOCK, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise CompareError(f"another `bench compare`, or a run one started, is using {work}; wait for it to end "
                           "or give another --workdir")
    os.set_inheritable(fh.fileno(), True)
    return fh


def clear_stale_locks(tree: Path) -> list[Path]:
    """Remove the Snakemake locks a stopped run left in a side's worktree (what `snakemake --unlock`
    does), so that going on is not refused; only called while this comparison holds the work folder,
    so no run of ours is using them. The locks removed."""
    locks = sorted((tree / ".snakemake" / "locks").glob("*.lock"))
    for f in locks:
        f.unlink()
    return locks

# Run in a side's worktree: each pair of papers whose jobs share a fit there (one copies the other's).
_SHARED_PAIRS = """
import json, sys
from pathlib import Path
try:
    from workflow.catalogue import load_catalogue_deferred, shared_fits
except ImportError:                       # a commit from before fits were shared
    print("[]"); sys.exit(0)
papers, _ = load_catalogue_deferred(sorted(Path("catalogue").glob("*.yaml")), defer=False)
jobs = [j for lp in papers.values() for j in lp.jobs(sys.argv[1])]
paper = lambda d: d.split("/")[2]
print(json.dumps(sorted({(paper(c), paper(s)) for c, s in shared_fits(jobs).items() if paper(c) != paper(s)})))
"""


def shared_pairs(tree: Path, scale: str) -> list[tuple[str, str]]:
    """The pairs of papers whose fits are shared in `tree`'s catalogue at `scale` (none before
    d729587, which shares them)."""
    import json

    if not (tree / "workflow" / "catalogue").is_dir():        # not this engine: nothing it shares
        return []
    env = _side_env(tree)
    res = subprocess.run([sys.executable, "-c", _SHARED_PAIRS, scale], cwd=tree, env=env, capture_output=True, text=True)
    if res.returncode:
        raise CompareError(f"the shared fits of {tree} at {scale} cannot be listed: {res.stderr.strip()[-500:]}")
    return [tuple(p) for p in json.loads(res.stdout)]


def paper_units(chosen: list[str], pairs) -> list[list[str]]:
    """The chosen papers in their order, those joined by shared fits (transitively) in one unit, at
    the place of its first paper; a pair with a paper not chosen joins nothing."""
    root = {p: p for p in chosen}

    def find(p):
        while root[p] != p:
            p = root[p]
        return p

    for a, b in pairs:
        if a in root and b in root:
            root[find(a)] = find(b)
    units: dict[str, list[str]] = {}
    for p in chosen:
        units.setdefault(find(p), []).append(p)
    return list(units.values())


def unit_name(unit: list[str]) -> str:
    return "+".join(unit)


def _per_paper(trees: dict, shas: dict, scale: str, chosen: list[list[str]], cores: int, rounds: int, work: Path,
               log, runner, state: dict) -> list[dict]:
    """Turns paper by paper (a unit of papers that share fits taking its turns as one), resumable
    from `work`/per-paper.json (`state`: what it held, or {}); every run of every unit."""
    import json

    state_path = work / STATE
    state.update({"base": shas["base"], "head": shas["head"], "scale": scale, "cores": cores})
    runs = state.setdefault("runs", [])

    def save():
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(state_path)

    save()                            # before the first run too: a comparison killed in it can go on
    done = {(r["paper"], r["round"], r["side"]) for r in runs}
    if done:
        log(f"resuming: {len(done)} run(s) already timed in {state_path}")
    turn = 0
    names = [unit_name(u) for u in chosen]
    for i, (unit, paper) in enumerate(zip(chosen, names)):
        for r in range(rounds):
            order = ("base", "head") if turn % 2 == 0 else ("head", "base")
            turn += 1
            for side in order:
                if (paper, r + 1, side) in done:
                    continue
                logf = work / f"{side}-{paper}-round{r + 1}.log"
                log(f"{paper} ({i + 1}/{len(chosen)}), round {r + 1}: {side} starts ({time.strftime('%H:%M:%S')})")
                wall = runner(trees[side], scale, unit, cores, logf, clean=False)
                runs.append({"paper": paper, "round": r + 1, "side": side, "wall_s": wall, "log": str(logf)})
                save()
                log(f"{paper}, round {r + 1}: {side} took {wall:,.1f} s")
        tot = _paper_totals(runs, names[: i + 1])
        if tot["papers"]:
            log(f"so far, {tot['papers']} run(s) of papers: base {tot['base']:,.0f} s, head {tot['head']:,.0f} s, "
                f"head / base {tot['head'] / tot['base']:.3f}")
    return runs


def _check_state(path: Path, shas: dict, scale: str) -> dict:
    """The saved state of a per-paper comparison, refused when it is of other commits or another scale."""
    import json

    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CompareError(f"{path} cannot be read ({e}); give another --workdir") from None
    if (state.get("base"), state.get("head"), state.get("scale")) != (shas["base"], shas["head"], scale):
        raise CompareError(f"{path} is of another comparison ({str(state.get('base'))[:10]} vs "
                           f"{str(state.get('head'))[:10]} at {state.get('scale')}); give another --workdir")
    return state


def _paper_totals(runs: list[dict], papers: list[str]) -> dict:
    """Summed per-paper median walls of the papers that both sides have finished."""
    tot = {"base": 0.0, "head": 0.0, "papers": 0, "per_paper": {}}
    for p in papers:
        walls = {side: [r["wall_s"] for r in runs if r["paper"] == p and r["side"] == side] for side in ("base", "head")}
        if walls["base"] and walls["head"]:
            m = {side: statistics.median(w) for side, w in walls.items()}
            tot["per_paper"][p] = {**m, "ratio": m["head"] / m["base"]}
            tot["base"] += m["base"]
            tot["head"] += m["head"]
            tot["papers"] += 1
    return tot


def compare(repo: Path, against: str, head: str = "HEAD", scale: str = "small", papers: list[str] | None = None,
            cores: int = 2, rounds: int = 1, workdir: Path | None = None, keep: bool = False, log=print,
            runner=run_side, per_paper: bool = False) -> dict:
    repo = Path(_git(repo, "rev-parse", "--show-toplevel"))
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        log("note: this checkout has uncommitted changes; they are not compared (each side is a commit)")
    shas = {side: _git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}") for side, ref in (("base", against), ("head", head))}
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="claimcheck-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    held = hold_workdir(work)
    trees = {side: work / side for side in ("base", "head")}
    made = []
    ok = False
    try:
        saved = _check_state(work / STATE, shas, scale) if per_paper and (work / STATE).exists() else None
        _git(repo, "worktree", "prune")              # entries of worktrees whose folders were deleted
        for side, tree in trees.items():
            if saved is not None and tree.exists():                          # a comparison going on
                if _git(tree, "rev-parse", "HEAD") != shas[side]:
                    raise CompareError(f"{tree} is not at {side} {shas[side][:10]}; give another --workdir")
                if clear_stale_locks(tree):
                    log(f"removed the Snakemake locks the stopped run left in {tree}")
                made.append(tree)
                continue
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
            f"base {shas['base'][:10]} vs head {shas['head'][:10]} in {work}"
            + (", turns paper by paper" if per_paper else ""))
        out = {"scale": scale, "papers": chosen, "cores": cores, "rounds": rounds, "base": shas["base"],
               "head": shas["head"]}
        if per_paper:
            units = paper_units(chosen, shared_pairs(trees["head"], scale))
            for u in units:
                if len(u) > 1:
                    log(f"{', '.join(u)} share fits at the head: they take their turns together")
            runs = _per_paper(trees, shas, scale, units, cores, rounds, work, log, runner, saved or {})
            tot = _paper_totals(runs, [unit_name(u) for u in units])
            med = {"base": tot["base"], "head": tot["head"]}
            out.update({"per_paper": True, "papers_timed": tot["papers"], "per_paper_walls": tot["per_paper"]})
        else:
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
        out.update({"date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "median_wall_s": med,
                    "ratio_head_over_base": med["head"] / med["base"]})
        try:
            out["verdicts"] = V.diff(V.load_side(trees["base"], scale), V.load_side(trees["head"], scale))
        except V.Unreadable as e:
            out["verdicts"] = None
            log(f"verdicts not compared: {e}")
        ok = True
        return out
    finally:
        held.close()
        if made and not ok:
            if per_paper and (work / STATE).exists():
                log(f"kept {work}: the same command with --workdir {work} goes on where this one stopped")
            else:
                log(f"kept {work} (its worktrees and logs) for a look; remove with `git worktree remove --force` "
                    "on each")
        if ok and not keep:
            for tree in made:
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)
            if workdir is None:
                shutil.rmtree(work, ignore_errors=True)


def text(out: dict) -> str:
    m = out["median_wall_s"]
    if out.get("per_paper"):
        lines = [f"{out['scale']} scale, {len(out['papers'])} papers taking turns paper by paper, median of "
                 f"{out['rounds']} round(s) each, summed:"]
        lines += [f"  {p}: base {w['base']:,.1f} s, head {w['head']:,.1f} s, {w['ratio']:.3f}"
                  for p, w in out["per_paper_walls"].items()]
    else:
        lines = [f"{out['scale']} scale, {len(out['papers'])} papers, median of {out['rounds']} round(s):"]
    lines += [f"  base {out['base'][:10]}: {m['base']:,.1f} s", f"  head {out['head'][:10]}: {m['head']:,.1f} s",
              f"  head / base wall time: {out['ratio_head_over_base']:.3f}"]
    if out.get("verdicts") is not None:
        lines.append(V.text(out["verdicts"], ("base", "head")))
    return "\n".join(lines)

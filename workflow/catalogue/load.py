"""Loading: one file (load_paper), the whole catalogue with its validation cache, and the background
registry checks a Snakemake run waits for before its first job."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .. import schema as S
from .checks import _check_controls, _check_experiment, _check_references, _check_select
from .errors import CatalogueError
from .messages import _pydantic_problems
from .model import Job, eval_settings, job_config, probe_settings
from .scales import resolve_scale
from .yamlio import read_yaml

CATALOGUE_DIR = Path("catalogue")  # relative to the working directory, like every Snakemake path


@dataclass
class LoadedPaper:
    path: Path
    spec: S.Paper
    registry: bool = True            # check each scale's experiments against the registries as they resolve
    _resolved: dict = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return self.spec.paper.id

    def experiment(self, exp_id: str, scale: str = "small") -> S.Experiment:
        return self.experiments(scale)[exp_id]

    def experiments(self, scale: str = "small") -> dict[str, S.Experiment]:
        if scale not in self._resolved:
            self._resolved[scale] = resolve_scale(self.path, self.spec, scale, self.registry)
        return self._resolved[scale]

    def runs_at(self, exp_id: str, scale: str) -> bool:
        """Whether the experiment is trained at `scale`: not when every claim that measures it is
        tested only at other scales (`only_at.scales`) and no table shows it."""
        claims = [c for c in self.spec.claims if c.measure.experiment == exp_id]
        if not claims or any(t.experiment == exp_id for t in self.spec.tables):
            return True
        return any(c.only_at is None or scale in c.only_at.scales for c in claims)

    def jobs(self, scale: str = "small") -> list[Job]:
        jobs = []
        for exp in self.experiments(scale).values():
            if not self.runs_at(exp.id, scale):
                continue
            keys = list(exp.sweep)
            for model in exp.models:
                for combo in itertools.product(*(exp.sweep[k] for k in keys)):
                    point = dict(zip(keys, combo))
                    for seed in range(exp.seeds):
                        jobs.append(Job(self.id, scale, exp.id, model.id, point, seed,
                                        job_config(exp, model, point, seed), eval_settings(exp),
                                        probe_settings(exp) if exp.probes else {}))
        return jobs

    def n_jobs(self, scale: str = "small") -> int:
        n = 0
        for exp in self.experiments(scale).values():
            if not self.runs_at(exp.id, scale):
                continue
            n += len(exp.models) * exp.seeds * math.prod(len(v) for v in exp.sweep.values())
        return n


def load_paper(path: str | Path, registry_checks: bool = True) -> LoadedPaper:
    """Load and fully validate one catalogue file, at every scale it defines.

    `registry_checks=False` skips the checks against the model and task registries (they import
    torch and build every task, seconds for some), for the per-paper job steps (judge, tracking)
    of a run whose Snakefile validated the catalogue when it started; the schema and reference
    checks still run."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        raise CatalogueError([f"{path}: the file is empty; a catalogue entry needs paper, experiments and claims"])
    if not isinstance(data, dict):
        raise CatalogueError([f"{path}: expected a mapping with keys paper, experiments, claims, not {type(data).__name__}"])
    try:
        spec = S.Paper.model_validate(data)
    except ValidationError as e:
        raise CatalogueError(_pydantic_problems(path, e, data)) from None
    problems: list[str] = []
    if spec.paper.id != path.stem:
        problems.append(f"{path}: paper.id: {spec.paper.id!r} differs from the file name; rename the file to {spec.paper.id}.yaml or change the id")
    for i, exp in enumerate(spec.experiments):
        sem: list[str] = []
        _check_experiment(exp, f"experiments[{i}]", sem, registry_checks)
        _check_select(exp, f"experiments[{i}]", sem, registry_checks)
        problems += [f"{path}: {p}" for p in sem]
    refs: list[str] = []
    _check_references(spec, refs)
    # a claim whose references are wrong is not also asked for its control
    _check_controls(spec, refs, worse=not refs and not problems, registry=registry_checks)
    problems += [f"{path}: {p}" for p in refs]
    if problems:
        raise CatalogueError(problems)
    loaded = LoadedPaper(path, spec, registry_checks)
    # every scale's experiments, checked as they resolve (against the registries only when asked)
    for scale in S.SCALES:
        loaded.experiments(scale)
    return loaded


def catalogue_files(directory: Path = CATALOGUE_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def _validation_key(paths: list[Path]) -> str:
    """A hash of what validation depends on: the catalogue files and the code that checks them."""
    here = Path(__file__).resolve().parent                      # workflow/catalogue
    code = sorted((here.parent.parent / "modules").rglob("*.py")) + sorted(here.glob("*.py")) + [here.parent / "schema.py"]
    h = hashlib.sha256()
    for f in [*sorted(paths), *code]:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _cached(cache: Path | None, key: str | None) -> bool:
    try:
        return cache is not None and Path(cache).read_text().strip() == key
    except OSError:
        return False


def _write_cache(cache: Path | None, key: str | None) -> None:
    if cache is None or key is None:
        return
    try:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache).with_name(f".{Path(cache).name}.{os.getpid()}")
        tmp.write_text(key + "\n")
        os.replace(tmp, cache)
    except OSError:
        pass


def load_catalogue(paths: list[Path] | None = None, cache: Path | None = None) -> dict[str, LoadedPaper]:
    """Load every file, collecting all problems across files before raising.

    With `cache`, a set of files that passed every check before, with the same checking code,
    skips the registry checks (they import torch: seconds per snakemake start, and per job on
    a cluster, where every job parses the Snakefile again)."""
    paths = catalogue_files() if paths is None else paths
    key = _validation_key(paths) if cache is not None else None
    if _cached(cache, key):
        return _load_all(paths, registry_checks=False)
    out = _load_all(paths)
    _write_cache(cache, key)
    return out


def _check(paths: list[Path], cache: Path | None, key: str | None) -> list[str]:
    """Every check on `paths`: the problems; the cache is written when there are none."""
    try:
        _load_all(paths)
    except CatalogueError as e:
        return e.problems
    _write_cache(cache, key)
    return []


def _answer(paths: list[Path], out: Path, cache: Path | None, key: str | None) -> None:
    """The checker's side: `_check`, then {"problems": [...]} written to `out` atomically."""
    problems = _check(paths, cache, key)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps({"problems": problems}))
    os.replace(tmp, out)


_INTERRUPTS = (2, 15, 1)   # SIGINT, SIGTERM, SIGHUP


class PendingChecks:
    """The registry checks of a catalogue, running in a background process while the caller goes
    on with the papers: they import torch and build every task (seconds), which a Snakemake start
    then spends building its DAG instead. On Linux the process is a fork of this one, which has the
    engine imported already; elsewhere `python -m workflow.catalogue registry-check`. `problems()`
    waits for them; `stop_on_problems()` prints them and ends the process. If the checker dies
    without an answer, the checks run here."""

    def __init__(self, paths: list[Path], cache: Path | None, key: str | None, fork: bool | None = None):
        import tempfile

        self.paths, self.cache, self.key = paths, cache, key
        fd, out = tempfile.mkstemp(prefix="claimcheck-checks-", suffix=".json")
        os.close(fd)
        self._out = Path(out)
        self._problems: list[str] | None = None
        self._reported = False
        self._proc = self._pid = None
        if fork is None:
            fork = sys.platform == "linux" and hasattr(os, "fork")
        try:
            if fork:
                self._pid = self._fork()
            else:
                import subprocess

                cmd = [sys.executable, "-m", "workflow.catalogue", "registry-check", "--out", str(self._out)]
                if cache is not None and key is not None:
                    cmd += ["--cache", str(cache), "--key", key]
                self._proc = subprocess.Popen([*cmd, *map(str, paths)], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            self._proc = self._pid = None

    def _fork(self) -> int:
        pid = os.fork()
        if pid:
            return pid
        # the child: check, answer through the file, and leave without running anything of the parent's
        code = 1
        try:
            import signal

            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "w")
            _answer(self.paths, self._out, self.cache, self.key)
            code = 0
        finally:
            os._exit(code)

    def _wait(self) -> int | None:
        """The checker's exit: its status, minus the signal that ended it (None: unknown)."""
        if self._proc is not None:
            return self._proc.wait()
        try:
            _, status = os.waitpid(self._pid, 0)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status)

    def problems(self, ending: bool = False) -> list[str]:
        """Wait for the checks; the problems they found (empty: the catalogue is valid). `ending`:
        the process is exiting anyway, so a checker that Ctrl-C or a kill stopped is not redone here."""
        if self._problems is None:
            answer = code = None
            if self._proc is not None or self._pid is not None:
                code = self._wait()
                try:
                    answer = json.loads(self._out.read_text())["problems"]
                except (OSError, ValueError, KeyError, TypeError):
                    answer = None
            self._out.unlink(missing_ok=True)
            if answer is None and ending and code is not None and -code in _INTERRUPTS:
                return []     # Ctrl-C or a kill stopped the checker: the run ends unchecked, uncached
            if not isinstance(answer, list):   # the checker died: check here
                answer = _check(self.paths, self.cache, self.key)
            self._problems = [str(p) for p in answer]
        return self._problems

    def stop_on_problems(self, at_exit: bool = False) -> None:
        """Print the problems and end the process with status 1; nothing when there are none.
        `at_exit` for an atexit handler, where only os._exit can still set the status."""
        problems = self.problems(ending=at_exit)
        if not problems or self._reported:
            return
        self._reported = True
        from ..console import print_problems

        print_problems(problems)
        if at_exit:
            import logging

            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(1)
        sys.exit(1)


def load_catalogue_deferred(paths: list[Path] | None = None, cache: Path | None = None,
                            defer: bool = True) -> tuple[dict[str, LoadedPaper], PendingChecks | None]:
    """`load_catalogue`, with the registry checks in a background process when the cache does not
    already vouch for the files (and `defer`): the schema and reference checks run here and raise
    as before, the registry checks are a `PendingChecks` (None when nothing is pending). The
    checker starts first and checks everything, so where a quick check fails here, the error
    still lists every problem at once."""
    paths = catalogue_files() if paths is None else paths
    if not defer:
        return load_catalogue(paths, cache), None
    key = _validation_key(paths) if cache is not None else None
    if _cached(cache, key):
        return _load_all(paths, registry_checks=False), None
    pending = PendingChecks(paths, cache, key)
    try:
        return _load_all(paths, registry_checks=False), pending
    except CatalogueError as quick:
        raise CatalogueError(pending.problems() or quick.problems) from None


def _load_all(paths: list[Path], registry_checks: bool = True) -> dict[str, LoadedPaper]:
    out: dict[str, LoadedPaper] = {}
    problems: list[str] = []
    for p in paths:
        try:
            lp = load_paper(p, registry_checks)
        except CatalogueError as e:
            problems += e.problems
            continue
        if lp.id in out:
            problems.append(f"{p}: paper.id: {lp.id!r} is also the id of {out[lp.id].path}")
        out[lp.id] = lp
    if problems:
        raise CatalogueError(problems)
    return out


def json_schema() -> dict:
    sch = S.Paper.model_json_schema()
    sch["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    sch["title"] = "Catalogue entry (catalogue/<paper>.yaml)"
    return sch


def check_job_cap(papers: dict[str, LoadedPaper], scales: list[str], cap: int) -> None:
    for scale in scales:
        total = sum(lp.n_jobs(scale) for lp in papers.values())
        if total > cap:
            worst = max(papers.values(), key=lambda lp: lp.n_jobs(scale))
            raise CatalogueError([
                f"{worst.path}: scale {scale} expands to {total} train jobs in all ({worst.n_jobs(scale)} from this file), "
                f"more than max_jobs={cap}; shrink the sweeps or seeds, or raise max_jobs in config.yaml"
            ])


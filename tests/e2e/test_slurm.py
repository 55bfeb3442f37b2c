"""The SLURM profile against a real single-node SLURM: same verdicts and numbers as a local run.

A session fixture brings up SLURM on this host when there is none: as root it installs Debian's
slurm-wlm and munge with apt-get (skips with the reason if that fails), writes a munge key and a
minimal slurm.conf (only when no slurm.conf is in use), starts munged, slurmctld and slurmd, and
stops at the end exactly the daemons it started. A SLURM that already answers `sinfo` is used as
it is. Every command runs under a timeout: the slurm executor plugin can hang when its status
checks go to sacct on a cluster without accounting (profiles/slurm uses squeue).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import copy_repo

pytestmark = pytest.mark.e2e

PAPER = "toy_superposition"
MARK = "# written by tests/e2e/test_slurm.py"
CONF = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
MUNGE_KEY = Path("/etc/munge/munge.key")
PIDS = {"munged": Path("/run/munge/munged.pid"), "slurmctld": Path("/run/slurmctld.pid"),
        "slurmd": Path("/run/slurmd.pid")}


def tool(name: str) -> str | None:
    """A SLURM or munge program: on PATH, or in the sbin folders a user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def sh(*cmd: str, timeout: float = 30, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run a command with a timeout; a hang is an error, never a stuck test."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)}: no answer in {timeout} s") from e
    except FileNotFoundError as e:
        return subprocess.CompletedProcess(cmd, 127, "", str(e))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def ok(*cmd: str, timeout: float = 10) -> bool:
    try:
        return sh(*cmd, timeout=timeout).returncode == 0
    except AssertionError:
        return False


def wait_for(what: str, pred, timeout: float, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def install_slurm() -> float:
    """apt-get slurm-wlm and munge; the seconds it took. Skips with the reason when it cannot."""
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it (apt-get) needs root")
    if not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and this machine has no apt-get to install Debian's slurm-wlm")
    t0 = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd, timeout in ((["apt-get", "update"], 150),
                         (["apt-get", "install", "-y", "slurm-wlm", "munge"], 300)):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(cmd)}` did not finish in {timeout} s")
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            pytest.skip(f"`{' '.join(cmd)}` failed ({proc.returncode}): {' | '.join(tail)}")
    missing = [c for c in ("sinfo", "slurmctld", "slurmd", "munged") if not tool(c)]
    if missing:
        pytest.skip(f"apt-get installed slurm-wlm and munge, but {', '.join(missing)} are not on PATH")
    return time.monotonic() - t0


def write_munge_key() -> None:
    if MUNGE_KEY.exists():
        return
    MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
    if not (tool("mungekey") and ok(tool("mungekey"), "-c", "-k", str(MUNGE_KEY))):
        MUNGE_KEY.write_bytes(os.urandom(1024))
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)


def slurm_conf(host: str) -> str:
    cpus = os.cpu_count() or 1
    avail_mb = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemAvailable:"))
    mem = max(500, int(avail_mb * 0.9))
    return f"""{MARK}: a single-node SLURM for the tests; safe to delete.
ClusterName=claimcheck-test
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
InactiveLimit=0
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile={PIDS['slurmctld']}
SlurmdPidFile={PIDS['slurmd']}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def node_states() -> set[str]:
    proc = sh("sinfo", "-h", "-N", "-o", "%T", timeout=10)
    return {s.rstrip("*~#$@^-") for s in proc.stdout.split()} if proc.returncode == 0 else set()


def controller_up() -> bool:
    try:
        return "UP" in sh("scontrol", "ping", timeout=10).stdout
    except AssertionError:
        return False


def alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def stop(pid_file: Path, name: str) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    print(f"{name} ({pid}) ignored SIGTERM for 20 s; killed")


def start_daemons(started: list[str]) -> bool:
    """munged, slurmctld, slurmd: each one not already running; True when the conf is ours."""
    if os.geteuid() != 0:
        pytest.skip("SLURM is installed but not running, and starting its daemons needs root")
    host = socket.gethostname().split(".")[0]
    ours = not CONF.exists() or CONF.read_text().startswith(MARK)
    if ours:                                 # never replace a slurm.conf someone else wrote
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(slurm_conf(host))
    for d in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm"):
        Path(d).mkdir(parents=True, exist_ok=True)
    write_munge_key()
    if not ok("sh", "-c", "munge -n | unmunge"):
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        sh("runuser", "-u", "munge", "--", tool("munged"), timeout=20, check=True)
        started.append("munged")
        wait_for("munged", lambda: ok("sh", "-c", "munge -n | unmunge"), 20)
    if not controller_up():
        # our own conf: a clean state (-c); someone else's: keep its jobs
        sh(tool("slurmctld"), *(["-c"] if ours else []), timeout=30, check=True)
        started.append("slurmctld")
        wait_for("slurmctld answering `scontrol ping`", controller_up, 30)
    if not alive(PIDS["slurmd"]):
        sh(tool("slurmd"), timeout=30, check=True)
        started.append("slurmd")
    try:
        wait_for("the node idle in sinfo", lambda: "idle" in node_states(), 60)
    except AssertionError:
        log = Path("/var/log/slurm/slurmd.log")
        raise AssertionError(f"node states {node_states()}\n{log.read_text()[-2000:] if log.exists() else ''}") from None
    return ours


@pytest.fixture(scope="session")
def slurm():
    """A SLURM to submit to: {'partition', 'install_s'}; brought up on this host if none answers."""
    install_s = None
    if not controller_up() and not all(map(tool, ("sinfo", "slurmctld", "slurmd", "munged"))):
        install_s = install_slurm()
        print(f"\napt-get install slurm-wlm munge: {install_s:.0f} s")
    started: list[str] = []
    ours = False
    try:
        if not (controller_up() and node_states() & {"idle", "mixed", "allocated", "completing"}):
            ours = start_daemons(started)
        # else: a running SLURM, used as it is; nothing started, nothing stopped
        partition = next((p.rstrip("*") for p in sh("sinfo", "-h", "-o", "%P", timeout=10).stdout.split()
                          if p.endswith("*")), "debug")
        yield {"partition": partition, "install_s": install_s, "started": started}
    finally:
        if "slurmctld" in started and ours:   # a cluster of our own ran only our jobs
            sh("scancel", "--user", "root", timeout=20)
        for name in reversed(started):
            stop(PIDS[name], name)
        if ours and "slurmctld" in started:
            CONF.unlink(missing_ok=True)


def run_snakemake(cwd: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    # its own process group: on a timeout the whole tree goes (the plugin may ignore SIGTERM)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        if shutil.which("squeue"):   # the SLURM jobs it left, by their working directory
            q = sh("squeue", "-h", "-o", "%i %Z", timeout=10).stdout.split("\n")
            ids = [line.split()[0] for line in q if line.strip().endswith(str(cwd))]
            if ids:
                sh("scancel", *ids, timeout=20)
        raise AssertionError(f"snakemake {' '.join(args)}: no end in {timeout} s\n{out[-5000:]}") from None
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{out[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), wall


def allocation_times(stdout: str, repo: Path) -> str:
    """Where the SLURM run's extra time goes, for the log (no assertion): each sbatch job's time
    from allocation to completion (slurmctld's log) against the training and evaluation compute
    its jobs recorded themselves."""
    import re
    import statistics
    from datetime import datetime
    ids = set(re.findall(r"submitted with SLURM jobid (\d+)", stdout))
    log = Path("/var/log/slurm/slurmctld.log")
    if not ids or not log.exists():
        return "(no slurmctld log here: no per-job breakdown)"
    start, end = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"\[([^]]+)\] (?:sched: Allocate|sched/backfill: _start_job: Started) JobId=(\d+)", line)
        if m and m.group(2) in ids:
            start.setdefault(m.group(2), datetime.fromisoformat(m.group(1)))
        m = re.match(r"\[([^]]+)\] _job_complete: JobId=(\d+) done", line)
        if m and m.group(2) in ids:
            end[m.group(2)] = datetime.fromisoformat(m.group(1))
    spans = [(end[i] - start[i]).total_seconds() for i in ids if i in start and i in end]
    compute = []
    for f in (repo / "results" / "smoke" / PAPER).rglob("train.json"):
        t = json.loads(f.read_text()).get("compute_s") or 0.0
        e = json.loads((f.parent / "eval.json").read_text()).get("compute_s") or 0.0
        compute.append(t + e)
    if not spans:
        return "(the slurmctld log has none of this run's jobs)"
    wait = polling_wait(stdout, max(end[i] for i in ids if i in end))
    return (f"{len(spans)} sbatch jobs: median {statistics.median(spans):.1f} s from allocation to completion"
            + (f", for a median {statistics.median(compute):.2f} s of training + evaluation compute" if compute else "")
            + (f"; the plugin went on {wait:.0f} s after the last one ended (its status-check interval)"
               if wait is not None else ""))


def polling_wait(stdout: str, last_end) -> float | None:
    """Seconds from the end of the last sbatch job (slurmctld's log) to the next step Snakemake
    logged: the wait for the plugin's next status check (1 s resolution)."""
    import re
    from datetime import datetime
    for m in re.finditer(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", stdout, re.M):
        t = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        if t >= last_end.replace(microsecond=0):
            return max(0.0, (t - last_end).total_seconds())
    return None


def outcome(repo: Path, paper: str = PAPER) -> tuple[dict, dict]:
    """claim id -> verdict, and job folder -> its training and evaluation numbers."""
    base = repo / "results" / "smoke" / paper
    verdicts = json.loads((base / "verdicts.json").read_text())
    claims = {c["id"]: c["verdict"] for c in verdicts["claims"]}
    numbers = {}
    for train in sorted(base.rglob("train.json")):
        t = json.loads(train.read_text())
        e = json.loads((train.parent / "eval.json").read_text())
        numbers[str(train.parent.relative_to(base))] = {
            "status": t.get("status"), "final_loss": t.get("final_loss"), "steps_done": t.get("steps_done"),
            "converged": t.get("converged"), "history": t.get("history"), "eval": e.get("points")}
    return claims, numbers


def served_steps(repo: Path) -> int:
    """Job steps the fork servers inside the SLURM jobs ran (each logs its count when it stops)."""
    import re
    return sum(int(n) for f in (repo / "logs" / "forkserver").glob("slurm-*.log")
               for n in re.findall(r"stopping \(.*\) after (\d+) jobs", f.read_text()))


def slurm_run(slurm, repo: Path, config: tuple[str, ...] = (), paper: str = PAPER,
              **site_extra) -> tuple[subprocess.CompletedProcess, float]:
    # profiles/slurm as shipped, plus a site profile after it (as docs/running.md says a site does) with
    # what this machine needs: its partition, small jobs, and quick status checks (fine here:
    # MinJobAge=300 > 3 x 5 s keeps the plugin on squeue)
    shipped = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
    site = {"default-resources": [r for r in shipped["default-resources"]
                                  if r.split("=")[0] not in ("slurm_partition", "runtime", "mem_mb")]
                                 + [f"slurm_partition={slurm['partition']}", "runtime=10", "mem_mb=1000"],
            "slurm-init-seconds-before-status-checks": 5, **site_extra}
    (repo / "site").mkdir()
    (repo / "site/config.yaml").write_text(yaml.safe_dump(site))
    return run_snakemake(repo, "--profile", "profiles/slurm", "--profile", "site", paper,
                         "--config", "scale=smoke", *config, timeout=420)


def test_slurm_profile_gives_the_local_verdicts_and_numbers(slurm, repo, tmp_path):
    local = repo                  # the session's local smoke run (tests/e2e/conftest.py) ran this paper first
    claims_local, numbers_local = outcome(local)
    steps = sum(1 for f in (local / "results" / "smoke" / PAPER).rglob("*.json")
                if f.name in ("train.json", "eval.json", "probes.json"))
    assert numbers_local and steps >= 2 * len(numbers_local)

    # as shipped: one sbatch job per fit (its training, evaluation and probes), whose batch step runs
    # them itself (slurm_group_steps: local); then packed as docs/running.md suggests for smoke runs, 8 fits
    # per sbatch job on one CPU; then packed with the plugin's own job steps (one srun + Snakemake each)
    packed = {"group-components": ["fit=8"], "cores": 1}
    runs = {"as shipped": ({}, "local"), "packed": (packed, "local"),
            "packed, slurm_group_steps=srun": ({**packed, "config": ("slurm_group_steps=srun",)}, "srun")}
    done = {}
    for i, (name, (extra, steps_mode)) in enumerate(runs.items()):
        repo = copy_repo(tmp_path / f"slurm{i}")
        proc, wall = slurm_run(slurm, repo, **extra)
        done[name] = (repo, proc, wall, steps_mode)
    print(f"\nwall time, smoke scale of {PAPER}: "
          + "; ".join(f"{name} {wall:.1f} s" for name, (_, _, wall, _) in done.items())
          + (f"; apt-get install of slurm-wlm and munge {slurm['install_s']:.0f} s" if slurm["install_s"] else ""))
    for name, (repo, proc, _, _) in done.items():
        print(f"{name}: {allocation_times(proc.stdout, repo)}")

    for name, (repo, proc, _, steps_mode) in done.items():
        claims_slurm, numbers_slurm = outcome(repo)
        assert claims_slurm == claims_local, name
        assert numbers_slurm.keys() == numbers_local.keys(), name
        for job, nums in numbers_local.items():
            assert numbers_slurm[job] == nums, (name, job)         # deterministic on CPU: identical
        # every fit ran inside a SLURM job: in its batch step, or as an srun step of its own
        for train in (repo / "results" / "smoke" / PAPER).rglob("train.json"):
            prov = json.loads(train.read_text())["provenance"]
            assert prov["slurm_job_id"], (name, train)
            assert (prov["slurm_step_id"] is None) == (steps_mode == "local"), (name, train, prov["slurm_step_id"])
        # ... and every step of it in that job's fork server
        assert served_steps(repo) == steps, (name, [f.read_text() for f in (repo / "logs" / "forkserver").glob("*.log")])
    shipped_out, packed_out = done["as shipped"][1].stdout, done["packed"][1].stdout
    assert shipped_out.count("submitted with SLURM jobid") >= len(numbers_local), shipped_out[-3000:]
    assert packed_out.count("submitted with SLURM jobid") == -(-len(numbers_local) // 8), packed_out[-3000:]


def test_a_shared_fit_trains_in_slurm_and_its_copy_on_the_login_node(slurm, repo, tmp_path):
    """A paper whose fits another paper trains alike (ssm_recency's, trained in mamba2_ssd's folders):
    with the profile, the fits train in sbatch jobs, the copies (copy_fit, a localrule) are made in
    the Snakemake process, and the numbers and verdicts are the local run's."""
    paper = "ssm_recency"
    claims_local, numbers_local = outcome(repo, paper)
    copies = {k: json.loads((repo / "results/smoke" / paper / k / "train.json").read_text()).get("copy_of")
              for k in numbers_local}
    assert any(copies.values()), copies
    d = copy_repo(tmp_path / "copies")
    proc, _ = slurm_run(slurm, d, paper=paper)
    claims, numbers = outcome(d, paper)
    assert claims == claims_local and numbers == numbers_local
    for k, src in copies.items():
        rec = json.loads((d / "results/smoke" / paper / k / "train.json").read_text())
        assert rec.get("copy_of") == src
        if src:
            assert rec["provenance"]["slurm_job_id"]              # the fit it copies trained in a SLURM job
            assert (d / src / "model.pt").read_bytes() == (d / "results/smoke" / paper / k / "model.pt").read_bytes()
    out = proc.stdout + proc.stderr
    # Snakemake names a job it runs itself "localrule"; the trainings went to sbatch, as group jobs
    assert out.count("\nlocalrule copy_fit:") == sum(map(bool, copies.values())), out[-3000:]
    assert "\nrule copy_fit:" not in out and "localrule train:" not in out, out[-3000:]

"""A fork server for the jobs of one local Snakemake run: pay for `import torch` once, not per job.

    python -m workflow.launch.forkserver serve --socket PATH [--idle-timeout 600]   (the Snakefile starts it)
    python -m workflow.launch.forkserver ping  --socket PATH                        (is one serving there?)
    python -m workflow.launch.forkserver stop  --socket PATH

A smoke job trains for well under a second, yet a fresh Python process spends 1.3-2 s importing
torch, numpy and the engine before it does anything. On a local run the Snakefile's `onstart`
starts this server, which imports all of that once and then listens on a Unix socket. Every job
step is launched as `python -m workflow.launch <step> ...` (workflow/launch/__main__.py): a client that starts in
~40 ms, hands the server its command line, working directory, environment and its stdin, stdout
and stderr (the job's log file, as the rule redirected them), and waits. The server forks a child
per request; the child, a copy of the warm process, takes the client's file descriptors,
directory and environment and runs `workflow.<step>.main(args)`, exactly the code that
`python -m workflow.<step>` runs. Its exit status goes back to the client, which exits with it.

What stays as without it:
- every job is still its own Snakemake job with its own outputs, log, retries and exit status;
- a job is its own process (a fork): a crash, a leak or a changed global stays in that job;
- signals: the client forwards SIGTERM, SIGINT, SIGUSR1 and SIGHUP to the child, so Ctrl-C,
  `kill` and SLURM-style preemption reach the job (training checkpoints and exits as usual);
  if the client dies (SIGKILL), the server sends the child SIGTERM;
- results: the same numbers as a direct run (a test compares them bit for bit).
What differs: Snakemake's `benchmark:` files time the client, so their wall time is the job's
but their memory columns are the client's; a job's own record (train.json) keeps its timing.

Safe to fork because the server never starts a thread, never runs a torch op and never touches
CUDA before forking (CUDA initializes in the child, after CUDA_VISIBLE_DEVICES is set); it
refuses to serve if preloading started a thread. Modules whose import reads the environment
(transformers and huggingface_hub read HF_HUB_OFFLINE) are not preloaded; MLflow reads its
settings when called, so it is.
The server exits when asked, after `--idle-timeout` seconds without a job, or once the process
that started it is gone and its last job has finished. It serves the machine Snakemake runs on: the
Snakefile starts it for the local executor, and for the SLURM executor, where it serves the local
rules (track, judge, report) on the login node and preloads only what they need (`--preload local`,
no torch). A step inside a SLURM job never uses a server
outside that job (CLAIMCHECK_FORKSERVER_JOB holds the job the server runs in; sbatch exports
both variables to every job). Inside an sbatch job that runs a group of jobs, the Snakemake that
runs the group (in the batch step, `slurm_group_step`) starts a server of its own, preloading only
what fit steps need (`--preload fit`); the group's steps, `srun` steps of the same job, wait for it
while it starts (CLAIMCHECK_FORKSERVER_STARTING) instead of importing torch each. Other cluster
executors get no server. A client that finds no server runs its step directly.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# what the per-paper collector and report steps import: MLflow (the collector) and matplotlib (the
# report) cost ~1.5 s each
PER_PAPER = (
    "mlflow", "mlflow.tracking", "matplotlib", "jinja2", "workflow.tracking", "workflow.report",
    # what MlflowClient imports when it opens a sqlite store: ~2.4 s more per collector job
    "mlflow.tracking.client", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.db.utils",
    # ... and when its store opens the database: ~7 ms more in every collector and report step
    "sqlalchemy.dialects.sqlite", "mlflow.store.tracking.sqlalchemy_workspace_store",
)
# imported once by the server; a module that fails to import is skipped (the job then imports
# it itself and reports the error as usual)
PRELOAD = (
    "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.fft",
    "torch._dynamo",            # torch.optim's optimizers (the L-BFGS probes) import it on first use: ~2 s
    "sklearn.datasets",         # tasks built on scikit-learn's data sets (digits, make_classification)
    "pydantic", "yaml",
    "workflow.steps", "workflow.catalogue", "workflow.checkpoint", "workflow.launch.gpu",
    "workflow.train", "workflow.evaluate", "workflow.probe", "workflow.judge", "workflow.results",
    "modules.config", "modules.optim", "modules.kernels", "modules.models", "modules.tasks", "modules.probes",
    *PER_PAPER,
)
# a SLURM job's server starts beside the job's first step, on the same CPUs: it imports only what every
# train and evaluate step needs (~1.5 s), not every registry module, scikit-learn or torch._dynamo (~4 s more)
FIT = ("numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "pydantic", "yaml",
       "workflow.steps", "workflow.catalogue", "workflow.checkpoint", "workflow.launch.gpu", "workflow.train",
       "workflow.evaluate", "workflow.probe", "modules.config", "modules.optim", "modules.kernels",
       "modules.models", "modules.tasks", "modules.probes")
# the Snakemake on a cluster's login node (the SLURM executor) runs only the local rules there: a paper's
# collector, judge and report steps and the index, none of which imports torch. Its server imports
# what they need (~2 s) and not torch and the registries (~4 s more of CPU and ~400 MB of memory on a
# shared login node; on a single-node cluster, taken from the sbatch jobs' CPUs).
LOCAL_RULES = ("pydantic", "yaml", "workflow.steps", "workflow.catalogue", "workflow.judge", "workflow.results",
               "scipy.stats",            # the judge's confidence intervals (workflow/results.py): ~0.5 s
               "modules.probes.kinds",   # the catalogue's probe kinds (no torch)
               *PER_PAPER)
# Every task and model module of the registries is preloaded too by the full profile (each costs
# 5-40 ms to import, in every job that uses it, the collector's catalogue check included), except
# those whose import reads the environment: the two that load the pretrained transformer.
NOT_PRELOADED = {"modules.tasks.wordpiece_text", "modules.models.pretrained_minilm"}


@dataclass(frozen=True)
class Preload:
    """What a server imports before it serves: `modules`, the registries' modules when `registry`,
    then the functions in `warm` ("module:function"), called once so that every job inherits their result."""
    modules: tuple[str, ...]
    warm: tuple[str, ...] = ()
    registry: bool = False


PER_PAPER_WARM = ("workflow.tracking:warm", "workflow.report:warm")
PRELOADS = {"all": Preload(PRELOAD, warm=PER_PAPER_WARM, registry=True), "fit": Preload(FIT),
            "local": Preload(LOCAL_RULES, warm=PER_PAPER_WARM)}
STEPS = ("train", "evaluate", "probe", "judge", "report", "tracking")
HEADER = struct.Struct("!I")
MAX_REQUEST = 16 << 20


def registry_modules() -> list[str]:
    """The task and model modules named by the registries (modules.tasks.TASKS, modules.models.ARCHS)."""
    from modules.models import ARCHS
    from modules.tasks import TASKS

    names = [v.split(":")[0] for v in (*TASKS.values(), *ARCHS.values())]
    return [n for n in dict.fromkeys(names) if n not in NOT_PRELOADED]


def default_socket(owner: int | None = None) -> str:
    """Per working directory, host and starting process; kept short (a Unix socket path has ~100 bytes)."""
    return str(Path(".snakemake") / f"forkserver-{socket.gethostname()[:40]}-{owner or os.getpid()}.sock")


def _remove_stale(sock_path: str) -> None:
    """Sockets of this host's servers whose starter is gone and that no longer answer (killed -9)."""
    here = Path(sock_path).parent
    prefix = f"forkserver-{socket.gethostname()[:40]}-"
    for old in here.glob(f"{prefix}*.sock"):
        if str(old) != sock_path and request(str(old), "ping", timeout=0.5) is None:
            old.unlink(missing_ok=True)


# --- wire format: a 4-byte length, then JSON; the request also carries 3 file descriptors ---------

def send_msg(conn: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    data = HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(conn, [data], fds)
        data = data[sent:]
    conn.sendall(data)


def recv_msg(conn: socket.socket, want_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message, or (None, []) at end of stream."""
    fds: list[int] = []
    if want_fds:
        buf, fds, _, _ = socket.recv_fds(conn, 65536, want_fds)
    else:
        buf = conn.recv(65536)
    if not buf:
        return None, fds
    while len(buf) < HEADER.size:
        more = conn.recv(65536)
        if not more:
            return None, fds
        buf += more
    (n,) = HEADER.unpack(buf[:HEADER.size])
    if n > MAX_REQUEST:
        raise ValueError(f"request of {n} bytes is larger than {MAX_REQUEST}")
    buf = buf[HEADER.size:]
    while len(buf) < n:
        more = conn.recv(min(1 << 20, n - len(buf)))
        if not more:
            return None, fds
        buf += more
    return json.loads(buf[:n]), fds


# --- the server ------------------------------------------------------------------------------------

def _preload(what: Preload, log) -> float:
    t0 = time.perf_counter()
    modules = list(what.modules)
    try:
        modules += registry_modules() if what.registry else []
    except Exception as e:  # noqa: BLE001
        log(f"forkserver: registry modules not preloaded: {type(e).__name__}: {e}")
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - the job will meet the same error and report it
            log(f"forkserver: not preloaded: {name}: {type(e).__name__}: {e}")
    for ref in what.warm:
        mod, fn = ref.split(":")
        try:
            getattr(importlib.import_module(mod), fn)()
        except Exception as e:  # noqa: BLE001
            log(f"forkserver: not warmed: {ref}: {type(e).__name__}: {e}")
    return time.perf_counter() - t0


def _run_child(req: dict, fds: list[int]) -> int:
    """In the forked child: become the job the client asked for, run it, return its exit code."""
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for i, fd in enumerate(fds[:3]):
        os.dup2(fd, i)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    os.environ.pop("CLAIMCHECK_FORKSERVER", None)   # a step that starts a step of its own runs it directly
    step, args = req["step"], list(req["args"])
    sys.argv = [f"python -m workflow.{step}", *args]
    module = importlib.import_module(f"workflow.{step}")
    try:
        code = module.main(args)
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        code = 130
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    return code


def serve(sock_path: str, idle_timeout: float, preload: Preload = PRELOADS["all"], parent: int | None = None) -> int:
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    from modules.runtime import keep_freed_memory

    keep_freed_memory()                 # inherited by every forked job (modules/runtime.py says why)
    took = _preload(preload, log)
    import threading

    if threading.active_count() > 1:   # forking a threaded process is unsafe: refuse rather than risk it
        log(f"forkserver: {threading.active_count()} threads after preloading; not serving (jobs run directly)")
        return 1
    path = Path(sock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(64)
    os.replace(tmp, path)               # the socket appears only once the server is ready
    log(f"forkserver: pid {os.getpid()}, serving {path} (preloaded in {took:.1f} s)")

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    stopping = []
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "listen")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    children: dict[int, socket.socket] = {}     # child pid -> its client's connection
    owner: dict[socket.socket, int] = {}
    last_busy = time.monotonic()
    served = 0

    def handle(conn: socket.socket) -> None:
        nonlocal served
        conn.settimeout(10)
        try:
            req, fds = recv_msg(conn, want_fds=3)
        except (OSError, ValueError) as e:
            log(f"forkserver: bad request: {e}")
            conn.close()
            return
        if req is None:
            conn.close()
            return
        if req.get("op") in ("ping", "stop"):
            send_msg(conn, {"ok": True, "pid": os.getpid(), "jobs": len(children), "served": served})
            conn.close()
            if req["op"] == "stop":
                stopping.append("stop")
            return
        if req.get("step") not in STEPS or len(fds) != 3:
            send_msg(conn, {"error": f"unknown step {req.get('step')!r} or missing descriptors"})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                                 # the child
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                sel.close()
                listener.close()
                for c in owner:
                    c.close()
                os.close(wake_r)
                os.close(wake_w)
                code = _run_child(req, fds)
            except BaseException:  # noqa: BLE001 - report it in the job's own log, then exit
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        for fd in fds:
            os.close(fd)
        served += 1
        conn.settimeout(None)
        children[pid] = conn
        owner[conn] = pid
        try:
            send_msg(conn, {"pid": pid})
        except OSError:
            pass
        sel.register(conn, selectors.EVENT_READ, "client")

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = children.pop(pid, None)
            if conn is None:
                continue
            owner.pop(conn, None)
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            code = os.waitstatus_to_exitcode(status)
            try:
                send_msg(conn, {"exit": code if code >= 0 else 128 - code})
            except OSError:
                pass
            conn.close()

    try:
        while True:
            for key, _ in sel.select(timeout=2.0):
                if key.data == "listen":
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        continue
                    handle(conn)
                elif key.data == "wake":
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:                                # a client spoke or hung up
                    conn = key.fileobj
                    try:
                        gone = not conn.recv(64)
                    except OSError:
                        gone = True
                    if gone and conn in owner:       # the client died: stop its job as a kill would
                        pid = owner[conn]
                        try:
                            os.kill(pid, signal.SIGTERM)
                        except ProcessLookupError:
                            pass
                        sel.unregister(conn)
            reap()
            if children:
                last_busy = time.monotonic()
                continue
            orphaned = parent is not None and os.getppid() != parent
            idle = time.monotonic() - last_busy > idle_timeout
            if stopping or orphaned or idle:
                why = stopping[0] if stopping else ("its starter is gone" if orphaned else "idle")
                log(f"forkserver: stopping ({why}) after {served} jobs")
                return 0
    finally:
        try:
            if path.exists() and path.is_socket():
                path.unlink()
        except OSError:
            pass
        listener.close()


# --- starting and stopping, for the Snakefile ---------------------------------------------------------

def request(sock_path: str, op: str, timeout: float = 5.0) -> dict | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(sock_path)
            send_msg(conn, {"op": op})
            reply, _ = recv_msg(conn)
            return reply
    except (OSError, ValueError):
        return None


def start(sock_path: str | None = None, log_path: str | None = None, idle_timeout: float = 600.0,
          preload: str = "all", wait: bool = False) -> str:
    """Start a server in the background for this process's jobs; returns its socket path. The jobs
    find it through CLAIMCHECK_FORKSERVER, which this sets. Jobs that start before it is ready
    (it takes the time of one import of torch) run directly, unless `wait`: then they wait for it
    (CLAIMCHECK_FORKSERVER_STARTING names its host and pid), as long as it is alive.
    `preload`: "all"; "fit" for a server that only runs train, evaluate and probe steps; "local" for
    one that only runs the local rules' steps (tracking, judge, report) of a run whose fits go to SLURM."""
    sock_path = sock_path or default_socket()
    import subprocess

    proc = None
    try:
        _remove_stale(sock_path)
        if request(sock_path, "ping", timeout=1.0) is None:
            Path(sock_path).unlink(missing_ok=True)
            if log_path:
                Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(log_path or os.devnull, "a") as log:
                proc = subprocess.Popen([sys.executable, "-m", "workflow.launch.forkserver", "serve", "--socket", sock_path,
                                         "--idle-timeout", str(idle_timeout), "--parent", str(os.getpid()),
                                         "--preload", preload],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                        close_fds=True)
    except OSError as e:   # never a reason to fail the run: the jobs then start as fresh processes
        print(f"forkserver: not started ({e}); every job step starts its own Python process", file=sys.stderr)
        return sock_path
    os.environ["CLAIMCHECK_FORKSERVER"] = os.path.abspath(sock_path)
    # the SLURM job this server runs in ('' for none): a cluster job, which inherits these variables
    # (sbatch --export=ALL), never hands its step to a server outside its own allocation
    os.environ["CLAIMCHECK_FORKSERVER_JOB"] = os.environ.get("SLURM_JOB_ID", "")
    if wait and proc is not None:
        os.environ["CLAIMCHECK_FORKSERVER_STARTING"] = f"{socket.gethostname()}:{proc.pid}"
    return sock_path


def slurm_group_step(remote_exec: bool, argv: list[str] | None = None, env=None) -> bool:
    """Whether this Snakemake is the one that runs a group of jobs inside a SLURM allocation: the
    SLURM executor plugin starts it in the batch step (`--local-groupid` for a group) with
    `--executor slurm-jobstep`, and it runs the group's jobs one after another, each as an `srun`
    step; or, with `slurm_group_steps: local` (workflow/launch/slurm.py), with `--executor local`, and it
    runs their shell commands itself. A server it starts serves those steps (their SLURM_JOB_ID is
    its own), so a group pays for torch once."""
    argv = sys.argv if argv is None else argv
    env = os.environ if env is None else env
    executor = next((b for a, b in zip(argv, argv[1:]) if a == "--executor"), "")
    return (bool(remote_exec) and bool(env.get("SLURM_JOB_ID")) and not env.get("SLURM_STEP_ID")
            and "--local-groupid" in argv and (executor.endswith("slurm-jobstep") or executor == "local"))


def wait_until_ready(sock_path: str, starting: str, limit: float = 60.0) -> bool:
    """For a client: wait while the server named by CLAIMCHECK_FORKSERVER_STARTING ("host:pid")
    is still preloading; True once its socket is there, False if it died, is on another host, or
    takes longer than `limit` seconds."""
    host, _, pid = starting.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    deadline = time.monotonic() + limit
    while not os.path.exists(sock_path):
        if not _alive(int(pid)) or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")        # a server that exited before binding is a zombie of its starter
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def stop(sock_path: str | None = None) -> None:
    os.environ.pop("CLAIMCHECK_FORKSERVER_JOB", None)
    os.environ.pop("CLAIMCHECK_FORKSERVER_STARTING", None)
    sock_path = os.environ.pop("CLAIMCHECK_FORKSERVER", None) or sock_path or default_socket()
    request(sock_path, "stop", timeout=2.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.launch.forkserver", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["serve", "ping", "stop"])
    p.add_argument("--socket", default=None, help="the Unix socket (default: .snakemake/forkserver-<host>-<pid>.sock)")
    p.add_argument("--idle-timeout", type=float, default=600.0, help="serve: exit after this many idle seconds")
    p.add_argument("--parent", type=int, default=None, help="serve: exit when this process is gone")
    p.add_argument("--preload", choices=sorted(PRELOADS), default="all",
                   help="serve: what to import up front: all (every step), fit (train, evaluate, probe) or local "
                        "(tracking, judge, report: a SLURM run's local rules)")
    args = p.parse_args(argv)
    if args.command != "serve" and not args.socket:
        p.error(f"{args.command} needs --socket (a running server's path is in logs/forkserver.log)")
    sock = args.socket or default_socket()
    if args.command == "serve":
        return serve(sock, args.idle_timeout, preload=PRELOADS[args.preload], parent=args.parent)
    reply = request(sock, args.command)
    print(json.dumps(reply) if reply else f"no fork server at {sock}")
    return 0 if reply else 1


if __name__ == "__main__":
    sys.exit(main())

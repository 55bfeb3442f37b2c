"""Run one job step, in the run's fork server when there is one (workflow/launch/forkserver.py).

    python -m workflow.launch <step> [the step's arguments]      step: train, evaluate, probe, judge, report, tracking

The same as `python -m workflow.<step> ...`, which it becomes (exec) when CLAIMCHECK_FORKSERVER is
unset or no server answers there. Otherwise it hands its command line, directory, environment and
stdin/stdout/stderr to the server, forwards the signals it gets to the forked job, and exits with
the job's exit status. Imports only the standard library (and modules.runtime, which does too), so that it starts in tens of
milliseconds.
"""
from __future__ import annotations

import os
import signal
import socket
import sys

from .forkserver import STEPS, recv_msg, send_msg, wait_until_ready

FORWARD = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)


def _direct(step: str, args: list[str]) -> None:
    # the fork server's jobs get the malloc settings from it (mallopt before forking); a job run
    # directly gets them as glibc tunables at start (modules/runtime.py says why)
    from modules.runtime import malloc_env

    os.execve(sys.executable, [sys.executable, "-m", f"workflow.{step}", *args], malloc_env(dict(os.environ)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STEPS:
        print(f"usage: python -m workflow.launch <step> [args]; step is one of {', '.join(STEPS)}", file=sys.stderr)
        return 2
    step, args = argv[0], argv[1:]
    path = os.environ.get("CLAIMCHECK_FORKSERVER")
    here = os.environ.get("SLURM_JOB_ID", "")
    if not path or os.environ.get("CLAIMCHECK_FORKSERVER_JOB", here) != here:
        _direct(step, args)             # no server, or one outside this SLURM job's allocation
    starting = os.environ.get("CLAIMCHECK_FORKSERVER_STARTING")
    if starting and not os.path.exists(path):
        wait_until_ready(path, starting)   # a server in this SLURM job, still importing: cheaper than importing here
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(10)
        conn.connect(path)
        env = {k: v for k, v in os.environ.items() if k != "CLAIMCHECK_FORKSERVER"}
        send_msg(conn, {"step": step, "args": args, "cwd": os.getcwd(), "env": env}, fds=[0, 1, 2])
        reply, _ = recv_msg(conn)
    except (OSError, ValueError):
        reply = None
    if not reply or "pid" not in reply:
        conn.close()
        if reply and "error" in reply:
            print(f"workflow.launch: fork server refused the job ({reply['error']}); running it directly",
                  file=sys.stderr, flush=True)
        _direct(step, args)             # no server (yet): the step runs in this process, as without one
    pid = reply["pid"]

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARD:
        signal.signal(sig, forward)
    conn.settimeout(None)
    while True:
        try:
            reply, _ = recv_msg(conn)
            break
        except InterruptedError:
            continue
    if reply is None or "exit" not in reply:
        print(f"workflow.launch: lost the fork server while job {pid} ran; its outcome is unknown", file=sys.stderr)
        return 1
    return int(reply["exit"])


if __name__ == "__main__":
    sys.exit(main())

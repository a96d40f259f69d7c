"""Keep a server's whole process tree alive exactly as long as the process that started it.

    python supervise.py GRACE_S -- COMMAND...

stdin is a pipe from the starting process; stdout and stderr go to the server's log. COMMAND starts in a new
session, so it and every process it starts (vLLM's API servers, engine cores, workers) share one process
group. The group is stopped (SIGTERM, then SIGKILL after GRACE_S seconds) when stdin reaches end of file,
which happens when the starter closes the pipe or dies for any reason (SIGKILL included: the kernel closes
its end), or when this process gets SIGTERM or SIGINT. It also stops what is left of the group when the
server exits on its own. Exits with the server's exit code (128 + N when signal N killed it), or 0 when asked to stop.

It runs as a file with no imports from skyt1, so it starts in a fraction of a second whatever the
environment.
"""

import os
import select
import signal
import subprocess
import sys
import time


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(server: subprocess.Popen, grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            server.poll()  # reap the leader: a zombie would keep the group looking alive
            if not _group_alive(server.pid):
                return
            time.sleep(0.1)


def _say(message: str) -> None:
    print(f"[skyt1 supervise] {message}", flush=True)


def main(argv: list[str]) -> int:
    grace_s = float(argv[0])
    command = argv[argv.index("--") + 1:]
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    _say(f"server pid {server.pid} (process group {server.pid})")
    stdin = sys.stdin.fileno()
    while not stop and server.poll() is None:
        readable, _, _ = select.select([stdin], [], [], 0.2)
        if readable and not os.read(stdin, 4096):  # end of file: the starter closed the pipe or died
            break
    code = server.poll()
    _say("stopping the server" if code is None else f"server exited with code {code}; stopping what is left")
    stop_group(server, grace_s)
    server.poll()
    _say("stopped")
    if code is None:
        return 0
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

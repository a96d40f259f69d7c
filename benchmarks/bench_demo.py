"""Wall time of `make demo` (target: <= 15 min on 2 cores, aim ~5) per phase, and of the resumed re-run
(baseline: the same demo again, every phase skipped). Prints one JSON line.

    python benchmarks/bench_demo.py [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skyt1.phases import NAMES as PHASES
from skyt1.store import RunDir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default=None)
    args = ap.parse_args()
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="skyt1-demo-bench-")) / "demo-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "skyt1.demo", "--run-dir", str(run_dir), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(2):
        t0 = time.time()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(round(time.time() - t0, 1))
    run = RunDir(run_dir)
    phases = {p: run.phase(p).manifest()["wall_time_s"] for p in PHASES}
    print(json.dumps({"demo_fresh_s": times[0], "demo_resumed_s": times[1], "phase_wall_s": phases,
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()

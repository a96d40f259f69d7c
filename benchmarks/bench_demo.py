"""`make demo` from nothing: wall time (target: <= 12 min on 2 idle cores after installation), CPU time
per step, and the result it exists to show (the trained student against the untrained base model on the
held-out problems, with the paired standard error). Baseline in the same run: the same command again, every
step skipped. Prints one JSON line.

    python benchmarks/bench_demo.py [--run-dir DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skyt1 import report_demo
from skyt1.phases import NAMES as PHASES
from skyt1.store import RunDir


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--tiny", action="store_true", help="The tiny random demo instead of the real model.")
    args = ap.parse_args()
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="skyt1-demo-bench-")) / "demo-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "skyt1.demo", "--run-dir", str(run_dir), "--port", str(_free_port())]
    cmd += ["--tiny"] if args.tiny else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(2):
        t0 = time.time()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(round(time.time() - t0, 1))
    run = RunDir(run_dir)
    out = {"demo": "tiny" if args.tiny else "real", "demo_fresh_s": times[0], "demo_resumed_s": times[1],
           "target_s": 720, "phase_wall_s": {p: (run.phase(p).manifest() or {}).get("wall_time_s") for p in PHASES},
           "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    cpu_file = run.local_path(report_demo.CPU_FILE)
    if cpu_file.is_file():
        out["step_cpu_s"] = {k: v["cpu_s"] for k, v in json.loads(cpu_file.read_text())["phases"].items()}
    base, trained = report_demo.eval_samples(run.local_path("base_eval")), report_demo.eval_samples(run.local_path("eval"))
    for name in sorted(set(base) & set(trained)):
        c = report_demo.compare(base[name], trained[name])
        out[name] = {"base": round(c["base"][0], 4), "base_se": round(c["base"][1], 4),
                     "trained": round(c["trained"][0], 4), "trained_se": round(c["trained"][1], 4),
                     "diff": round(c["diff"][0], 4), "diff_se": round(c["diff"][1], 4), "z": round(c["z"], 2),
                     "problems": c["diff"][2]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

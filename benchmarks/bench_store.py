"""Run-store throughput on a local directory: shard writes, and resume's `ids()` through the `.ids`
sidecars against the baseline of re-reading every shard. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import tempfile
import time

from skyt1.store import RunDir


def main(n: int = 20000, trace_chars: int = 4000, flush_every: int = 64) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ph = RunDir(tmp).phase("distill")
        t0 = time.perf_counter()
        with ph.writer(flush_every=flush_every) as w:
            for i in range(n):
                w.write({"id": f"src/{i:06d}#0", "response": "step " * (trace_chars // 5), "n": i})
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = ph.ids()
        ids_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline = {r["id"] for key in ph._shards("records") for r in ph._read_shard(key)}
        baseline_s = time.perf_counter() - t0
        assert ids == baseline and len(ids) == n
    print(json.dumps({
        "records": n, "trace_chars": trace_chars, "flush_every": flush_every,
        "write_records_per_s": round(n / write_s), "ids_sidecar_s": round(ids_s, 3),
        "ids_full_read_baseline_s": round(baseline_s, 3), "ids_speedup": round(baseline_s / ids_s, 1),
    }))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

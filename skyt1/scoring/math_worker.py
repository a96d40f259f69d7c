"""A math worker process: `python -m skyt1.scoring.math_worker` reads one JSON request per line on stdin
({"args": [response, reference], "kw": {...}}) and writes one verdict per line on stdout, after a first line
saying it is ready. Math-Verify's signal-based timeouts work here because each item runs in this process's
main thread."""

from __future__ import annotations

import json
import sys

READY = "ready"  # written once the imports are done: the pool's per-item time limit starts after it


def main() -> None:
    import math_verify  # noqa: F401 - imported before READY (check_math imports it on first use)

    from skyt1.scoring.math import check_math
    from skyt1.scoring.registry import verdict

    out = sys.stdout
    out.write(READY + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = check_math(*request["args"], **request["kw"])
        except Exception as e:  # noqa: BLE001 - a parser crash is a wrong answer, never a dead worker
            result = verdict(False, None, "wrong_answer", error=f"{type(e).__name__}: {e}"[:300])
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

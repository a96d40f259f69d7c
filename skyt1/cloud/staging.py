"""A local-disk copy of a directory that lives on a mounted bucket, made once per node.

On a node the trained model (~65 GB for 32B) sits in the bucket mount, whose local cache is small: eight
vLLM ranks reading it at once would each pull it through the mount. The eval task sets $SKYT1_MODEL_CACHE to
a directory on the node's disk; the eval phase then serves `stage(RUN/train/final, cache, key)` instead.
The copy is made under a lock (ranks on one node wait for one copy), into a temporary name that is renamed
when complete, so a killed copy is never served and a recovery starts it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

MODEL_CACHE_ENV = "SKYT1_MODEL_CACHE"
MARKER = ".skyt1-staged.json"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stage(src: str | Path, cache_root: str | Path, key: str) -> Path:
    """`cache_root/key`: a complete copy of `src`, made now unless an earlier call made it."""
    src, cache_root = Path(src), Path(cache_root)
    dst = cache_root / key
    if (dst / MARKER).is_file():
        return dst
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a directory: nothing to copy to local disk")
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the process ends, even by kill -9
        if (dst / MARKER).is_file():
            return dst
        t0, size = time.time(), _size(src)
        print(f"copying {src} ({size / 1e9:.1f} GB) to local disk {dst} once", file=sys.stderr, flush=True)
        tmp = cache_root / f".{key}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(src), "bytes": size, "seconds": time.time() - t0}))
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
    return dst


def staged_model(path: str | Path, key: str) -> str:
    """`path`, or its local copy when $SKYT1_MODEL_CACHE names a cache directory."""
    cache = os.environ.get(MODEL_CACHE_ENV)
    return str(stage(path, cache, key)) if cache else str(path)

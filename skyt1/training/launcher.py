"""Entry point of every training process: register skyt1's chat templates, then run LlamaFactory.

`python -m skyt1.training.launcher CONFIG.yaml` for a single process, and the same module under torchrun
(`torchrun ... -m skyt1.training.launcher CONFIG.yaml`) for DeepSpeed and multi-GPU/multi-node runs: each
rank is a fresh interpreter, so each must register the templates before LlamaFactory reads the config.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].endswith((".yaml", ".yml", ".json")):
        raise SystemExit("usage: python -m skyt1.training.launcher CONFIG.yaml")
    from llamafactory.train.tuner import run_exp

    from skyt1.training import template

    template.register()
    run_exp()  # reads sys.argv[1], like `llamafactory-cli train CONFIG.yaml`
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _exit_skipping_native_teardown()


def _exit_skipping_native_teardown() -> None:
    """End a finished distributed rank without interpreter teardown.

    Seen on CPU (gloo): a rank whose training had finished and saved was aborted while the interpreter tore
    down ("terminate called without an active exception", SIGABRT), torchrun failed the job, and the other
    node waited 300 s at its exit barrier. Python's exit handlers (loggers such as W&B) still run; every
    output is already written and closed by then.
    """
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

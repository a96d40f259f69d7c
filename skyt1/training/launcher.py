"""Entry point of every training process: register skyt1's chat templates, then run LlamaFactory.

`python -m skyt1.training.launcher CONFIG.yaml` for a single process, and the same module under torchrun
(`torchrun ... -m skyt1.training.launcher CONFIG.yaml`) for DeepSpeed and multi-GPU/multi-node runs: each
rank is a fresh interpreter, so each must register the templates before LlamaFactory reads the config.
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].endswith((".yaml", ".yml", ".json")):
        raise SystemExit("usage: python -m skyt1.training.launcher CONFIG.yaml")
    from llamafactory.train.tuner import run_exp

    from skyt1.training import template

    template.register()
    run_exp()  # reads sys.argv[1], like `llamafactory-cli train CONFIG.yaml`


if __name__ == "__main__":
    main()

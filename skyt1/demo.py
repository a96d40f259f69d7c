"""`make demo`: every phase of the recipe, for real, on this machine, in minutes.

1. Builds a tiny random teacher and student offline (`skyt1.tiny_model`) under RUN/models/.
2. Starts an OpenAI-compatible server on loopback in front of the teacher: the stand-in for GPT-4o-mini
   in label and reformat (a throwaway key in $SKYT1_DEMO_KEY).
3. Writes the resolved demo recipe (recipes/tiny.yaml with this run's model paths and port) to
   RUN/demo/recipe.yaml and runs `skyt1 reproduce --local` on it: label, distill, reformat, filter,
   assemble, train, eval and report, each for real.

Running it again resumes: models already built and phases already complete are skipped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import yaml

from skyt1.recipe import Recipe, RecipeError, load_recipe
from skyt1.store import RunDir, StoreError, atomic_write

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "recipes" / "tiny.yaml"
KEY_ENV = "SKYT1_DEMO_KEY"
SERVED_PHASES = ("label", "reformat")  # the phases that call the API stand-in


class DemoError(Exception):
    """Something the person running the demo can fix; the message says how."""


class PhaseFailed(Exception):
    """A phase of the pipeline failed; its own messages say why."""


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- models


def build_models(models_dir: Path) -> dict[str, Path]:
    """The tiny teacher (seed 1) and student (seed 2); each built into a temporary directory and renamed,
    so a killed build never leaves a half-written model that a later run would trust."""
    from skyt1.tiny_model import build_tiny_model

    out = {}
    for role, seed in (("teacher", 1), ("student", 2)):
        final = models_dir / role
        if not (final / "skyt1_tiny.json").exists():
            tmp = models_dir / f".{role}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            build_tiny_model(tmp, seed=seed)
            os.replace(tmp, final)
            say(f"built the tiny {role} model in {final}")
        out[role] = final
    return out


# ------------------------------------------------------------------------------------------- recipe


def _absolute(recipe: Recipe, value: str | None) -> str | None:
    resolved = recipe.resolve_path(value)
    return str(Path(resolved).resolve()) if resolved and "://" not in resolved else resolved


def demo_recipe(base: Path, run_dir: Path, models: dict[str, Path], port: int) -> Path:
    """Resolve the demo recipe for this run and write it to RUN/demo/recipe.yaml; return that path."""
    recipe = load_recipe(base)
    url = f"http://127.0.0.1:{port}/v1"
    overrides = {
        "distill.engine.model": str(models["teacher"]),
        "train.base_model": str(models["student"]),
        "label.api.base_url": url,
        "reformat.api.base_url": url,
        "eval.data_dir": _absolute(recipe, recipe.eval.data_dir),
    }
    for i, src in enumerate(recipe.sources):
        if src.local_path:
            overrides[f"sources.{i}.local_path"] = _absolute(recipe, src.local_path)
    recipe = load_recipe(base, overrides)  # validated with the overrides in place
    path = run_dir / "demo" / "recipe.yaml"
    atomic_write(path, f"# Resolved from {base} by skyt1.demo for this run.\n" + yaml.safe_dump(
        recipe.model_dump(mode="json"), sort_keys=False, width=110))
    return path


def recipe_port(base: Path) -> int:
    url = load_recipe(base).reformat.api.base_url or ""
    return urlparse(url).port or 8765


# ------------------------------------------------------------------------------------------- server


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(
                f"port {port} on 127.0.0.1 is in use (another demo still running?); stop it or pass --port N"
            ) from None


@contextmanager
def teacher_server(teacher: Path, port: int):
    """The tiny teacher behind an OpenAI-compatible API on loopback, requiring the demo key."""
    from skyt1.engines import make_engine
    from skyt1.engines.server import start_server
    from skyt1.recipe import Engine

    _check_port_free(port)
    os.environ.setdefault(KEY_ENV, "skyt1-demo-" + secrets.token_hex(8))
    engine = make_engine(Engine(backend="hf", model=str(teacher), dtype="float32", batch_size=8))
    handle = start_server(engine, host="127.0.0.1", port=port, api_keys=[os.environ[KEY_ENV]])
    say(f"tiny teacher served at {handle.url} (stand-in for the GPT-4o-mini API)")
    try:
        yield handle
    finally:
        handle.stop()
        engine.close()


# ------------------------------------------------------------------------------------------- phases


def _skyt1_command() -> list[str]:
    script = Path(sys.executable).parent / "skyt1"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from skyt1.cli import main; main()"]


def run_pipeline(recipe_path: Path, run_dir: Path, teacher: Path, port: int) -> None:
    """`skyt1 reproduce --local` on the demo recipe, with the API stand-in up while label/reformat need it."""
    run = RunDir(run_dir)
    needs_server = any(run.phase(p).manifest() is None for p in SERVED_PHASES)
    cmd = [*_skyt1_command(), "reproduce", "--recipe", str(recipe_path), "--local", "--run-dir", str(run_dir),
           "--yes"]
    with teacher_server(teacher, port) if needs_server else _nothing():
        say("$ " + " ".join(cmd[-9:]))
        rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise PhaseFailed(f"`skyt1 reproduce` exited with status {rc} (its messages are above); fix the cause "
                          f"and run the demo again: it resumes where it stopped ({run_dir})")


@contextmanager
def _nothing():
    yield None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skyt1.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", default="demo-run", help="Where the run is written (default: demo-run).")
    ap.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="Demo recipe (default: recipes/tiny.yaml).")
    ap.add_argument("--port", type=int, default=None,
                    help="Loopback port of the API stand-in (default: the one in the recipe's base_url).")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo needs nothing from the network
    run_dir = Path(args.run_dir).expanduser().resolve()
    base = Path(args.recipe)
    t0 = time.time()
    try:
        port = args.port or recipe_port(base)
        # One demo per run directory: a second one started beside it refuses instead of racing on the models.
        with RunDir(run_dir).phase("demo").lock(command="python -m skyt1.demo"):
            models = build_models(run_dir / "models")
            recipe_path = demo_recipe(base, run_dir, models, port)
            say(f"recipe {recipe_path}; run directory {run_dir}")
            run_pipeline(recipe_path, run_dir, models["teacher"], port)
    except (DemoError, RecipeError, StoreError) as e:
        say(f"error: {e}")
        return 2
    except PhaseFailed as e:
        say(f"error: {e}")
        return 1
    report = run_dir / "report"
    say(f"finished in {time.time() - t0:.0f} s")
    print(f"Report: {report / 'report.html'}\n        {report / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

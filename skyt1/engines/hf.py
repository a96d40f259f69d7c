"""transformers backend: batched generation on CPU or GPU, for tiny models and machines without vLLM.

Sampling runs in our own decode loop instead of `model.generate`, so that every request draws from its own
random generator seeded by its `SamplingParams.seed`: the same request gives the same text whatever else
shares its batch (up to floating-point noise from padding, which is rows apart and flips a sampled token
only when a uniform draw falls within ~1e-7 of a boundary).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from skyt1.engines.base import Completion, Engine, EngineUnavailable, Request

log = logging.getLogger(__name__)


def _torch_dtype(name: str):
    import torch

    if name in ("auto", None):
        return "auto"
    try:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "half": torch.float16,
                "fp32": torch.float32, "float": torch.float32}.get(name) or getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r}; use float32, bfloat16, float16 or auto") from None


def load_chat_template(value: str | None) -> str | None:
    """A recipe's chat_template is a path to a Jinja file or the template text itself."""
    if value and "{" not in value and Path(value).expanduser().is_file():
        return Path(value).expanduser().read_text()
    return value


class HFEngine(Engine):
    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "float32", batch_size: int = 8,
                 chat_template: str | None = None, device: str | None = None):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise EngineUnavailable(
                f"the hf backend needs torch and transformers ({e.name} is missing): pip install 'skyt1[train]'"
            ) from None
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name, self.revision, self.dtype, self.batch_size = model, revision, dtype, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            self.model = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=_torch_dtype(dtype))
        except OSError as e:
            raise EngineUnavailable(
                f"cannot load model {model!r}: {e}. Pass a local directory (e.g. one built by "
                "`skyt1 tiny-model DIR`) or a hub id reachable from this machine."
            ) from None
        self.model.to(self.device).eval()
        template = load_chat_template(chat_template)
        if template:
            self.tokenizer.chat_template = template
        if not self.tokenizer.chat_template:
            raise EngineUnavailable(f"model {model!r} has no chat template; set engine.chat_template in the recipe")
        self.stop_ids = self._stop_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]

    def _stop_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        if not ids:
            raise EngineUnavailable(f"model {self.model_name!r} defines no end-of-sequence token")
        return ids

    def info(self) -> dict:
        import torch
        import transformers

        return {
            "backend": "hf", "model": self.model_name, "revision": self.revision, "dtype": self.dtype,
            "device": self.device, "batch_size": self.batch_size, "transformers": transformers.__version__,
            "torch": torch.__version__,
            "chat_template_sha256": hashlib.sha256(self.tokenizer.chat_template.encode()).hexdigest()[:16],
        }

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        it = iter(requests)
        while batch := list(itertools.islice(it, self.batch_size)):
            yield from self._generate_batch(batch)

    def _generate_batch(self, batch: list[Request]) -> Iterator[Completion]:
        import torch

        prompts = [self.prompt_ids(r.messages) for r in batch]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        limit = max(r.sampling.max_tokens for r in batch)
        window = getattr(self.model.config, "max_position_embeddings", None)
        if window and width + limit > window:
            limit = max(window - width, 0)
        gens = [self._generator(r) for r in batch]
        out: list[list[int]] = [[] for _ in batch]
        done = [False] * len(batch)
        past = None
        step_ids, positions = input_ids, (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            for _ in range(limit):
                res = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                 past_key_values=past, use_cache=True)
                past = res.past_key_values
                logits = res.logits[:, -1, :].float()
                next_ids = []
                for i, r in enumerate(batch):
                    if done[i]:
                        next_ids.append(self.pad_id)
                        continue
                    tok = self._sample(logits[i], r, gens[i])
                    out[i].append(tok)
                    next_ids.append(tok)
                    if tok in self.stop_ids or len(out[i]) >= r.sampling.max_tokens:
                        done[i] = True
                        yield self._completion(r, prompts[i], out[i])
                if all(done):
                    return
                step_ids = torch.tensor(next_ids, device=self.device).unsqueeze(-1)
                positions = positions[:, -1:] + 1
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        for i, r in enumerate(batch):  # context window exhausted before max_tokens
            if not done[i]:
                yield self._completion(r, prompts[i], out[i])

    def _generator(self, r: Request):
        import torch

        g = torch.Generator(device=self.device)
        # Without a seed, derive one from the request id: reproducible, and distinct per request.
        seed = r.sampling.seed if r.sampling.seed is not None else int(hashlib.sha256(r.id.encode()).hexdigest()[:8], 16)
        g.manual_seed(seed)
        return g

    @staticmethod
    def _sample(logits, r: Request, gen) -> int:
        import torch

        sp = r.sampling
        if sp.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / sp.temperature, dim=-1)
        if sp.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < sp.top_p  # smallest prefix reaching top_p, at least one
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=gen))

    def _completion(self, r: Request, prompt: list[int], tokens: list[int]) -> Completion:
        stopped = bool(tokens) and tokens[-1] in self.stop_ids
        text_ids = tokens[:-1] if stopped else tokens
        return Completion(
            id=r.id, text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
            finish_reason="stop" if stopped else "length", prompt_tokens=len(prompt), completion_tokens=len(tokens),
        )

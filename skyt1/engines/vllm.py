"""vLLM backend: offline generation on GPUs, tensor and data parallel.

Every request is handed to the engine at once and completions are yielded as each finishes (the engine's
add_request/step loop), so a slow 32k-token sample never holds back the others (the reference code fed
fixed chunks of 64 prompts, each waiting for its slowest sample). Each request carries its own seed.
Data parallelism runs one engine per rank in its own process on its own GPUs; requests are dealt to the
ranks round-robin, all at once.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Iterable, Iterator

from skyt1.engines.base import Completion, Engine, EngineUnavailable, Request

log = logging.getLogger(__name__)

UNAVAILABLE = ("vllm needs a CUDA GPU: pip install 'skyt1[gpu]' on a GPU machine, or use --backend hf/openai")


def require_vllm() -> None:
    """Raise EngineUnavailable (with what to do) unless vllm can run here."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise EngineUnavailable(f"{UNAVAILABLE} (vllm is not installed)") from None
    import torch

    if not torch.cuda.is_available():
        raise EngineUnavailable(f"{UNAVAILABLE} (no CUDA device is visible)")


class _Runner:
    """One vllm.LLM on the GPUs this process sees."""

    def __init__(self, model: str, llm_kwargs: dict, chat_template: str | None):
        from vllm import LLM

        self.llm = LLM(model=model, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.chat_template = chat_template

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                 chat_template=self.chat_template)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        from vllm import SamplingParams as VSampling

        engine = self.llm.llm_engine
        prompts: dict[str, int] = {}
        try:
            for r in requests:  # all at once: the scheduler, not fixed chunks, decides what runs together
                sp = r.sampling
                ids = self.prompt_ids(r.messages)
                engine.add_request(r.id, {"prompt_token_ids": ids}, VSampling(
                    n=1, temperature=sp.temperature, top_p=sp.top_p, max_tokens=sp.max_tokens, seed=sp.seed))
                prompts[r.id] = len(ids)
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if not out.finished:
                        continue
                    o = out.outputs[0]
                    reason = o.finish_reason if o.finish_reason in ("stop", "length") else f"error: {o.finish_reason}"
                    yield Completion(out.request_id, o.text, reason, prompts.pop(out.request_id, 0),
                                     len(o.token_ids))
        finally:  # the caller stopped early or a step failed: leave nothing running for the next call
            if prompts:
                engine.abort_request(list(prompts))


def _rank_main(rank: int, gpus: str, model: str, llm_kwargs: dict, chat_template: str | None,
               inbox: mp.Queue, outbox: mp.Queue) -> None:
    """Data-parallel rank: owns `gpus`, generates every batch of requests it receives."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        runner = _Runner(model, llm_kwargs, chat_template)
        outbox.put(("ready", rank))
        while (batch := inbox.get()) is not None:
            for c in runner.generate(batch):
                outbox.put(("completion", c))
            outbox.put(("done", rank))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        outbox.put(("failed", f"rank {rank}: {type(e).__name__}: {e}"))


class VLLMEngine(Engine):
    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "bfloat16",
                 tensor_parallel_size: int = 1, data_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, chat_template: str | None = None, seed: int = 0):
        require_vllm()
        from skyt1.engines.hf import load_chat_template

        self.model, self.revision, self.dtype = model, revision, dtype
        self.tp, self.dp = tensor_parallel_size, data_parallel_size
        self.max_model_len, self.gpu_memory_utilization = max_model_len, gpu_memory_utilization
        self.chat_template = load_chat_template(chat_template)
        kwargs = {"revision": revision, "dtype": dtype, "tensor_parallel_size": self.tp, "seed": seed,
                  "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len}
        self._kwargs = {k: v for k, v in kwargs.items() if v is not None}
        self._procs: list = []
        if self.dp == 1:
            self._runner = _Runner(model, self._kwargs, self.chat_template)
        else:
            self._start_ranks()

    def _start_ranks(self) -> None:
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        need = self.tp * self.dp
        if len(devices) < need:
            raise EngineUnavailable(
                f"tensor_parallel_size {self.tp} x data_parallel_size {self.dp} needs {need} GPUs; "
                f"{len(devices)} visible. Lower the parallel sizes in the recipe's engine section.")
        ctx = mp.get_context("spawn")
        self._outbox = ctx.Queue()
        self._inboxes = []
        for rank in range(self.dp):
            gpus = ",".join(devices[rank * self.tp:(rank + 1) * self.tp])
            inbox = ctx.Queue()
            p = ctx.Process(target=_rank_main, args=(rank, gpus, self.model, self._kwargs, self.chat_template,
                                                     inbox, self._outbox), daemon=True)
            p.start()
            self._procs.append(p)
            self._inboxes.append(inbox)
        for _ in range(self.dp):
            kind, value = self._next_message()
            if kind == "failed":
                self.close()
                raise EngineUnavailable(f"vllm data-parallel {value}")

    def _next_message(self) -> tuple[str, object]:
        while True:
            try:
                return self._outbox.get(timeout=30)
            except queue.Empty:
                dead = [i for i, p in enumerate(self._procs) if not p.is_alive()]
                if dead:
                    return "failed", f"rank(s) {dead} exited (exit codes {[self._procs[i].exitcode for i in dead]})"

    def info(self) -> dict:
        import vllm

        return {"backend": "vllm", "vllm": vllm.__version__, "model": self.model, "revision": self.revision,
                "dtype": self.dtype, "tensor_parallel_size": self.tp, "data_parallel_size": self.dp,
                "max_model_len": self.max_model_len, "gpu_memory_utilization": self.gpu_memory_utilization,
                "chat_template_sha256": hashlib.sha256(self.chat_template.encode()).hexdigest()[:16]
                if self.chat_template else None}

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        if self.dp == 1:
            yield from self._runner.generate(requests)
            return
        shares: list[list[Request]] = [[] for _ in range(self.dp)]
        for i, r in enumerate(requests):
            shares[i % self.dp].append(r)
        for inbox, share in zip(self._inboxes, shares, strict=True):
            inbox.put(share)
        running = self.dp
        while running:
            kind, value = self._next_message()
            if kind == "completion":
                yield value
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(f"vllm data-parallel {value}")

    def close(self) -> None:
        for inbox in getattr(self, "_inboxes", []):
            inbox.put(None)
        for p in self._procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
        self._procs, self._inboxes = [], []

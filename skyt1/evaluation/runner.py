"""The eval loop: one engine, every benchmark's prompts submitted together, scoring overlapping generation.

Output layout under `output_dir`:
  <benchmark>/config.json     what produced the samples (checked on resume: no mixing of configurations)
  <benchmark>/samples.jsonl   one line per finished, scored sample, appended as samples finish
  <benchmark>/summary.json    scores + the full configuration
  summary.json, summary.md    all benchmarks

Resume: running the same command again keeps every finished sample (a torn last line left by a kill is cut
off) and generates only the missing `<problem_id>#<k>` ids. Sample k of every problem is drawn with seed
`seed + k`, so an interrupted and resumed run produces the samples an uninterrupted run would (on engines
that honour per-request seeds).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyt1 import __version__
from skyt1.data.benchmarks import Problem, Task
from skyt1.engines.base import Completion, Engine, Request, SamplingParams
from skyt1.evaluation import metrics, tables
from skyt1.redact import redact
from skyt1.scoring.registry import verdict_of
from skyt1.store import atomic_write, versions

log = logging.getLogger(__name__)


class EvalError(RuntimeError):
    """An evaluation that cannot proceed; the message says what to do."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    seed: int = 0

    def params(self, sample_index: int) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens, self.seed + sample_index)


@dataclass(frozen=True)
class Scoring:
    workers: int | None = None  # default: all cores
    timeout_s: float = 6.0  # per code test (LiveCodeBench's budget) and per math comparison
    memory_mb: int = 1024
    allow_unsandboxed: bool = False  # without bubblewrap on a cloud node, run code with limits only


# ------------------------------------------------------------------------------------------ sample files


def read_samples(path: Path, repair: bool = True) -> list[dict]:
    """Records of a samples.jsonl. A last line without its newline (a write cut by a kill) is dropped and,
    with `repair`, cut off the file so appends continue on a clean line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(data) - end)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(end)
    records = []
    for n, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s:%d: not valid JSON, ignored (its sample will be generated again)", path, n)
    return records


def _sample_id(problem_id: str, k: int) -> str:
    return f"{problem_id}#{k}"


def _config_key(config: dict) -> dict:
    """The parts of a configuration that change what a sample is; resuming across them would mix results."""
    eng = config.get("engine") or {}
    return {
        "model": eng.get("model"),
        "revision": eng.get("revision"),
        "sampling": {k: config["sampling"].get(k) for k in ("temperature", "top_p", "max_tokens", "seed")},
        "prompt": config.get("prompt"),
        "dataset_fingerprint": (config.get("dataset") or {}).get("fingerprint"),
    }


# ------------------------------------------------------------------------------------------ the run


class _Bench:
    """Per-benchmark state: its problems, its samples file and the records it holds."""

    def __init__(self, task: Task, n: int, root: Path):
        self.task, self.n = task, n
        self.dir = root / task.name
        self.path = self.dir / "samples.jsonl"
        self.problems: dict[str, Problem] = {p.id: p for p in task.problems}
        self.expected = {_sample_id(p.id, k) for p in task.problems for k in range(n)}
        self.records: dict[str, dict] = {}

    def load(self, repair: bool) -> None:
        for r in read_samples(self.path, repair=repair):
            self.records.setdefault(r["id"], r)

    def missing(self) -> Iterator[tuple[Problem, int]]:
        for p in self.task.problems:
            for k in range(self.n):
                if _sample_id(p.id, k) not in self.records:
                    yield p, k

    def finished(self) -> list[dict]:
        return [r for sid, r in self.records.items() if sid in self.expected]


class _Writer(threading.Thread):
    """Appends scored samples to their files as they arrive (one line, flushed, per sample)."""

    def __init__(self):
        super().__init__(name="eval-writer", daemon=True)
        self.queue: queue.Queue = queue.Queue()
        self.files: dict[Path, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            bench, record = item
            try:
                f = self.files.get(bench.path)
                if f is None:
                    bench.dir.mkdir(parents=True, exist_ok=True)
                    f = self.files[bench.path] = open(bench.path, "a", encoding="utf-8")  # noqa: SIM115
                f.write(json.dumps(redact(record), ensure_ascii=False) + "\n")
                f.flush()
                bench.records[record["id"]] = record
            except BaseException as e:  # surfaced by the main thread
                self.error = e
        for f in self.files.values():
            f.close()

    def stop(self) -> None:
        self.queue.put(None)
        self.join()


def _submit(scorer, problem: Problem, response: str, finish_reason: str | None) -> Future:
    return scorer.submit(problem.scorer, response, problem.target, finish_reason=finish_reason, **problem.score_kw)


def _make_scorer(cfg: Scoring):
    from skyt1.scoring import ScoringPool

    return ScoringPool(cfg.workers or os.cpu_count() or 1, cfg.timeout_s, cfg.memory_mb,
                       allow_unsandboxed=cfg.allow_unsandboxed)


def _close(obj) -> None:
    for name in ("close", "shutdown"):
        fn = getattr(obj, name, None)
        if callable(fn):
            fn()
            return


def evaluate(
    engine: Engine | None,
    tasks: list[Task],
    *,
    output_dir: str | Path,
    n: int | dict[str, int] = 1,
    sampling: Sampling = Sampling(),
    scoring: Scoring = Scoring(),
    scorer=None,
    rescore: bool = False,
    skipped: dict[str, str] | None = None,
    extra_config: dict | None = None,
    progress: bool = True,
) -> dict:
    """Generate what is missing (or only re-score with `rescore`), then write and return the summary.

    `scorer` is anything with `submit(kind, response, target, **kw) -> Future[dict]`; by default a
    `skyt1.scoring.ScoringPool` built from `scoring`, closed at the end.
    """
    root = Path(output_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    benches = [_Bench(t, n.get(t.name, 1) if isinstance(n, dict) else n, root) for t in tasks]
    info = engine.info() if engine is not None else None
    configs = {b.task.name: _prepare(b, info, sampling, rescore, extra_config) for b in benches}
    own_scorer = scorer is None
    scorer = scorer or _make_scorer(scoring)
    t0 = time.time()
    try:
        if any(p.scorer == "code" for b in benches for p in b.task.problems) and hasattr(scorer, "code_isolation"):
            scorer.code_isolation()  # a node where code may not run fails here (one line), before generating
        if rescore:
            _rescore(benches, scorer, progress)
            errors: dict[str, str] = {}
        else:
            errors = _generate(engine, benches, sampling, scorer, progress)
    finally:
        if own_scorer:
            _close(scorer)
    return write_summaries(root, benches, configs, errors, skipped or {}, time.time() - t0)


def _prepare(b: _Bench, info: dict | None, sampling: Sampling, rescore: bool, extra: dict | None) -> dict:
    """Load existing samples and the configuration that produced them; refuse to mix configurations."""
    cfg_path = b.dir / "config.json"
    old = json.loads(cfg_path.read_text()) if cfg_path.exists() else None
    if rescore:
        if old is None:
            raise EvalError(f"{b.dir}: nothing to re-score (no config.json); run the evaluation first")
        b.load(repair=False)
        return {**old, "dataset": b.task.dataset, "rescored_at": time.time()}
    config = {
        "benchmark": b.task.name,
        "engine": info,
        "sampling": {**asdict(sampling), "n": b.n, "per_request_seed": "seed + sample_index"},
        "prompt": b.task.prompt,
        "dataset": b.task.dataset,
        "skyt1_version": __version__,
        "versions": versions(),
        **(extra or {}),
    }
    new_key = _config_key(config)
    if old is not None and _config_key(old) != new_key:
        diff = {k for k, v in _config_key(old).items() if new_key[k] != v}
        raise EvalError(
            f"{b.dir} holds samples from another configuration (differs in: {', '.join(sorted(diff))}); "
            "use another --output-dir, or delete that folder to start over"
        )
    b.load(repair=True)
    b.dir.mkdir(parents=True, exist_ok=True)
    _write_json(cfg_path, config)
    return config


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled or total == 0,
                dynamic_ncols=True, mininterval=0.5)


def _generate(engine: Engine, benches: list[_Bench], sampling: Sampling, scorer, progress: bool) -> dict[str, str]:
    lookup: dict[str, tuple[_Bench, Problem, int]] = {}
    requests: list[Request] = []
    for b in benches:
        for p, k in b.missing():
            sid = _sample_id(p.id, k)
            lookup[sid] = (b, p, k)
            requests.append(Request(sid, p.messages, sampling.params(k)))
    done = sum(len(b.finished()) for b in benches)
    if done:
        log.warning("resuming: %d samples already finished, %d to generate", done, len(requests))
    if not requests:
        return {}
    writer = _Writer()
    writer.start()
    errors: dict[str, str] = {}
    pending: list[Future] = []
    bar = _progress(len(requests), "eval", progress)
    correct = scored = 0
    lock = threading.Lock()

    def on_scored(fut: Future, b: _Bench, record: dict) -> None:
        nonlocal correct, scored
        record.update(verdict_of(fut))
        writer.queue.put((b, record))
        with lock:
            scored += 1
            correct += bool(record["correct"])
            bar.update(1)
            bar.set_postfix(acc=f"{correct / scored:.3f}", refresh=False)

    try:
        for c in engine.generate(iter(requests)):
            entry = lookup.get(c.id)
            if entry is None:
                raise EvalError(f"the engine returned an unknown request id {c.id!r}")
            b, p, k = entry
            if c.finish_reason.startswith("error"):
                # Not written: the next run of the same command retries it.
                errors[c.id] = c.finish_reason
                with lock:
                    bar.update(1)
                continue
            record = _record(b, p, k, c)
            fut = _submit(scorer, p, c.text, c.finish_reason)
            fut.add_done_callback(lambda f, b=b, r=record: on_scored(f, b, r))
            pending.append(fut)
            if writer.error:
                raise writer.error
        for fut in pending:
            try:
                fut.result()
            except Exception:  # recorded as scoring_error by the callback
                pass
    finally:
        writer.stop()
        bar.close()
    if writer.error:
        raise EvalError(f"could not write samples: {writer.error}") from writer.error
    return errors


def _record(b: _Bench, p: Problem, k: int, c: Completion) -> dict:
    return {
        "id": c.id,
        "benchmark": b.task.name,
        "problem_id": p.id,
        "sample_index": k,
        "response": c.text,
        "finish_reason": c.finish_reason,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
    }


def _rescore(benches: list[_Bench], scorer, progress: bool) -> None:
    """Score every existing sample again and rewrite each samples.jsonl atomically."""
    total = sum(len(b.records) for b in benches)
    bar = _progress(total, "rescore", progress)
    try:
        for b in benches:
            futures = []
            for r in b.records.values():
                p = b.problems.get(r["problem_id"])
                if p is None:  # a problem outside this run's --limit: kept as it was
                    continue
                futures.append((r, _submit(scorer, p, r.get("response") or "", r.get("finish_reason"))))
            for r, fut in futures:
                r.update(verdict_of(fut))
                bar.update(1)
            atomic_write(b.path, "".join(json.dumps(redact(r), ensure_ascii=False) + "\n"
                                         for r in b.records.values()))
    finally:
        bar.close()


# ------------------------------------------------------------------------------------------ summaries


def write_summaries(root: Path, benches: list[_Bench], configs: dict, errors: dict[str, str],
                    skipped: dict[str, str], wall_s: float) -> dict:
    results = {}
    for b in benches:
        samples = b.finished()
        scores = metrics.summarize(samples, {p.id: p.difficulty for p in b.task.problems})
        missing = len(b.expected) - len(samples)
        bench_errors = {sid: e for sid, e in errors.items() if sid in b.expected}
        summary = {
            "benchmark": b.task.name,
            "complete": missing == 0,
            "missing_samples": missing,
            "generation_errors": dict(list(bench_errors.items())[:20]),
            "scores": scores,
            "isolation": sorted({s["isolation"] for s in samples if s.get("isolation")}),  # code: the sandbox used
            "config": configs[b.task.name],
        }
        _write_json(b.dir / "summary.json", summary)
        results[b.task.name] = summary
    overall = {
        "complete": all(s["complete"] for s in results.values()),
        "benchmarks": {k: {kk: v[kk] for kk in ("complete", "missing_samples", "scores", "isolation")}
                       for k, v in results.items()},
        "skipped": skipped,
        "wall_time_s": round(wall_s, 2),
        "skyt1_version": __version__,
        "versions": versions(),
        "configs": {k: v["config"] for k, v in results.items()},
    }
    _write_json(root / "summary.json", overall)
    atomic_write(root / "summary.md", tables.markdown(overall))
    return overall


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(redact(obj), indent=2, sort_keys=True, default=str))

"""The eval loop: one engine, every benchmark's prompts submitted together, scoring overlapping generation.

Output layout under `output_dir` (a local folder, a mounted bucket or s3://, through the run store):
  <benchmark>/config.json       what produced the samples (checked on resume: no mixing of configurations)
  <benchmark>/part-*.jsonl      scored samples, as immutable shards written as they finish (with .ids sidecars)
  <benchmark>/samples.jsonl     every sample, sorted by id: an export written with the summary
  <benchmark>/summary.json      scores + the full configuration
  summary.json, summary.md      all benchmarks

Resume: running the same command again keeps every finished sample and generates only the missing
`<problem_id>#<k>` ids (a kill loses at most the last few seconds of samples). Sample k of every problem is
drawn with seed `seed + k`, so an interrupted and resumed run produces the samples an uninterrupted run
would (on engines that honour per-request seeds). `shard` splits the problems over machines (by id hash);
the shard that completes the last sample writes the summaries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyt1 import __version__
from skyt1.data.benchmarks import Problem, Task
from skyt1.engines.base import Completion, Engine, Request, SamplingParams
from skyt1.evaluation import metrics, tables
from skyt1.protocol import PhaseError, Shard
from skyt1.scoring.registry import verdict_of
from skyt1.store import PhaseDir, ShardWriter, jsonl_bytes, versions
from skyt1.store import output_dir as open_output_dir

log = logging.getLogger(__name__)
FLUSH_EVERY, FLUSH_S = 64, 2.0  # samples reach the store in shards of 64, or every 2 s when they come slower


class EvalError(PhaseError):
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


def _sample_id(problem_id: str, k: int) -> str:
    return f"{problem_id}#{k}"


def model_fingerprint(path: str | Path) -> str | None:
    """The identity of a local model directory by content (file names, sizes, and the first and last MiB of
    each file), so a run directory that was copied or moved still recognizes its samples; None when `path`
    is not a local directory (a hub id or a served name, recorded as given)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root).as_posix()}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:16]


def _config_key(config: dict) -> dict:
    """The parts of a configuration that change what a sample is; resuming across them would mix results."""
    eng = config.get("engine") or {}
    return {
        "model": eng.get("model_fingerprint") or eng.get("model"),
        "revision": eng.get("revision"),
        "sampling": {k: config["sampling"].get(k) for k in ("temperature", "top_p", "max_tokens", "seed")},
        "prompt": config.get("prompt"),
        "dataset_fingerprint": (config.get("dataset") or {}).get("fingerprint"),
    }


# ------------------------------------------------------------------------------------------ the run


class _Bench:
    """Per-benchmark state: its problems (this shard's share), the samples already in the store."""

    def __init__(self, task: Task, n: int, out: PhaseDir, shard: Shard):
        self.task, self.n, self.out = task, n, out
        self.stream = task.name
        self.problems: dict[str, Problem] = {p.id: p for p in task.problems}
        self.mine = [p for p in task.problems if p.id in shard]
        self.expected = {_sample_id(p.id, k) for p in task.problems for k in range(n)}
        self.done: set[str] = set()

    def missing(self, problems: list[Problem]) -> list[tuple[Problem, int]]:
        return [(p, k) for p in problems for k in range(self.n) if _sample_id(p.id, k) not in self.done]

    def records(self) -> list[dict]:
        """Every finished sample of this benchmark (a re-scored copy wins over the original)."""
        return [r for r in self.out.records(self.stream, latest=True) if r["id"] in self.expected]


class _Writer(threading.Thread):
    """Writes scored samples to their benchmark's shards as they arrive (one writer thread: the scoring
    callbacks come from many)."""

    def __init__(self, benches: list[_Bench], tag: str):
        super().__init__(name="eval-writer", daemon=True)
        self.queue: queue.Queue = queue.Queue()
        self.writers = {b.stream: ShardWriter(b.out, b.stream, FLUSH_EVERY, tag=tag, flush_s=FLUSH_S) for b in benches}
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            bench, record = item
            try:
                self.writers[bench.stream].write(record)
                bench.done.add(record["id"])
            except BaseException as e:  # surfaced by the main thread
                self.error = e
        for w in self.writers.values():
            try:
                w.close()
            except BaseException as e:  # noqa: BLE001 - surfaced by the main thread
                self.error = self.error or e

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
    output_dir: str | Path | PhaseDir,
    n: int | dict[str, int] = 1,
    sampling: Sampling = Sampling(),
    scoring: Scoring = Scoring(),
    scorer=None,
    rescore: bool = False,
    skipped: dict[str, str] | None = None,
    extra_config: dict | None = None,
    progress: bool = True,
    shard: Shard = Shard(),
    locked: bool = False,
) -> dict:
    """Generate what is missing (or only re-score with `rescore`), then write and return the summary.

    `scorer` is anything with `submit(kind, response, target, **kw) -> Future[dict]`; by default a
    `skyt1.scoring.ScoringPool` built from `scoring`, closed at the end. The output folder is locked for the
    run (one writer at a time) unless the caller holds its lock (`locked`)."""
    out = output_dir if isinstance(output_dir, PhaseDir) else open_output_dir(output_dir)
    if rescore and shard.split:
        raise EvalError("--rescore re-scores every sample at once; run it without --shard")
    lock = None if locked else out.lock(tag=shard.tag, command="skyt1 eval").acquire()
    try:
        if lock is not None:
            out.sweep()  # what killed writes left behind
        benches = [_Bench(t, n.get(t.name, 1) if isinstance(n, dict) else n, out, shard) for t in tasks]
        info = engine.info() if engine is not None else None
        configs = {b.task.name: _prepare(b, info, sampling, rescore, extra_config) for b in benches}
        before = sum(len(b.done) for b in benches)
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
                errors = _generate(engine, benches, sampling, scorer, progress, shard.tag)
        finally:
            if own_scorer:
                _close(scorer)
        fresh = rescore or sum(len(b.done) for b in benches) != before
        return write_summaries(out, benches, configs, errors, skipped or {}, time.time() - t0, shard, fresh)
    finally:
        if lock is not None:
            lock.release()


def _prepare(b: _Bench, info: dict | None, sampling: Sampling, rescore: bool, extra: dict | None) -> dict:
    """Find the samples already written and the configuration that produced them; refuse to mix
    configurations."""
    name = f"{b.stream}/config.json"
    old = b.out.read_json(name) if b.out.exists(name) else None
    b.done = b.out.ids(b.stream)
    if rescore:
        if old is None:
            raise EvalError(f"{b.out.where(b.stream)}: nothing to re-score (no config.json); run the evaluation first")
        return {**old, "dataset": b.task.dataset, "rescored_at": time.time()}
    engine = dict(info or {})
    fingerprint = model_fingerprint(engine["model"]) if engine.get("model") else None
    if fingerprint:
        engine["model_fingerprint"] = fingerprint
    config = {
        "benchmark": b.task.name,
        "engine": engine,
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
            f"{b.out.where(b.stream)} holds samples from another configuration (differs in: {', '.join(sorted(diff))}); "
            "use another --output-dir, or delete that folder to start over"
        )
    if old is None or old != config:
        b.out.write_json(name, config)
    return config


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled or total == 0,
                dynamic_ncols=True, mininterval=0.5)


def _generate(engine: Engine, benches: list[_Bench], sampling: Sampling, scorer, progress: bool,
              tag: str) -> dict[str, str]:
    lookup: dict[str, tuple[_Bench, Problem, int]] = {}
    requests: list[Request] = []
    for b in benches:
        for p, k in b.missing(b.mine):
            sid = _sample_id(p.id, k)
            lookup[sid] = (b, p, k)
            requests.append(Request(sid, p.messages, sampling.params(k)))
    done = sum(len(b.done) for b in benches)
    if done:
        log.warning("resuming: %d samples already finished, %d to generate", done, len(requests))
    if not requests:
        return {}
    writer = _Writer(benches, tag)
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
    """Score every existing sample again: the re-scored copies are written as new shards (readers take the
    latest copy of a sample), then the old shards are removed."""
    total = sum(len(b.done) for b in benches)
    bar = _progress(total, "rescore", progress)
    try:
        for b in benches:
            old = b.out._shards(b.stream)
            records = list(b.out.records(b.stream, latest=True))
            futures = []
            for r in records:
                p = b.problems.get(r["problem_id"])
                if p is None:  # a problem outside this run's --limit: kept as it was
                    futures.append((r, None))
                    continue
                futures.append((r, _submit(scorer, p, r.get("response") or "", r.get("finish_reason"))))
            with b.out.writer(b.stream, flush_every=1024, tag="rescored") as w:
                for r, fut in futures:
                    if fut is not None:
                        r.update(verdict_of(fut))
                        bar.update(1)
                    w.write(r)
            for key in old:
                b.out.backend.delete(key)
                b.out.backend.delete(key[: -len(".jsonl")] + ".ids")
    finally:
        bar.close()


# ------------------------------------------------------------------------------------------ summaries


def write_summaries(out: PhaseDir, benches: list[_Bench], configs: dict, errors: dict[str, str],
                    skipped: dict[str, str], wall_s: float, shard: Shard = Shard(), fresh: bool = True) -> dict:
    """The summary of every benchmark and of the run. One shard of a split run that does not see every
    sample yet writes nothing (the shard that completes the last sample writes them all). The samples
    export is rewritten when samples changed (`fresh`) or it is missing."""
    results = {}
    for b in benches:
        samples = b.records()
        scores = metrics.summarize(samples, {p.id: p.difficulty for p in b.task.problems})
        missing = len(b.expected) - len(samples)
        bench_errors = {sid: e for sid, e in errors.items() if sid in b.expected}
        results[b.task.name] = ({
            "benchmark": b.task.name,
            "complete": missing == 0,
            "missing_samples": missing,
            "generation_errors": dict(list(bench_errors.items())[:20]),
            "scores": scores,
            "isolation": sorted({s["isolation"] for s in samples if s.get("isolation")}),  # code: the sandbox used
            "config": configs[b.task.name],
        }, samples)
    overall = {
        "complete": all(s["complete"] for s, _ in results.values()),
        "benchmarks": {k: {kk: v[kk] for kk in ("complete", "missing_samples", "scores", "isolation")}
                       for k, (v, _) in results.items()},
        "skipped": skipped,
        "wall_time_s": round(wall_s, 2),
        "skyt1_version": __version__,
        "versions": versions(),
        "configs": {k: v["config"] for k, (v, _) in results.items()},
        "missing_in_shard": sum(len(b.missing(b.mine)) for b in benches),
    }
    if shard.split and not overall["complete"]:
        return {**overall, "shard": str(shard)}
    for name, (summary, samples) in results.items():
        out.write_json(f"{name}/summary.json", _plain(summary))
        if fresh or not out.exists(f"{name}/samples.jsonl"):
            out.write_bytes(f"{name}/samples.jsonl", jsonl_bytes(sorted(samples, key=lambda r: r["id"])))
    out.write_json("summary.json", _plain(overall))
    out.write_text("summary.md", tables.markdown(overall))
    return overall


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))

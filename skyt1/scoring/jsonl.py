"""Score a JSONL file of responses (the job behind `skyt1 score`).

Input rows: math/choice `{"id", "response", "reference"}` (choice may add `n_options`; math may add
`finish_reason`, e.g. "stop", which lets an answer stated in prose count); code `{"id", "response", "tests"}`.
Output rows are the input rows plus `correct, extracted, status, passed, total`, and `extraction` (math,
choice: the rule that read the answer) or `isolation` (code), in input order. A malformed line or a row
missing a field is written with status `invalid_input`, its line number and the reason; the run continues.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from skyt1.redact import redact
from skyt1.scoring.pool import ScoringPool
from skyt1.scoring.registry import PROVENANCE_FIELDS, VERDICT_FIELDS, check_kind, invalid

_TARGET_FIELD = {"math": "reference", "choice": "reference", "code": "tests"}
_VERDICT_KEYS = (*VERDICT_FIELDS, *PROVENANCE_FIELDS, "error")


@dataclass
class Summary:
    rows: int = 0
    correct: int = 0
    statuses: dict = field(default_factory=dict)
    invalid_lines: list = field(default_factory=list)
    isolation: set = field(default_factory=set)  # code: which sandbox ran the programs


def _parse(kind: str, raw: bytes) -> tuple[dict, str | None]:
    """(row, reason it is invalid or None)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return {}, f"not UTF-8 text ({e.reason} at byte {e.start})"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return {}, f"malformed JSON: {e}"
    if not isinstance(row, dict):
        return {}, "a row must be a JSON object"
    target = _TARGET_FIELD[kind]
    missing = [k for k in ("id", "response", target) if k not in row]
    if missing:
        return row, f"missing field(s): {', '.join(missing)}"
    if not isinstance(row["response"], str):
        return row, "'response' must be a string"
    if kind == "code" and not isinstance(row["tests"], dict):
        return row, "'tests' must be an object with a 'kind'"
    return row, None


def score_file(kind: str, input_path: str | Path, output_path: str | Path, *, workers: int | None = None,
               timeout_s: float | None = None, memory_mb: int | None = None, progress: bool = True,
               full_run: bool = False, allow_unsandboxed: bool = False) -> Summary:
    """Raises SandboxUnavailable (before scoring anything) when code may not run here."""
    check_kind(kind)
    lines = Path(input_path).read_bytes().splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    summary = Summary()
    output_path = Path(output_path)
    tmp = output_path.with_name(output_path.name + ".part")
    with ScoringPool(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, full_run=full_run,
                     allow_unsandboxed=allow_unsandboxed) as pool:
        if kind == "code":
            summary.isolation.add(pool.code_isolation())
        _score_rows(kind, pool, numbered, tmp, summary, progress)
    os.replace(tmp, output_path)
    return summary


def _score_rows(kind: str, pool: ScoringPool, numbered: list, tmp: Path, summary: Summary, progress: bool) -> None:
    with tmp.open("w", encoding="utf-8") as out, _progress(len(numbered), progress) as advance:
        pending: deque = deque()

        def drain(limit: int) -> None:
            while len(pending) > limit:
                row, future = pending.popleft()
                verdict = future.result() if future is not None else row.pop("_invalid")
                row.update({k: verdict[k] for k in _VERDICT_KEYS if k in verdict})
                summary.rows += 1
                summary.correct += bool(verdict["correct"])
                summary.statuses[verdict["status"]] = summary.statuses.get(verdict["status"], 0) + 1
                if verdict.get("isolation"):
                    summary.isolation.add(verdict["isolation"])
                out.write(json.dumps(redact(row), ensure_ascii=False) + "\n")
                advance()

        for number, line in numbered:
            row, reason = _parse(kind, line)
            if reason:
                summary.invalid_lines.append((number, reason))
                row = {"id": None, **row, "line": number, "_invalid": invalid(reason)}
                pending.append((row, None))
            else:
                extra = {"n_options": row["n_options"]} if kind == "choice" and "n_options" in row else {}
                if kind == "math" and isinstance(row.get("finish_reason"), str):
                    extra["finish_reason"] = row["finish_reason"]
                pending.append((row, pool.submit(kind, row["response"], row[_TARGET_FIELD[kind]], **extra)))
            drain(4 * pool.workers)
        drain(0)


class _progress:
    """A rich progress bar on stderr (plain when stderr is not a terminal)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress("scoring", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             console=Console(file=sys.stderr), transient=False)
        self._bar.start()
        task = self._bar.add_task("score", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()

"""Decontamination: drop training questions that share a word n-gram with a benchmark question.

Texts are lower-cased and split into alphanumeric words; every n-gram of every benchmark question goes into
one hash table (n-gram -> benchmark), and each training question is checked with set look-ups: linear in the
total text size. Questions shorter than n words are compared as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from skyt1.data.hub import read_local

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    if len(w) < n:
        return {tuple(w)} if w else set()
    return set(zip(*(w[i:] for i in range(n)), strict=False))


def benchmark_questions(names: list[str], data_dir: str | None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Question texts per benchmark, and the benchmarks that could not be loaded with the reason."""
    out, skipped = {}, {}
    for name in names:
        try:
            texts = _load(name, data_dir)
        except Exception as e:  # any loading failure is reported as a skipped benchmark, never silently
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            continue
        if texts:
            out[name] = texts
        else:
            skipped[name] = "no questions found"
    return out, skipped


def _load(name: str, data_dir: str | None) -> list[str]:
    from skyt1.data import benchmarks

    spec = benchmarks.parse_name(name)
    if spec.base == "livecodebench":
        if data_dir:  # the local copy is LiveCodeBench's output file: questions, no tests
            files = sorted((Path(data_dir).expanduser() / "livecodebench").glob("*.json*"))
            if not files:
                raise FileNotFoundError(f"no livecodebench files under {data_dir}/livecodebench")
            return [r["question_content"] for f in files for r in read_local(f) if r.get("question_content")]
        from skyt1.data import livecodebench as lcb

        return [r["question_content"] for r in lcb.load_rows(spec.version)]
    bench = benchmarks.BENCHMARKS[spec.base]
    rows, _ = bench.load_rows(data_dir)
    texts = []
    for i, row in enumerate(rows):
        item = bench.adapt(row, i)
        if item is not None:
            fields = item.fields
            texts.append(fields.get("problem") or fields.get("question") or max(map(str, fields.values()), key=len))
    return texts


class Decontaminator:
    def __init__(self, questions: dict[str, list[str]], n: int = 8):
        self.n = n
        self.index: dict[tuple[str, ...], str] = {}
        for bench, texts in questions.items():
            for t in texts:
                for g in ngrams(t, n):
                    self.index.setdefault(g, bench)

    def match(self, text: str) -> tuple[str, str] | None:
        """(benchmark, n-gram) of the first shared n-gram, or None."""
        hits = ngrams(text, self.n) & self.index.keys()
        if not hits:
            return None
        g = min(hits)
        return self.index[g], " ".join(g)

"""Duplicate questions: exact (after normalisation) and near (MinHash of word 5-gram shingles with LSH
banding, every candidate pair confirmed by the exact Jaccard similarity). Near-linear in the number of texts.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_PRIME = np.uint64(4294967311)  # > 2**32: (a*h + b) mod p over 32-bit shingle hashes fits in uint64
_NONWORD = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    return " ".join(_NONWORD.sub(" ", text.lower()).split())


def shingles(text: str, k: int = 5) -> set[str]:
    w = normalize(text).split()
    if len(w) <= k:
        return {" ".join(w)}
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most selective banding that still finds a pair at `threshold` with >= 99.5%."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.995:
            return bands, rows
    return num_perm, 1


class NearDuplicates:
    """Feed texts in priority order; `add` returns the index of an earlier near-duplicate, or None."""

    def __init__(self, threshold: float = 0.9, num_perm: int = 64, k: int = 5, seed: int = 0):
        self.threshold, self.k = threshold, k
        self.bands, self.rows = lsh_params(threshold, num_perm)
        rng = np.random.default_rng(seed)
        n = self.bands * self.rows
        self.a = rng.integers(1, 2**32 - 1, size=n, dtype=np.uint64)
        self.b = rng.integers(0, 2**32 - 1, size=n, dtype=np.uint64)
        self.buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self.sets: list[set[str]] = []

    def signature(self, sh: set[str]) -> np.ndarray:
        h = np.fromiter((zlib.crc32(s.encode()) for s in sh), dtype=np.uint64, count=len(sh))
        return ((np.outer(self.a, h) + self.b[:, None]) % _PRIME).min(axis=1)

    def add(self, text: str) -> tuple[int, float] | None:
        sh = shingles(text, self.k)
        sig = self.signature(sh)
        idx = len(self.sets)
        self.sets.append(sh)
        match, checked = None, set()
        keys = [sig[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
        for band, key in enumerate(keys):
            for other in self.buckets[band].get(key, ()):
                if match is None and other not in checked:
                    checked.add(other)
                    sim = jaccard(sh, self.sets[other])
                    if sim >= self.threshold:
                        match = (other, sim)
        if match is not None:
            self.sets[idx] = set()  # a dropped text is never a match target; free its shingles
            return match
        for band, key in enumerate(keys):
            self.buckets[band].setdefault(key, []).append(idx)
        return None

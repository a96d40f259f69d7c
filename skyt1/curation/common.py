"""Helpers shared by the curation phases: progress bars, API cost and usage, engine failures."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator

from skyt1.protocol import PhaseError
from skyt1.recipe import ApiModel

__all__ = ["PhaseError", "api_config", "is_error", "progress", "sum_usage", "usd"]


def progress(items: Iterable, total: int | None, desc: str) -> Iterator:
    """A progress bar on stderr (quiet when stderr is not a terminal, except for a final line)."""
    from tqdm import tqdm

    return iter(tqdm(items, total=total, desc=desc, file=sys.stderr, mininterval=2.0, disable=None))


def usd(api: ApiModel, prompt_tokens: int, completion_tokens: int) -> float:
    return round(prompt_tokens * api.usd_per_1m_input / 1e6 + completion_tokens * api.usd_per_1m_output / 1e6, 6)


def sum_usage(records: Iterable[dict]) -> dict[str, int]:
    total = Counter()
    for r in records:
        for k, v in (r.get("usage") or {}).items():
            if isinstance(v, int | float):
                total[k] += v
    return dict(total)


def is_error(finish_reason: str | None) -> bool:
    return bool(finish_reason) and finish_reason.startswith("error")


def api_config(api: ApiModel) -> dict:
    """What a manifest records about an API model: everything but where the key lives."""
    return api.model_dump(mode="json", exclude={"keys_file"}) | {"keys_file": bool(api.keys_file)}

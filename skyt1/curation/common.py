"""Helpers shared by the curation phases: upstream inputs, progress bars, API cost, force-redo."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator

from skyt1.recipe import ApiModel
from skyt1.store import PhaseDir, RunDir


class PhaseError(RuntimeError):
    """A phase cannot run; the message says what to do."""


def upstream(run: RunDir, name: str, stream: str = "records") -> tuple[PhaseDir, str]:
    """The upstream phase and the digest of its output stream; it must be complete."""
    ph = run.phase(name)
    m = ph.manifest()
    if m is None:
        raise PhaseError(f"{run.uri}/{name} is not complete: run `skyt1 {name}` with the same --run-dir first")
    return ph, m["outputs"].get(stream, "empty")


def clear(ph: PhaseDir) -> None:
    """Remove everything a phase wrote (for --force)."""
    for key in ph.backend.list(ph.name):
        ph.backend.delete(key)


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


def finish(ph: PhaseDir, *, pending: int, what: str, **manifest) -> dict:
    """Write the manifest when nothing is pending; otherwise a `_PARTIAL.json` summary, so that downstream
    phases refuse to start and the same command (run again) retries the `pending` items."""
    if pending == 0:
        if ph.exists("_PARTIAL.json"):
            ph.backend.delete(f"{ph.name}/_PARTIAL.json")
        return ph.write_manifest(**manifest)
    summary = {"phase": ph.name, "complete": False, **{k: v for k, v in manifest.items() if k != "started_at"},
               "message": f"{pending} {what} failed after retries (see {ph.uri}/failed); "
                          "run the same command again to retry them"}
    ph.write_json("_PARTIAL.json", summary)
    return summary

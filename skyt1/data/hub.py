"""Loading rows from the Hugging Face hub, with an offline override.

`local_path` (a file or a directory of files) always wins over the hub; nothing touches the network when
it is given. Hub loads pin a revision where the caller passes one. Datasets whose hub repository used a
loading script (removed in `datasets` 4) are read from their raw data files with `data_files`.
"""

from __future__ import annotations

import json
from pathlib import Path

from skyt1.store import jsonl_lines

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says what to do (accept terms, set HF_TOKEN, pass a file)."""


def read_local(path: str | Path) -> list[dict]:
    """Rows of a local .jsonl/.json/.parquet/.csv file, or of every such file in a directory (sorted)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
        if not files:
            raise DatasetUnavailable(f"{path}: no {'/'.join(SUFFIXES)} files in this directory")
        return [row for f in files for row in read_local(f)]
    if not path.exists():
        raise DatasetUnavailable(f"{path}: no such file")
    if path.suffix == ".parquet" or path.suffix == ".csv":
        import datasets

        kind = "parquet" if path.suffix == ".parquet" else "csv"
        return list(datasets.load_dataset(kind, data_files=str(path), split="train"))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetUnavailable(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetUnavailable(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        numbered = list(enumerate(rows, 1))
        where = "item"
    else:
        numbered, where = [], "line"
        for n, line in enumerate(jsonl_lines(text), 1):
            if line.strip():
                try:
                    numbered.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DatasetUnavailable(f"{path}:{n}: not valid JSON ({e.msg})") from None
    for n, row in numbered:
        if not isinstance(row, dict):
            raise DatasetUnavailable(f"{path}: {where} {n} is a JSON {type(row).__name__}, not an object (one row "
                                     "per line, each a JSON object)")
    return [row for _, row in numbered]


def load_hub(
    hub_id: str,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    data_files: str | list[str] | dict | None = None,
    builder: str | None = None,
) -> list[dict]:
    """Rows of a hub dataset split. `builder`+`data_files` read raw files (json/parquet) from the repo."""
    import datasets

    try:
        if data_files is not None:
            ds = datasets.load_dataset(
                builder or "json", data_files=_hub_files(hub_id, data_files, revision), split=split
            )
        else:
            ds = datasets.load_dataset(hub_id, config, split=split, revision=revision)
    except Exception as e:  # the hub raises many types; translate the ones a user can act on
        msg = str(e)
        if "gated" in msg.lower() or "401" in msg or "403" in msg:
            raise DatasetUnavailable(
                f"{hub_id} is gated: accept its terms at https://huggingface.co/datasets/{hub_id} and set "
                "HF_TOKEN, or pass a local copy (--data-dir / local_path)"
            ) from e
        raise DatasetUnavailable(
            f"could not load {hub_id} ({config or 'default'}/{split}) from the hub: {msg.splitlines()[0][:300]}. "
            "Offline? pass a local copy (--data-dir / local_path)"
        ) from e
    return list(ds)


def _hub_files(hub_id: str, data_files, revision: str | None):
    rev = revision or "main"

    def url(f: str) -> str:
        return f"hf://datasets/{hub_id}@{rev}/{f}"

    if isinstance(data_files, str):
        return url(data_files)
    if isinstance(data_files, list):
        return [url(f) for f in data_files]
    return {k: [url(f) for f in (v if isinstance(v, list) else [v])] for k, v in data_files.items()}


def load_rows(
    hub_id: str | None,
    *,
    local_path: str | Path | None = None,
    **hub_kwargs,
) -> list[dict]:
    """Local file when given (never the network), else the hub."""
    if local_path:
        return read_local(local_path)
    if not hub_id:
        raise DatasetUnavailable("no hub id and no local path given")
    return load_hub(hub_id, **hub_kwargs)

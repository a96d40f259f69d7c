"""LiveCodeBench code generation (`livecodebench/code_generation_lite`), read from its raw JSONL files.

The hub repository used a loading script (gone in `datasets` 4), so the release files are read directly:
`release_vN` is the cumulative set of the files `test.jsonl ... testN.jsonl`, `vN` one file alone and
`vA_vB` a range. Private tests are stored either as JSON or compressed: base64 -> zlib -> pickle -> JSON.
Both public and private tests are run (the reference implementation ran only the private ones).
"""

from __future__ import annotations

import base64
import json
import pickle
import re
import zlib
from pathlib import Path

from skyt1.data.hub import DatasetUnavailable, load_hub, read_local

HUB_ID = "livecodebench/code_generation_lite"
DEFAULT_VERSION = "release_v2"  # the release Sky-T1-32B-Preview reported (511 problems)
LATEST = 6
DIFFICULTIES = ("easy", "medium", "hard")


def _file(n: int) -> str:
    return "test.jsonl" if n == 1 else f"test{n}.jsonl"


def version_files(version: str) -> list[str]:
    """Raw file names that make up a release tag (release_v2, release_latest, v3, v1_v3)."""
    if version == "release_latest":
        return [_file(i) for i in range(1, LATEST + 1)]
    if m := re.fullmatch(r"release_v(\d+)", version):
        last = int(m.group(1))
        first = 1
    elif m := re.fullmatch(r"v(\d+)", version):
        first = last = int(m.group(1))
    elif m := re.fullmatch(r"v(\d+)_v(\d+)", version):
        first, last = int(m.group(1)), int(m.group(2))
    else:
        raise ValueError(
            f"unknown LiveCodeBench version {version!r}; use release_v1..release_v{LATEST}, release_latest, "
            "vN (one release's new problems) or vA_vB"
        )
    if not 1 <= first <= last <= LATEST:
        raise ValueError(f"LiveCodeBench version {version!r} is out of range (releases 1..{LATEST})")
    return [_file(i) for i in range(first, last + 1)]


def load_rows(version: str, data_dir: str | Path | None = None, revision: str | None = None) -> list[dict]:
    """Raw rows of a release: from `data_dir/livecodebench/<files>` when a data dir is given, else the hub."""
    files = version_files(version)
    if data_dir is None:
        return load_hub(HUB_ID, data_files=files, builder="json", split="train", revision=revision)
    base = Path(data_dir).expanduser() / "livecodebench"
    missing = [f for f in files if not (base / f).is_file()]
    if missing:
        raise DatasetUnavailable(
            f"LiveCodeBench {version} needs {', '.join(missing)} in {base}; download them from "
            f"https://huggingface.co/datasets/{HUB_ID} (the raw test*.jsonl files) or drop --data-dir to "
            "read the hub"
        )
    return [row for f in files for row in read_local(base / f)]


def decode_private_tests(value: str | list) -> list[dict]:
    """Private tests: plain JSON, or base64 -> zlib -> pickle -> JSON text."""
    if isinstance(value, list):
        return value
    if not value:
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(pickle.loads(zlib.decompress(base64.b64decode(value.encode()))))
    except Exception as e:
        raise ValueError(f"private_test_cases is neither JSON nor base64(zlib(pickle(json))): {e}") from None


def _json_or(value, default):
    if isinstance(value, str):
        return json.loads(value) if value.strip() else default
    return value if value is not None else default


def tests_of(row: dict) -> dict:
    """The row's public + private tests in the `skyt1 score` test format (stdio or call)."""
    cases = _json_or(row.get("public_test_cases"), []) + decode_private_tests(row.get("private_test_cases") or "")
    if not cases:
        raise ValueError(f"LiveCodeBench problem {row.get('question_id')}: no test cases")
    kinds = {c.get("testtype") for c in cases}
    if kinds == {"stdin"}:
        return {"kind": "stdio", "inputs": [c["input"] for c in cases], "outputs": [c["output"] for c in cases]}
    if kinds == {"functional"}:
        meta = _json_or(row.get("metadata"), {})
        fn_name = meta.get("func_name")
        if not fn_name:
            raise ValueError(f"LiveCodeBench problem {row.get('question_id')}: functional tests without func_name")
        # Each functional input is one JSON value per line, one line per argument; the output is one JSON value.
        inputs = [[json.loads(line) for line in c["input"].split("\n") if line.strip()] for c in cases]
        outputs = [json.loads(c["output"]) for c in cases]
        return {"kind": "call", "fn_name": fn_name, "inputs": inputs, "outputs": outputs}
    raise ValueError(f"LiveCodeBench problem {row.get('question_id')}: unknown or mixed test types {sorted(map(str, kinds))}")

"""The run store on a local directory and on a real S3-compatible server (moto on loopback): atomic files,
shards and sidecars, resume after kill -9 of a writer process, concurrent writers, manifests, secrets."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from skyt1.store import RunDir, StoreError, jsonl_lines

# A writer process as a phase runs it: resume by skipping the ids already written, then write the rest.
WRITER = """
import sys, time
from skyt1.store import RunDir
uri, n, flush_every, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
phase = RunDir(uri).phase("distill")
done = phase.ids("records")
with phase.writer("records", flush_every=flush_every) as w:
    for i in range(n):
        rid = f"p/{i:05d}"
        if rid not in done:
            w.write({"id": rid, "i": i, "text": "x" * 300})
            time.sleep(delay)
print(len(done))
"""


@pytest.fixture(params=["local", "s3"])
def run_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "run")
    return request.getfixturevalue("s3_bucket")


def raw_records(phase, stream="records"):
    """Every line of every shard, duplicates included."""
    out = []
    for key in phase._shards(stream):
        out += [json.loads(line) for line in jsonl_lines(phase.backend.read_bytes(key).decode()) if line]
    return out


def all_bytes(run: RunDir) -> dict[str, bytes]:
    return {k: run.backend.read_bytes(k) for k in run.backend.list("")}


# ------------------------------------------------------------------------------------------ shards


def test_shards_sidecars_and_records(run_uri):
    ph = RunDir(run_uri).phase("distill")
    with ph.writer("records", flush_every=4) as w:
        for i in reversed(range(10)):
            w.write({"id": f"r{i}", "v": i})
    keys = ph.backend.list("distill/records")
    shards = [k for k in keys if k.endswith(".jsonl")]
    assert len(shards) == 3 and len([k for k in keys if k.endswith(".ids")]) == 3
    assert ph.ids() == {f"r{i}" for i in range(10)}
    assert [r["id"] for r in ph.records()] == sorted(f"r{i}" for i in range(10))
    assert ph.count() == 10 and ph.streams() == ["records"]
    assert not any("/.tmp-" in k for k in keys)


def test_ids_reads_a_shard_whose_sidecar_is_missing(run_uri):
    """A crash between the shard write and its sidecar write: the shard's ids still count as done."""
    ph = RunDir(run_uri).phase("filter")
    with ph.writer("records", flush_every=3) as w:
        w.write_many({"id": f"a{i}"} for i in range(6))
    sidecar = [k for k in ph.backend.list("filter/records") if k.endswith(".ids")][0]
    ph.backend.delete(sidecar)
    assert ph.ids() == {f"a{i}" for i in range(6)}


def test_text_with_unicode_line_separators_round_trips(run_uri):
    """Model output can hold U+2028, U+2029 or U+0085 (JSON keeps them raw with ensure_ascii=False); they are
    not record boundaries, also when resume reads the shard itself rather than its sidecar."""
    text = "a\u2028b\u2029c\x85d\x1ce\r\nf"
    ph = RunDir(run_uri).phase("distill")
    with ph.writer("records", flush_every=2) as w:
        w.write_many({"id": f"r{i}", "text": text} for i in range(3))
    for sidecar in [k for k in ph.backend.list("distill/records") if k.endswith(".ids")]:
        ph.backend.delete(sidecar)
    assert ph.ids() == {"r0", "r1", "r2"}
    assert [r["text"] for r in ph.records()] == [text] * 3


def test_records_dedups_by_id_first_shard_wins(run_uri):
    ph = RunDir(run_uri).phase("distill")
    with ph.writer(flush_every=10) as w:
        w.write_many([{"id": "x", "v": 1}, {"id": "y", "v": 1}])
    time.sleep(0.001)
    with ph.writer(flush_every=10) as w:
        w.write_many([{"id": "x", "v": 2}, {"id": "z", "v": 2}])
    assert [(r["id"], r["v"]) for r in ph.records()] == [("x", 1), ("y", 1), ("z", 2)]
    assert len(raw_records(ph)) == 4


def test_writer_rejects_records_without_a_usable_id(tmp_path):
    w = RunDir(tmp_path).phase("p").writer()
    for bad in ({"v": 1}, {"id": 3}, {"id": ""}, {"id": "a\nb"}):
        with pytest.raises(ValueError, match="id"):
            w.write(bad)


def test_writer_flushes_complete_records_when_the_body_raises(tmp_path):
    ph = RunDir(tmp_path).phase("p")
    with pytest.raises(RuntimeError):
        with ph.writer(flush_every=100) as w:
            w.write({"id": "kept"})
            raise RuntimeError("engine died")
    assert ph.ids() == {"kept"}


def test_corrupt_shard_names_the_file(tmp_path):
    ph = RunDir(tmp_path).phase("p")
    ph.backend.write_bytes("p/records/part-bad.jsonl", b'{"id": "a"}\n{"id": tru')
    with pytest.raises(StoreError, match=r"part-bad\.jsonl:2: corrupt shard"):
        list(ph.records())


def test_concurrent_writers_of_different_shards(run_uri):
    run = RunDir(run_uri)

    def work(k: int) -> None:
        with run.phase("distill").writer(flush_every=5, tag=f"w{k}") as w:
            for i in range(40):
                w.write({"id": f"{k}/{i:03d}"})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ph = run.phase("distill")
    assert ph.ids() == {f"{k}/{i:03d}" for k in range(4) for i in range(40)}
    assert len(raw_records(ph)) == 160 and len(list(ph.records())) == 160


# ------------------------------------------------------------------------------------ kill -9 + resume


def test_kill_9_of_a_writer_process_then_resume_loses_and_duplicates_nothing(run_uri):
    n, flush_every = 300, 7
    cmd = [sys.executable, "-c", WRITER, run_uri, str(n), str(flush_every)]
    ph = RunDir(run_uri).phase("distill")
    child = subprocess.Popen([*cmd, "0.004"], env=os.environ.copy(), stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(ph._shards("records")) < 4:
        assert child.poll() is None, "the writer finished before it could be killed; slow it down"
        assert time.monotonic() < deadline, "the writer wrote no shards"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()

    survived = ph.ids()
    assert 4 * flush_every <= len(survived) < n
    resumed = subprocess.run([*cmd, "0"], env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout) == len(survived)  # the resume skipped exactly what survived

    expected = [f"p/{i:05d}" for i in range(n)]
    raw = raw_records(ph)
    assert sorted(r["id"] for r in raw) == expected  # none lost, none written twice
    assert [r["id"] for r in ph.records()] == expected
    assert not [k for k in ph.backend.list("distill") if "/.tmp-" in k]


# ------------------------------------------------------------------------------------ atomic files


def _payload(i: int, size: int) -> bytes:
    body = str(i) * size
    return json.dumps({"i": i, "body": body, "sha": hashlib.sha256(body.encode()).hexdigest()}).encode()


def _check_whole(data: bytes) -> int:
    obj = json.loads(data)
    assert hashlib.sha256(obj["body"].encode()).hexdigest() == obj["sha"]
    return obj["i"]


def test_readers_never_see_a_half_written_file(run_uri):
    ph = RunDir(run_uri).phase("train")
    ph.backend.write_bytes("train/state.json", _payload(0, 400_000))
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(_check_whole(ph.backend.read_bytes("train/state.json")))
                assert not [k for k in ph.backend.list("train") if ".tmp-" in k]
            except Exception as e:  # noqa: BLE001 - collected and reported by the test
                errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(1, 13):
        ph.backend.write_bytes("train/state.json", _payload(i % 10, 400_000))
    stop.set()
    reader.join()
    assert not errors, errors[:3]
    assert len(seen) >= 2  # the reader really overlapped the writes
    assert ph.backend.list("train") == ["train/state.json"]


def test_local_write_that_fails_midway_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    ph = RunDir(tmp_path).phase("p")
    ph.write_json("state.json", {"v": 1})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match=r"state\.json: cannot write: No space left on device; free some disk space"):
        ph.write_json("state.json", {"v": 2})
    assert ph.read_json("state.json") == {"v": 1}
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["state.json"]


def test_local_kill_9_mid_write_leaves_old_file_whole_and_temp_unlisted(tmp_path):
    script = (
        "import sys, json\n"
        "from skyt1.store import LocalBackend\n"
        "be = LocalBackend(sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    body = str(i % 10) * 3_000_000\n"
        "    be.write_bytes('p/big.json', json.dumps({'i': i, 'body': body}).encode())\n"
        "    print(i, flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    be = RunDir(tmp_path).backend
    assert be.list("p") == ["p/big.json"]
    obj = json.loads(be.read_bytes("p/big.json"))
    assert len(obj["body"]) == 3_000_000 and set(obj["body"]) == {str(obj["i"] % 10)}


def test_small_files_roundtrip_and_missing_file(run_uri):
    ph = RunDir(run_uri).phase("eval")
    assert not ph.exists("summary.json") and ph.manifest() is None
    ph.write_json("summary.json", {"acc": 0.5})
    ph.write_text("summary.md", "| acc |\n| 0.5 |\n")
    assert ph.exists("summary.json") and ph.read_json("summary.json") == {"acc": 0.5}
    assert ph.read_text("summary.md").startswith("| acc |")
    with pytest.raises(FileNotFoundError):
        ph.read_text("nothing.md")


# ------------------------------------------------------------------------------------ manifests


def test_manifest_matches_recipe_digest_and_inputs(run_uri):
    ph = RunDir(run_uri).phase("filter")
    with ph.writer(flush_every=2) as w:
        w.write_many({"id": f"s{i}", "ok": True} for i in range(5))
    assert not ph.is_complete("d1", {"reformat": "abc"})
    m = ph.write_manifest(recipe_digest="d1", inputs={"reformat": "abc"}, counts={"in": 5, "out": 5},
                          started_at=time.time() - 2, config={"workers": 2}, cost_usd=0.0)
    assert m["outputs"] == {"records": ph.output_digest("records")}
    assert m["wall_time_s"] >= 2 and "skyt1" in m["versions"] and m["phase"] == "filter"
    assert ph.manifest() == json.loads(json.dumps(m))
    assert ph.is_complete("d1", {"reformat": "abc"}) and ph.is_complete()
    assert not ph.is_complete("d2", {"reformat": "abc"})
    assert not ph.is_complete("d1", {"reformat": "other"})
    assert not ph.is_complete("d1", {})
    ph.invalidate()
    assert not ph.is_complete("d1", {"reformat": "abc"})


def test_output_digest_is_independent_of_shard_boundaries_and_order(tmp_path):
    records = [{"id": f"r{i:02d}", "text": f"trace {i}", "n": i} for i in range(23)]
    digests = []
    for k, (flush_every, order) in enumerate([(1, records), (5, records[::-1]), (100, records[7:] + records[:7])]):
        ph = RunDir(tmp_path / f"run{k}").phase("distill")
        with ph.writer(flush_every=flush_every) as w:
            w.write_many(order)
        digests.append(ph.output_digest())
    assert len(set(digests)) == 1
    changed = RunDir(tmp_path / "changed").phase("distill")
    with changed.writer() as w:
        w.write_many([*records[:-1], {**records[-1], "text": "other"}])
    assert changed.output_digest() != digests[0]


# ------------------------------------------------------------------------------------ secrets


SECRETS = {
    "OPENAI_API_KEY": "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2,
    "HF_TOKEN": "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm12",
    "SKYT1_DEMO_KEY": "demo-key-0123456789",  # not shaped like any known credential: only the env net
    "AWS_SECRET_ACCESS_KEY": "testing-secret-wJalrXUtnFEMI/K7MDENG",
}
STRAY = ["sk-" + "z" * 40, "hf_" + "Y" * 30, "AKIA" + "ABCDEFGHIJKLMNOP", "Bearer abcdefghijklmnop1234"]


def test_no_secret_reaches_records_text_or_manifest(run_uri, monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    run = RunDir(run_uri)
    ph = run.phase("reformat")
    every = list(SECRETS.values()) + STRAY
    with ph.writer(flush_every=2) as w:
        for i, s in enumerate(every):
            w.write({"id": f"r{i}", "response": f"the key is {s}.", "meta": {"api_key": s, "hf_token": s}})
    ph.write_text("log.txt", "\n".join(f"used {s}" for s in every))
    ph.write_json("state.json", {"headers": {"Authorization": f"Bearer {STRAY[0]}"}, "keys": every})
    config = {"api": {"model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "api_key": SECRETS["OPENAI_API_KEY"],
                      "max_tokens": 16384, "tokenizer": "qwen"},
              "note": f"called with {SECRETS['HF_TOKEN']} and {SECRETS['SKYT1_DEMO_KEY']}", "stray": STRAY}
    m = ph.write_manifest(recipe_digest="d", inputs={"distill": "x"}, counts={"out": len(every)},
                          started_at=time.time(), config=config, extra={"env": dict(SECRETS)})
    written = all_bytes(run)
    assert {k.split("/")[-1] for k in written} >= {"_DONE.json", "log.txt", "state.json"}
    for key, data in written.items():
        for s in every:
            assert s.encode() not in data, f"{s[:8]}... leaked into {key}"
    dumped = json.dumps(m)
    assert not [s for s in every if s in dumped]
    # Variable names and ordinary knobs survive.
    assert m["config"]["api"] == {"model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
                                  "api_key": "<redacted>", "max_tokens": 16384, "tokenizer": "qwen"}
    assert [r["response"] for r in ph.records()][0] == "the key is <redacted>."

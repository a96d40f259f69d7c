"""S3-only behaviour of the run store against moto on loopback: transient faults injected by a proxy are
retried, exhausted retries and unusable buckets or credentials surface as clear StoreErrors."""

from __future__ import annotations

import re

import pytest

from skyt1.store import RunDir, StoreError


def workload(uri: str) -> None:
    """Writes, lists and reads of every kind a phase makes."""
    ph = RunDir(uri).phase("distill")
    with ph.writer(flush_every=4) as w:
        w.write_many({"id": f"r{i:02d}", "text": "t" * i} for i in range(16))
    ph.write_json("state.json", {"step": 3})
    assert ph.exists("state.json") and not ph.exists("missing.json")
    assert ph.read_json("state.json") == {"step": 3}
    assert ph.ids() == {f"r{i:02d}" for i in range(16)}
    assert [r["id"] for r in ph.records()] == [f"r{i:02d}" for i in range(16)]
    ph.write_manifest(recipe_digest="d", inputs={}, counts={"out": 16}, started_at=0.0)
    assert ph.is_complete("d", {})


def test_transient_faults_of_every_kind_are_retried(s3_bucket, fault_proxy):
    # The first request fails four times in a row (SlowDown, 500, 503, reset), then a fifth of the rest
    # (SlowDown backs off for seconds, so it is injected first, where botocore's backoff is shortest).
    proxy = fault_proxy(first=4, modes=("slowdown", "500", "503", "reset"))
    RunDir(s3_bucket).phase("distill").write_json("first.json", {"ok": True})
    assert proxy.requests == 5
    proxy.configure(modes=("500", "503", "reset"), fraction=0.2, seed=7)
    workload(s3_bucket)
    assert set(proxy.injected) == {"500", "503", "slowdown", "reset"}
    assert len(proxy.injected) >= 6 and proxy.requests > len(proxy.injected)


def test_connection_resets_alone_are_retried(s3_bucket, fault_proxy):
    proxy = fault_proxy(modes=("reset",), fraction=0.3, seed=1)
    workload(s3_bucket)
    assert proxy.injected.count("reset") >= 3


@pytest.mark.parametrize("mode, expect", [("503", r"HTTP 503 ServiceUnavailable"),
                                          ("500", r"HTTP 500 InternalError"),
                                          ("reset", r"AWS_ENDPOINT_URL")])
def test_exhausted_retries_raise_a_clear_error(s3_bucket, fault_proxy, monkeypatch, mode, expect):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    proxy = fault_proxy(modes=(mode,), always=True)
    ph = RunDir(s3_bucket).phase("distill")
    with pytest.raises(StoreError, match=r"failed after 3 attempts") as err:
        ph.write_json("state.json", {"step": 1})
    assert re.search(expect, str(err.value)), err.value
    assert "re-run the same command" in str(err.value)
    assert proxy.requests == 3  # every attempt reached the server
    with pytest.raises(StoreError, match="failed after 3 attempts"):
        ph.ids()


def test_exhausted_reset_names_the_endpoint(s3_bucket, fault_proxy, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    proxy = fault_proxy(modes=("reset",), always=True)
    with pytest.raises(StoreError) as err:
        RunDir(s3_bucket).phase("p").read_json("x.json")
    assert proxy.endpoint in str(err.value) and "check the network" in str(err.value)


def test_missing_bucket_says_how_to_create_it(s3_env):
    ph = RunDir("s3://skyt1-no-such-bucket/run").phase("distill")
    for action in (lambda: ph.write_json("a.json", {}), ph.ids, ph.manifest, lambda: list(ph.records())):
        with pytest.raises(StoreError, match=r"bucket 'skyt1-no-such-bucket' does not exist.*aws s3 mb"):
            action()


def test_missing_credentials_say_what_to_set(s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match=r"no AWS credentials found; set AWS_ACCESS_KEY_ID"):
        RunDir(s3_bucket).phase("distill").write_json("a.json", {})


def test_bad_uris_and_local_only_steps(s3_env):
    with pytest.raises(StoreError, match="no bucket name"):
        RunDir("s3://")
    with pytest.raises(StoreError, match="unsupported run directory"):
        RunDir("gs://bucket/run")
    with pytest.raises(StoreError, match="needs a local or mounted run directory"):
        RunDir("s3://bucket/run").local_path("train")


def test_bucket_root_without_prefix(s3_bucket):
    root = s3_bucket.rsplit("/", 1)[0]  # s3://bucket
    ph = RunDir(root).phase("eval")
    ph.write_json("summary.json", {"acc": 1})
    assert RunDir(root).backend.list("") == ["eval/summary.json"]
    assert ph.read_json("summary.json") == {"acc": 1}

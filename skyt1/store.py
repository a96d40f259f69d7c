"""The run directory: where every phase reads its inputs and writes its outputs.

A run lives in a local directory (which is also what a SkyPilot-mounted bucket looks like) or under an
`s3://bucket/prefix` URI. The same rules hold for both:

- Files are written atomically: a reader never sees a half-written file under its final name.
- Records are written as immutable JSONL shard files (`<phase>/<stream>/part-*.jsonl`), never appended to,
  because mounted buckets do not support appends. Each shard has a small `.ids` sidecar written after it so
  that resuming only lists ids instead of re-reading every trace.
- A phase is complete when `<phase>/_DONE.json` exists; it records what the phase was computed from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets as _secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from skyt1.redact import env_secrets, redact, redact_text

DONE = "_DONE.json"


class StoreError(Exception):
    """A run directory that cannot be used; the message says what to do."""


# --------------------------------------------------------------------------------------------- backends


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write a local file so that readers see the old content or the new, never a part (tmp + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalBackend:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def write_bytes(self, key: str, data: bytes) -> None:
        atomic_write(self._path(key), data)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Keys under a directory prefix (recursive), excluding in-flight temporary files."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith(".tmp-"):
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str = "") -> Path:
        return self._path(key)


class S3Backend:
    """`s3://bucket/prefix` through boto3. Transient errors (5xx, throttling, connection resets) are retried
    by botocore's standard retry mode with exponential backoff; `AWS_ENDPOINT_URL` selects another
    S3-compatible server (MinIO, R2, a test server)."""

    def __init__(self, uri: str, max_attempts: int | None = None):
        import boto3
        from botocore.config import Config

        rest = uri[len("s3://") :]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise StoreError(f"{uri}: no bucket name; expected s3://BUCKET/PREFIX")
        self.prefix = prefix.strip("/")
        self.uri = uri.rstrip("/")
        if max_attempts is None:
            max_attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 8)
        self.max_attempts = max_attempts
        config = Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},  # the first try included
            connect_timeout=10,
            read_timeout=60,
        )
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
        # An own session, not boto3's process-wide default one: that one caches the credentials it first
        # found, and its client creation is not thread-safe.
        self.client = boto3.session.Session().client("s3", endpoint_url=self.endpoint, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn, **kwargs):
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = f"{self.uri}: S3 {fn.__name__} {kwargs.get('Key') or kwargs.get('Prefix') or ''}".rstrip()
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError) as e:
            raise StoreError(
                f"{where} failed after {self.max_attempts} attempts: {e}; check the network and "
                f"AWS_ENDPOINT_URL ({self.endpoint or 'AWS default'}), then re-run the same command (it resumes)"
            ) from None
        except NoCredentialsError:
            raise StoreError(
                f"{self.uri}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                "AWS_PROFILE (run `aws configure`), or use a local run directory"
            ) from None
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket",):
                raise StoreError(
                    f"{self.uri}: bucket {self.bucket!r} does not exist; create it (`aws s3 mb s3://{self.bucket}`) "
                    "or point BUCKET at an existing one"
                ) from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                raise StoreError(
                    f"{self.uri}: access denied ({code}); check the credentials and the bucket policy"
                ) from None
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"):
                raise StoreError(
                    f"{where} failed after {self.max_attempts} attempts (HTTP {status} {code}): the S3 server "
                    "is failing or throttling; wait and re-run the same command (it resumes)"
                ) from None
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        # A PUT is atomic in S3: the object appears whole or not at all.
        self._call(self.client.put_object, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self._call(self.client.get_object, Key=self._key(key))["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{self.uri}/{key}") from None
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call(self.client.head_object, Key=self._key(key))
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/") + "/") if prefix else (self.prefix + "/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys, token = [], None
        while True:
            kwargs = {"Prefix": full, **({"ContinuationToken": token} if token else {})}
            resp = self._call(self.client.list_objects_v2, **kwargs)
            keys += [o["Key"][strip:] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                return sorted(keys)
            token = resp["NextContinuationToken"]

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=self._key(key))

    def local_path(self, key: str = "") -> Path:
        raise StoreError(f"{self.uri}: this step needs a local or mounted run directory, not an s3:// URI")


def open_backend(uri: str | Path) -> LocalBackend | S3Backend:
    uri = str(uri)
    if uri.startswith("s3://"):
        return S3Backend(uri)
    if "://" in uri:
        raise StoreError(f"{uri}: unsupported run directory; use a local path, a mounted bucket or s3://")
    return LocalBackend(uri)


# --------------------------------------------------------------------------------------------- records


def _jsonl(records: Iterable[dict]) -> bytes:
    buf = io.StringIO()
    for r in records:
        buf.write(json.dumps(r, ensure_ascii=False, sort_keys=True))
        buf.write("\n")
    return buf.getvalue().encode()


def canonical_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


class ShardWriter:
    """Buffers records and writes them as immutable shard files of `flush_every` records.

    Records already written by an earlier attempt survive a crash; those still buffered are redone on resume.
    """

    def __init__(self, phase: PhaseDir, stream: str, flush_every: int = 64, tag: str = ""):
        self.phase, self.stream, self.flush_every = phase, stream, max(1, flush_every)
        self.tag = tag
        self.buffer: list[dict] = []
        self.written = 0

    def write(self, record: dict) -> None:
        rid = record.get("id")
        if not isinstance(rid, str) or not rid or "\n" in rid:
            raise ValueError(f"every record needs a non-empty one-line string 'id', got {rid!r}")
        self.buffer.append(record)
        if len(self.buffer) >= self.flush_every:
            self.flush()

    def write_many(self, records: Iterable[dict]) -> None:
        for r in records:
            self.write(r)

    def flush(self) -> None:
        if not self.buffer:
            return
        stamp = f"{time.time_ns():020d}-{_secrets.token_hex(4)}"
        name = f"part-{self.tag + '-' if self.tag else ''}{stamp}"
        base = f"{self.phase.name}/{self.stream}/{name}"
        be = self.phase.backend
        env = env_secrets()
        be.write_bytes(base + ".jsonl", _jsonl(redact(r, env) for r in self.buffer))
        # The sidecar comes second: a shard without one is still read (see PhaseDir.ids).
        be.write_bytes(base + ".ids", "\n".join(r["id"] for r in self.buffer).encode())
        self.written += len(self.buffer)
        self.buffer = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Flush on clean exit and on ordinary exceptions (the records are complete); a kill -9 loses only
        # the buffer, which resume regenerates.
        self.flush()


class PhaseDir:
    """One phase's directory inside a run."""

    def __init__(self, backend: LocalBackend | S3Backend, name: str):
        self.backend, self.name = backend, name

    @property
    def uri(self) -> str:
        return f"{self.backend.uri}/{self.name}"

    def writer(self, stream: str = "records", flush_every: int = 64, tag: str = "") -> ShardWriter:
        return ShardWriter(self, stream, flush_every, tag)

    def _shards(self, stream: str) -> list[str]:
        prefix = f"{self.name}/{stream}/part-"
        return [k for k in self.backend.list(f"{self.name}/{stream}") if k.startswith(prefix) and k.endswith(".jsonl")]

    def ids(self, stream: str = "records") -> set[str]:
        """Ids of every record already written to a stream (cheap: reads the sidecars)."""
        done: set[str] = set()
        for shard in self._shards(stream):
            sidecar = shard[: -len(".jsonl")] + ".ids"
            try:
                text = self.backend.read_bytes(sidecar).decode()
                done.update(x for x in text.split("\n") if x)
            except FileNotFoundError:
                done.update(r["id"] for r in self._read_shard(shard))
        return done

    def _read_shard(self, key: str) -> list[dict]:
        try:
            return [json.loads(line) for line in self.backend.read_bytes(key).decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(
                f"{self.backend.uri}/{key}: corrupt shard ({e}); it was not written by skyt1's atomic writer. "
                "Delete it and re-run the phase (it resumes without the deleted records)"
            ) from None

    def records(self, stream: str = "records") -> Iterator[dict]:
        """Every record of a stream, each id once (the first shard written wins), in id order."""
        seen: dict[str, dict] = {}
        for shard in self._shards(stream):
            for r in self._read_shard(shard):
                seen.setdefault(r["id"], r)
        for key in sorted(seen):
            yield seen[key]

    def count(self, stream: str = "records") -> int:
        return len(self.ids(stream))

    def streams(self) -> list[str]:
        """Record streams: `<phase>/<stream>/part-*.jsonl` only, not other JSONL files (logs, eval samples)."""
        streams = set()
        for key in self.backend.list(self.name):
            parts = key.split("/")
            if len(parts) == 3 and parts[2].startswith("part-") and parts[2].endswith(".jsonl"):
                streams.add(parts[1])
        return sorted(streams)

    def write_json(self, name: str, obj: Any) -> None:
        self.backend.write_bytes(f"{self.name}/{name}", json.dumps(redact(obj), indent=2, sort_keys=True).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.backend.read_bytes(f"{self.name}/{name}"))

    def exists(self, name: str) -> bool:
        return self.backend.exists(f"{self.name}/{name}")

    def write_text(self, name: str, text: str) -> None:
        self.backend.write_bytes(f"{self.name}/{name}", redact_text(text).encode())

    def read_text(self, name: str) -> str:
        return self.backend.read_bytes(f"{self.name}/{name}").decode()

    def output_digest(self, stream: str = "records") -> str:
        """Content digest of a stream: independent of shard boundaries and write order."""
        h = hashlib.sha256()
        for r in self.records(stream):
            h.update(json.dumps(r, sort_keys=True).encode())
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------------------------------- manifest

    def manifest(self) -> dict | None:
        try:
            return self.read_json(DONE)
        except FileNotFoundError:
            return None

    def is_complete(self, recipe_digest: str | None = None, inputs: dict[str, str] | None = None) -> bool:
        """True when the phase finished from the same recipe section and the same inputs."""
        m = self.manifest()
        if m is None:
            return False
        if recipe_digest is not None and m.get("recipe_digest") != recipe_digest:
            return False
        return inputs is None or m.get("inputs") == inputs

    def write_manifest(
        self,
        *,
        recipe_digest: str,
        inputs: dict[str, str],
        counts: dict[str, Any],
        started_at: float,
        outputs: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict:
        now = time.time()
        manifest = {
            "phase": self.name,
            "recipe_digest": recipe_digest,
            "inputs": inputs,
            "outputs": outputs if outputs is not None else {s: self.output_digest(s) for s in self.streams()},
            "counts": counts,
            "versions": versions(),
            "started_at": started_at,
            "finished_at": now,
            "wall_time_s": round(now - started_at, 3),
            "cost_usd": cost_usd,
            "config": config or {},
            **(extra or {}),
        }
        manifest = redact(manifest)
        self.write_json(DONE, manifest)
        return manifest

    def invalidate(self) -> None:
        self.backend.delete(f"{self.name}/{DONE}")


class RunDir:
    """A run: a set of phase directories under one root."""

    def __init__(self, uri: str | Path):
        self.backend = open_backend(uri)
        self.uri = self.backend.uri

    def phase(self, name: str) -> PhaseDir:
        return PhaseDir(self.backend, name)

    def local_path(self, key: str = "") -> Path:
        return self.backend.local_path(key)


# --------------------------------------------------------------------------------------------- versions

_VERSIONED = (
    "skyt1", "torch", "transformers", "vllm", "llamafactory", "deepspeed", "datasets", "math-verify",
    "skypilot", "openai", "boto3",
)


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on, plus the git commit when available."""
    from importlib import metadata

    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = git_commit()
    if commit:
        out["git_commit"] = commit
    return out


def git_commit() -> str | None:
    import subprocess

    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None

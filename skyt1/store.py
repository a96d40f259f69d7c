"""The run directory: where every phase reads its inputs and writes its outputs.

A run lives in a local directory (which is also what a SkyPilot-mounted bucket looks like) or under an
`s3://bucket/prefix` URI. The same rules hold for both:

- Files are written atomically: a reader never sees a half-written file under its final name. A write cut
  by a kill leaves a `.tmp-*` file that readers ignore and the next writer of that directory removes.
- Records are written as immutable JSONL shard files (`<phase>/<stream>/part-*.jsonl`), never appended to,
  because mounted buckets do not support appends. Each shard has a small `.ids` sidecar written after it so
  that resuming only lists ids instead of re-reading every trace; the sidecar records its shard's size, and
  a shard whose size disagrees is read instead.
- A phase is complete when `<phase>/_DONE.json` exists; it records what the phase was computed from.
- One writer per phase directory (or per shard of one): `PhaseDir.lock()` is a lease that a killed writer
  does not hold for ever.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import secrets as _secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from skyt1.redact import env_secrets, redact, redact_text

DONE = "_DONE.json"
PARTIAL = "_PARTIAL.json"
TMP_PREFIX = ".tmp-"
log = logging.getLogger(__name__)


class StoreError(Exception):
    """A run directory that cannot be used; the message says what to do."""


# --------------------------------------------------------------------------------------------- local files

_HOST = socket.gethostname().replace("-", "_")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write a local file so that readers see the old content or the new, never a part (tmp + fsync + rename).

    The file gets the mode an ordinary `open()` would give it (0666 less the umask), not mkstemp's 0600, so
    that other users of a shared machine or bucket can read results. The temporary name carries the host and
    process id, so that `sweep_temps` can tell a dead writer's leftovers from a live one's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{_HOST}-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` runs on this host (and is the one that started at `started`, when given)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or started == process_start(pid)


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), which tells a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def sweep_temps(directory: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove temporary files of atomic writes that will never complete: those of a dead process on this
    host, and any older than `older_than_s` (a writer on another host of a shared bucket)."""
    removed = []
    if not directory.is_dir():
        return removed
    now = time.time()
    for p in directory.rglob(f"{TMP_PREFIX}*"):
        parts = p.name[len(TMP_PREFIX):].split("-")
        try:
            mine = len(parts) >= 3 and parts[0] == _HOST and not pid_alive(int(parts[1]))
            if mine or now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
        except (ValueError, OSError):
            continue
    return removed


def _os_error(where: str, e: OSError, verb: str) -> StoreError:
    import errno

    hint = {errno.ENOSPC: "free some disk space, then re-run the same command (it resumes)",
            errno.EDQUOT: "free some disk space, then re-run the same command (it resumes)",
            errno.EACCES: "check that the run directory is writable by you",
            errno.EPERM: "check that the run directory is writable by you",
            errno.EROFS: "the file system is read-only; use a writable run directory",
            errno.ENOTDIR: "a path component is a file, not a directory; choose another run directory",
            errno.EISDIR: "a directory stands where a file should be; choose another run directory"}
    return StoreError(f"{where}: cannot {verb}: {e.strerror or e}; {hint.get(e.errno, 'check the run directory')}")


class LocalBackend:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: is a file, not a directory; choose another run directory")

    def _path(self, key: str) -> Path:
        return self.root / key

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as e:
            raise _os_error(str(self._path(key)), e, "write") from None

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(str(path)) from None
        except OSError as e:
            raise _os_error(str(path), e, "read") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def sizes(self, prefix: str) -> dict[str, int]:
        """Keys under a directory prefix (recursive) and their sizes, excluding in-flight temporary files."""
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        out = {}
        for p in base.rglob("*"):
            if not p.name.startswith(TMP_PREFIX):
                try:
                    if p.is_file():
                        out[p.relative_to(self.root).as_posix()] = p.stat().st_size
                except OSError:  # removed while listing
                    continue
        return dict(sorted(out.items()))

    def list(self, prefix: str) -> list[str]:
        return list(self.sizes(prefix))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise _os_error(str(self._path(key)), e, "delete") from None

    def sweep(self, prefix: str) -> list[str]:
        return [str(p) for p in sweep_temps(self._path(prefix))]

    def local_path(self, key: str = "") -> Path:
        return self._path(key)


# --------------------------------------------------------------------------------------------- S3


def _retry_settings() -> tuple[int, float, float]:
    """(attempts, seconds per attempt, seconds in all) for S3 calls; environment-overridable."""
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 8)
    timeout = float(os.environ.get("SKYT1_S3_TIMEOUT_S") or 60)
    budget = float(os.environ.get("SKYT1_S3_RETRY_BUDGET_S") or 300)
    return max(1, attempts), timeout, budget


class S3Backend:
    """`s3://bucket/prefix` through boto3. Transient errors (5xx, throttling, connection resets, timeouts)
    are retried with exponential backoff, each retry logged with its reason, within `AWS_MAX_ATTEMPTS`
    attempts and `SKYT1_S3_RETRY_BUDGET_S` seconds in all; `AWS_ENDPOINT_URL` selects another
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
        attempts, timeout, self.budget_s = _retry_settings()
        self.max_attempts = max_attempts or attempts
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"},  # retried here, visibly
                        connect_timeout=min(10.0, timeout), read_timeout=timeout)
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
        # An own session, not boto3's process-wide default one: that one caches the credentials it first
        # found, and its client creation is not thread-safe.
        self.client = boto3.session.Session().client("s3", endpoint_url=self.endpoint, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _transient(self, e: Exception) -> str | None:
        """Why `e` is worth retrying, or None."""
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ResponseStreamingError

        if isinstance(e, ConnectionError | HTTPClientError | ResponseStreamingError):
            return f"{type(e).__name__}: {e}"
        if isinstance(e, ClientError):
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"):
                return f"HTTP {status} {code}"
        return None

    def _call(self, fn, *, then=None, **kwargs):
        """fn(Bucket=..., **kwargs), and `then(result)` in the same attempt (e.g. reading a body)."""
        from botocore.exceptions import ClientError, NoCredentialsError

        where = f"{self.uri}: S3 {fn.__name__} {kwargs.get('Key') or kwargs.get('Prefix') or ''}".rstrip()
        deadline = time.monotonic() + self.budget_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = fn(Bucket=self.bucket, **kwargs)
                return then(result) if then else result
            except NoCredentialsError:
                raise StoreError(
                    f"{self.uri}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                    "AWS_PROFILE (run `aws configure`), or use a local run directory"
                ) from None
            except Exception as e:  # noqa: BLE001 - classified below
                reason = self._transient(e)
                if reason is None:
                    if isinstance(e, ClientError):
                        self._client_error(e)
                    raise
                wait = min(8.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if attempt == self.max_attempts or time.monotonic() + wait > deadline:
                    spent = self.budget_s - max(0.0, deadline - time.monotonic())
                    hint = (f"the S3 server is failing or throttling ({reason})" if reason.startswith("HTTP")
                            else f"{reason}; check the network and AWS_ENDPOINT_URL ({self.endpoint or 'AWS default'})")
                    raise StoreError(f"{where} failed after {attempt} attempts in {spent:.0f} s: {hint}; "
                                     "wait, then re-run the same command (it resumes)") from None
                log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", where, attempt, self.max_attempts,
                            reason, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _client_error(self, e) -> None:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise StoreError(
                f"{self.uri}: bucket {self.bucket!r} does not exist; create it (`aws s3 mb s3://{self.bucket}`) "
                "or point BUCKET at an existing one"
            ) from None
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            raise StoreError(f"{self.uri}: access denied ({code}); check the credentials and the bucket policy") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        # A PUT is atomic in S3: the object appears whole or not at all.
        self._call(self.client.put_object, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self._call(self.client.get_object, Key=self._key(key), then=lambda r: r["Body"].read())
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

    def sizes(self, prefix: str) -> dict[str, int]:
        full = self._key(prefix.rstrip("/") + "/") if prefix else (self.prefix + "/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        out, token = {}, None
        while True:
            kwargs = {"Prefix": full, **({"ContinuationToken": token} if token else {})}
            resp = self._call(self.client.list_objects_v2, **kwargs)
            out.update({o["Key"][strip:]: o["Size"] for o in resp.get("Contents", [])})
            if not resp.get("IsTruncated"):
                return dict(sorted(out.items()))
            token = resp["NextContinuationToken"]

    def list(self, prefix: str) -> list[str]:
        return list(self.sizes(prefix))

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Key=self._key(key))

    def sweep(self, prefix: str) -> list[str]:
        return []  # a PUT leaves nothing behind

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


def jsonl_bytes(records: Iterable[dict]) -> bytes:
    buf = io.StringIO()
    for r in records:
        buf.write(json.dumps(r, ensure_ascii=False, sort_keys=True))
        buf.write("\n")
    return buf.getvalue().encode()


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSONL text. Not str.splitlines(): that also breaks at U+2028, U+0085 and the like, which
    JSON written with ensure_ascii=False (jsonl_bytes) keeps raw inside strings, and model output holds them."""
    return text.split("\n")


def canonical_digest(obj: Any) -> str:
    return content_digest(json.dumps(obj, sort_keys=True, separators=(",", ":")))


def content_digest(data: bytes | str) -> str:
    """The digest of a file's content: what a downstream phase records as its input."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]


SIDECAR_HEADER = "#bytes "


class ShardWriter:
    """Buffers records and writes them as immutable shard files of `flush_every` records, or of what arrived
    in `flush_s` seconds when that comes first (a slow generation still reaches the store regularly).

    Records already written by an earlier attempt survive a crash; those still buffered are redone on resume.
    """

    def __init__(self, phase: PhaseDir, stream: str, flush_every: int = 64, tag: str = "",
                 flush_s: float | None = None):
        self.phase, self.stream, self.flush_every = phase, stream, max(1, flush_every)
        self.tag, self.flush_s = tag, flush_s
        self.buffer: list[dict] = []
        self.written = 0
        self._since = time.monotonic()

    def write(self, record: dict) -> None:
        rid = record.get("id")
        if not isinstance(rid, str) or not rid or "\n" in rid:
            raise ValueError(f"every record needs a non-empty one-line string 'id', got {rid!r}")
        if not self.buffer:
            self._since = time.monotonic()
        self.buffer.append(record)
        if len(self.buffer) >= self.flush_every or (
                self.flush_s is not None and time.monotonic() - self._since >= self.flush_s):
            self.flush()

    def write_many(self, records: Iterable[dict]) -> None:
        for r in records:
            self.write(r)

    def flush(self) -> None:
        if not self.buffer:
            return
        stamp = f"{time.time_ns():020d}-{_secrets.token_hex(4)}"
        name = f"part-{self.tag + '-' if self.tag else ''}{stamp}"
        base = self.phase.key(self.stream, name)
        be = self.phase.backend
        env = env_secrets()
        data = jsonl_bytes(redact(r, env) for r in self.buffer)
        be.write_bytes(base + ".jsonl", data)
        # The sidecar comes second: a shard without one is still read (see PhaseDir.ids).
        be.write_bytes(base + ".ids", (f"{SIDECAR_HEADER}{len(data)}\n" + "\n".join(r["id"] for r in self.buffer)).encode())
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
    """One phase's directory inside a run (`name` "" is the run's root itself, e.g. `skyt1 eval -o DIR`)."""

    def __init__(self, backend: LocalBackend | S3Backend, name: str):
        self.backend, self.name = backend, name.strip("/")

    @property
    def uri(self) -> str:
        return f"{self.backend.uri}/{self.name}" if self.name else self.backend.uri

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.name, *parts) if p)

    def where(self, name: str) -> str:
        """The full location of a file of this phase, for messages."""
        return f"{self.uri}/{name}"

    def writer(self, stream: str = "records", flush_every: int = 64, tag: str = "",
               flush_s: float | None = None) -> ShardWriter:
        return ShardWriter(self, stream, flush_every, tag, flush_s)

    def _shard_sizes(self, stream: str) -> dict[str, int]:
        prefix = self.key(stream, "part-")
        return {k: n for k, n in self.backend.sizes(self.key(stream)).items()
                if k.startswith(prefix) and (k.endswith(".jsonl") or k.endswith(".ids"))}

    def _shards(self, stream: str) -> list[str]:
        return [k for k in self._shard_sizes(stream) if k.endswith(".jsonl")]

    def ids(self, stream: str = "records") -> set[str]:
        """Ids of every record already written to a stream (cheap: reads the sidecars). A sidecar whose
        recorded size disagrees with its shard (a shard emptied or replaced by hand) is not trusted: the
        shard itself is read."""
        done: set[str] = set()
        sizes = self._shard_sizes(stream)
        for shard, size in sizes.items():
            if not shard.endswith(".jsonl"):
                continue
            sidecar = shard[: -len(".jsonl")] + ".ids"
            ids = self._sidecar_ids(sidecar, size) if sidecar in sizes else None
            done.update(ids if ids is not None else (r["id"] for r in self._read_shard(shard)))
        return done

    def _sidecar_ids(self, key: str, shard_size: int) -> list[str] | None:
        try:
            lines = self.backend.read_bytes(key).decode().split("\n")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        if lines and lines[0].startswith(SIDECAR_HEADER):
            recorded = lines.pop(0)[len(SIDECAR_HEADER):]
            if not recorded.isdigit() or int(recorded) != shard_size:
                log.warning("%s/%s does not match its shard (size %s recorded, %d now): reading the shard",
                            self.backend.uri, key, recorded, shard_size)
                return None
        return [x for x in lines if x]

    def _read_shard(self, key: str) -> list[dict]:
        where = f"{self.backend.uri}/{key}"
        fix = "delete it and re-run the phase (it resumes without the deleted records)"
        try:
            text = self.backend.read_bytes(key).decode()
        except UnicodeDecodeError as e:
            raise StoreError(f"{where}: corrupt shard (not UTF-8: {e}); it was not written by skyt1's atomic "
                             f"writer. {fix[0].upper()}{fix[1:]}") from None
        out = []
        for n, line in enumerate(jsonl_lines(text), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(f"{where}:{n}: corrupt shard ({e}); it was not written by skyt1's atomic writer. "
                                 f"{fix[0].upper()}{fix[1:]}") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                what = "a JSON object without a string 'id'" if isinstance(rec, dict) else f"a JSON {type(rec).__name__}"
                raise StoreError(f"{where}:{n}: malformed record ({what}, expected an object with an 'id'); {fix}")
            out.append(rec)
        return out

    def records(self, stream: str = "records", *, latest: bool = False) -> Iterator[dict]:
        """Every record of a stream, each id once, in id order. The first shard written wins, or with
        `latest` the last (for streams that record attempts, such as `failed`)."""
        seen: dict[str, dict] = {}
        for shard in self._shards(stream):
            for r in self._read_shard(shard):
                if latest:
                    seen[r["id"]] = r
                else:
                    seen.setdefault(r["id"], r)
        for key in sorted(seen):
            yield seen[key]

    def count(self, stream: str = "records") -> int:
        return len(self.ids(stream))

    def streams(self) -> list[str]:
        """Record streams: `<phase>/<stream>/part-*.jsonl` only, not other JSONL files (logs, exports)."""
        streams = set()
        depth = len(self.key("x").split("/"))  # where a stream name sits in a key
        for key in self.backend.list(self.name):
            parts = key.split("/")
            if len(parts) == depth + 1 and parts[-1].startswith("part-") and parts[-1].endswith(".jsonl"):
                streams.add(parts[-2])
        return sorted(streams)

    def files(self) -> list[str]:
        """Every key this phase holds, relative to the phase directory."""
        strip = len(self.name) + 1 if self.name else 0
        return [k[strip:] for k in self.backend.list(self.name)]

    def write_json(self, name: str, obj: Any) -> None:
        self.backend.write_bytes(self.key(name), json.dumps(redact(obj), indent=2, sort_keys=True).encode())

    def read_json(self, name: str) -> Any:
        data = self.backend.read_bytes(self.key(name))
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(f"{self.where(name)}: not valid JSON ({e}); it was not written by skyt1. Delete it "
                             "and re-run the phase") from None

    def exists(self, name: str) -> bool:
        return self.backend.exists(self.key(name))

    def write_text(self, name: str, text: str) -> None:
        self.backend.write_bytes(self.key(name), redact_text(text).encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Binary or verbatim content (not redacted): model files, exports already redacted."""
        self.backend.write_bytes(self.key(name), data)

    def read_bytes(self, name: str) -> bytes:
        return self.backend.read_bytes(self.key(name))

    def read_text(self, name: str) -> str:
        data = self.backend.read_bytes(self.key(name))
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            raise StoreError(f"{self.where(name)}: not UTF-8 text ({e})") from None

    def delete(self, name: str) -> None:
        self.backend.delete(self.key(name))

    def output_digest(self, stream: str = "records") -> str:
        """Content digest of a stream: independent of shard boundaries and write order."""
        h = hashlib.sha256()
        for r in self.records(stream):
            h.update(json.dumps(r, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def clear(self, keep: Iterable[str] = ()) -> None:
        """Remove everything the phase wrote (for --force), except the files named in `keep`."""
        kept = {self.key(k) for k in keep}
        for key in self.backend.list(self.name):
            if key not in kept:
                self.backend.delete(key)

    def sweep(self) -> list[str]:
        """Remove leftovers of atomic writes that were killed (see `sweep_temps`)."""
        return self.backend.sweep(self.name)

    def lock(self, tag: str = "", command: str = "") -> PhaseLock:
        return PhaseLock(self, tag, command)

    # ---------------------------------------------------------------------------------------- manifest

    def _state(self, name: str) -> dict | None:
        try:
            m = self.read_json(name)
        except FileNotFoundError:
            return None
        if not isinstance(m, dict):
            raise StoreError(f"{self.where(name)}: expected a JSON object, found a {type(m).__name__}; it was not "
                             "written by skyt1. Delete it and re-run the phase")
        return m

    def manifest(self) -> dict | None:
        return self._state(DONE)

    def partial(self) -> dict | None:
        return self._state(PARTIAL)

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
        self.backend.delete(self.key(DONE))


# --------------------------------------------------------------------------------------------- locks


class PhaseLock:
    """One writer per phase directory (or per shard of one): a lease file `_LOCK[-TAG].json` that the holder
    refreshes every `ttl_s / 4` seconds. Another writer refuses while the lease is live; a lease is dead when
    its process is gone (same host) or it was not refreshed for `ttl_s` seconds (another host), so a killed
    writer never holds a phase for ever. Works through any backend (local disk, mounted bucket, S3).

    An untagged lock conflicts with every lock of the phase; a tagged one (a shard) with the untagged lock
    and its own tag only, so the shards of one phase write side by side."""

    def __init__(self, phase: PhaseDir, tag: str = "", command: str = "", ttl_s: float | None = None):
        self.phase, self.tag, self.command = phase, tag, command
        self.name = f"_LOCK{'-' + tag if tag else ''}.json"
        self.ttl_s = ttl_s or float(os.environ.get("SKYT1_LOCK_TTL_S") or 60)
        self.token = f"{_HOST}-{os.getpid()}-{_secrets.token_hex(6)}"
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {"owner": self.token, "host": _HOST, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                "heartbeat_at": time.time(), "ttl_s": self.ttl_s, "command": self.command}

    def _live(self, rec: dict) -> bool:
        if rec.get("host") == _HOST and isinstance(rec.get("pid"), int):
            return pid_alive(rec["pid"], rec.get("pid_start"))
        return time.time() - float(rec.get("heartbeat_at") or 0) < float(rec.get("ttl_s") or self.ttl_s)

    def _holders(self) -> list[tuple[str, dict]]:
        names = [f for f in self.phase.files() if "/" not in f and f.startswith("_LOCK") and f.endswith(".json")]
        if self.tag:
            names = [n for n in names if n in ("_LOCK.json", self.name)]
        out = []
        for n in names:
            try:
                rec = self.phase.read_json(n)
            except (FileNotFoundError, StoreError):
                continue
            if isinstance(rec, dict) and rec.get("owner") != self.token and self._live(rec):
                out.append((n, rec))
        return out

    def _refuse(self, rec: dict) -> StoreError:
        age = time.time() - float(rec.get("heartbeat_at") or 0)
        who = f"host {rec.get('host')} pid {rec.get('pid')}" + (f" ({rec['command']})" if rec.get("command") else "")
        return StoreError(
            f"{self.phase.uri} is being written by another process ({who}, alive {age:.0f} s ago); wait for it to "
            f"finish, or stop it. A writer that was killed releases the lock within {self.ttl_s:.0f} s")

    def acquire(self, settle_s: float = 0.2) -> PhaseLock:
        live = self._holders()
        if live:
            raise self._refuse(live[0][1])
        if isinstance(self.phase.backend, LocalBackend):
            self._create_local()
        else:
            self.phase.write_json(self.name, self._record())
            time.sleep(settle_s)  # two writers that both saw no lock: the later write wins, the earlier sees it
        try:
            now = self.phase.read_json(self.name)
        except FileNotFoundError:
            now = {}
        if now.get("owner") != self.token or self._holders():
            theirs = now if now.get("owner") != self.token else self._holders()[0][1]
            if now.get("owner") == self.token:
                self.phase.delete(self.name)
            raise self._refuse(theirs)
        self._thread = threading.Thread(target=self._beat, name=f"lock {self.phase.uri}", daemon=True)
        self._thread.start()
        return self

    def _create_local(self) -> None:
        """On a local disk the lock file is created exclusively (O_EXCL): of two writers, one wins at once.
        A dead writer's lock (already judged dead by `_holders`) is replaced."""
        path = self.phase.backend.local_path(self.phase.key(self.name))
        data = json.dumps(redact(self._record()), indent=2, sort_keys=True).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(2):
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                except FileExistsError:
                    path.unlink(missing_ok=True)  # dead: `_holders` found no live owner
                    continue
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                return
        except OSError as e:
            raise _os_error(str(path), e, "write") from None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                rec = self.phase.read_json(self.name)
                if rec.get("owner") != self.token:
                    self.lost = True
                    log.error("%s: the lock was taken over by %s pid %s", self.phase.uri, rec.get("host"), rec.get("pid"))
                    return
                self.phase.write_json(self.name, self._record())
            except (StoreError, FileNotFoundError, OSError) as e:  # the next beat tries again
                log.warning("%s: could not refresh the lock: %s", self.phase.uri, e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.phase.read_json(self.name).get("owner") == self.token:
                self.phase.delete(self.name)
        except (FileNotFoundError, StoreError, OSError):
            pass

    def __enter__(self) -> PhaseLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunDir:
    """A run: a set of phase directories under one root."""

    def __init__(self, uri: str | Path):
        self.backend = open_backend(uri)
        self.uri = self.backend.uri

    def phase(self, name: str) -> PhaseDir:
        return PhaseDir(self.backend, name)

    def local_path(self, key: str = "") -> Path:
        return self.backend.local_path(key)

    def exists(self) -> bool:
        """Whether anything has been written to this run."""
        return bool(self.backend.list(""))


def output_dir(uri: str | Path) -> PhaseDir:
    """A folder given on the command line (`skyt1 eval --output-dir`) as a phase directory of its own."""
    return RunDir(uri).phase("")


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

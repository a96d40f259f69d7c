"""Keep secrets out of records, manifests and logs.

Two nets: values of environment variables whose names look secret (OPENAI_API_KEY, HF_TOKEN,
AWS_SECRET_ACCESS_KEY, ...) are replaced wherever they appear inside a string, and strings shaped like
well-known credentials (OpenAI `sk-...`, Hugging Face `hf_...`, AWS access key ids, bearer tokens) are
replaced even when they did not come from the environment. Dict entries whose key names a secret are
dropped to a marker. Keys ending in `_env` hold variable *names* and are kept, and so do keys that count
something (`num_api_keys`, `n_tokens`) and numbers or booleans (a secret is text).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

MARK = "<redacted>"

# A name is split into lower-case words (snake, kebab, dotted and camelCase); whole words decide, so
# `HF_TOKEN` and `api_key` are secret while `max_tokens`, `token_ids` and `tokenizer` are not.
_SECRET_WORDS = {"secret", "password", "passwd", "passphrase", "credential", "credentials", "authorization",
                 "apikey"}
_SECRET_PAIRS = {("api", "key"), ("api", "keys"), ("private", "key"), ("secret", "key")}
# `<word>_token` is secret except tokenizer special tokens (`eos_token: "<|endoftext|>"` is configuration).
_SPECIAL_TOKENS = {"eos", "bos", "pad", "unk", "sep", "cls", "mask", "stop", "start", "end", "special",
                   "image", "video", "audio", "think"}
_COUNT_WORDS = {"num", "n", "count", "max", "min", "total"}  # `num_api_keys` counts keys, it holds none
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"  # OpenAI and compatible
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})"
)
_MIN_SECRET_LEN = 8  # shorter env values (e.g. "1") would redact ordinary text


def _words(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a dict key or variable name holds a secret value (names ending in `_env` hold names)."""
    words = _words(key)
    if not words or words[-1] in ("env", "envs") or words[0] in _COUNT_WORDS or words[-1] == "count":
        return False
    if _SECRET_WORDS.intersection(words) or _SECRET_PAIRS.intersection(zip(words, words[1:], strict=False)):
        return True
    return words[-1] == "token" and (len(words) == 1 or words[-2] not in _SPECIAL_TOKENS)


def _is_secret_env_name(name: str) -> bool:
    # Environment variables named *_KEY (SKYT1_DEMO_KEY, ANTHROPIC_KEY) are secrets too; dict keys such as
    # `row_key` are not, which is why this is wider than is_secret_key.
    return is_secret_key(name) or _words(name)[-1:] == ["key"]


def _env_secrets() -> list[str]:
    vals = {v for k, v in os.environ.items() if len(v) >= _MIN_SECRET_LEN and _is_secret_env_name(k)}
    return sorted(vals, key=len, reverse=True)


def redact_text(text: str, env_secrets: list[str] | None = None) -> str:
    for value in env_secrets if env_secrets is not None else _env_secrets():
        if value in text:
            text = text.replace(value, MARK)
    return _SECRET_SHAPES.sub(MARK, text)


def env_secrets() -> list[str]:
    """The secret values present in the environment now; pass to `redact` to scrub many objects at once."""
    return _env_secrets()


def redact(obj: Any, _env: list[str] | None = None) -> Any:
    """A copy of `obj` (JSON-like) with every secret replaced by a marker."""
    env = _env if _env is not None else _env_secrets()
    if isinstance(obj, dict):
        return {k: (MARK if isinstance(k, str) and is_secret_key(k) and v not in (None, "", [], {})
                    and not isinstance(v, bool | int | float) else redact(v, env)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, env) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, env)
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message (and traceback) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


def _scrub(record: logging.LogRecord) -> None:
    msg = record.getMessage()
    clean = redact_text(msg)
    if clean != msg:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)


def install_log_redaction() -> None:
    """Scrub every log record, whichever logger made it and whichever handler is added later."""
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_skyt1_redacting", False):
        return

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _scrub(record)
        return record

    redacting_factory._skyt1_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)

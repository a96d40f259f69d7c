"""Keep secrets out of records, manifests and logs.

Two nets: values of environment variables whose names look secret (OPENAI_API_KEY, HF_TOKEN,
AWS_SECRET_ACCESS_KEY, ...) are replaced wherever they appear inside a string, and strings shaped like
well-known credentials (OpenAI `sk-...`, Hugging Face `hf_...`, AWS access key ids, bearer tokens) are
replaced even when they did not come from the environment. Dict entries whose key names a secret are
dropped to a marker. Keys ending in `_env` hold variable *names* and are kept.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

MARK = "<redacted>"
# Whole name parts only: HF_TOKEN and api_key are secret, max_tokens and tokenizer are not.
_SECRET_NAME = re.compile(
    r"(?:^|[_\-])(api[_\-]?key|token|secret|password|passwd|credentials?|authorization|private[_\-]?key)(?:$|[_\-])",
    re.I,
)
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"  # OpenAI and compatible
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})"
)
_MIN_SECRET_LEN = 8  # shorter env values (e.g. "1") would redact ordinary text


def _env_secrets() -> list[str]:
    vals = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(vals, key=len, reverse=True)


def redact_text(text: str, env_secrets: list[str] | None = None) -> str:
    for value in env_secrets if env_secrets is not None else _env_secrets():
        if value in text:
            text = text.replace(value, MARK)
    return _SECRET_SHAPES.sub(MARK, text)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key)) and not key.endswith("_env") and not key.endswith("_envs")


def redact(obj: Any, _env: list[str] | None = None) -> Any:
    """A copy of `obj` (JSON-like) with every secret replaced by a marker."""
    env = _env if _env is not None else _env_secrets()
    if isinstance(obj, dict):
        return {k: (MARK if isinstance(k, str) and is_secret_key(k) and v not in (None, "", [])
                    else redact(v, env)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, env) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, env)
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    root = logging.getLogger()
    for handler in root.handlers or []:
        handler.addFilter(RedactingFilter())
    root.addFilter(RedactingFilter())

"""Secrets never reach a record, manifest or log line; ordinary knobs that merely mention tokens survive."""

from __future__ import annotations

import logging

import pytest

from skyt1.redact import MARK, RedactingFilter, install_log_redaction, is_secret_key, redact, redact_text

OPENAI = "sk-proj-" + "Ab3" * 10
HF = "hf_" + "Zx9" * 9


@pytest.mark.parametrize("key", ["max_tokens", "tokenizer", "api_key_env", "prompt_tokens", "token_ids",
                                 "eos_token", "pad_token", "keys_file", "row_key", "tokens", "num_api_keys",
                                 "n_api_keys", "api_key_count", "max_token"])
def test_ordinary_keys_are_kept(key):
    assert not is_secret_key(key)
    assert redact({key: "value-123456789"}) == {key: "value-123456789"}


@pytest.mark.parametrize("key", ["api_key", "hf_token", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "apiKey",
                                 "x-api-key", "Authorization", "token", "access_token", "password",
                                 "private_key", "AWS_SESSION_TOKEN"])
def test_secret_keys_are_redacted(key):
    assert is_secret_key(key)
    assert redact({key: "plain-value-123", "other": 1}) == {key: MARK, "other": 1}


def test_counts_and_numbers_under_secret_names_are_kept():
    # The OpenAI engine's info: how many keys it rotates is configuration, not a secret.
    assert redact({"num_api_keys": 3, "api_keys": ["sk-" + "a" * 20], "token": 7, "password": True}) == {
        "num_api_keys": 3, "api_keys": MARK, "token": 7, "password": True}


def test_empty_secret_fields_stay_empty_and_structure_is_kept():
    assert redact({"api_key": None, "hf_token": ""}) == {"api_key": None, "hf_token": ""}
    assert redact({"a": [{"api_key": "k" * 10}, ("x", 2)], "n": 3.5}) == {"a": [{"api_key": MARK}, ["x", 2]], "n": 3.5}


def test_env_values_and_credential_shapes_are_scrubbed_from_text(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("SKYT1_DEMO_KEY", "demo-0123456789")
    monkeypatch.setenv("SHORT_TOKEN", "1")  # too short to redact ordinary text
    text = f"a={OPENAI} b=correct horse battery staple c={HF} d=AKIAABCDEFGHIJKLMNOP e=Bearer abcdefghij0123456789 " \
           "f=demo-0123456789 g=1 max_tokens=16384"
    out = redact_text(text)
    assert out == f"a={MARK} b={MARK} c={MARK} d={MARK} e={MARK} f={MARK} g=1 max_tokens=16384"
    assert redact({"note": text})["note"] == out


def test_variable_names_are_not_mistaken_for_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY_ENV", "OPENAI_API_KEY")  # holds a name, not a key
    assert redact({"api_key_env": "OPENAI_API_KEY"}) == {"api_key_env": "OPENAI_API_KEY"}


def test_logging_filter_scrubs_messages_arguments_and_tracebacks(monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", HF)
    logger = logging.getLogger("skyt1.test.redact")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("calling with key %s and token %s", OPENAI, HF)
        try:
            raise RuntimeError(f"auth failed for {OPENAI}")
        except RuntimeError:
            logger.exception("request failed")
    assert OPENAI not in caplog.text and HF not in caplog.text
    assert f"calling with key {MARK} and token {MARK}" in caplog.text
    assert "RuntimeError: auth failed for <redacted>" in caplog.text


def test_installed_redaction_covers_handlers_added_later(monkeypatch, caplog):
    original = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        logger = logging.getLogger("skyt1.test.later")
        with caplog.at_level(logging.INFO, logger=logger.name):  # caplog's handler arrives after install
            logger.warning("key=%s", OPENAI)
        assert OPENAI not in caplog.text and f"key={MARK}" in caplog.text
    finally:
        logging.setLogRecordFactory(original)
        for h in logging.getLogger().handlers:
            for f in [f for f in h.filters if isinstance(f, RedactingFilter)]:
                h.removeFilter(f)

"""Shared fixtures: nothing reaches the Hugging Face hub; a real S3-compatible server on loopback."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from .s3server import FaultProxy, MotoServer

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# A phase that reads a recipe knob skyt1.phases does not declare for it fails (in-process and in the
# `skyt1` subprocesses tests start): its digest would not cover that knob.
os.environ["SKYT1_STRICT_KNOBS"] = "1"

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen2 chat model built offline (one per test session)."""
    from skyt1.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server on 127.0.0.1 (one per test session; tests use their own buckets)."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """Environment for boto3 pointed at the loopback server with dummy credentials, isolated from any
    real AWS configuration of the machine. Returns the endpoint; returns it as `env` for subprocesses too."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(var, raising=False)
    settings = {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
    }
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    return s3_server.endpoint


@pytest.fixture
def s3_bucket(s3_env):
    """A fresh bucket on the loopback server; returns an `s3://bucket/run` URI."""
    import boto3

    name = f"skyt1-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=name)
    return f"s3://{name}/run"


@pytest.fixture
def fault_proxy(s3_env, monkeypatch):
    """Factory: a fault-injecting proxy in front of the loopback server, made the S3 endpoint."""
    proxies = []

    def make(**faults) -> FaultProxy:
        proxy = FaultProxy(s3_env, **faults).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        return proxy

    yield make
    for proxy in proxies:
        proxy.__exit__(None, None, None)

"""Fixtures of the blob store contract suite: one moto S3 server per test session (per xdist worker)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parafe.storage.base import BlobStore
from parafe.storage.fs import FilesystemBlobStore

S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<free port>`` of a ThreadedMotoServer living for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_params(endpoint: str, tmp_path: Path) -> dict[str, Any]:
    """Constructor arguments of an S3 store on a fresh bucket (also used by the subprocess memory test)."""
    return {
        "bucket": f"parafe-test-{uuid.uuid4().hex[:12]}",
        "endpoint_url": endpoint,
        "tmp_dir": str(tmp_path / "s3-spool"),
        **S3_CREDENTIALS,
    }


@pytest.fixture(params=["fs", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_params(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if store_kind == "fs":
        return {"root": str(tmp_path / "blobs")}
    return s3_params(request.getfixturevalue("moto_endpoint"), tmp_path)


def make_store(kind: str, params: dict[str, Any], **extra: Any) -> BlobStore:
    if kind == "fs":
        return FilesystemBlobStore(Path(params["root"]))
    from parafe.storage.s3 import S3BlobStore

    kwargs = dict(params, **extra)
    bucket = kwargs.pop("bucket")
    store = S3BlobStore(bucket, **kwargs)
    store.ensure_bucket()
    return store


@pytest.fixture
def store(store_kind: str, store_params: dict[str, Any]) -> BlobStore:
    return make_store(store_kind, store_params)

"""Parafe storage package: write-once, SHA-256-addressed blob stores (filesystem by default, S3 at scale).

Use :func:`open_store` to get the store the settings ask for; see :mod:`parafe.storage.base` for the rules
and ``docs/storage.md`` for the layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parafe.storage.base import (
    BlobError,
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    BlobRef,
    BlobStore,
    InvalidBlobId,
)
from parafe.storage.spool import HashingSpool, SizeLimitExceeded, SpooledFile

if TYPE_CHECKING:
    from parafe.config import Settings

__all__ = [
    "BlobError",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobRef",
    "BlobStore",
    "HashingSpool",
    "InvalidBlobId",
    "SizeLimitExceeded",
    "SpooledFile",
    "open_store",
]


def open_store(settings: Settings) -> BlobStore:
    """The blob store configured by ``settings.storage`` (``fs``: ``settings.blob_dir``; ``s3``: ``s3_*``)."""
    if settings.storage == "s3":
        from parafe.storage.s3 import S3BlobStore  # boto3 is only imported when used

        return S3BlobStore(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            tmp_dir=settings.tmp_dir,
        )
    from parafe.storage.fs import FilesystemBlobStore

    return FilesystemBlobStore(settings.blob_dir)

"""S3 blob store (boto3): objects ``<prefix><sha256>``, written with conditional puts.

- Write-once: ``PutObject`` / ``CompleteMultipartUpload`` with ``If-None-Match: *``; 412 means the object is
  already there (same name, hence same bytes), which is success. A 409 ``ConditionalRequestConflict`` (two
  writers at once) is resolved by waiting until the object is visible.
- Files up to ``multipart_threshold`` (64 MiB) go in one ``PutObject`` streamed from the file, with
  ``ChecksumSHA256`` (AWS verifies it server-side; moto 5.2.5 does not) and a ``sha256`` user metadata.
  Bigger files use our own multipart upload (parts streamed from file slices, bounded memory), because
  boto3's ``upload_fileobj`` (s3transfer 0.19) does not accept ``IfNoneMatch``; the conditional header is
  sent on ``CompleteMultipartUpload`` (moto honours it, as AWS does).
- Objects larger than 1 MiB are looked up (``HEAD``) first, so a duplicate is not uploaded twice.
- A duplicate put refreshes ``LastModified`` (in-place copy with new metadata) when the object is older than
  ``refresh_after`` seconds, so the orphan sweeper's grace period holds (see :mod:`parafe.storage.base`).
- Client settings for S3-compatible servers: path-style addressing when an endpoint URL is given, and
  checksums only "when required" (newer boto3 otherwise sends CRC trailers that some servers refuse).
Leftover multipart uploads of crashed writers are best removed with a bucket lifecycle rule
(``AbortIncompleteMultipartUpload``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from parafe.storage.base import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    BlobRef,
    BlobStore,
    check_sha256,
    file_sha256,
    is_sha256,
)
from parafe.storage.spool import CHUNK_SIZE, SPOOL_PREFIX

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_MAX_COPY_SIZE = 5 * 1024 * MIB


class _AlreadyThere(Exception):
    pass


def _status(exc: ClientError) -> tuple[int, str]:
    meta = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0)), str(exc.response.get("Error", {}).get("Code", ""))


class _FileSlice(io.RawIOBase):
    """A seekable read-only window ``[offset, offset + length)`` of an open file (one multipart part)."""

    def __init__(self, fh: BinaryIO, offset: int, length: int) -> None:
        self._fh, self._offset, self._length, self._pos = fh, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + pos))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._length - self._pos)
        if n <= 0:
            return 0
        self._fh.seek(self._offset + self._pos)
        got = self._fh.readinto(view[:n])  # type: ignore[attr-defined]
        self._pos += got or 0
        return got or 0


class _BodyReader(io.RawIOBase):
    """Raw reader over a botocore ``StreamingBody``."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3BlobStore(BlobStore):
    """Blobs as objects of an S3 (or S3-compatible) bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "blobs/",
        tmp_dir: Path | str | None = None,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 16 * MIB,
        refresh_after: float = 3600.0,
        client: Any = None,
    ) -> None:
        if part_size < 5 * MIB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.refresh_after = refresh_after
        self._tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir()) / "parafe-spool"
        self._tmp.mkdir(parents=True, exist_ok=True)
        if client is None:
            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )
        self.client = client
        self.region = region

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, prefix={self.prefix!r})"

    @property
    def spool_dir(self) -> Path:
        return self._tmp

    def _key(self, sha256: str) -> str:
        return self.prefix + check_sha256(sha256)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (development and tests)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _status(exc)[0] != 404:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            self.client.create_bucket(**kwargs)

    # -- writing

    def put_file(self, path: Path, *, sha256: str | None = None, move: bool = False) -> BlobRef:
        path = Path(path)
        if sha256 is not None:
            sha256 = check_sha256(sha256)
        if sha256 is None or not move:
            # Hash here: unknown, or announced for a file we only copy (trust-but-verify, one local read).
            actual, size = file_sha256(path)
            if sha256 is not None and actual != sha256:
                raise BlobIntegrityError(f"content of {path} has sha256 {actual}, not {sha256}")
            sha256 = actual
        else:
            size = path.stat().st_size
        key = self._key(sha256)
        try:
            if size > MIB and self._head(key) is not None:
                raise _AlreadyThere
            if size <= self.multipart_threshold:
                self._put_single(path, key, sha256, size)
            else:
                self._put_multipart(path, key, sha256, size)
        except _AlreadyThere:
            self._refresh(key, sha256)
        if move:
            path.unlink(missing_ok=True)
        return BlobRef(sha256, size)

    def _put_single(self, path: Path, key: str, sha256: str, size: int) -> None:
        with open(path, "rb") as fh:
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=fh,
                    ContentLength=size,
                    ContentType="application/octet-stream",
                    Metadata={"sha256": sha256},
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                self._conditional_failure(exc, key)

    def _put_multipart(self, path: Path, key: str, sha256: str, size: int) -> None:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream", Metadata={"sha256": sha256}
        )
        upload_id = upload["UploadId"]
        try:
            parts = []
            with open(path, "rb") as fh:
                for number, offset in enumerate(range(0, size, self.part_size), start=1):
                    length = min(self.part_size, size - offset)
                    result = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=_FileSlice(cast(BinaryIO, fh), offset, length),
                        ContentLength=length,
                    )
                    parts.append({"ETag": result["ETag"], "PartNumber": number})
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                self._conditional_failure(exc, key)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _conditional_failure(self, exc: ClientError, key: str) -> None:
        status, code = _status(exc)
        if status == 412 or code == "PreconditionFailed":
            raise _AlreadyThere from None
        if status == 409 and code == "ConditionalRequestConflict":
            # Another writer of the same key is finishing; its object has our bytes.
            for _ in range(50):
                if self._head(key) is not None:
                    raise _AlreadyThere from None
                time.sleep(0.1)
        raise exc

    def _refresh(self, key: str, sha256: str) -> None:
        head = self._head(key)
        if head is None:
            return
        now = dt.datetime.now(dt.UTC)
        age = (now - head["LastModified"]).total_seconds()
        if age < self.refresh_after or head.get("ContentLength", 0) > _MAX_COPY_SIZE:
            return
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                ContentType="application/octet-stream",
                Metadata={"sha256": sha256, "refreshed": now.isoformat(timespec="seconds")},
            )
        except ClientError as exc:
            log.warning("could not refresh LastModified of %s: %s", key, exc)

    # -- reading

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _status(exc)[0] == 404 or _status(exc)[1] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def open(self, sha256: str) -> BinaryIO:
        key = self._key(sha256)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc)[0] == 404 or _status(exc)[1] == "NoSuchKey":
                raise BlobNotFound(sha256) from None
            raise
        return cast(BinaryIO, io.BufferedReader(_BodyReader(response["Body"]), buffer_size=CHUNK_SIZE))

    def exists(self, sha256: str) -> bool:
        return self._head(self._key(sha256)) is not None

    def stat(self, sha256: str) -> BlobInfo:
        sha256 = check_sha256(sha256)
        head = self._head(self._key(sha256))
        if head is None:
            raise BlobNotFound(sha256)
        return BlobInfo(sha256, int(head["ContentLength"]), head["LastModified"])

    # -- enumeration and sweeping

    def _list(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            yield from page.get("Contents", [])

    def iter_refs(self) -> Iterator[str]:
        for obj in self._list():
            name = obj["Key"][len(self.prefix):]
            if is_sha256(name):
                yield name

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for obj in self._list():
            name = obj["Key"][len(self.prefix):]
            if is_sha256(name):
                yield BlobInfo(name, int(obj["Size"]), obj["LastModified"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def cleanup_tmp(self, older_than: float = 3600.0) -> int:
        limit = time.time() - older_than
        removed = 0
        for entry in os.scandir(self._tmp):
            if not entry.name.startswith(SPOOL_PREFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    removed += 1
        return removed

"""An offsite target in an S3-compatible bucket, through boto3 (the `s3` extra).

Credentials come from boto3's usual chain only (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a
profile in ~/.aws, an instance role); the endpoint of a non-AWS server from the configuration,
`--endpoint-url` or AWS_ENDPOINT_URL. Nothing here stores or prints them.

After an upload the object is read back (GET) and re-hashed: S3-compatible servers differ in
which checksums they keep and return (ETags of multipart uploads are not digests at all), so
re-reading is the one check that means the same on every server, and the same as on a drive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store.codecs import READ_CHUNK
from store.offsite import OffsiteError, check_key, expect, hash_chunks

MISSING = ("NoSuchKey", "404", "NotFound")


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise OffsiteError("S3 targets need boto3: pip install 'dumpledger[s3]'") from None
    return boto3


class S3Target:
    def __init__(
        self, url: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise OffsiteError(f"offsite URL {url!r} names no bucket: use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self._client = _boto3().client("s3", endpoint_url=endpoint_url, region_name=region)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, exc: Exception, what: str) -> OffsiteError:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return OffsiteError(
            f"{self.location}{where}: cannot {what}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}; check the bucket, the endpoint "
            "and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws)"
        )

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def list(self, prefix: str) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    out[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
        except self._errors() as exc:
            raise self._fail(exc, "list the objects") from None
        return out

    def put_file(self, key: str, source: Path, *, sha256: str, size: int) -> None:
        try:
            self._client.upload_file(str(source), self.bucket, self._key(key))
        except self._errors() as exc:
            raise self._fail(exc, f"upload {key}") from None
        try:
            expect(self.location, key, self.hash(key), sha256, size)
        except OffsiteError:
            self._delete(key)
            raise

    def _delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except self._errors():
            pass  # the mismatch is what the caller must hear about

    def hash(self, key: str) -> tuple[str, int] | None:
        try:
            return hash_chunks(self.get_chunks(key))
        except _Missing:
            return None

    def get_chunks(self, key: str) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            try:
                yield from body.iter_chunks(READ_CHUNK)
            finally:
                body.close()
        except self._errors() as exc:
            if _code(exc) in MISSING:
                raise _Missing(f"{self.location}: {key} is missing") from None
            raise self._fail(exc, f"read {key}") from None

    def read(self, key: str) -> bytes | None:
        try:
            return b"".join(self.get_chunks(key))
        except _Missing:
            return None

    def replace(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except self._errors() as exc:
            raise self._fail(exc, f"write {key}") from None
        expect(self.location, key, self.hash(key), hashlib.sha256(data).hexdigest(), len(data))


class _Missing(OffsiteError):
    """The object does not exist."""


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))

"""One contract, both offsite targets: a directory and an S3 bucket (moto's server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.offsite import DirectoryTarget, OffsiteCorrupted, OffsiteTarget, open_target
from store.s3 import S3Target
from tests.s3server import S3_ENV, make_bucket, moto_server

DATA = os.urandom(200_000) + b"x" * 3_000_000
KEY = "store/sha256/ab/" + "ab" * 32 + ".sql.gz"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(params=["directory", "s3"])
def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> OffsiteTarget:
    if request.param == "directory":
        return open_target(str(tmp_path / "drive" / "dumpledger"))
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    bucket = f"b-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    make_bucket(endpoint, bucket)
    return open_target(f"s3://{bucket}/team/prod", endpoint_url=endpoint)


def source_file(tmp_path: Path, data: bytes = DATA) -> tuple[Path, str]:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_put_list_hash_get(target: OffsiteTarget, tmp_path: Path) -> None:
    path, sha = source_file(tmp_path)
    assert target.list("store/") == {}
    target.put_file(KEY, path, sha256=sha, size=len(DATA))
    assert target.list("store/") == {KEY: len(DATA)}
    assert target.hash(KEY) == (sha, len(DATA))
    assert b"".join(target.get_chunks(KEY)) == DATA
    assert target.hash("store/sha256/ab/missing.sql.gz") is None


def test_an_upload_that_does_not_match_is_refused_and_removed(
    target: OffsiteTarget, tmp_path: Path
) -> None:
    path, _ = source_file(tmp_path)
    with pytest.raises(OffsiteCorrupted, match="SHA-256"):
        target.put_file(KEY, path, sha256="0" * 64, size=len(DATA))
    assert target.list("store/") == {}


def test_small_objects_are_replaced_whole(target: OffsiteTarget) -> None:
    key = "catalog/events.jsonl"
    assert target.read(key) is None
    target.replace(key, b'{"seq":1}\n')
    target.replace(key, b'{"seq":1}\n{"seq":2}\n')
    assert target.read(key) == b'{"seq":1}\n{"seq":2}\n'
    assert "store/" not in "".join(target.list("store/"))


def test_keys_cannot_leave_the_root(target: OffsiteTarget) -> None:
    with pytest.raises(ValueError, match="not a relative key"):
        target.hash("../outside")


def test_locations_name_no_credentials(tmp_path: Path, endpoint: str) -> None:
    assert DirectoryTarget(tmp_path).location == str(tmp_path)
    s3 = S3Target("s3://bucket/some/prefix/", endpoint_url=endpoint)
    assert s3.location == "s3://bucket/some/prefix"
    assert "testing" not in s3.location

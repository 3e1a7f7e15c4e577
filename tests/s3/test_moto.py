"""What the loopback S3 server and pyarrow's S3 filesystem do, pinned for the code built on them.

Object-storage publishing relies on these facts; a pyarrow or moto upgrade that changes one
fails here, by name, rather than somewhere inside a push.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests._s3 import S3, s3_filesystem


def test_the_fixture_gives_a_fresh_empty_bucket_and_fake_settings(s3: S3) -> None:
    assert s3.endpoint.startswith("http://127.0.0.1:")
    assert s3.uri == f"s3://{s3.bucket}/store"
    assert s3.fs.get_file_info(s3.bucket).type == pafs.FileType.Directory
    assert s3.fs.get_file_info(pafs.FileSelector(s3.bucket, recursive=True)) == []
    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


def test_output_stream_writes_whole_objects_and_overwrites(s3: S3) -> None:
    with s3.fs.open_output_stream(s3.path("a", "b.txt")) as out:
        out.write(b"one")
    assert s3.fs.open_input_file(s3.path("a", "b.txt")).read() == b"one"
    with s3.fs.open_output_stream(s3.path("a", "b.txt")) as out:  # a plain put replaces
        out.write(b"two")
    assert s3.fs.open_input_file(s3.path("a", "b.txt")).read() == b"two"
    info = s3.fs.get_file_info(s3.path("a"))
    assert info.type == pafs.FileType.Directory  # a prefix reads as a folder
    assert s3.fs.get_file_info(s3.path("missing")).type == pafs.FileType.NotFound


def test_from_uri_honours_aws_endpoint_url_but_the_constructor_does_not(s3: S3) -> None:
    with s3.fs.open_output_stream(s3.path("x.txt")) as out:
        out.write(b"x")
    fs, path = pafs.FileSystem.from_uri(f"{s3.uri}/x.txt")  # endpoint from AWS_ENDPOINT_URL
    assert path == s3.path("x.txt")
    assert fs.open_input_file(path).read() == b"x"
    # The constructor leaves the endpoint empty (AWS itself), whatever the environment says;
    # its options are visible, without a request, in what it pickles.
    assert _options(fs)["endpoint_override"] == s3.endpoint
    assert _options(pafs.S3FileSystem())["endpoint_override"] == ""


def _options(fs: pafs.S3FileSystem) -> dict[str, object]:
    options: dict[str, object] = fs.__reduce__()[1][0]  # type: ignore[index]
    return options


def test_parquet_round_trip_and_folder_copy(s3: S3, tmp_path: os.PathLike[str]) -> None:
    local = os.path.join(tmp_path, "tree")
    os.makedirs(os.path.join(local, "runs", "r1"))
    pq.write_table(pa.table({"x": [1, 2]}), os.path.join(local, "runs", "r1", "m.parquet"))
    pafs.copy_files(local, s3.path(), destination_filesystem=s3.fs)
    table = pq.read_table(s3.path("runs", "r1", "m.parquet"), filesystem=s3.fs)
    assert table.column("x").to_pylist() == [1, 2]


def test_conditional_puts_are_honoured(s3: S3) -> None:
    from botocore.exceptions import ClientError

    client = s3.client()
    key = f"{s3.prefix}/lock"
    client.put_object(Bucket=s3.bucket, Key=key, Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"2", IfNoneMatch="*")
    assert exists.value.response["Error"]["Code"] == "PreconditionFailed"
    assert exists.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    etag = client.head_object(Bucket=s3.bucket, Key=key)["ETag"]
    client.put_object(Bucket=s3.bucket, Key=key, Body=b"3", IfMatch=etag)
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"4", IfMatch=etag)
    assert stale.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"3"


def test_each_test_gets_its_own_bucket(s3: S3, moto_server: str) -> None:
    buckets = [
        info.path
        for info in s3_filesystem(moto_server).get_file_info(pafs.FileSelector("/"))
        if info.path.startswith("reprolog-test-")
    ]
    assert buckets == [s3.bucket]  # the earlier tests' buckets were deleted

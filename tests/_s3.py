"""A real S3 API on loopback for the tests: moto's server in its own process, one bucket per test.

Put tests under ``tests/s3/``, whose conftest exposes the fixtures, or bind them in a test
module (``moto_server = _s3.moto_server; s3 = _s3.s3``, as tests/test_engines.py does).
What they give:

- ``moto_server`` (session): ``python -m moto.server`` started as a subprocess on 127.0.0.1
  and a free port; its URL (``http://127.0.0.1:<port>``). One per pytest(-xdist) worker.
- ``s3`` (function): fake credentials, region and endpoint set in the environment for this
  test only (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
  ``AWS_ENDPOINT_URL``; the user's ``~/.aws`` files hidden), a fresh bucket, and an `S3` with
  the endpoint, the bucket, a ``pyarrow.fs.S3FileSystem`` for it and the ``s3://bucket/prefix``
  URI. The bucket is deleted after the test.

What works with pyarrow 26 against moto 5 (checked by ``tests/s3/test_moto.py``):

- ``pyarrow.fs.FileSystem.from_uri("s3://bucket/…")`` (and so ``pyarrow.dataset.dataset``
  given an ``s3://`` string) honours ``AWS_ENDPOINT_URL``; the ``S3FileSystem()``
  constructor does NOT: it needs ``endpoint_override=`` (a full ``http://host:port`` URL works,
  scheme included), else it goes to ``<bucket>.s3.<region>.amazonaws.com``.
- boto3 honours ``AWS_ENDPOINT_URL``.
- moto honours ``If-None-Match: *`` on PutObject (a second put of the key: 412
  ``PreconditionFailed``) and ``If-Match: <etag>`` (a stale ETag: 412).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
#: fake credentials: moto accepts any, and no real account can be reached with these
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass(frozen=True)
class S3:
    """One test's bucket on the loopback S3 server."""

    endpoint: str  # http://127.0.0.1:<port>
    bucket: str
    prefix: str  # a folder inside the bucket, no slashes at the ends
    fs: Any  # pyarrow.fs.S3FileSystem for the server

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix``: where a store lives."""
        return f"s3://{self.bucket}/{self.prefix}"

    def path(self, *parts: str) -> str:
        """A path for `fs` calls (``bucket/prefix/parts…``, no scheme)."""
        return "/".join([self.bucket, self.prefix, *parts])

    def client(self) -> Any:
        """A boto3 S3 client for the server (for what pyarrow cannot do: conditional puts)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


def s3_filesystem(endpoint: str) -> Any:
    """A pyarrow S3FileSystem for `endpoint`, with every setting explicit (none from env)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
        # a stopped server should fail a test quickly, not after retries
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        connect_timeout=5,
        request_timeout=30,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(endpoint: str) -> bool:
    """True once the server answers HTTP (any status: it is up)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        opener.open(endpoint + "/moto-api/", timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 in a subprocess (a real HTTP S3 API)."""

    def __init__(self, log: Path, *, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.env = env or {}  # extra settings of moto's, e.g. INITIAL_NO_AUTH_ACTION_COUNT
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, attempts: int = 3, timeout: float = 30.0) -> str:
        for _ in range(attempts):  # another process may take the free port first: retry
            port = _free_port()
            self.endpoint = f"http://127.0.0.1:{port}"
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={
                        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                        **self.env,
                    },
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _answers(self.endpoint):
                    return self.endpoint
                time.sleep(0.1)
            self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto server did not start; its log:\n{tail}")

    def requests(self, verb: str) -> int:
        """How many requests of this HTTP verb the server has logged so far."""
        lines = self.log.read_text(errors="replace").splitlines()
        return sum(f'"{verb} ' in line for line in lines)

    def kill(self) -> None:
        """SIGKILL, as a lost node or a crashed endpoint: no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The URL of a moto S3 server on loopback, for the whole test session (per worker)."""
    log = Path(tempfile.mkdtemp(prefix="reprolog-moto-")) / "moto.log"
    server = MotoServer(log)
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3]:
    """A fresh bucket on the loopback server; fake AWS settings in the environment for this test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    # never the user's credentials or config: only what is set here
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    fs = s3_filesystem(moto_server)
    bucket = f"reprolog-test-{uuid.uuid4().hex[:16]}"
    fs.create_dir(bucket)  # allow_bucket_creation: CreateBucket
    yield S3(endpoint=moto_server, bucket=bucket, prefix="store", fs=fs)
    # its objects, then the bucket (allow_bucket_deletion); a test that stopped the server or
    # broke the bucket leaves nothing to free
    with contextlib.suppress(OSError):
        fs.delete_dir(bucket)

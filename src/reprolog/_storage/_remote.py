"""A store location at a URI: an S3 bucket prefix, a shared filesystem folder, or any `pyarrow.fs`.

`open_remote(uri)` resolves the URI once through `pyarrow.fs.FileSystem.from_uri` (a plain path
or `file://` through `LocalFileSystem`) and returns a `RemoteStore`: small, blocking operations on
paths relative to the store root (`runs/<id>/run.json`, `blobs/sha256/..`), safe to call from
many threads at once. It is the only module that talks to an object store.

- Credentials and the endpoint come from where pyarrow (the AWS SDK) looks: the `AWS_*`
  environment variables (`AWS_ENDPOINT_URL` included), profiles (`AWS_PROFILE`), instance
  roles, and the URI's query options (`endpoint_override`, `region`, `scheme`, `access_key`...).
  `display_uri` is the form of a URI that may be shown, logged or recorded: no userinfo, no
  secret-looking query option. No other form leaves this module.
- Writes replace whole files: an S3 PUT is atomic by itself; on a filesystem a temp file beside
  the target is renamed over it, so a reader never sees half a file.
- `create_exclusive` creates an object only when none exists: `If-None-Match: *` on S3 (through
  boto3, which pyarrow cannot do; extra `reprolog[s3]`), `O_CREAT|O_EXCL` on a filesystem. It is
  what lets concurrent publishers commit the summary index without a server (`_remoteindex`).
- Every failure is a `RemoteStoreError`: one line naming the bucket (or folder) and the cause
  (missing bucket, access denied, endpoint unreachable), never a credential.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reprolog._errors import ArgumentError, RemoteStoreError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Query options whose values are secrets (pyarrow's S3 options and anything that looks like one).
_SECRET_OPTION = re.compile(r"key|secret|token|password|passwd|credential|auth|external_id", re.I)
# Environment variables whose values must never appear in a message.
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Timeouts (seconds) for S3 requests when the URI sets none: a dead endpoint fails in seconds.
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0


def is_uri(value: object) -> bool:
    """True for a `scheme://...` string other than `file://` (what `init(dir=)` must refuse)."""
    return (
        isinstance(value, str)
        and bool(_URI_SCHEME.match(value))
        and not value.lower().startswith("file://")
    )


def display_uri(uri: str | os.PathLike[str]) -> str:
    """The URI as it may be shown: no userinfo, no secret query option (`access_key`, ...)."""
    text = os.fspath(uri)
    if not _URI_SCHEME.match(text):
        return text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = [(k, v) for k, v in query if not _SECRET_OPTION.search(k)]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(kept), ""))


def _secrets_of(uri: str) -> list[str]:
    """Values that must never be printed: the URI's userinfo and secret options, AWS_* secrets."""
    out = [os.environ.get(name, "") for name in _SECRET_ENV]
    if _URI_SCHEME.match(uri):
        parts = urlsplit(uri)
        out += [parts.username or "", parts.password or ""]
        out += [v for k, v in parse_qsl(parts.query) if _SECRET_OPTION.search(k)]
    return [s for s in out if len(s) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@dataclass
class RemoteStore:
    """A store root on some filesystem; every path argument is relative to that root.

    Attributes:
        display: the URI as it may be shown (see `display_uri`).
        kind: ``"s3"``, ``"local"`` (a local or shared filesystem) or the URI's scheme.
        bucket: the S3 bucket, or the root folder for other kinds (for messages).
    """

    display: str
    kind: str
    bucket: str
    fs: pafs.FileSystem = field(repr=False)
    base: str = field(repr=False)
    _options: dict[str, Any] = field(repr=False, default_factory=dict)
    _secrets: list[str] = field(repr=False, default_factory=list)
    _client: Any = field(repr=False, default=None)
    _lock: threading.Lock = field(repr=False, default_factory=threading.Lock)

    def __str__(self) -> str:
        return self.display

    # -- paths and errors ------------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The filesystem path of `rel` (a store-relative path with `/` separators)."""
        rel = rel.strip("/")
        return f"{self.base}/{rel}" if rel else self.base

    def error(self, exc: BaseException, doing: str) -> RemoteStoreError:
        """A one-line RemoteStoreError for `exc`, met while `doing` something; no secrets."""
        text = " ".join(str(exc).split())
        low = text.lower()
        where = f"bucket '{self.bucket}'" if self.kind == "s3" else f"'{self.display}'"
        if any(s in low for s in ("no_such_bucket", "nosuchbucket", "bucket does not exist")):
            message = f"{doing}: bucket '{self.bucket}' does not exist ({self.display})"
        elif any(
            s in low
            for s in (
                "access_denied",
                "accessdenied",
                "invalid_access_key",
                "invalidaccesskey",
                "signature_does_not_match",
                "signaturedoesnotmatch",
                "forbidden",
                "expiredtoken",
                "expired_token",
                "no credentials",
                "unable to locate credentials",
            )
        ):
            message = (
                f"{doing}: access to {where} denied: check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) "
                "and the bucket's permissions"
            )
        elif any(
            s in low
            for s in (
                "network_connection",
                "could not connect",
                "couldn't connect",
                "connection refused",
                "connect timeout",
                "timed out",
                "could not resolve",
                "endpointconnectionerror",
                "connection was closed",
                "curlcode",
            )
        ):
            message = f"{doing}: cannot reach the object store holding {where}"
            if self.kind == "s3":
                message += f" ({self.display}; endpoint from AWS_ENDPOINT_URL or endpoint_override)"
        elif isinstance(exc, PermissionError):
            message = f"{doing}: permission denied on {where}"
        else:
            reason = re.sub(r"\s*\(Request ID: [^)]*\)", "", text)
            message = f"{doing} on {where}: {reason}"
        return RemoteStoreError(
            _scrub(message, self._secrets), uri=self.display, bucket=self.bucket
        )

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except RemoteStoreError:
            raise
        except (OSError, ValueError) as exc:
            raise self.error(exc, doing) from None

    # -- checks ----------------------------------------------------------------------------

    def check(self, *, create: bool = False) -> None:
        """Fail early, with one clean line, when the location cannot be used.

        Args:
            create: a filesystem target folder may be created (push); S3 buckets never are.
        """
        import pyarrow.fs as pafs

        if self.kind == "local":
            root = Path(self.base)
            if create:
                try:
                    root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise self.error(exc, "cannot create the store folder") from None
            if not root.is_dir():
                raise RemoteStoreError(
                    f"no store folder at '{self.display}'", uri=self.display, bucket=self.bucket
                )
            return
        with self._errors("cannot open the store"):
            info = self.fs.get_file_info(self.bucket if self.kind == "s3" else self.base)
        if self.kind == "s3" and info.type == pafs.FileType.NotFound:
            raise RemoteStoreError(
                f"bucket '{self.bucket}' does not exist ({self.display})",
                uri=self.display,
                bucket=self.bucket,
            )

    # -- reads -----------------------------------------------------------------------------

    def sizes(self, rel_dir: str, *, recursive: bool = True) -> dict[str, int]:
        """Every file under `rel_dir` (relative to the root) with its size; {} when none."""
        import pyarrow.fs as pafs

        root = self.path(rel_dir)
        with self._errors(f"cannot list {rel_dir or 'the store'}"):
            infos = self.fs.get_file_info(
                pafs.FileSelector(root, recursive=recursive, allow_not_found=True)
            )
        prefix = self.base + "/"
        return {
            info.path[len(prefix) :]: int(info.size or 0)
            for info in infos
            if info.type == pafs.FileType.File and info.path.startswith(prefix)
        }

    def subfolders(self, rel_dir: str) -> list[str]:
        """The names of the folders (S3: common prefixes) directly under `rel_dir`."""
        import pyarrow.fs as pafs

        with self._errors(f"cannot list {rel_dir or 'the store'}"):
            infos = self.fs.get_file_info(
                pafs.FileSelector(self.path(rel_dir), recursive=False, allow_not_found=True)
            )
        return sorted(info.base_name for info in infos if info.type == pafs.FileType.Directory)

    def size(self, rel: str) -> int | None:
        """The size of the file at `rel`, or None when there is none."""
        import pyarrow.fs as pafs

        with self._errors(f"cannot read {rel}"):
            info = self.fs.get_file_info(self.path(rel))
        return int(info.size or 0) if info.type == pafs.FileType.File else None

    def read_bytes(self, rel: str) -> bytes | None:
        """The whole file at `rel`, or None when there is none."""
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                data: bytes = f.read()
                return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if _is_not_found(exc):
                return None
            raise self.error(exc, f"cannot read {rel}") from None

    def open_input_file(self, rel: str) -> Any:
        """A seekable file (for `pyarrow.parquet.ParquetFile`); RemoteStoreError when missing."""
        with self._errors(f"cannot read {rel}"):
            return self.fs.open_input_file(self.path(rel))

    def download(self, rel: str, dest: Path) -> int:
        """Copy `rel` to the local `dest` atomically (temp file + rename); return its size."""
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            with (
                self._errors(f"cannot download {rel}"),
                self.fs.open_input_stream(self.path(rel)) as src,
                open(tmp, "wb") as out,
            ):
                while chunk := src.read(1 << 22):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return size

    # -- writes ----------------------------------------------------------------------------

    def _write(self, rel: str, source: Path | bytes) -> None:
        target = self.path(rel)
        with self._errors(f"cannot upload {rel}"):
            if self.kind == "local":
                folder = os.path.dirname(target)
                os.makedirs(folder, exist_ok=True)
                tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
                try:
                    if isinstance(source, bytes):
                        with open(tmp, "wb") as out:
                            out.write(source)
                    else:
                        _copy_file(source, tmp)
                    os.replace(tmp, target)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                return
            with self.fs.open_output_stream(target) as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with open(source, "rb") as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)

    def put_file(self, rel: str, local: Path) -> None:
        """Upload the local file as `rel`, replacing what is there as a whole."""
        self._write(rel, local)

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Write `data` as `rel`, replacing what is there as a whole."""
        self._write(rel, data)

    def delete(self, rel: str) -> None:
        """Remove the file at `rel`; a missing file is not an error."""
        import pyarrow.fs as pafs

        with self._errors(f"cannot delete {rel}"):
            if self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File:
                self.fs.delete_file(self.path(rel))

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create `rel` holding `data` only when no file is there; False when one already was.

        S3: a PUT with `If-None-Match: *` (boto3); a filesystem: `O_CREAT|O_EXCL` on a temp
        name's final link (the content is written first, then hard-linked, so a reader never
        sees an empty commit file).
        """
        if self.kind == "local":
            return self._create_exclusive_local(rel, data)
        if self.kind != "s3":
            raise RemoteStoreError(
                f"conditional writes are not supported on {self.kind}:// stores "
                f"({self.display}); use s3:// or a filesystem path",
                uri=self.display,
                bucket=self.bucket,
            )
        client = self._s3_client()
        key = self.path(rel)[len(self.bucket) + 1 :]
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self.error(exc, f"cannot create {rel}") from None
        return True

    def _create_exclusive_local(self, rel: str, data: bytes) -> bool:
        target = self.path(rel)
        folder = os.path.dirname(target)
        with self._errors(f"cannot create {rel}"):
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                # link(2) fails with EEXIST when the name is taken: O_CREAT|O_EXCL semantics,
                # with the whole content already in place (also on NFS, where link is atomic).
                os.link(tmp, target)
            except FileExistsError:
                return False
            except OSError:
                # A filesystem without hard links: plain O_CREAT|O_EXCL, then write.
                try:
                    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return True

    def _s3_client(self) -> Any:
        """A boto3 S3 client configured from the same places as pyarrow's filesystem."""
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise RemoteStoreError(
                    "conditional writes to S3 need boto3: pip install 'reprolog[s3]'",
                    uri=self.display,
                    bucket=self.bucket,
                ) from None
            opts = self._options
            kwargs: dict[str, Any] = {}
            endpoint = str(opts.get("endpoint_override") or "")
            if endpoint:
                if "://" not in endpoint:
                    endpoint = f"{opts.get('scheme') or 'https'}://{endpoint}"
                kwargs["endpoint_url"] = endpoint
            if opts.get("region"):
                kwargs["region_name"] = opts["region"]
            if opts.get("access_key"):
                kwargs["aws_access_key_id"] = opts["access_key"]
                kwargs["aws_secret_access_key"] = opts.get("secret_key")
                if opts.get("session_token"):
                    kwargs["aws_session_token"] = opts["session_token"]
            config = Config(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=REQUEST_TIMEOUT,
                retries={"max_attempts": 3, "mode": "standard"},
            )
            if opts.get("anonymous"):
                from botocore import UNSIGNED

                config = config.merge(Config(signature_version=UNSIGNED))
            try:
                session = boto3.session.Session()
                self._client = session.client("s3", config=config, **kwargs)
            except Exception as exc:
                raise self.error(exc, "cannot set up the S3 client") from None
            return self._client


def _is_not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "path does not exist" in text or "nosuchkey" in text or "no_such_key" in text


def _copy_file(source: Path, dest: str) -> None:
    import shutil

    shutil.copyfile(source, dest)


def _with_env_region(uri: str) -> str:
    """An s3:// URI with `region=` from `$AWS_REGION` / `$AWS_DEFAULT_REGION` when it has none.

    pyarrow's `from_uri` ignores those variables and asks S3 for the bucket's region with a
    request (6 s, then a failure, on a node without a route out), at `init(publish_to=)` and
    at every publish; the AWS SDKs and CLI use the configured region. A URI's own `region=`
    (or `endpoint_override=`, where pyarrow asks nothing) is kept as it is.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    parts = urlsplit(uri)
    options = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if not region or options & {"region", "endpoint_override"}:
        return uri
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("region", region)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def open_remote(uri: str | os.PathLike[str]) -> RemoteStore:
    """Resolve a store URI (`s3://bucket/prefix?opts`, `file:///path`, a plain path, ...).

    Raises:
        ArgumentError: not a string/path, or a URI pyarrow does not understand.
        RemoteStoreError: the filesystem cannot be set up (message without secrets).
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise ArgumentError(f"a store URI must be a string, got {type(uri).__name__}")
    text = os.fspath(uri)
    if not text.strip():
        raise ArgumentError("a store URI must not be empty")
    display = display_uri(text)
    secrets = _secrets_of(text)
    if not _URI_SCHEME.match(text) or text.lower().startswith("file://"):
        import pyarrow.fs as pafs

        raw = urlsplit(text).path if text.lower().startswith("file://") else text
        root = Path(raw).expanduser().resolve()
        # One display (and so one publish-marker key) for `/x`, `file:///x` and `~/..` alike.
        return RemoteStore(
            display=str(root),
            kind="local",
            bucket=str(root),
            fs=pafs.LocalFileSystem(),
            base=str(root),
            _secrets=secrets,
        )
    import pyarrow as pa
    import pyarrow.fs as pafs

    scheme = urlsplit(text).scheme.lower()
    probe = RemoteStore(
        display=display,
        kind=scheme,
        bucket=urlsplit(text).hostname or "",
        fs=pafs.LocalFileSystem(),
        base="",
        _secrets=secrets,
    )
    try:
        fs, path = pafs.FileSystem.from_uri(_with_env_region(text) if scheme == "s3" else text)
    except (pa.ArrowInvalid, ValueError) as exc:
        message = _scrub(" ".join(str(exc).split()), secrets)
        if display != text:
            message = message.replace(text, display)
        raise ArgumentError(f"not a store URI pyarrow understands: {display} ({message})") from None
    except OSError as exc:
        raise probe.error(exc, "cannot open the store") from None
    options: dict[str, Any] = {}
    if isinstance(fs, pafs.S3FileSystem):
        scheme = "s3"
        options = dict(fs.__reduce__()[1][0])
        # One PUT per small file instead of a multipart upload (3 requests), and timeouts that
        # let a dead endpoint fail in seconds, unless the URI chose its own.
        rebuilt = dict(options)
        rebuilt["allow_delayed_open"] = True
        if float(rebuilt.get("connect_timeout", -1)) < 0:
            rebuilt["connect_timeout"] = CONNECT_TIMEOUT
        if float(rebuilt.get("request_timeout", -1)) < 0:
            rebuilt["request_timeout"] = REQUEST_TIMEOUT
        # An older pyarrow without one of these options: keep the one from_uri made.
        with contextlib.suppress(TypeError, ValueError, OSError):
            fs = pafs.S3FileSystem(**rebuilt)
    elif isinstance(fs, pafs.LocalFileSystem):
        scheme = "local"
    path = path.rstrip("/")
    bucket = path.split("/", 1)[0] if scheme == "s3" else (urlsplit(text).hostname or path)
    if scheme == "s3" and not bucket:
        raise ArgumentError(f"an S3 store URI names a bucket: s3://BUCKET[/PREFIX], got {display}")
    return RemoteStore(
        display=display,
        kind=scheme,
        bucket=bucket,
        fs=fs,
        base=path,
        _options=options,
        _secrets=secrets,
    )

"""`reprolog ui`: a local, read-only web UI over a store (`serve`, `make_app`)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

from reprolog._errors import ArgumentError, ReprologError
from reprolog._storage._layout import resolve_store_dir
from reprolog._storage._remote import display_uri, is_uri

__all__ = ["make_app", "serve"]

_MISSING = "reprolog ui needs starlette and uvicorn: pip install 'reprolog[ui]'"


def make_app(store_dir: str | os.PathLike[str] | None = None, *, token: str | None = None) -> Any:
    """The UI as an ASGI app over a store, read only.

    Args:
        store_dir: the store folder (None: `$REPROLOG_DIR`, else the nearest `.reprolog`),
            or a store at a URI (`s3://bucket/prefix`, read through a local cache).
        token: when set, every request needs `?token=<token>` once (it then sets an HttpOnly
            cookie) or that cookie; others get 403.

    Raises:
        StoreError: no store there.
        ReprologError: starlette is not installed.
    """
    if token is not None and (not isinstance(token, str) or not token):
        raise ArgumentError(f"token must be a non-empty str or None, got {token!r}")
    root = _store_location(store_dir)
    try:
        from reprolog._ui._app import make
    except ImportError as exc:
        raise ReprologError(f"{_MISSING} ({exc})") from None
    return make(root, token)


def _store_location(dir: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """A store folder (resolved; StoreError when none is there) or a store's URI, as given.

    A URI (`s3://bucket/prefix`) is opened, and its errors raised, by the read-only `Store`.
    """
    if is_uri(dir):
        assert isinstance(dir, str)
        return dir
    if isinstance(dir, str) and dir[:7].lower() == "file://":
        from urllib.parse import unquote, urlsplit

        dir = unquote(urlsplit(dir).path)
    return resolve_store_dir(dir, must_exist=True)


def _bind(host: str, port: int) -> socket.socket:
    if not isinstance(host, str) or not host:
        raise ArgumentError(f"host must be a non-empty address or name, got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ArgumentError(f"port must be an integer 0..65535 (0: any free port), got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ArgumentError(f"bad host {host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ArgumentError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    dir: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = True,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Serve the UI until SIGINT or SIGTERM; print one line with its URL first.

    Binds 127.0.0.1 by default. Any other address is reachable by others: a warning is
    printed and a token (from `secrets`) is required, carried in the printed URL.

    Args:
        dir: the store folder (None: `$REPROLOG_DIR`, else the nearest `.reprolog`), or a
            store at a URI (`s3://bucket/prefix`).
        host: the address to listen on.
        port: the TCP port; 0 picks a free one.
        open_browser: open the URL in a web browser.
        echo: where the URL line goes (default: stdout, flushed).

    Raises:
        StoreError: no store there.
        ArgumentError: a bad host, or the port cannot be used (in use, not allowed).
        ReprologError: starlette/uvicorn are not installed.

    Example:
        >>> reprolog.ui.serve(".reprolog", port=8765, open_browser=False)  # doctest: +SKIP
    """
    from reprolog._ui._security import is_loopback, new_token

    root = _store_location(dir)
    try:
        import uvicorn
    except ImportError as exc:
        raise ReprologError(f"{_MISSING} ({exc})") from None
    token = None if is_loopback(host) else new_token()
    app = make_app(root, token=token)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1], token)
    say = echo or (lambda line: print(line, flush=True))
    if token:
        print(
            f"reprolog ui: warning: {host} is not a loopback address, so other machines can "
            "reach this server; it needs the token in the URL below",
            file=sys.stderr,
            flush=True,
        )
    say(f"reprolog ui: serving {display_uri(root)} at {url}")
    if open_browser:
        import webbrowser

        webbrowser.open(url)

    class _Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # SIGINT/SIGTERM stop the server gracefully and serve() returns: no re-raise.
            import signal

            previous = {
                s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()

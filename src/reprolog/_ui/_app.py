"""The Starlette app: thin views over the data provider, plus the CSP and token middleware."""

from __future__ import annotations

import json
import os
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reprolog._errors import AmbiguousRunError, ReprologError, RunNotFoundError, StoreError
from reprolog._ui import _security
from reprolog._ui._cache import release_memory
from reprolog._ui._data import Provider
from reprolog._ui._security import Refused

STATIC = Path(__file__).resolve().parent / "static"


def _dumps(body: Any) -> str:
    return json.dumps(body, allow_nan=False, separators=(",", ":"), default=repr)


def _json(body: Any, status: int = 200) -> Response:
    text = _dumps(body)
    return Response(
        text, status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _error(message: str, status: int) -> Response:
    return _json({"error": " ".join(str(message).split())}, status)


def _guard(view: Any) -> Any:
    """Turn bad input into 400/403/404 JSON: a view never answers 500 for what it was asked."""

    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await view(request)
            return response
        except Refused as exc:
            return _error(str(exc), exc.status)
        except (RunNotFoundError, AmbiguousRunError) as exc:
            return _error(str(exc), 404 if isinstance(exc, RunNotFoundError) else 400)
        except StoreError as exc:  # a corrupt record, or no patch for this run
            return _error(str(exc), 404)
        except (ReprologError, ValueError) as exc:
            return _error(str(exc), 400)

    return wrapped


def _refs(request: Request) -> list[str]:
    raw = request.query_params.get("runs", "")
    return [r for r in (p.strip() for p in raw.split(",")) if r]


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def build(store_dir: str | os.PathLike[str], token: str | None) -> Starlette:
    from starlette.concurrency import run_in_threadpool

    provider = Provider(store_dir)
    try:  # mimalloc keeps freed Arrow buffers mapped; the system pool returns them (RSS)
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except (ImportError, NotImplementedError):
        pass

    def shell(name: str) -> Any:
        async def view(request: Request) -> Response:
            return FileResponse(
                STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"}
            )

        return view

    async def static(request: Request) -> Response:
        path = _security.safe_join(STATIC, request.path_params["path"])
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    def runs_bytes(where: str | None) -> tuple[bytes, int]:
        started = time.perf_counter()
        cache = provider.runs_cache
        if not where or not where.strip():
            # The unfiltered table, encoded once while no run changes (10,000 runs: ~4 MB).
            cache.refresh()
            generation = cache.generation
            encoded = cache.encoded
            if encoded is None:
                body, status = provider.runs(None)
                body.pop("elapsed_ms")
                encoded = _dumps(body)[:-1].encode()
                if cache._table is not None and cache.generation == generation:
                    cache.encoded = encoded
            ms = round((time.perf_counter() - started) * 1000, 1)
            return encoded + b',"elapsed_ms":' + str(ms).encode() + b"}", 200
        # A recent filter, encoded once while no run changes and none is live.
        where = where.strip()
        cache.refresh()
        generation = cache.generation
        hit = cache.recall(where)
        if hit is None:
            body, status = provider.runs(where)
            body.pop("elapsed_ms")
            hit = _dumps(body)[:-1].encode(), status
            cache.remember(where, generation, *hit)
        ms = round((time.perf_counter() - started) * 1000, 1)
        return hit[0] + b',"elapsed_ms":' + str(ms).encode() + b"}", hit[1]

    async def runs_json(request: Request) -> Response:
        text, status = await run_in_threadpool(runs_bytes, request.query_params.get("where"))
        return Response(
            text, status, media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def run_json(request: Request) -> Response:
        return _json(await run_in_threadpool(provider.run, request.path_params["ref"]))

    async def console_json(request: Request) -> Response:
        q = request.query_params
        try:
            offset = int(q.get("offset") or 0)
            tail = int(q.get("tail") or 2000)
        except ValueError:
            return _error(f"offset and tail must be integers, got {dict(q)!r}", 400)
        ref = request.path_params["ref"]
        return _json(await run_in_threadpool(provider.console, ref, offset, tail))

    async def patch(request: Request) -> Response:
        text = await run_in_threadpool(provider.patch, request.path_params["ref"])
        return PlainTextResponse(text, headers={"Cache-Control": "no-store"})

    async def artifact(request: Request) -> Response:
        path, name = await run_in_threadpool(
            provider.artifact, request.path_params["ref"], request.path_params["art"]
        )
        return FileResponse(
            path,
            filename=name,
            content_disposition_type="attachment",
            media_type="application/octet-stream",
            headers={"Cache-Control": "no-store"},
        )

    async def series_json(request: Request) -> Response:
        from reprolog._ui._series import DEFAULT_WIDTH, series

        q = request.query_params
        width_raw = q.get("width") or str(DEFAULT_WIDTH)
        try:
            width = int(width_raw)
        except ValueError:
            raise ValueError(f"width must be an integer, got {width_raw!r}") from None
        keys = [k for k in q.get("keys", "").split(",") if k]
        body = await run_in_threadpool(
            lambda: series(
                provider,
                _refs(request),
                keys,
                x=q.get("x") or "step",
                width=width,
                xmin=_float(request, "xmin"),
                xmax=_float(request, "xmax"),
                group=q.get("group") or None,
            )
        )
        text = await run_in_threadpool(_dumps, body)
        del body
        # The lists and the decode buffers are garbage now: give the pages back (RSS target).
        await run_in_threadpool(release_memory)
        return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def compare_json(request: Request) -> Response:
        return _json(await run_in_threadpool(provider.compare, _refs(request)))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(f"no such page: {request.url.path}", 404)

    routes = [
        Route("/", shell("runs.html")),
        Route("/runs.json", _guard(runs_json)),
        Route("/series.json", _guard(series_json)),
        Route("/compare.json", _guard(compare_json)),
        Route("/compare", shell("compare.html")),
        Route("/runs/{ref}.json", _guard(run_json)),
        Route("/runs/{ref}/patch", _guard(patch)),
        Route("/runs/{ref}/console.json", _guard(console_json)),
        Route("/runs/{ref}/artifacts/{art}", _guard(artifact)),
        Route("/runs/{ref}", shell("run.html")),
        Route("/static/{path:path}", _guard(static)),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.provider = provider
    return app


class Guard:
    """ASGI middleware: security headers on every response; the token when one is set."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        set_cookie = False
        if self.token is not None:
            from urllib.parse import parse_qs

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [None])[0]
            cookie = _cookie(scope)
            if _security.token_ok(given, self.token):
                set_cookie = cookie != self.token
            elif not _security.token_ok(cookie, self.token):
                response = _error("this server needs its token: open the URL it printed", 403)
                await response(scope, receive, _with_headers(send, None))
                return
        await self.app(scope, receive, _with_headers(send, self.token if set_cookie else None))


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            morsel = jar.get(_security.COOKIE)
            if morsel is not None:
                return morsel.value
    return None


def _with_headers(send: Send, cookie: str | None) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0] not in dict(_security.HEADERS)]
            headers.extend(_security.HEADERS)
            if cookie is not None:
                value = f"{_security.COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict"
                headers.append((b"set-cookie", value.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def make(store_dir: str | os.PathLike[str], token: str | None) -> ASGIApp:
    started = time.time()
    app = build(store_dir, token)
    app.state.started = started
    return Guard(app, token)

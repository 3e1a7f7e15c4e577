"""`reprolog.ui`: serve the read-only web UI (`serve`) or get it as an ASGI app (`make_app`)."""

from __future__ import annotations

from reprolog._ui import make_app, serve

__all__ = ["make_app", "serve"]

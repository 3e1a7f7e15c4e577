"""Interpreter-start hook (from reprolog_autolog.pth) for REPROLOG_AUTOLOG=1: zero-code capture."""

from __future__ import annotations

try:
    from reprolog._run._plugins import install_import_hook

    install_import_hook()
except Exception as exc:  # a broken hook must never stop the user's interpreter
    import sys

    print(f"reprolog: autolog hook not installed ({type(exc).__name__}: {exc})", file=sys.stderr)

"""`python -m reprolog._cli`: the reprolog command without the installed entry point."""

from __future__ import annotations

from reprolog._cli import main

main(prog_name="reprolog")

"""The read side: `Store` (listing, metrics, SQL), `RunRecord`, garbage collection and export.

Imports the storage layer (and capture's console reader); never the write side (`_run`).
"""

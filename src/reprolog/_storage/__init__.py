"""Files: every byte a store holds, and how it is laid out, written, compacted and recovered.

The bottom layer: it knows paths, locks, memory-mapped logs, Parquet encoding and JSON records,
and nothing about runs as a user sees them. It imports only `reprolog._errors`.
"""

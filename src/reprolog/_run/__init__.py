"""The write side: `Run` and `init`, process hooks, rank writers, the integrations' `RunOwner`,
`seed_everything`, autolog and the launcher of `reprolog run`.

Imports the fingerprint, capture and storage layers; never the read side (`_store`) above it.
"""

"""Fingerprints: content hashes of data (`fingerprint`) and of training steps (`StepFingerprints`).

Imports only the layers below it (storage and `_errors`). Inside, bottom up: `_sink` (the hash
stream with typed fields), `_tabular` (pyarrow and pandas, chunking-independent), `_canonical`
(Python values, numpy arrays, torch tensors; hands tables to `_tabular`), `_content`
(`fingerprint` and `describe_data`: bytes, files, folders, datasets); apart from those,
`_stephash` (the xxh3 hashes of a step's batch, RNG states and weights) and `_steptrace`
(`StepFingerprints`, which writes them through `reprolog._storage._steplog`).
"""

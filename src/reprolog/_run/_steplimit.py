"""The step limit: how `reprolog reproduce --steps N` tells every integration to stop early.

The re-run's process gets ``$REPROLOG_MAX_STEPS``; each integration reads it through
`RunOwner.max_steps` (never the variable itself) and ends training after that many optimizer
steps the way its framework allows (Lightning's and transformers' ``max_steps``, Keras by
stopping after N batches). scikit-learn has no steps to stop at and ignores it.
"""

from __future__ import annotations

import os

from reprolog._errors import ArgumentError

ENV_MAX_STEPS = "REPROLOG_MAX_STEPS"


def max_steps(environ: os._Environ[str] | dict[str, str] | None = None) -> int | None:
    """Return the step limit in effect for this process, or None when there is none.

    Raises:
        ArgumentError: ``$REPROLOG_MAX_STEPS`` is set to something other than a positive
            integer.
    """
    raw = (os.environ if environ is None else environ).get(ENV_MAX_STEPS, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentError(f"${ENV_MAX_STEPS} must be a positive integer, got {raw!r}")
    return value

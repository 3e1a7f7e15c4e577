"""Run ids: 26 characters, lexicographically sortable by creation time, unique across machines."""

from __future__ import annotations

import os
import threading
import time

# Crockford's base32 in lower case: no i, l, o, u, so ids read aloud and type without confusion.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rem = divmod(number, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_run_id() -> str:
    """Return a new run id: 48 bits of milliseconds since the epoch, then 80 random bits.

    Within one process, ids made in the same millisecond increment the random part, so ids
    from one process are strictly increasing; across machines, 80 random bits make a collision
    practically impossible.
    """
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            random_part = (_last_random + 1) % (1 << _RANDOM_BITS)
        else:
            random_part = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_random = now_ms, random_part
    return _encode(now_ms, 10) + _encode(random_part, 16)


def is_run_id(text: str) -> bool:
    """True when `text` has the shape of a full run id."""
    return len(text) == 26 and all(c in _ALPHABET for c in text)

"""Run ids: 26 characters, sortable by creation time, unique."""

from __future__ import annotations

import itertools
import time

import pytest

from reprolog._storage._ids import _ALPHABET, is_run_id, new_run_id


def _millis(run_id: str) -> int:
    number = 0
    for char in run_id[:10]:
        number = number * 32 + _ALPHABET.index(char)
    return number


def test_shape() -> None:
    run_id = new_run_id()
    assert len(run_id) == 26
    assert set(run_id) <= set(_ALPHABET)
    assert not set("ilou") & set(_ALPHABET)  # no look-alike letters
    assert is_run_id(run_id)


def test_ids_carry_their_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    run_id = new_run_id()
    after = time.time_ns() // 1_000_000
    assert before <= _millis(run_id) <= after


def test_ids_are_unique_and_strictly_increasing_in_a_process() -> None:
    ids = [new_run_id() for _ in range(20_000)]  # many share a millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_ids_sort_by_creation_time_across_milliseconds() -> None:
    first = new_run_id()
    time.sleep(0.003)
    second = new_run_id()
    assert first < second
    assert _millis(first) < _millis(second)


@pytest.mark.parametrize(
    "text", ["", "01abc", "0" * 25, "0" * 27, "0" * 25 + "u", "0" * 25 + "I", "01J9" + "0" * 22]
)
def test_is_run_id_rejects(text: str) -> None:
    assert not is_run_id(text)

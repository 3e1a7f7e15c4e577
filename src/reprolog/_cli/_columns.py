"""Which columns `reprolog ls` shows: identity columns, varying params, final metrics, ranked."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reprolog._cli._common import fmt_duration, fmt_value
from reprolog._errors import ArgumentError
from reprolog._storage._values import SYSTEM_KEY_PREFIX

if TYPE_CHECKING:
    import pandas as pd

PARAMS = "params"
METRICS = "metrics"
# The fixed columns every listing starts with, in order.
IDENTITY = ("id", "name", "experiment", "status", "duration", "start")
# Cell caps in the default (terminal) listing: long values end in "…"; --wide caps nothing.
CELL_CAP = 16
NAME_CAP = 24
EXPERIMENT_CAP = 20
WIDE_CAP = 10**6


@dataclass(frozen=True)
class Column:
    """One column of the listing, its cells already formatted.

    Attributes:
        key: the runs-frame column it shows (``params.lr``, ``metrics.loss.last``, ``status``).
        header: the text of its header (``lr`` under the params group, ``loss`` under metrics).
        group: ``"params"``, ``"metrics"`` or ``""`` (identity and other columns).
        cells: one formatted cell per listed run.
        right: right-align (numbers) rather than left-align.
    """

    key: str
    header: str
    group: str
    cells: list[str]
    right: bool = False

    @cached_property
    def width(self) -> int:
        """Characters the column needs: its header and its widest cell."""
        return max([len(self.header), *map(len, self.cells)])


@dataclass(frozen=True)
class Candidate:
    """A param or final-metric column ``ls`` may show, with what ranks it.

    Attributes:
        key: the runs-frame column.
        group: ``"params"`` or ``"metrics"``.
        present: how many listed runs have a value in it.
        varies: whether the runs that have a value do not all have the same one.
    """

    key: str
    group: str
    present: int
    varies: bool


def candidates(frame: pd.DataFrame) -> list[Candidate]:
    """The non-empty params.* and metrics.*.last columns of a runs frame, ranked by kind.

    A param *varies* when the runs that have it hold at least two distinct values (a param
    only some runs have, always with the same value, does not vary). Within a kind, columns
    most runs have come first, then top-level params (``lr``, set by the user) before nested
    ones (``optimizer.beta_1``, captured from a framework), then by name.

    Args:
        frame: the listed rows of ``Store.runs()``.

    Returns:
        Every param, then every final metric (system metrics last), with a value in some
        row; constant params are included with ``varies=False``.
    """
    params: list[Candidate] = []
    metrics: list[Candidate] = []
    for col in frame.columns:
        is_param = col.startswith("params.")
        if not (is_param or (col.startswith("metrics.") and col.endswith(".last"))):
            continue
        values = frame[col][frame[col].notna()]
        if values.empty:
            continue
        group = PARAMS if is_param else METRICS
        out = params if is_param else metrics
        out.append(Candidate(col, group, len(values), _distinct(values) > 1))
    params.sort(key=lambda c: (-c.present, c.key.count("."), c.key))
    # System metrics (sys/...) measure the machine: after the training's own, so the columns
    # that fit the terminal show the training first; `--columns sys/cpu_percent` still shows one.
    system = f"metrics.{SYSTEM_KEY_PREFIX}"
    metrics.sort(key=lambda c: (c.key.startswith(system), -c.present, c.key))
    return params + metrics


def interleave(ranked: list[Candidate]) -> list[Candidate]:
    """Merge ranked params and metrics into one order of usefulness.

    Columns more runs have come first; among columns as common, params and metrics take
    turns (first param, first metric, second param, …) so neither kind crowds the other
    out of a narrow terminal.
    """
    seen: dict[str, int] = {}
    keyed = []
    for c in ranked:
        turn = seen[c.group] = seen.get(c.group, -1) + 1
        keyed.append(((-c.present, turn, c.group != PARAMS), c))
    keyed.sort(key=lambda kc: kc[0])
    return [c for _, c in keyed]


def _distinct(values: pd.Series) -> int:
    try:
        return int(values.nunique(dropna=True))
    except TypeError:  # unhashable (lists, dicts): compare their text
        return int(values.map(repr).nunique(dropna=True))


def resolve(frame: pd.DataFrame, name: str) -> str:
    """The runs-frame column a user's column name means.

    Accepts a full name (``params.optimizer.lr``, ``metrics.loss.last``, ``start``), a name
    without its prefix (``optimizer.lr``, ``loss`` for ``metrics.loss.last``, ``loss.min``),
    or an unambiguous dotted tail (``lr`` for ``params.optimizer.lr``). A name without
    prefix beats a tail (``loss`` is ``metrics.loss.last`` beside ``params.compile.loss``);
    a name that is both ``params.X`` and ``metrics.X.last`` is ambiguous.

    Raises:
        ArgumentError: no column, or more than one, matches ``name``.
    """
    columns = list(frame.columns)
    if name in columns:
        return name
    # A name without its prefix first; a dotted tail only when nothing matched so.
    exact = [f"params.{name}", f"metrics.{name}.last", f"metrics.{name}"]
    found = [c for c in exact if c in columns]
    if not found:
        found = [
            c
            for c in columns
            if (c.startswith("params.") and c.endswith(f".{name}"))
            or (c.startswith("metrics.") and c.endswith((f"/{name}.last", f".{name}.last")))
        ]
    if len(found) == 1:
        return found[0]
    if found:
        raise ArgumentError(
            f"column {name!r} is ambiguous: it matches {', '.join(found[:6])}; give the full name"
        )
    shown = ", ".join(columns[:12])
    raise ArgumentError(f"no column {name!r} (columns include: {shown}, …)")


def short_headers(keys: list[str], all_keys: list[str]) -> dict[str, str]:
    """Short, unambiguous headers for columns, assuming a params/metrics group label above.

    ``params.optimizer.learning_rate`` becomes ``learning_rate`` when no other param of the
    frame ends in that dotted tail and no metric is called so, else the shortest tail that
    is unique (``fit.epochs`` beside ``epochs``); ``metrics.loss.last`` becomes ``loss``;
    ``metrics.loss.min`` becomes ``loss.min``; other columns keep their name. Every header
    given to ``resolve`` names its column again, except a param and a metric of one name.

    Args:
        keys: the columns shown.
        all_keys: every column of the frame (tails must be unique among these).

    Returns:
        header by column.
    """
    params = [k.removeprefix("params.").split(".") for k in all_keys if k.startswith("params.")]
    metrics = {
        k.removeprefix("metrics.").removesuffix(".last")
        for k in all_keys
        if k.startswith("metrics.")
    }
    out: dict[str, str] = {}
    for key in keys:
        if key.startswith("params."):
            parts = key.removeprefix("params.").split(".")
            for n in range(1, len(parts) + 1):
                tail = parts[-n:]
                unique = sum(1 for p in params if p[-n:] == tail) == 1
                if unique and ".".join(tail) not in metrics:
                    break
            out[key] = ".".join(tail)
        elif key.startswith("metrics."):
            out[key] = key.removeprefix("metrics.").removesuffix(".last")
        else:
            out[key] = key
    return out


def fmt_start(value: Any, now: dt.datetime, *, exact: bool = False) -> str:
    """A run's start time: relative when recent (``42s ago``, ``3h ago``), else its date.

    Args:
        value: a timestamp (timezone-aware or UTC), or a missing value.
        now: the time to count from (timezone-aware).
        exact: give ``YYYY-MM-DD HH:MM:SS`` (UTC) instead, for piping.
    """
    try:
        import pandas as pd

        if value is None or pd.isna(value):
            return ""
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    if exact:
        return str(stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S"))
    seconds = (pd.Timestamp(now) - stamp).total_seconds()
    if seconds < 5:  # a little clock skew between hosts must not print "-3s ago"
        return "just now"
    for unit, size, below in (("s", 1, 60), ("m", 60, 60), ("h", 3600, 24), ("d", 86400, 7)):
        if seconds < size * below:
            return f"{math.floor(seconds / size)}{unit} ago"
    local = stamp.tz_convert(now.tzinfo)
    return str(local.strftime("%b %d" if local.year == now.year else "%Y-%m-%d"))


def build(
    frame: pd.DataFrame,
    keys: list[str],
    *,
    id_len: int,
    wide: bool,
    now: dt.datetime,
) -> list[Column]:
    """Format the given columns of the listed runs.

    Args:
        frame: the listed rows of ``Store.runs()``.
        keys: runs-frame columns, in display order.
        id_len: how many characters of the run id to show (all of it when ``wide``).
        wide: full headers (``params.lr``), no cell truncation, exact start times.
        now: the time relative start times count from.

    Returns:
        One Column per key.
    """
    headers = {k: k for k in keys} if wide else short_headers(keys, list(frame.columns))
    caps = {"name": NAME_CAP, "experiment": EXPERIMENT_CAP}
    out = []
    for key in keys:
        values = frame[key].tolist()
        if key == "id":
            cells = [str(v) if wide else str(v)[:id_len] for v in values]
        elif key == "duration":
            cells = [fmt_duration(v) for v in values]
        elif key in ("start", "end"):
            cells = [fmt_start(v, now, exact=wide) for v in values]
        else:
            cap = WIDE_CAP if wide else caps.get(key, max(CELL_CAP, len(headers[key])))
            cells = [fmt_value(v, cap) for v in values]
        group = (
            PARAMS if key.startswith("params.") else METRICS if key.startswith("metrics.") else ""
        )
        right = key == "duration" or (bool(group) and frame[key].dtype.kind in "iufb")
        out.append(Column(key, headers[key], group, cells, right))
    return out

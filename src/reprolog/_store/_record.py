"""`RunRecord`: the reader's view of one run (its record, metrics and console)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from reprolog._storage._layout import RunLayout
from reprolog._store._frames import metrics_frame

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class PointsReader(Protocol):
    """What a record needs of the reader that made it (`StoreReader`): its points.

    A protocol, not an import of `_reader`: the reader builds records, so it imports this module.
    """

    def metrics_table(
        self, runs: Iterable[str] | str | None = None, keys: Iterable[str] | str | None = None
    ) -> pa.Table: ...


class RunRecord:
    """A finished or live run as read from a store.

    Attributes mirror the run record: `id`, `name`, `experiment`, `status`, `start`, `end`,
    `duration` (seconds), `params`, `tags`, `sections` (environment, code, command, seeds,
    determinism, data, and any integration's sections), `artifacts`, `capture_report`,
    `error`, `dir` and `raw` (the whole JSON record).

    Example:
        >>> rec = reprolog.Store().run("01j9")      # doctest: +SKIP
        >>> rec.params["optimizer.lr"], rec.metrics(keys=["loss"]).tail(1)   # doctest: +SKIP
    """

    def __init__(self, raw: dict[str, Any], layout: RunLayout, reader: PointsReader) -> None:
        self.raw = raw
        self._layout = layout
        self.dir = layout.dir
        self._reader = reader  # the reader that made it: a read-only store's stays read-only

    def _with_raw(self, raw: dict[str, Any]) -> RunRecord:
        """This run with another record (an edited copy), read through the same reader."""
        return RunRecord(raw, self._layout, self._reader)

    def __repr__(self) -> str:
        return f"RunRecord(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def name(self) -> str | None:
        return self.raw.get("name")

    @property
    def experiment(self) -> str:
        return str(self.raw.get("experiment") or "default")

    @property
    def status(self) -> str:
        return str(self.raw.get("status"))

    @property
    def start(self) -> float | None:
        return self.raw.get("start_time")

    @property
    def end(self) -> float | None:
        return self.raw.get("end_time")

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return float(self.end) - float(self.start)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.raw.get("params") or {})

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.raw.get("tags") or {})

    @property
    def sections(self) -> dict[str, Any]:
        return dict(self.raw.get("sections") or {})

    def section(self, name: str) -> dict[str, Any]:
        """One captured section (e.g. "environment"), or {} when it was not captured."""
        value = (self.raw.get("sections") or {}).get(name)
        return dict(value) if isinstance(value, dict) else {}

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.raw.get("artifacts") or [])

    @property
    def capture_report(self) -> dict[str, Any]:
        return dict(self.raw.get("capture_report") or {})

    @property
    def error(self) -> dict[str, Any] | None:
        return self.raw.get("error")

    @property
    def metrics_summary(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("metrics_summary") or {})

    def console(self) -> pd.DataFrame:
        """The recorded console, one row per line: time (UTC), stream, text.

        stream is "stdout", "stderr" or "reprolog" (a note, e.g. how many lines the size
        limit dropped). Empty when the run recorded no console (see `sections["console"]`).
        """
        import pandas as pd

        from reprolog._capture.console import iter_console

        names = {"o": "stdout", "e": "stderr", "r": "reprolog"}
        rows = [
            (t, names.get(stream, stream), text)
            for _, (t, stream, text) in iter_console(self._layout.console)
        ]
        frame = pd.DataFrame(rows, columns=["time", "stream", "text"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def metrics(self, keys: list[str] | str | None = None) -> pd.DataFrame:
        """This run's points as a long DataFrame: run_id, key, step, epoch, value, time."""
        return metrics_frame(self._reader.metrics_table([self.id], keys))

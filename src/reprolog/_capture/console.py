"""Console capture: stdout/stderr lines, in order, timed, progress bars collapsed, redacted, capped.

Two sources feed one `ConsoleRecorder`: `reprolog run` reads its child's output from pipes
or pseudo-terminals (`_launch.py`), and `init(console=True)` tees this process's
`sys.stdout`/`sys.stderr` (`tee_std_streams`). The recorder writes `console.jsonl` in the run
folder: one JSON array per line, `[time, stream, text]`, where stream is "o" (stdout), "e"
(stderr) or "r" (a note by reprolog, such as how much was dropped).
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from reprolog._storage._layout import RunLayout

__all__ = [
    "CONSOLE_FILE",
    "DEFAULT_LIMIT",
    "ENV_LIMIT",
    "ConsoleRecorder",
    "LineSplitter",
    "iter_console",
    "parse_size",
    "strip_ansi",
    "tee_std_streams",
]

CONSOLE_FILE = RunLayout(Path()).console.name  # the file name, as the record names it
ENV_LIMIT = "REPROLOG_CONSOLE_LIMIT"
DEFAULT_LIMIT = 16 * 1024 * 1024
# A "line" that never ends (binary output, a bar without newline for hours) is cut here.
_MAX_PENDING = 1024 * 1024
_FLUSH_BYTES = 64 * 1024
_FLUSH_SECONDS = 0.5

# CSI (colours, cursor moves, erase), OSC (titles, hyperlinks), and the short ESC forms.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_quote = json.encoder.encode_basestring
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences and other control characters (tabs are kept)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def parse_size(value: str | int) -> int:
    """Parse a byte count: an int, or a string like "16M", "512k", "1G", "1000".

    Raises:
        ValueError: not a non-negative size.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a size must be >= 0 bytes, got {value}")
        return value
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    for suffix, mult in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if text.endswith(suffix):
            text, factor = text[:-1], mult
            break
    try:
        size = float(text)
    except ValueError:
        raise ValueError(
            f"a size is a number of bytes with an optional K, M or G suffix, got {value!r}"
        ) from None
    if size < 0 or size != size:
        raise ValueError(f"a size must be >= 0 bytes, got {value!r}")
    return int(size * factor)


def limit_from_env() -> int:
    """The console size limit: `$REPROLOG_CONSOLE_LIMIT` when set and valid, else 16 MiB."""
    raw = os.environ.get(ENV_LIMIT)
    if not raw:
        return DEFAULT_LIMIT
    try:
        return parse_size(raw)
    except ValueError:
        return DEFAULT_LIMIT


class LineSplitter:
    """Bytes of one stream in, finished lines out; a carriage return overwrites its line.

    A line is what a terminal would show once it ends: the text after its last `\\r` (a
    progress bar's final state), `\\r\\n` counting as a plain newline. The unfinished line
    is kept bounded: each `\\r` drops what it overwrote.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        pending = self._pending
        pending += data
        lines: list[bytes] = []
        if b"\n" in data:
            *lines, rest = bytes(pending).split(b"\n")
            if b"\r" in pending:
                lines = [_final_state(line) for line in lines]
            self._pending = pending = bytearray(rest)
        cut = pending.rfind(b"\r", 0, len(pending) - 1)  # a trailing \r may be half of \r\n
        if cut >= 0:
            del pending[: cut + 1]
        if len(pending) > _MAX_PENDING:  # too long to hold: kept as a line of its own
            lines.append(bytes(pending))
            self._pending = bytearray()
        return lines

    def close(self) -> list[bytes]:
        """The unfinished last line, if any (the process ended without a newline)."""
        rest, self._pending = bytes(self._pending), bytearray()
        line = _final_state(rest)
        return [line] if line else []


def _final_state(line: bytes) -> bytes:
    if line.endswith(b"\r"):
        line = line[:-1]
    cut = line.rfind(b"\r")
    return line[cut + 1 :] if cut >= 0 else line


class ConsoleRecorder:
    """Turns stream bytes into stored console lines; thread-safe.

    Lines are decoded (UTF-8, bad bytes replaced), stripped of ANSI codes, redacted (the
    core's `redact_text`, plus the exact values of secret-named environment variables),
    timed to when they were read, and appended to `console.jsonl` in batches. Past `limit`
    characters of stored text, the first three quarters of the budget stay as they were written
    and the last quarter keeps the newest lines; what fell between is counted and noted.

    Args:
        path: the `console.jsonl` file to append to.
        limit: the most characters of line text to store (0: store nothing, count all).
        env: environment whose secret-named values are masked (default `os.environ`).
    """

    def __init__(
        self, path: Path, *, limit: int = DEFAULT_LIMIT, env: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.limit = max(0, int(limit))
        self._head_budget = self.limit - self.limit // 4
        self._tail_budget = self.limit // 4
        self._lock = threading.Lock()
        self._splitters = {"o": LineSplitter(), "e": LineSplitter()}
        self._batch: list[tuple[float, str, list[bytes]]] = []
        self._batch_bytes = 0
        self._out: list[str] = []
        self._out_bytes = 0
        self._last_write = time.monotonic()
        self._tail: collections.deque[tuple[float, str, str]] = collections.deque()
        self._tail_bytes = 0
        self._secrets = _secret_values(os.environ if env is None else env)
        self.lines = 0
        self.stored_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.redactions = 0
        self.closed = False
        self._fh: io.TextIOWrapper | None = None

    # ------------------------------------------------------------------ input

    def feed(self, stream: str, data: bytes, when: float | None = None) -> None:
        """Add bytes written to `stream` ("o" or "e") at time `when` (default now)."""
        if not data or self.closed:
            return
        with self._lock:
            lines = self._splitters[stream].feed(data)
            if not lines:
                return
            t = time.time() if when is None else when
            self._batch.append((t, stream, lines))
            self._batch_bytes += len(data)
            if self._batch_bytes >= _FLUSH_BYTES or len(self._batch) >= 4096:
                self._process()
            if self._out_bytes >= _FLUSH_BYTES:
                self._write()

    def flush(self) -> None:
        """Write what is pending to the file (called every half second by the feeders)."""
        with self._lock:
            self._process()
            self._write()

    def due(self) -> bool:
        """True when the last write is older than the flush period and lines wait."""
        return bool(self._batch or self._out) and (
            time.monotonic() - self._last_write >= _FLUSH_SECONDS
        )

    def close(self) -> dict[str, Any]:
        """Store the unfinished lines, the kept tail and a note of what was dropped.

        Returns:
            The summary for the record's `console` section.
        """
        with self._lock:
            if not self.closed:
                now = time.time()
                for stream, splitter in self._splitters.items():
                    rest = splitter.close()
                    if rest:
                        self._batch.append((now, stream, rest))
                self._process()
                if self.dropped_lines:
                    note = (
                        f"[reprolog: {self.dropped_lines} lines ({self.dropped_bytes} bytes) "
                        f"dropped here: the console limit is {self.limit} bytes]"
                    )
                    first = self._tail[0][0] if self._tail else now
                    self._emit(first, "r", note)
                while self._tail:
                    self._emit(*self._tail.popleft())
                self._write()
                self.closed = True
                if self._fh is not None:
                    self._fh.close()
                    self._fh = None
            return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "file": CONSOLE_FILE,
            "lines": self.lines,
            "bytes": self.stored_bytes,
            "limit": self.limit,
            "dropped_lines": self.dropped_lines,
            "dropped_bytes": self.dropped_bytes,
            "redacted": self.redactions,
        }

    # ------------------------------------------------------------------ processing

    def _process(self) -> None:
        """Decode, strip, redact the batch in one pass, then keep or drop each line."""
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if not batch:
            return
        from reprolog._capture.redact import redact_text

        raw = b"\n".join(line for _, _, lines in batch for line in lines)
        text = strip_ansi(raw.decode("utf-8", "replace"))
        text, hits = redact_text(text)
        for secret in self._secrets:
            if secret in text:
                hits += text.count(secret)
                text = text.replace(secret, "[REDACTED]")
        self.redactions += hits
        texts = text.split("\n")
        at = 0
        for t, stream, lines in batch:
            part = [line.rstrip() for line in texts[at : at + len(lines)]]
            at += len(lines)
            size = sum(map(len, part)) + len(part)
            if not self._tail and self.stored_bytes + size <= self._head_budget:
                # the common case, a line at a time would cost more than the child's print
                prefix = f'[{t:.3f},"{stream}",'
                self._out.append("".join([prefix + _quote(line) + "]\n" for line in part]))
                self._out_bytes += size
                self.lines += len(part)
                self.stored_bytes += size
                continue
            for line in part:
                self._keep(t, stream, line)

    def _keep(self, t: float, stream: str, line: str) -> None:
        size = len(line) + 1
        if self.stored_bytes + size <= self._head_budget:
            self._emit(t, stream, line, size)
            return
        self._tail.append((t, stream, line))
        self._tail_bytes += size
        while self._tail and self._tail_bytes > self._tail_budget:
            _, _, old = self._tail.popleft()
            gone = len(old) + 1
            self._tail_bytes -= gone
            self.dropped_lines += 1
            self.dropped_bytes += gone

    def _emit(self, t: float, stream: str, line: str, size: int | None = None) -> None:
        self._out.append(f'[{t:.3f},"{stream}",{_quote(line)}]\n')
        if size is None:
            size = len(line) + 1
        self._out_bytes += size
        if stream != "r":
            self.lines += 1
            self.stored_bytes += size

    def _write(self) -> None:
        self._last_write = time.monotonic()
        if not self._out:
            return
        chunk, self._out, self._out_bytes = "".join(self._out), [], 0
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._fh.write(chunk)
        self._fh.flush()


def _secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of secret-named environment variables long enough to be worth masking."""
    from reprolog._capture.redact import is_secret_name

    values = {v for k, v in env.items() if len(v) >= 8 and is_secret_name(k)}
    return sorted(values, key=len, reverse=True)


# ---------------------------------------------------------------------------- reading


def iter_console(path: Path, *, offset: int = 0) -> Iterator[tuple[int, tuple[float, str, str]]]:
    """Yield (offset after the line, (time, stream, text)) for each whole line from `offset`.

    A last line still being written (no newline yet) is not yielded.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            offset += len(raw)
            try:
                t, stream, text = json.loads(raw)
            except (ValueError, TypeError):
                continue
            yield offset, (float(t), str(stream), str(text))


# ---------------------------------------------------------------------------- in-process


class _Tee:
    """Stands in for sys.stdout/sys.stderr: writes pass through unchanged, then are recorded."""

    def __init__(self, inner: TextIO, stream: str, recorder: ConsoleRecorder) -> None:
        self._inner = inner
        self._stream = stream
        self._recorder: ConsoleRecorder | None = recorder

    def write(self, text: str) -> int:
        written = self._inner.write(text)
        recorder = self._recorder
        if recorder is not None and isinstance(text, str):
            try:
                recorder.feed(self._stream, text.encode("utf-8", "replace"))
            except Exception:  # recording must never break the program's own printing
                self._recorder = None
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class StdTee:
    """The in-process console capture of one run: `stop()` puts sys.stdout/err back."""

    def __init__(self, recorder: ConsoleRecorder) -> None:
        self.recorder = recorder
        self._stop = threading.Event()
        self._tees = {
            "stdout": _Tee(sys.stdout, "o", recorder),
            "stderr": _Tee(sys.stderr, "e", recorder),
        }
        sys.stdout = self._tees["stdout"]
        sys.stderr = self._tees["stderr"]
        self._thread = threading.Thread(target=self._loop, name="reprolog-console", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(_FLUSH_SECONDS):
            try:
                self.recorder.flush()
            except Exception:
                return

    def stop(self) -> dict[str, Any]:
        """Restore the streams (when nobody replaced ours since) and close the recorder."""
        self._stop.set()
        for name, tee in self._tees.items():
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._inner)
            tee._recorder = None  # a tee someone else still holds becomes a pass-through
        return self.recorder.close()


def tee_std_streams(run_dir: Path, *, limit: int | None = None) -> StdTee:
    """Start recording this process's sys.stdout/sys.stderr into `run_dir/console.jsonl`."""
    recorder = ConsoleRecorder(
        RunLayout(run_dir).console, limit=limit_from_env() if limit is None else limit
    )
    return StdTee(recorder)

"""The background thread of a live run: msync the metric log and beat the heartbeat."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("reprolog")


class Flusher(threading.Thread):
    """Every `interval` seconds: push the mapped log to disk and touch the heartbeat file.

    After a flush, an OS crash or power loss can no longer take those points; the death of
    the process alone never could (the page cache holds them). The heartbeat's mtime tells
    a reader on another host when the writer was last alive.
    """

    def __init__(self, flush: Callable[[], None], heartbeat: Path, interval: float) -> None:
        super().__init__(name="reprolog-flusher", daemon=True)
        self._flush = flush
        self._heartbeat = heartbeat
        self._interval = interval
        self._stop_event = threading.Event()

    def beat(self) -> None:
        try:
            os.utime(self._heartbeat)
        except FileNotFoundError:
            self._heartbeat.touch()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self._flush()
                self.beat()
            except Exception:  # never let the flusher die silently mid-run
                logger.exception("reprolog: background flush failed; will retry")

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)

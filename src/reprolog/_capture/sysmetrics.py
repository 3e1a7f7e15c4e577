"""System metrics: CPU, memory, disk and network I/O, and NVIDIA GPUs, sampled on a thread.

Every `interval` seconds a daemon thread logs `sys/*` points into the run (step = sample
number, time = wall time), from psutil and, when `nvidia-ml-py` is installed and a driver
answers, NVML. A sample is also taken when sampling stops, so a run shorter than the
interval still has one. A failure is reported once through `on_error` and never raised.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "ENV_INTERVAL", "SystemSampler", "interval_from"]

ENV_INTERVAL = "REPROLOG_SYSTEM_METRICS"
DEFAULT_INTERVAL = 10.0
_OFF = ("0", "off", "false", "no", "none")


def interval_from(value: float | bool | None, default: float | None = None) -> float | None:
    """The sampling interval in seconds, or None for off.

    None: `$REPROLOG_SYSTEM_METRICS` (seconds, or 0/off), else `default` (`reprolog run`
    passes 10 s; in-process runs sample only when asked). True: 10 s. False or 0: off. A
    number: that many seconds (at least 0.1).

    Raises:
        ValueError: not a bool, a non-negative number, or None.
    """
    if value is None:
        raw = os.environ.get(ENV_INTERVAL, "").strip().lower()
        if not raw:
            return default
        if raw in _OFF:
            return None
        try:
            value = float(raw)
        except ValueError:
            return default
    if value is True:
        return DEFAULT_INTERVAL
    if value is False:
        return None
    if not isinstance(value, (int, float)) or value != value or value < 0:
        raise ValueError(
            f"system_metrics takes True, False, None or a number of seconds >= 0, got {value!r}"
        )
    return None if value == 0 else max(0.1, float(value))


class SystemSampler(threading.Thread):
    """Samples the machine and one process tree; `stop()` takes a last sample and joins.

    Args:
        log: called as `log(points, step)` with a dict of `sys/...` keys (e.g. `Run.log`).
        interval: seconds between samples.
        root_pid: the process whose tree is measured (default: this process).
        on_error: called once with (what, exception) when sampling fails.
    """

    def __init__(
        self,
        log: Callable[[dict[str, float], int], None],
        interval: float,
        *,
        root_pid: int | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        super().__init__(name="reprolog-sysmetrics", daemon=True)
        import psutil

        self._psutil = psutil
        self._log = log
        self._interval = float(interval)
        self._on_error = on_error
        self._failed: set[str] = set()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._step = 0
        self._root = psutil.Process(root_pid or os.getpid())
        self._procs: dict[int, Any] = {}
        self._last_t = time.monotonic()
        self._disk = self._guard("disk", psutil.disk_io_counters)
        self._net = self._guard("network", psutil.net_io_counters)
        psutil.cpu_percent(None)  # the first call only sets the baseline
        self._tree()
        self._nvml = self._guard("gpu", _Nvml.open)

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.sample()

    def stop(self) -> None:
        """Take the last sample and end the thread (idempotent)."""
        if self._stop_event.is_set():
            return
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)
        self.sample()
        if self._nvml is not None:
            self._nvml.close()

    def sample(self) -> None:
        """Log one sample now. Never raises."""
        with self._lock:
            points: dict[str, float] = {}
            self._part("cpu", self._cpu_memory, points)
            self._part("process tree", self._process_tree, points)
            self._part("io", self._io, points)
            if self._nvml is not None:
                self._part("gpu", self._nvml.sample, points)
            if not points:
                return
            try:
                self._log(points, self._step)
                self._step += 1
            except Exception as exc:
                self._report("log", exc)

    # ------------------------------------------------------------------ parts

    def _cpu_memory(self, points: dict[str, float]) -> None:
        ps = self._psutil
        points["sys/cpu_percent"] = float(ps.cpu_percent(None))
        mem = ps.virtual_memory()
        points["sys/memory_used_bytes"] = float(mem.total - mem.available)
        points["sys/memory_available_bytes"] = float(mem.available)
        points["sys/memory_percent"] = float(mem.percent)

    def _tree(self) -> list[Any]:
        ps = self._psutil
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except ps.NoSuchProcess:
            procs = []
        seen: list[Any] = []
        for proc in procs:
            cached = self._procs.get(proc.pid)
            if cached is None:
                cached = self._procs[proc.pid] = proc
                try:
                    proc.cpu_percent(None)  # baseline; a new process counts from the next sample
                except ps.Error:
                    continue
            seen.append(cached)
        alive = {p.pid for p in seen}
        for pid in list(self._procs):
            if pid not in alive:
                del self._procs[pid]
        return seen

    def _process_tree(self, points: dict[str, float]) -> None:
        ps = self._psutil
        cpu = 0.0
        rss = children_rss = 0
        count = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    mem = proc.memory_info().rss
            except ps.Error:
                continue
            count += 1
            if proc.pid == self._root.pid:
                rss = mem
            else:
                children_rss += mem
        points["sys/process_cpu_percent"] = cpu
        points["sys/process_rss_bytes"] = float(rss)
        points["sys/children_rss_bytes"] = float(children_rss)
        points["sys/processes"] = float(count)

    def _io(self, points: dict[str, float]) -> None:
        ps = self._psutil
        now = time.monotonic()
        seconds = max(now - self._last_t, 1e-6)
        self._last_t = now
        disk = ps.disk_io_counters()
        if disk is not None and self._disk is not None:
            points["sys/disk_read_bytes_per_s"] = (
                disk.read_bytes - self._disk.read_bytes
            ) / seconds
            points["sys/disk_write_bytes_per_s"] = (
                disk.write_bytes - self._disk.write_bytes
            ) / seconds
        self._disk = disk
        net = ps.net_io_counters()
        if net is not None and self._net is not None:
            points["sys/network_sent_bytes_per_s"] = (
                net.bytes_sent - self._net.bytes_sent
            ) / seconds
            points["sys/network_recv_bytes_per_s"] = (
                net.bytes_recv - self._net.bytes_recv
            ) / seconds
        self._net = net

    # ------------------------------------------------------------------ failures

    def _part(
        self, what: str, fn: Callable[[dict[str, float]], None], points: dict[str, float]
    ) -> None:
        try:
            fn(points)
        except Exception as exc:
            self._report(what, exc)

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            self._report(what, exc)
            return None

    def _report(self, what: str, exc: BaseException) -> None:
        if what in self._failed:
            return
        self._failed.add(what)
        if self._on_error is not None:
            with contextlib.suppress(Exception):
                self._on_error(f"system metrics: {what}", exc)


class _Nvml:
    """Per-GPU utilisation, memory, temperature and power through NVML (`nvidia-ml-py`)."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            import pynvml as nvml
        except ImportError:
            return None  # the optional extra is not installed: no GPU metrics, no error
        try:
            nvml.nvmlInit()
        except Exception:
            return None  # no NVIDIA driver on this machine
        count = nvml.nvmlDeviceGetCount()
        return cls(nvml, [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)])

    def sample(self, points: dict[str, float]) -> None:
        nv = self._nvml
        for i, handle in enumerate(self._handles):
            prefix = f"sys/gpu.{i}."
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            points[prefix + "utilization_percent"] = float(util.gpu)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            points[prefix + "memory_used_bytes"] = float(mem.used)
            points[prefix + "memory_percent"] = 100.0 * mem.used / mem.total if mem.total else 0.0
            with contextlib.suppress(nv.NVMLError):
                points[prefix + "temperature_c"] = float(
                    nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)
                )
            with contextlib.suppress(nv.NVMLError):
                points[prefix + "power_w"] = nv.nvmlDeviceGetPowerUsage(handle) / 1000.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()

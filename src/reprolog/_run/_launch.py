"""`reprolog run -- CMD`: run any command as one recorded run, its exit status as the status.

The launcher (this process) starts the run, then the command with autolog on and the run's id
in `$REPROLOG_RUN`, so that the command's processes record into this run (see `_job`). It
passes the command's stdout and stderr through to the terminal unchanged while recording
them (`_capture/console.py`), samples the system for the whole process tree, forwards
SIGINT/SIGTERM/SIGHUP, and ends the run from the exit status: 0 → completed, n → failed
with code n, death by a signal (or a forwarded one) → interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import selectors
import shutil
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError, StoreError

if TYPE_CHECKING:
    from reprolog._run._run import Run

__all__ = ["LaunchOptions", "launch"]

_DRAIN_AFTER_EXIT = 2.0  # seconds to keep reading pipes a grandchild still holds open
_TICK = 0.25


@dataclass
class LaunchOptions:
    """What `reprolog run` was asked for (validated by `launch`)."""

    command: Sequence[str]
    name: str | None = None
    experiment: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    dir: str | os.PathLike[str] | None = None
    console: bool = True
    console_limit: int | None = None
    system_metrics: float | bool | None = None  # seconds, False: off, None: 10 s or the env


def _resolve_command(command: Sequence[str]) -> str:
    if not command:
        raise ArgumentError(
            "no command to run; give it after --, e.g. reprolog run -- python train.py"
        )
    program = command[0]
    if os.sep in program:
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return program
        raise ArgumentError(f"command not found or not executable: {program!r}")
    found = shutil.which(program)
    if found is None:
        raise ArgumentError(f"command not found: {program!r} (not on PATH)")
    return found


def launch(options: LaunchOptions) -> int:
    """Run the command as one recorded run and return the exit code `reprolog run` exits with.

    Raises:
        ArgumentError: no command, a command not found, a bad option (before any run exists).
        StoreError: the store cannot be created.
    """
    from reprolog._capture.command import ENV_LAUNCH
    from reprolog._capture.console import ConsoleRecorder, limit_from_env
    from reprolog._capture.redact import redact_argv
    from reprolog._capture.sysmetrics import DEFAULT_INTERVAL, interval_from
    from reprolog._run import _job
    from reprolog._run._run import init
    from reprolog._storage._layout import StoreLayout, resolve_store_dir

    command = [str(part) for part in options.command]
    _resolve_command(command)
    interval = interval_from(options.system_metrics, DEFAULT_INTERVAL)
    root = resolve_store_dir(options.dir, must_exist=False)
    try:
        StoreLayout(root).ensure()
    except OSError as exc:
        raise StoreError(
            f"cannot create the store at {root}: {exc.strerror or exc}", path=str(root)
        ) from None

    # `reprolog run` inside a job makes a run of its own (its command records into that one)
    os.environ.pop(_job.ENV_RUN, None)
    cwd = os.getcwd()
    launch_env = json.dumps({"argv": command, "cwd": cwd})
    os.environ[ENV_LAUNCH] = launch_env  # the launcher's own capture records the command too
    run = init(
        options.name,
        experiment=options.experiment,
        dir=root,
        tags=dict(options.tags) or None,
        console=False,
        system_metrics=False,
    )
    run.update_section(
        "job", {"launcher": "reprolog run", "argv": redact_argv(command)[0], "cwd": cwd}
    )

    env = dict(os.environ)
    env.update(
        {
            "REPROLOG_AUTOLOG": "1",
            _job.ENV_RUN: run.id,
            "REPROLOG_DIR": str(root),
            ENV_LAUNCH: launch_env,
        }
    )
    streams: _Streams | None = None
    recorder = None
    if options.console:
        limit = limit_from_env() if options.console_limit is None else options.console_limit
        recorder = ConsoleRecorder(run._layout.console, limit=limit, env=env)
        streams = _Streams.open()
        # Where our stdout is not a terminal the child's is a pipe, and Python block-buffers
        # it, as it would writing to a file: we leave that alone (PYTHONUNBUFFERED=1 would
        # cost a script printing many lines 2-4x); set it yourself for per-line times.

    _job.hold(run._facts)
    started = time.time()
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=streams.child_out if streams else None,
            stderr=streams.child_err if streams else None,
        )
    except OSError as exc:
        if streams:
            streams.close_all()
        _job.absorb(run._facts)
        run.finish("failed", error=exc)
        raise ArgumentError(f"could not start {command[0]!r}: {exc.strerror or exc}") from None
    if streams:
        streams.close_child_ends()
    if interval is not None:
        run._services.start_sampler(interval)
    # Compaction at the end needs pyarrow (which imports pandas): ~0.5 s of imports, done
    # while the child runs rather than after it.
    threading.Thread(target=_preload, name="reprolog-preload", daemon=True).start()

    forwarded = _Forwarder(proc, streams)
    try:
        if streams and recorder:
            _pump(proc, streams, recorder, run.record_capture_error)
        rc = proc.wait()
    finally:
        forwarded.restore()
    return _end(run, rc, forwarded.received, recorder, proc.pid, started)


def _end(
    run: Run,
    rc: int,
    received: str | None,
    recorder: Any,
    pid: int,
    started: float,
) -> int:
    from reprolog._run import _job
    from reprolog._run._status import Signal

    facts = run._facts
    proposal = _job.absorb(facts) or {}
    signame = None
    if rc < 0:
        with contextlib.suppress(ValueError):
            signame = signal.Signals(-rc).name
        signame = signame or f"signal {-rc}"
    with facts.lock:
        record = facts.record
        if recorder is not None:
            try:
                summary = recorder.close()
            except Exception as exc:  # the lines written so far stay
                run.record_capture_error("console", exc)
                summary = recorder.summary()
            summary["source"] = "reprolog run"
            record["sections"]["console"] = summary
        job = record["sections"].setdefault("job", {})
        if job.get("ends"):
            # each seat's pid and time were for the launcher; kept, they would make `diff` of
            # two identical jobs differ
            job["ends"] = [
                {k: v for k, v in end.items() if k in ("status", "error")} for end in job["ends"]
            ]
        job.update(
            {
                "pid": pid,
                "exit_code": rc if rc >= 0 else None,
                "signal": signame,
                "received": received,
                "seconds": round(time.time() - started, 3),
            }
        )
    error: BaseException | None = None
    proposed = str(proposal.get("status"))
    if received or signame:
        status, error = "interrupted", Signal(received or signame or "")
    elif rc == 0:
        status = proposed if proposed in ("failed", "interrupted") else "completed"
    else:
        status = "failed"
        if not (proposal.get("status") == "failed" and proposal.get("error")):
            with facts.lock:
                facts.record["error"] = {
                    "type": "ExitCode",
                    "message": f"exit code {rc}",
                    "traceback": "",
                }
    run.finish(status, error=error)
    if rc < 0:
        return 128 - rc
    return rc


def _preload() -> None:
    with contextlib.suppress(Exception):
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import reprolog._storage._encode  # noqa: F401


# ---------------------------------------------------------------------------- streams


def _winsize(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


@dataclass
class _Streams:
    """The child's stdout/stderr: a pseudo-terminal where ours is a terminal, else a pipe."""

    read_out: int
    read_err: int
    child_out: int
    child_err: int
    ttys: bool

    @classmethod
    def open(cls) -> _Streams:
        ends = []
        ttys = True
        for fd in (1, 2):
            if os.isatty(fd):
                master, slave = os.openpty()
                size = _winsize(fd)
                if size:
                    with contextlib.suppress(OSError):
                        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
                ends.append((master, slave))
            else:
                ttys = False
                ends.append(os.pipe())
        for read_end, _ in ends:
            os.set_inheritable(read_end, False)
        return cls(ends[0][0], ends[1][0], ends[0][1], ends[1][1], ttys)

    def close_child_ends(self) -> None:
        for fd in (self.child_out, self.child_err):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_all(self) -> None:
        self.close_child_ends()
        for fd in (self.read_out, self.read_err):
            with contextlib.suppress(OSError):
                os.close(fd)

    def resize(self) -> None:
        for ours, fd in ((1, self.read_out), (2, self.read_err)):
            size = _winsize(ours)
            if size and os.isatty(fd):
                with contextlib.suppress(OSError):
                    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes, broken: set[int]) -> None:
    if fd in broken:
        return
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            time.sleep(0.001)
            continue
        except OSError:  # our stdout went away (`| head`): keep recording, stop echoing
            broken.add(fd)
            return
        view = view[n:]


def _pump(
    proc: subprocess.Popen[bytes],
    streams: _Streams,
    recorder: Any,
    on_error: Callable[[str, BaseException], None],
) -> None:
    """Copy the child's output to ours as it comes, and record it, until both streams end.

    When recording fails (a full disk...), the failure goes to `on_error` and copying goes
    on: the child must never block on a pipe nobody reads.
    """
    selector = selectors.DefaultSelector()
    selector.register(streams.read_out, selectors.EVENT_READ, ("o", 1))
    selector.register(streams.read_err, selectors.EVENT_READ, ("e", 2))
    open_fds = {streams.read_out, streams.read_err}
    broken: set[int] = set()
    exited_at: float | None = None
    try:
        while open_fds:
            for key, _ in selector.select(_TICK):
                fd = key.fd
                stream, ours = key.data
                try:
                    data = os.read(fd, 65536)
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: the pty's other side closed
                        raise
                    data = b""
                if not data:
                    selector.unregister(fd)
                    open_fds.discard(fd)
                    os.close(fd)
                    continue
                _write_all(ours, data, broken)
                if recorder is not None:
                    try:
                        recorder.feed(stream, data)
                        if recorder.due():
                            recorder.flush()
                    except Exception as exc:
                        on_error("console", exc)
                        recorder = None
            if recorder is not None and recorder.due():
                try:
                    recorder.flush()
                except Exception as exc:
                    on_error("console", exc)
                    recorder = None
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > _DRAIN_AFTER_EXIT:
                break  # a grandchild holds our pipes open: it is not part of this run's end
    finally:
        for fd in list(open_fds):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        selector.close()


# ---------------------------------------------------------------------------- signals


class _Forwarder:
    """Forward SIGTERM/SIGHUP (and a SIGINT the terminal did not already send) to the child."""

    def __init__(self, proc: subprocess.Popen[bytes], streams: _Streams | None) -> None:
        self._proc = proc
        self._streams = streams
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        if streams is not None and streams.ttys:
            self._previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_winch)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name
        if signum == signal.SIGINT and _terminal_sent_it():
            return  # Ctrl+C reached the whole foreground process group, the child included
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signum)

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        if self._streams is not None:
            self._streams.resize()
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signum)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, previous)


def _terminal_sent_it() -> bool:
    """True when we are in the terminal's foreground process group (so is the child)."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False

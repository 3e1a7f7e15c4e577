"""A run's record keeping: run.json, and the facts `Run` keeps in it besides its metrics.

`RunFacts` is the component `Run` owns for that: the record (params, tags, sections, datasets,
artifacts, capture report), its lock, when it may be written (a launcher holding back its
writes, a DDP rank's seat that never writes), whether the run still takes facts, and the
worker thread that hashes artifacts. Every change is written to run.json at once.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolog._errors import ArgumentError, RunStateError
from reprolog._storage._artifacts import ArtifactWorker, describe_artifact
from reprolog._storage._layout import RunLayout
from reprolog._storage._recordfile import RECORD_FORMAT_VERSION, write_json_atomic
from reprolog._storage._values import check_step, flatten, json_safe

logger = logging.getLogger("reprolog")


def new_record(
    run_id: str, name: str | None, experiment: str | None, flush_interval: float
) -> dict[str, Any]:
    """The record of a run starting now, before anything is captured or logged."""
    return {
        "format_version": RECORD_FORMAT_VERSION,
        "id": run_id,
        "name": name,
        "experiment": experiment or "default",
        "status": "running",
        "start_time": time.time(),
        "end_time": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "flush_interval": float(flush_interval),
        "params": {},
        "param_history": [],
        "param_types": {},
        "tags": {},
        "error": None,
        "sections": {},
        "capture_report": {"captured": [], "skipped": [], "redacted": [], "errors": []},
        "artifacts": [],
        "metrics_summary": None,
    }


class RunFacts:
    """One run's record and the facts kept in it; every change is written to run.json at once.

    Args:
        record: the record to keep (a new one, or the job's in a seat of a launched run).
        layout: the run folder whose run.json it is written to.
        blobs: the store's blob folder, for artifact copies.
        writes: False in a DDP rank's seat of a launched job (rank 0 writes the record).
    """

    def __init__(
        self, record: dict[str, Any], layout: RunLayout, blobs: Path, *, writes: bool
    ) -> None:
        self.record = record
        self.lock = threading.RLock()
        self.layout = layout
        self._blobs = blobs
        self._writes = writes
        #: Set by the launcher while its job's processes write the record (see `_job.hold`):
        #: the number of capture errors it had then.
        self.held: int | None = None
        #: True once the run finished (or, in a forked child, never was this process's).
        self.ended = False
        self.warned: set[str] = set()
        self.artifacts = ArtifactWorker()
        self._pid = os.getpid()

    @property
    def run_id(self) -> str:
        return str(self.record["id"])

    # ------------------------------------------------------------------ state

    def closed_error(self) -> RunStateError:
        """The error of a call that writes into a run that no longer takes it."""
        if self._pid != os.getpid():
            return RunStateError(
                f"run {self.run_id} belongs to process {self._pid}; this forked child "
                f"({os.getpid()}) cannot write to it",
                run_id=self.run_id,
            )
        return RunStateError(
            f"run {self.run_id} has finished with status {self.record['status']!r}; "
            "start a new run to log more",
            run_id=self.run_id,
        )

    def check_live(self) -> None:
        """Raise `closed_error()` unless the run is live in this process."""
        if self.ended or self._pid != os.getpid():
            raise self.closed_error()

    # ------------------------------------------------------------------ record I/O

    def save(self) -> None:
        """Write the record to run.json (atomically), unless this process must not now."""
        if self.held is not None:
            return  # a launcher while its job's processes write the record (see _job)
        if not self._writes:
            return  # a DDP rank's seat: rank 0 writes the job's record
        with self.lock:
            write_json_atomic(self.layout.record, self.record)

    def save_quietly(self) -> None:
        try:
            self.save()
        except Exception:
            logger.exception("reprolog: could not write the record of run %s", self.run_id)

    def set_section(self, name: str, section: dict[str, Any]) -> None:
        """Replace a section as the core computed it (no redaction); written with the next save."""
        with self.lock:
            self.record["sections"][name] = section

    def log_params(self, params: Mapping[str, Any]) -> None:
        """See `Run.log_params`."""
        if not isinstance(params, Mapping):
            raise ArgumentError(
                f"log_params() takes a mapping, got {type(params).__name__}: {params!r}"
            )
        self.check_live()
        from reprolog._capture.redact import redact_mapping

        flat: dict[str, Any] = {}
        types: dict[str, str] = {}
        for key, value in flatten(params).items():
            safe, type_name = json_safe(value)
            flat[str(key)] = safe
            if type_name is not None:
                types[str(key)] = type_name
        masked, redacted = redact_mapping(flat)
        now = time.time()
        with self.lock:
            current = self.record["params"]
            for key, value in masked.items():
                if key in current and current[key] != value:
                    self.record["param_history"].append(
                        {"key": key, "old": current[key], "new": value, "time": now}
                    )
                current[key] = value
            self.record["param_types"].update(types)
            self._note_redacted(f"params.{name}" for name in redacted)
            self.save()

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """See `Run.set_tags`."""
        if tags is not None and not isinstance(tags, Mapping):
            raise ArgumentError(f"set_tags() takes a mapping, got {type(tags).__name__}: {tags!r}")
        self.check_live()
        from reprolog._capture.redact import redact_mapping

        merged = {str(k): str(v) for k, v in {**(tags or {}), **more}.items()}
        masked, redacted = redact_mapping(merged)
        with self.lock:
            self.record["tags"].update({k: str(v) for k, v in masked.items()})
            self._note_redacted(f"tags.{name}" for name in redacted)
            self.save()

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None:
        """See `Run.update_section`."""
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"section name must be a non-empty str, got {name!r}")
        if not isinstance(mapping, Mapping):
            raise ArgumentError(
                f"update_section() takes a mapping, got {type(mapping).__name__}: {mapping!r}"
            )
        self.check_live()
        from reprolog._capture.redact import redact_mapping

        masked, redacted = redact_mapping(dict(mapping))
        with self.lock:
            section = self.record["sections"].setdefault(name, {})
            section.update(masked)
            self._note_redacted(f"sections.{name}.{n}" for n in redacted)
            self.save()

    def record_capture_error(self, what: str, error: BaseException | str) -> None:
        """See `Run.record_capture_error`."""
        message = (
            f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        )
        try:
            from reprolog._capture.redact import redact_text

            message = redact_text(message)[0]
        except Exception:  # redaction itself must not turn a capture failure into a crash
            message = "<message withheld: redaction failed>"
        with self.lock:
            self.record["capture_report"].setdefault("errors", []).append(
                {"what": what, "error": message}
            )
            if not self.ended:
                self.save_quietly()
        if what not in self.warned:
            self.warned.add(what)
            logger.warning("reprolog: could not capture %s (%s); training goes on", what, message)

    def _note_redacted(self, names: Any) -> None:
        report = self.record["capture_report"].setdefault("redacted", [])
        for name in names:
            if name not in report:
                report.append(name)

    def log_dataset(
        self, name: str, obj: Any, *, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """See `Run.log_dataset`."""
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"dataset name must be a non-empty str, got {name!r}")
        self.check_live()
        try:
            from reprolog._fingerprint._content import describe_data

            desc = dict(describe_data(obj))
        except Exception as exc:
            self.record_capture_error(f"data:{name}", exc)
            from reprolog._capture.redact import redact_text

            desc = {"fingerprint": None, "error": redact_text(f"{type(exc).__name__}: {exc}")[0]}
        if context:
            desc["context"] = dict(context)
        self.update_section("data", {name: desc})
        return desc

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "file",
        step: int | None = None,
        copy: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """See `Run.log_artifact`."""
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(kind, str) or not kind:
            raise ArgumentError(f"kind must be a non-empty str, got {kind!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ArgumentError(f"metadata must be a mapping or None, got {metadata!r}")
        resolved = Path(os.fspath(path)).expanduser().absolute()
        if not resolved.exists():
            raise ArgumentError(f"log_artifact(): {resolved} does not exist")
        if step is not None:
            step = check_step(step)
        self.check_live()
        from reprolog._capture.redact import redact_mapping

        meta, _ = redact_mapping(dict(metadata or {}))
        with self.lock:
            art_id = f"a{len(self.record['artifacts']) + 1}"
            entry = {
                "id": art_id,
                "path": str(resolved),
                "name": resolved.name,
                "kind": kind,
                "type": "dir" if resolved.is_dir() else "file",
                "step": step,
                "time": time.time(),
                "size": None,
                "sha256": None,
                "blob": None,
                "status": "pending",
                "metadata": meta,
            }
            self.record["artifacts"].append(entry)
            self.save()

        def job() -> None:
            try:
                fields = describe_artifact(resolved, copy=copy, blobs_root=self._blobs)
            except Exception as exc:
                fields = {"status": "error", "problem": f"{type(exc).__name__}: {exc}"}
                self.record_capture_error(f"artifact:{resolved}", exc)
            with self.lock:
                entry.update(fields)
                self.save_quietly()

        self.artifacts.submit(job)
        return art_id

    def update_artifact(self, artifact_id: str, *, metadata: Mapping[str, Any]) -> None:
        """See `Run.update_artifact`."""
        if not isinstance(metadata, Mapping):
            raise ArgumentError(f"metadata must be a mapping, got {metadata!r}")
        self.check_live()
        with self.lock:
            for entry in self.record["artifacts"]:
                if entry["id"] == artifact_id:
                    entry["metadata"].update(dict(metadata))
                    self.save()
                    return
        raise ArgumentError(f"run {self.run_id} has no artifact {artifact_id!r}")

    def wait(self) -> None:
        """See `Run.wait`."""
        self.artifacts.wait()

    def capture(self) -> None:
        """Capture environment, code, command, seeds and determinism into the record."""
        try:
            from reprolog._capture.sections import capture_all

            result = capture_all(self.layout.dir)
        except Exception as exc:
            self.record_capture_error("capture", exc)
            return
        with self.lock:
            self.record["sections"].update(result.sections)
            report = self.record["capture_report"]
            for key, value in result.report.items():
                if isinstance(value, list):
                    report.setdefault(key, []).extend(value)
                else:
                    report[key] = value

    def refresh_risks(self) -> None:
        """Recompute the determinism risks from the sections recorded so far."""
        try:
            from reprolog._capture.sections import compute_risks

            sections = self.record["sections"]
            determinism = sections.get("determinism")
            if (
                determinism is not None
                and not determinism.get("torch_loaded")
                and "torch" in sys.modules
            ):
                # torch was imported after init: its determinism flags are knowable only now.
                from reprolog._capture.determinism import capture_determinism
                from reprolog._capture.report import CaptureReport

                determinism.update(capture_determinism(CaptureReport()))
            if "determinism" in sections:
                sections["determinism"]["risks"] = compute_risks(sections)
        except Exception as exc:
            self.record["capture_report"]["errors"].append(
                {"what": "determinism risks", "error": f"{type(exc).__name__}: {exc}"}
            )

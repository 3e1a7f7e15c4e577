"""What a run records besides metrics: params, tags, sections, datasets, artifacts, capture."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprolog._errors import ArgumentError
from reprolog._storage._artifacts import ArtifactWorker, describe_artifact
from reprolog._storage._layout import RunLayout, StoreLayout
from reprolog._storage._values import check_step, flatten, json_safe

if TYPE_CHECKING:
    from reprolog._fingerprint._steptrace import StepFingerprints
    from reprolog._storage._writer import MetricWriter

logger = logging.getLogger("reprolog")


class RunFactsMixin:
    """The record-keeping half of `Run`; every change is written to run.json at once."""

    id: str
    _record: dict[str, Any]
    _record_lock: threading.RLock
    _warned: set[str]
    _finished: bool
    _store: StoreLayout
    _layout: RunLayout
    _artifacts: ArtifactWorker
    _metrics: MetricWriter

    def _check_live(self) -> None:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def _save_quietly(self) -> None:
        raise NotImplementedError

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; nested mappings flatten to dotted keys.

        A later value for a key wins; the change is kept in the record's `param_history`.
        Values that JSON cannot hold are stored as their repr, with their type name in
        `param_types`. Secret-looking names and values are redacted before touching disk.

        Raises:
            ArgumentError: `params` is not a mapping.
            RunStateError: the run has finished.
        """
        if not isinstance(params, Mapping):
            raise ArgumentError(
                f"log_params() takes a mapping, got {type(params).__name__}: {params!r}"
            )
        self._check_live()
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
        with self._record_lock:
            current = self._record["params"]
            for key, value in masked.items():
                if key in current and current[key] != value:
                    self._record["param_history"].append(
                        {"key": key, "old": current[key], "new": value, "time": now}
                    )
                current[key] = value
            self._record["param_types"].update(types)
            self._note_redacted(f"params.{name}" for name in redacted)
            self._save()

    def set_tags(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set string tags (values are converted with str); redacted like params."""
        if tags is not None and not isinstance(tags, Mapping):
            raise ArgumentError(f"set_tags() takes a mapping, got {type(tags).__name__}: {tags!r}")
        self._check_live()
        from reprolog._capture.redact import redact_mapping

        merged = {str(k): str(v) for k, v in {**(tags or {}), **more}.items()}
        masked, redacted = redact_mapping(merged)
        with self._record_lock:
            self._record["tags"].update({k: str(v) for k, v in masked.items()})
            self._note_redacted(f"tags.{name}" for name in redacted)
            self._save()

    def update_section(self, name: str, mapping: Mapping[str, Any]) -> None:
        """Merge facts into a named section of the record (integrations use this).

        Raises:
            ArgumentError: `name` is not a non-empty string or `mapping` is not a mapping.
        """
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"section name must be a non-empty str, got {name!r}")
        if not isinstance(mapping, Mapping):
            raise ArgumentError(
                f"update_section() takes a mapping, got {type(mapping).__name__}: {mapping!r}"
            )
        self._check_live()
        from reprolog._capture.redact import redact_mapping

        masked, redacted = redact_mapping(dict(mapping))
        with self._record_lock:
            section = self._record["sections"].setdefault(name, {})
            section.update(masked)
            self._note_redacted(f"sections.{name}.{n}" for n in redacted)
            self._save()

    def record_capture_error(self, what: str, error: BaseException | str) -> None:
        """Record that capturing `what` failed; logged once, never raised."""
        message = (
            f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        )
        try:
            from reprolog._capture.redact import redact_text

            message = redact_text(message)[0]
        except Exception:  # redaction itself must not turn a capture failure into a crash
            message = "<message withheld: redaction failed>"
        with self._record_lock:
            self._record["capture_report"].setdefault("errors", []).append(
                {"what": what, "error": message}
            )
            if not self._finished:
                self._save_quietly()
        if what not in self._warned:
            self._warned.add(what)
            logger.warning("reprolog: could not capture %s (%s); training goes on", what, message)

    def step_fingerprints(
        self, model: Any = None, *, every: bool | int | None = None
    ) -> StepFingerprints | None:
        """Return the run's per-step fingerprint recorder (made on first call), or None if off.

        Integrations call it once per training and then, at every optimizer step,
        ``fp.step(step, batch, epoch=...)`` (RNG states, the batch's content hash, weights
        every `every` steps), ``fp.add_batch(b)`` per further micro-batch and ``fp.grads()``
        before the optimizer step. The records become ``steps.parquet`` (never metrics);
        `reprolog.diff` reads them to say what made two runs part.

        Args:
            model: what to fingerprint the weights of (a torch module, a Keras model, or an
                iterable of tensors/arrays); None: no weights. A later call replaces it.
            every: weights and gradients every this many steps; None:
                ``$REPROLOG_STEP_FINGERPRINTS`` (``off``, ``on`` or K), else 100; False: off.

        Returns:
            The recorder, or None when step fingerprints are off.

        Raises:
            ArgumentError: `every` (or the environment variable) is not a valid setting.
            RunStateError: the run has finished.
        """
        self._check_live()
        from reprolog._fingerprint._steptrace import for_writer

        new = self._metrics.companion_count()
        trace = for_writer(self._metrics, model, every, self.record_capture_error)
        if trace is not None and self._metrics.companion_count() != new:
            self.update_section(
                "step_fingerprints",
                {"every": trace.every, "file": "steps.parquet", "rng": trace.rng_methods},
            )
        return trace

    def _note_redacted(self, names: Any) -> None:
        report = self._record["capture_report"].setdefault("redacted", [])
        for name in names:
            if name not in report:
                report.append(name)

    def log_dataset(
        self, name: str, obj: Any, *, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fingerprint a dataset and record it under sections["data"][name].

        Returns the description (fingerprint, how it was hashed, shape or length, dtype or
        schema). A failure to fingerprint is recorded in the capture report, never raised.
        """
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"dataset name must be a non-empty str, got {name!r}")
        self._check_live()
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
        """Record a file or folder: path, size, sha256 and step; optionally store a copy.

        The hash (and copy) is computed on a worker thread, so a large checkpoint does not
        block training; `finish()` waits for it. With `copy=True` the content goes into the
        store's blob folder, content-addressed and deduplicated.

        Returns:
            The artifact's id, for `update_artifact`.

        Raises:
            ArgumentError: the path does not exist or an argument is of the wrong type.
        """
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
        self._check_live()
        from reprolog._capture.redact import redact_mapping

        meta, _ = redact_mapping(dict(metadata or {}))
        with self._record_lock:
            art_id = f"a{len(self._record['artifacts']) + 1}"
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
            self._record["artifacts"].append(entry)
            self._save()

        def job() -> None:
            try:
                fields = describe_artifact(resolved, copy=copy, blobs_root=self._store.blobs)
            except Exception as exc:
                fields = {"status": "error", "problem": f"{type(exc).__name__}: {exc}"}
                self.record_capture_error(f"artifact:{resolved}", exc)
            with self._record_lock:
                entry.update(fields)
                self._save_quietly()

        self._artifacts.submit(job)
        return art_id

    def update_artifact(self, artifact_id: str, *, metadata: Mapping[str, Any]) -> None:
        """Merge `metadata` into a logged artifact (e.g. {"deleted": True} after rotation)."""
        if not isinstance(metadata, Mapping):
            raise ArgumentError(f"metadata must be a mapping, got {metadata!r}")
        self._check_live()
        with self._record_lock:
            for entry in self._record["artifacts"]:
                if entry["id"] == artifact_id:
                    entry["metadata"].update(dict(metadata))
                    self._save()
                    return
        raise ArgumentError(f"run {self.id} has no artifact {artifact_id!r}")

    def wait(self) -> None:
        """Block until pending artifact hashes and copies are done."""
        self._artifacts.wait()

    def _capture(self) -> None:
        try:
            from reprolog._capture import capture_all

            result = capture_all(self._layout.dir)
        except Exception as exc:
            self.record_capture_error("capture", exc)
            return
        with self._record_lock:
            self._record["sections"].update(result.sections)
            report = self._record["capture_report"]
            for key, value in result.report.items():
                if isinstance(value, list):
                    report.setdefault(key, []).extend(value)
                else:
                    report[key] = value

    def _take_pending_seeding(self) -> None:
        try:
            from reprolog._run._seed import take_pending_seeding

            info = take_pending_seeding()
        except Exception as exc:
            self.record_capture_error("seed_everything", exc)
            return
        if info:
            self._record["sections"].setdefault("seeds", {})["seed_everything"] = info

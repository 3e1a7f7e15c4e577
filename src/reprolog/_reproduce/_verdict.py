"""Judge a re-run: diff it with the original (or its prefix), rank causes, compare checkpoints."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reprolog._reproduce._model import Cause, CheckpointComparison, Reproduction

if TYPE_CHECKING:
    from reprolog._diff import Difference, RunDiff
    from reprolog._store._record import RunRecord

__all__ = ["judge"]

# Record keys that name a place or an interpreter, not a content: a re-run in a work tree, in a
# rebuilt venv or through another name of the same interpreter changes them by itself.
_PATH_KEYS = (
    "command.executable",
    "environment.python_executable",
    "environment.python_base_executable",
    "environment.virtualenv",
    "environment.env.VIRTUAL_ENV",
    "environment.installer",
    "environment.index_urls",
    "command.entry_file",
    "command.launcher.from",
)
_BOOKKEEPING = ("tags.reproduces", "code.branch", "code.detached", "reproduce")
_MAX_CAUSES = 5
# Notes (from the rebuild) that can change the numbers, as they begin.
_INEXACT = ("the recorded diff", "untracked file", "git apply", "submodules", "module ")


def judge(
    out: Reproduction,
    new_dir: str | None,
    original: RunRecord,
    *,
    rtol: float,
    atol: float,
    injected_pythonpath: list[str] | None = None,
) -> None:
    """Diff the original against the re-run and set the verdict, divergences and causes."""
    from reprolog._diff import MetricStatus
    from reprolog._store._reader import StoreReader

    if new_dir is None:
        out.verdict = "failed"
        return
    new = StoreReader.record_at(new_dir)
    out.new = new.id
    if out.error is not None or new.status not in ("completed", original.status):
        out.verdict = "failed"
        if out.error is None:
            err = new.error or {}
            out.error = f"the re-run ended {new.status}: {err.get('type')}: {err.get('message')}"
        return
    if original.status != "completed":
        out.notes.append(f"the original run ended {original.status}, and so did the re-run")
    full = _compare(original, new, rtol=rtol, atol=atol, out=out)
    out.diff, out.expected = _split_expected(full, out, original, injected_pythonpath or [])
    out.checkpoints = compare_checkpoints(original, new)
    out.diff = _without_volatile(out.diff, out)
    d = out.diff
    diverged = [m for m in d.metrics if m.status is MetricStatus.DIVERGED]
    out.first_divergent = {m.key: m.step for m in diverged}
    only = d.metrics_only_in_a + d.metrics_only_in_b
    if diverged or only:
        out.verdict = "diverged"
        if diverged:
            first = min(diverged, key=lambda m: (m.step if m.step is not None else 2**63, m.key))
            out.diverged_at, out.diverged_metric = first.step, first.key
        else:
            out.diverged_metric = only[0]
    elif any(m.status is MetricStatus.WITHIN_TOLERANCE for m in d.metrics):
        out.verdict = "within tolerance"
    else:
        out.verdict = "identical"
        if not d.metrics:
            out.notes.append("the original logged no metrics: only the record was compared")
    if out.verdict != "identical":
        out.causes = rank_causes(d, out, original, new)
        out.likely_cause = str(out.causes[0]) if out.causes else None


# ---------------------------------------------------------------------------------- metrics

# Metrics that measure the machine, not the training: wall-clock times and rates, and the
# system metrics (`sys/...`). They change on every run and never decide a verdict.
_VOLATILE = re.compile(
    r"^sys/|(^|[^a-z])(time|runtime|duration|elapsed|seconds|per_second|throughput)([^a-z]|$)",
    re.IGNORECASE,
)


def _without_volatile(d: RunDiff, out: Reproduction) -> RunDiff:
    keep = [m for m in d.metrics if not _VOLATILE.search(m.key)]
    left = sorted({m.key for m in d.metrics} - {m.key for m in keep})
    only_a = [k for k in d.metrics_only_in_a if not _VOLATILE.search(k)]
    only_b = [k for k in d.metrics_only_in_b if not _VOLATILE.search(k)]
    out.unjudged = left
    return dataclasses.replace(d, metrics=keep, metrics_only_in_a=only_a, metrics_only_in_b=only_b)


def _compare(
    original: RunRecord, new: RunRecord, *, rtol: float, atol: float, out: Reproduction
) -> RunDiff:
    """``diff(original, new)``; with a step limit, on the prefix the re-run reached only."""
    from reprolog._diff import RunDiff, diff
    from reprolog._diff import _points as points
    from reprolog._diff import _steps as steps_of
    from reprolog._diff._explain import explain
    from reprolog._diff._metrics import compare_all, curves_from_table, split_system
    from reprolog._diff._records import compare_records

    if out.steps is None:
        return diff(original, new, rtol=rtol, atol=atol)
    import pyarrow as pa
    import pyarrow.compute as pc

    ta, tb = points(original), points(new)
    if tb.num_rows == 0:
        return diff(original, new, rtol=rtol, atol=atol)
    last = int(pc.max(tb.column("step")).as_py())
    out.new_steps = last
    if ta.num_rows and last >= int(pc.max(ta.column("step")).as_py()):
        out.notes.append(
            f"--steps {out.steps}: the re-run did not stop early (it logged as many steps as the "
            "original): this training honours no step limit (scikit-learn has no steps; a plain "
            "script reads RunOwner.max_steps), so the whole run was compared"
        )
    ta = ta.filter(pc.less_equal(ta.column("step"), last))
    # Stopping early makes a framework log its epoch-end values at the last step: those points
    # have no counterpart in the original at that step, and are not part of the prefix.
    there = set(ta.filter(pc.equal(ta.column("step"), last)).column("key").to_pylist())
    at_last = pc.equal(tb.column("step"), last)
    keys = pc.cast(tb.column("key"), pa.string())
    keep = pc.or_(
        pc.invert(at_last), pc.is_in(keys, value_set=pa.array(sorted(there), pa.string()))
    )
    tb = tb.filter(keep)
    curves_a, system_a = split_system(curves_from_table(ta))
    curves_b, system_b = split_system(curves_from_table(tb))
    metrics, only_a, only_b = compare_all(curves_a, curves_b, rtol=rtol, atol=atol)
    if only_a:
        out.notes.append(
            f"not logged within the first {last} steps of the re-run (left out): "
            + ", ".join(only_a)
        )
    differences = compare_records(original.raw, new.raw)
    # The step fingerprints of the prefix only: the original's later steps have no counterpart.
    fa, fb = steps_of(original), steps_of(new)
    if fa is not None:
        fa = fa.filter(pc.less_equal(fa.column("step"), last))
    explanation = explain(
        fa, fb, metrics, differences,
        (original.raw.get("sections") or {}, new.raw.get("sections") or {}),
    )  # fmt: skip
    return RunDiff(
        a=original.id, b=new.id, differences=differences,
        metrics=metrics, metrics_only_in_a=[], metrics_only_in_b=only_b,
        rtol=float(rtol), atol=float(atol), explanation=explanation,
        system_metrics=sorted(set(system_a) | set(system_b)),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- expected


def _split_expected(
    d: RunDiff, out: Reproduction, original: RunRecord, injected: list[str]
) -> tuple[RunDiff, list[Difference]]:
    """Move the differences that re-running in a work tree causes by itself out of the diff."""
    root = str(original.section("code").get("root") or "")
    cwd = str(original.section("command").get("cwd") or "")
    swaps = [(out.workdir, root), (out.cwd, cwd)]
    if out.venv:
        swaps.append((out.venv, str(original.section("environment").get("virtualenv") or "")))

    def unmap(value: Any) -> Any:
        if isinstance(value, str):
            for new, old in swaps:
                if new and old:
                    value = value.replace(new, old)
            return value
        if isinstance(value, list):
            return [unmap(v) for v in value]
        if isinstance(value, Mapping):
            return {k: unmap(v) for k, v in value.items()}
        return value

    def is_expected(x: Difference) -> bool:
        return (
            x.key in _BOOKKEEPING
            or x.key.startswith(("reproduce.", "environment.env.REPROLOG_"))
            # only a re-run counts its replayed draws; the draws themselves are real facts
            or x.key.startswith(("seeds.numpy_entropy_replayed", "seeds.numpy_entropy_unreplayed"))
            or x.key.startswith(_PATH_KEYS)
            or (x.key.startswith("environment.package_sources.") and x.key.endswith(".installer"))
            # staged in the original, unstaged after `git apply`: same change, other letters
            or (x.key.startswith("code.changed.") and x.a is not None and x.b is not None)
            or (x.b is not None and unmap(x.b) == x.a)
            # the interpreter as typed ("python") against the one the re-run used, by path
            or (x.key in ("command.orig_argv", "command.launcher.argv") and _tail_equal(x.a, x.b))
            or (x.key == "command.argv" and _same_program(x.a, x.b))
            or (x.key == "environment.env.PYTHONPATH" and _pythonpath_only(x, injected))
            # a notebook's process is its kernel: its command line (a connection file) is new
            # on every start and says nothing about the cells
            or (out.launch == "notebook" and x.key.startswith(("command.", "notebook.kernel")))
        )

    kept = [x for x in d.differences if not is_expected(x)]
    expected = [x for x in d.differences if is_expected(x)]
    ranked = [dataclasses.replace(x, rank=i) for i, x in enumerate(kept, 1)]
    return dataclasses.replace(d, differences=ranked), expected


def _tail_equal(a: Any, b: Any) -> bool:
    return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a[1:] == b[1:]


def _same_program(a: Any, b: Any) -> bool:
    """argv[0] of a console script: the same command name in another environment's bin/."""
    return (
        _tail_equal(a, b)
        and isinstance(a, list)
        and bool(a)
        and os.path.basename(str(a[0])) == os.path.basename(str(b[0]))
    )


def _pythonpath_only(x: Difference, injected: list[str]) -> bool:
    parts = [p for p in str(x.b or "").split(os.pathsep) if p and p not in injected]
    before = [p for p in str(x.a or "").split(os.pathsep) if p]
    return parts == before


# ---------------------------------------------------------------------------------- causes


def rank_causes(d: RunDiff, out: Reproduction, original: RunRecord, new: RunRecord) -> list[Cause]:
    """The likely causes, most likely first: strong recorded differences, unreplayable entropy,
    the rest of the record, what the rebuild could not make exact."""
    from reprolog._diff._rules import W_SEED

    step = out.diverged_at
    strong = [x for x in d.differences if x.weight >= W_SEED]
    weak = [x for x in d.differences if x.weight < W_SEED]
    causes = [_from_difference(x, step) for x in strong[:_MAX_CAUSES]]
    causes += _entropy_causes(original, new, bool(d.differences), step)
    causes += _fingerprint_causes(d)
    causes += [_from_difference(x, step) for x in weak[: max(0, _MAX_CAUSES - len(causes))]]
    for note in out.notes:
        if note.startswith(_INEXACT):
            causes.append(Cause("rebuild", f"the re-run was not exact: {note}", source="reproduce"))
    if not causes:
        causes.append(
            Cause(
                "unknown",
                "nothing recorded differs: look outside the record (data read without "
                "log_dataset, non-deterministic kernels, thread scheduling)",
                source="reproduce",
                step=step,
            )
        )
    return causes


# What each step-fingerprint barrier is, in the categories causes use.
_BARRIER_CATEGORY = {
    "data order": "data",
    "data content": "data",
    "data order or content": "data",
    "randomness": "seeds",
    "numerics": "numerics",
    "code or logging": "code",
}


def _fingerprint_causes(d: RunDiff) -> list[Cause]:
    """The step fingerprints' verdict (``RunDiff.explanation``): evidence, not a guess from
    the record, so it ranks above the weak recorded differences."""
    e = d.explanation
    if e is None or not e.differs or e.barrier.value not in _BARRIER_CATEGORY:
        return []
    return [
        Cause(
            _BARRIER_CATEGORY[e.barrier.value],
            str(e),
            key=f"steps.{e.evidence['field']}" if e.evidence.get("field") else None,
            source="step fingerprints",
            step=e.step,
        )
    ]


def _from_difference(x: Difference, step: int | None) -> Cause:
    return Cause(x.category.value, x.explanation, key=x.key, source="record", step=step)


def _entropy_causes(
    original: RunRecord, new: RunRecord, recorded_diff: bool, step: int | None
) -> list[Cause]:
    seeds_a, seeds_b = original.section("seeds"), new.section("seeds")
    fresh = int(seeds_b.get("numpy_entropy_unreplayed") or 0)
    if fresh:
        kept = len(seeds_a.get("numpy_entropy") or [])
        return [
            Cause(
                "entropy",
                f"the re-run drew {fresh} fresh OS entropy value(s) in numpy beyond the {kept} "
                "recorded (more unseeded default_rng() calls, or over the 256 kept): they "
                "cannot be replayed",
                key="seeds.numpy_entropy",
                source="reproduce",
                step=step,
            )
        ]
    risks = {r.get("id") for r in original.section("determinism").get("risks") or []}
    if "unseeded" in risks and not recorded_diff:
        return [
            Cause(
                "entropy",
                "the run is unseeded and drew randomness the record cannot replay: OS entropy "
                "taken before `import reprolog`, or outside numpy (os.urandom, secrets, uuid4, "
                "torch.seed(), DataLoader worker seeds); seed it explicitly",
                key="determinism.risks.unseeded",
                source="reproduce",
                step=step,
            )
        ]
    return []


# ---------------------------------------------------------------------------------- checkpoints


def compare_checkpoints(original: RunRecord, new: RunRecord) -> list[CheckpointComparison]:
    """Checkpoints saved at the same step (and name) by both runs, with their hashes compared."""

    def by_step(record: RunRecord) -> dict[tuple[int, str], str | None]:
        out: dict[tuple[int, str], str | None] = {}
        for art in record.artifacts or []:
            if art.get("kind") != "checkpoint" or art.get("step") is None:
                continue
            name = os.path.basename(str(art.get("name") or art.get("path") or ""))
            out[(int(art["step"]), name)] = art.get("sha256")
        return out

    a, b = by_step(original), by_step(new)
    return [
        CheckpointComparison(step, name, a[(step, name)], b[(step, name)],
                             a[(step, name)] is not None and a[(step, name)] == b[(step, name)])
        for step, name in sorted(set(a) & set(b))
    ]  # fmt: skip

"""Which barrier made two runs part: the first step where their step fingerprints differ.

Reads both runs' ``steps.parquet`` (written by `reprolog._fingerprint._steptrace`), aligns them by
(rank, step) with numpy, and finds per field the first shared step where both recorded a
value and the values differ. The verdict is the earliest of those steps, the cause named in
the order a step's inputs are made: the batch (data order or content), then the RNG states
(randomness), then the weights and gradients (numerics), then the metrics (code or logging).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reprolog._diff._model import (
    Barrier,
    Category,
    Difference,
    Explanation,
    MetricComparison,
    MetricStatus,
)

_RNG = (
    ("rng_torch", "torch CPU"),
    ("rng_cuda", "torch CUDA"),
    ("rng_numpy", "numpy"),
    ("rng_python", "Python random"),
)
_MASK = (1 << 64) - 1


def _hex(value: Any, digits: int = 16) -> str | None:
    return None if value is None else f"{int(value):0{digits}x}"


class _Side:
    """One run's step table as numpy columns, first record of each (rank, step) only."""

    def __init__(self, table: Any) -> None:
        cols = {name: table.column(name) for name in table.column_names}
        rank = cols["rank"].to_numpy().astype(np.int64)
        step = cols["step"].to_numpy().astype(np.int64)
        key = (rank << 40) | step
        self.key, first = np.unique(key, return_index=True)
        self.values: dict[str, tuple[Any, Any]] = {}
        for name, col in cols.items():
            if name in ("rank", "step"):
                continue
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            data = col.fill_null(0).to_numpy()
            self.values[name] = (data[first], valid[first])


def explain(
    steps_a: Any,
    steps_b: Any,
    metrics: list[MetricComparison],
    differences: list[Difference],
    sections: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
) -> Explanation:
    """Explain, from both runs' step tables, what made them part first.

    Args:
        steps_a: run A's ``steps.parquet`` as a pyarrow Table, or None when it has none.
        steps_b: run B's, likewise.
        metrics: the diff's metric comparisons (the first diverged step is the last resort).
        differences: the diff's recorded differences (threads, hardware, packages and
            determinism settings are named next to a numerics verdict).
        sections: both records' sections (for the determinism risks).

    Returns:
        The explanation.
    """
    metric = _first_metric(metrics)
    missing = [side for side, t in (("A", steps_a), ("B", steps_b)) if t is None or not len(t)]
    if missing:
        text = "no step fingerprints in run " + " and ".join(missing)
        return _without_steps(text, metric)
    a, b = _Side(steps_a), _Side(steps_b)
    shared, ia, ib = np.intersect1d(a.key, b.key, assume_unique=True, return_indices=True)
    notes = _desync(a, "A") + _desync(b, "B")
    if not len(shared):
        return _without_steps("the runs share no fingerprinted step", metric, notes)
    firsts: dict[str, int] = {}  # field -> index into shared of its first difference
    for name in a.values:
        if name == "epoch" or name not in b.values:
            continue
        va, oka = a.values[name]
        vb, okb = b.values[name]
        both = oka[ia] & okb[ib]
        bad = np.flatnonzero(both & (va[ia] != vb[ib]))
        if len(bad):
            firsts[name] = int(bad[0])
    steps = shared & ((1 << 40) - 1)
    ranks = shared >> 40
    n = len(shared)
    candidates = []  # (step, priority, field)
    for priority, names in enumerate(
        (("batch", "samples"), tuple(n for n, _ in _RNG), ("weights", "grads"))
    ):
        hits = [(int(steps[firsts[f]]), firsts[f], f) for f in names if f in firsts]
        if hits:
            step, index, name = min(hits)
            candidates.append((step, priority, index, name))
    if metric is not None:
        candidates.append((int(metric.step or 0), 3, -1, metric.key))
    if not candidates:
        return Explanation(
            Barrier.NONE,
            None,
            f"no difference at any of {n} shared steps (batches, RNG states, weights, metrics)",
            notes=notes,
            shared_steps=n,
        )
    step, priority, index, name = min(candidates)
    ctx = _Context(a, b, ia, ib, steps, ranks, firsts, n, notes)
    if priority == 0:
        return ctx.data(index)
    if priority == 1:
        return ctx.randomness(index)
    if priority == 2:
        return ctx.numerics(index, differences, sections)
    assert metric is not None
    return ctx.code(metric, differences, sections)


def _first_metric(metrics: list[MetricComparison]) -> MetricComparison | None:
    diverged = [m for m in metrics if m.status is MetricStatus.DIVERGED and m.step is not None]
    return min(diverged, key=lambda m: (m.step, m.key)) if diverged else None


def _without_steps(
    why: str, metric: MetricComparison | None, notes: list[str] | None = None
) -> Explanation:
    if metric is None:
        summary = f"unknown: {why}; the metrics agree"
    else:
        summary = (
            f"unknown: metric {metric.key!r} diverges at step {metric.step}, and {why} to "
            "tell data, randomness, numerics and code apart"
        )
    evidence = {} if metric is None else _metric_evidence(metric)
    step = None if metric is None else metric.step
    return Explanation(Barrier.UNKNOWN, step, summary, evidence=evidence, notes=notes or [])


def _metric_evidence(m: MetricComparison) -> dict[str, Any]:
    return {"field": "metric", "metric": m.key, "a": m.a, "b": m.b}


def _desync(side: _Side, label: str) -> list[str]:
    """Steps where a rank's weights differ from rank 0's inside one run."""
    weights, ok = side.values.get("weights", (None, None))
    if weights is None:
        return []
    ranks = side.key >> 40
    if not (ranks > 0).any():
        return []
    steps = side.key & ((1 << 40) - 1)
    zero = ranks == 0
    notes = []
    for r in np.unique(ranks[ranks > 0]).tolist():
        mine = ranks == r
        common, i0, ir = np.intersect1d(
            steps[zero], steps[mine], assume_unique=True, return_indices=True
        )
        w0, ok0 = weights[zero][i0], ok[zero][i0]
        wr, okr = weights[mine][ir], ok[mine][ir]
        bad = np.flatnonzero(ok0 & okr & (w0 != wr))
        if len(bad):
            notes.append(
                f"run {label}: rank {r}'s weights differ from rank 0's at step "
                f"{int(common[bad[0]])} (the ranks desynchronised)"
            )
    return notes


class _Context:
    def __init__(
        self,
        a: _Side,
        b: _Side,
        ia: Any,
        ib: Any,
        steps: Any,
        ranks: Any,
        firsts: dict[str, int],
        n: int,
        notes: list[str],
    ) -> None:
        self.a, self.b, self.ia, self.ib = a, b, ia, ib
        self.steps, self.ranks, self.firsts, self.n, self.notes = steps, ranks, firsts, n, notes

    def _pair(self, name: str, index: int) -> tuple[str | None, str | None]:
        va, oka = self.a.values[name]
        vb, okb = self.b.values[name]
        i, j = self.ia[index], self.ib[index]
        digits = 8 if name.startswith("rng_") else 16  # the RNG fields hold 32 bits
        return (
            _hex(va[i], digits) if oka[i] else None,
            _hex(vb[j], digits) if okb[j] else None,
        )

    def _make(self, barrier: Barrier, index: int, summary: str, **evidence: Any) -> Explanation:
        step, rank = int(self.steps[index]), int(self.ranks[index])
        where = f" (rank {rank})" if rank else ""
        return Explanation(
            barrier,
            step,
            f"{barrier.value} from step {step}{where}: {summary}",
            rank=rank,
            evidence={"step": step, "rank": rank, **evidence},
            notes=self.notes,
            shared_steps=self.n,
        )

    def data(self, index: int) -> Explanation:
        a_hex, b_hex = self._pair("batch", index)
        epoch, same = self._same_epoch_samples(index)
        rng = [label for n, label in _RNG if n in self.firsts and self.firsts[n] <= index]
        evidence = {
            "field": "batch",
            "a": a_hex,
            "b": b_hex,
            "epoch": epoch,
            "same_samples": same,
            "rng_differs": rng,
        }
        where = f"epoch {epoch}" if epoch is not None else "the shared steps"
        if rng:
            where = f"{where} (the {', '.join(rng)} RNG state differs too)"
        if same is True:
            return self._make(
                Barrier.DATA_ORDER,
                index,
                f"the batches differ (A {a_hex}, B {b_hex}) but {where} holds the same "
                "samples: the data was shuffled or sampled in another order",
                **evidence,
            )
        if same is False:
            return self._make(
                Barrier.DATA_CONTENT,
                index,
                f"the batches differ (A {a_hex}, B {b_hex}) and {where} holds other samples: "
                "the data itself differs (or other samples were drawn)",
                **evidence,
            )
        return self._make(
            Barrier.DATA,
            index,
            f"the batches differ (A {a_hex}, B {b_hex}); whether {where} holds the same "
            "samples cannot be told (an epoch not seen whole by both runs, or no per-sample "
            "fingerprint)",
            **evidence,
        )

    def _same_epoch_samples(self, index: int) -> tuple[int | None, bool | None]:
        """Does the epoch of the step hold the same multiset of samples in both runs?"""
        ea, oka = self.a.values["epoch"]
        eb, okb = self.b.values["epoch"]
        i, j = self.ia[index], self.ib[index]
        rank = int(self.ranks[index])
        if oka[i] and okb[j] and ea[i] == eb[j]:
            epoch: int | None = int(ea[i])
            in_a = ((self.a.key >> 40) == rank) & oka & (ea == epoch)
            in_b = ((self.b.key >> 40) == rank) & okb & (eb == epoch)
        else:  # no epochs: the shared steps as a whole
            epoch = None
            in_a = np.zeros(len(self.a.key), bool)
            in_b = np.zeros(len(self.b.key), bool)
            in_a[self.ia] = True
            in_b[self.ib] = True
        # The same steps on both sides, so that a run cut short is not read as other data.
        if not np.array_equal(self.a.key[in_a], self.b.key[in_b]):
            return epoch, None
        sa, va = self.a.values["samples"]
        sb, vb = self.b.values["samples"]
        if not (va[in_a].all() and vb[in_b].all()):
            return epoch, None
        total_a = int(np.add.reduce(sa[in_a], dtype=np.uint64))
        total_b = int(np.add.reduce(sb[in_b], dtype=np.uint64))
        return epoch, (total_a & _MASK) == (total_b & _MASK)

    def randomness(self, index: int) -> Explanation:
        step = int(self.steps[index])
        names = [(n, label) for n, label in _RNG if n in self.firsts and self.firsts[n] == index]
        which = ", ".join(label for _, label in names)
        pairs = {label: self._pair(n, index) for n, label in names}
        shown = "; ".join(f"{label}: A {pa_}, B {pb_}" for label, (pa_, pb_) in pairs.items())
        first = index == 0 or int(self.steps[0]) == step
        why = (
            "the runs start from other RNG states (another seed or generator)"
            if first
            else "the same batches, but a step before drew other random numbers (noisy "
            "layers such as dropout, or an RNG state restored differently)"
        )
        return self._make(
            Barrier.RANDOMNESS,
            index,
            f"the batches are equal, the {which} RNG state differs ({shown}): {why}",
            field="rng",
            generators=[label for _, label in names],
            states={label: {"a": pa_, "b": pb_} for label, (pa_, pb_) in pairs.items()},
        )

    def numerics(
        self,
        index: int,
        differences: list[Difference],
        sections: tuple[dict[str, Any], dict[str, Any]],
    ) -> Explanation:
        name = (
            "grads"
            if "grads" in self.firsts
            and ("weights" not in self.firsts or self.firsts["grads"] <= self.firsts["weights"])
            else "weights"
        )
        a_hex, b_hex = self._pair(name, index)
        # Gradients at a step whose weights still agree pin it to that step's arithmetic.
        last = self._last_equal("weights", index + 1 if name == "grads" else index)
        what = "gradients" if name == "grads" else "weights"
        since = f"; weights equal at step {last}" if last is not None else ""
        facts = _numerics_facts(differences, sections)
        named = "; ".join(facts) if facts else "no recorded thread, hardware or package difference"
        return self._make(
            Barrier.NUMERICS,
            index,
            f"batches and RNG states are equal, the {what} differ (A {a_hex}, B {b_hex}"
            f"{since}): the arithmetic differs — {named}",
            field=name,
            a=a_hex,
            b=b_hex,
            last_equal_step=last,
            recorded=facts,
        )

    def _last_equal(self, name: str, index: int) -> int | None:
        va, oka = self.a.values[name]
        vb, okb = self.b.values[name]
        ia, ib = self.ia[:index], self.ib[:index]
        same = np.flatnonzero(oka[ia] & okb[ib] & (va[ia] == vb[ib]))
        return int(self.steps[same[-1]]) if len(same) else None

    def code(
        self,
        metric: MetricComparison,
        differences: list[Difference],
        sections: tuple[dict[str, Any], dict[str, Any]],
    ) -> Explanation:
        step = int(metric.step or 0)
        later = [self.firsts[n] for n in ("weights", "grads") if n in self.firsts]
        if later:
            # Weights compared every K steps: equal up to a check before the metric parted,
            # different at a later one. A metric computed differently leaves weights alone.
            index = min(later)
            name = "grads" if self.firsts.get("grads") == index else "weights"
            a_hex, b_hex = self._pair(name, index)
            last = self._last_equal("weights", index)
            since = f" (equal at step {last})" if last is not None else ""
            facts = _numerics_facts(differences, sections)
            named = (
                "; ".join(facts) if facts else "no recorded thread, hardware or package difference"
            )
            return Explanation(
                Barrier.NUMERICS,
                step,
                f"{Barrier.NUMERICS.value} from step {step}: batches and RNG states are equal, "
                f"metric {metric.key!r} differs from step {step} and the "
                f"{'gradients' if name == 'grads' else 'weights'} differ at step "
                f"{int(self.steps[index])}{since}: the arithmetic differs in between — {named}",
                evidence={
                    "step": step,
                    "rank": int(self.ranks[index]),
                    "field": name,
                    "a": a_hex,
                    "b": b_hex,
                    "checked_step": int(self.steps[index]),
                    "last_equal_step": last,
                    "metric": metric.key,
                    "recorded": facts,
                },
                notes=self.notes,
                shared_steps=self.n,
            )
        last = self._last_equal("weights", len(self.steps))
        checked = f", weights last compared equal at step {last}" if last is not None else ""
        facts = _numerics_facts(differences, sections)
        also = f"; or the metric's own arithmetic differs ({'; '.join(facts)})" if facts else ""
        return Explanation(
            Barrier.CODE,
            step,
            f"{Barrier.CODE.value} from step {step}: batches, RNG states and weights are "
            f"equal{checked}, but metric {metric.key!r} differs (A {metric.a}, B {metric.b}): "
            f"it is computed or logged differently{also}",
            evidence={
                "step": step,
                "rank": 0,
                **_metric_evidence(metric),
                "last_equal_weights": last,
            },
            notes=self.notes,
            shared_steps=self.n,
        )


_NUMERIC_CATEGORIES = (Category.HARDWARE, Category.DETERMINISM, Category.PACKAGES)


def _numerics_facts(
    differences: list[Difference], sections: tuple[dict[str, Any], dict[str, Any]]
) -> list[str]:
    """Thread, hardware, determinism and package differences, then the runs' risks."""
    facts: list[str] = []
    for d in differences:
        if d.category in _NUMERIC_CATEGORIES and len(facts) < 5:
            facts.append(f"{d.key}: {_short(d.a)} vs {_short(d.b)}")
    risks = sorted(
        {
            str(r.get("id"))
            for s in sections
            for r in ((s.get("determinism") or {}).get("risks") or [])
            if isinstance(r, dict) and r.get("id") in _NUMERIC_RISKS
        }
    )
    if risks:
        facts.append("determinism risks: " + ", ".join(risks))
    return facts


_NUMERIC_RISKS = frozenset({"nondeterministic_algorithms", "cudnn_benchmark"})


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."

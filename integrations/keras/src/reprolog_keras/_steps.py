"""Per-step fingerprints of a Keras fit: RNG states and weights per batch, the batch itself.

RNG states and weights are read in ``on_train_batch_begin`` (Keras calls it synchronously,
right before the batch's train step). On the torch backend the fit's ``train_function`` is
wrapped for the fit so that each batch is fingerprinted as the train step receives it; the
other backends hand ``train_function`` an iterator, so their steps carry no batch hash.
"""

from __future__ import annotations

from typing import Any

_MARK = "__reprolog_traced__"


class StepTrace:
    """Feeds the core's step-fingerprint recorder from a Keras fit."""

    def __init__(self) -> None:
        self.fp: Any = None
        self._model: Any = None

    def open(self, run: Any, model: Any, every: bool | int | None) -> None:
        import keras

        self.close()
        fp = run.step_fingerprints(model, every=every)
        if fp is None:
            return
        self.fp, self._model = fp, model
        function = getattr(model, "train_function", None)
        if keras.backend.backend() == "torch" and callable(function):
            original = getattr(function, _MARK, function)  # never wrap twice

            def traced(data: Any) -> Any:
                fp.add_batch(data)
                return original(data)

            setattr(traced, _MARK, original)
            model.train_function = traced

    def begin(self, step: int, epoch: int) -> None:
        self.fp.step(step, None, epoch=epoch)

    def close(self) -> None:
        model, self._model = self._model, None
        self.fp = None
        function = getattr(model, "train_function", None)
        original = getattr(function, _MARK, None)
        if original is not None:
            model.train_function = original

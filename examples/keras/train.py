"""Train a tiny Keras model on random data and record the whole fit with ReprologCallback."""

from __future__ import annotations

import os

# TensorFlow is optional for Keras 3; the example runs on the torch backend unless told otherwise.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from reprolog_keras import ReprologCallback


def main() -> str:
    """Train for a few epochs; return the run id."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, :4].sum(axis=1) > 0).astype("float32")

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"]
    )
    # The store is ./.reprolog (or $REPROLOG_DIR); the run is finished when fit ends.
    callback = ReprologCallback(name="keras-example", experiment="examples", log_every_n_batches=4)
    model.fit(x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0, callbacks=[callback])
    run = callback.run
    assert run is not None
    print(f"run {run.id} {run.status}")
    return run.id


if __name__ == "__main__":
    main()

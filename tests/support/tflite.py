"""The TFLite test models (``tests/assets/tflite``, made by
``scripts/tflite_models/make_models.py``) for the TFLite tests."""

from pathlib import Path

import numpy as np

from sw.tflite_import import TfliteModel

ASSETS = Path(__file__).parent.parent / "assets" / "tflite"


def load_asset(name: str):
    """``(path, model, inputs)`` of a test model."""
    path = ASSETS / f"{name}.tflite"
    return path, TfliteModel.load(path), np.load(ASSETS / f"{name}_inputs.npy")

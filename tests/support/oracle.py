"""The onnxruntime oracle, for tests."""

import numpy as np
import pytest

from sw import oracle


def exact_onnxruntime(model, feeds) -> dict[str, np.ndarray]:
    """onnxruntime's exact result (:func:`sw.oracle.run`); where the oracle has none for this
    model on this CPU (the emulation refuses, e.g. an int32 accumulator overflowing), the test
    says so instead of passing."""
    try:
        return oracle.run(model, feeds)
    except oracle.NotEmulated as error:
        pytest.skip(f"{oracle.describe()}; the emulation does not cover this model ({error})")

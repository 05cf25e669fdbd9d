"""The onnxruntime oracle for models with float host operators."""

import numpy as np
import pytest

from sw import oracle


def exact_onnxruntime(model, feeds) -> dict[str, np.ndarray]:
    """onnxruntime's exact result. Where this CPU's onnxruntime saturates its U8S8 GEMM the
    oracle is the numpy emulation, which covers the integer operators only: a model with float
    host operators then has no exact oracle here, and the test says so instead of passing."""
    try:
        return oracle.run(model, feeds)
    except oracle.NotEmulated as error:
        pytest.skip(f"{oracle.describe()}; the emulation does not cover this model ({error})")

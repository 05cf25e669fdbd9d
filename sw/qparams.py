"""Plausible requantization parameters for test and demo GEMMs (the harness and the demo share
them)."""

from __future__ import annotations

import numpy as np

from hw.isa import Rounding

from .requant import encode_onnx_scale, encode_tflite_scale

__all__ = ["random_qparams"]


def random_qparams(rng: np.random.Generator, n: int, rounding: Rounding, k: int,
                   per_channel: bool = True):
    """Plausible requantization: scales that map the accumulator range onto int8. Per-tensor
    parameters share multiplier, shift and zero point (and go out as LOAD_BIASES)."""
    bias = rng.integers(-4000, 4000, n)
    spread = rng.uniform(0.5, 2.0, n if per_channel else 1).astype(np.float32)
    real = np.float32(rng.uniform(0.2, 4.0) / (np.sqrt(max(k, 1)) * 128 * 16)) * \
        np.broadcast_to(spread, (n,))
    if rounding == Rounding.ONNX:
        multiplier, shift = zip(*(encode_onnx_scale(np.float32(s)) for s in real))
    else:
        multiplier, shift = zip(*(encode_tflite_scale(float(s)) for s in real))
    zero_point = np.broadcast_to(rng.integers(-20, 20, n if per_channel else 1), (n,))
    return bias, list(multiplier), list(shift), zero_point

"""LiteRT's reference int8 kernels for the activations and elementwise operators Keras models
hold beside MLPerf Tiny's seven: RELU, RELU6 and RELU_N1_TO_1 as operators of their own,
LEAKY_RELU, LOGISTIC and TANH, MUL. They run on the host, bit for bit as
``OpResolverType.BUILTIN_REF`` computes them (:mod:`sw.tflite_kernels` has the rest, and the
conventions: int64 numpy, int32 wrap-around where C wraps, the reference's own float
precision where it computes in floating point).

The kernels' constants come from each operator's ``Prepare``, which computes them from the
tensors' float32 scales in float32 (``s_in / s_out`` of two floats is a float before it widens
to double for ``QuantizeMultiplier``): the products here are taken in float32 too, or a
multiplier's last bits would differ.
"""

from __future__ import annotations

import numpy as np

from .requant import multiply_by_quantized_multiplier
from .tflite_kernels import activation_range, quantize_multiplier

__all__ = ["relu_x", "leaky_relu", "mul", "lookup_table", "LOOKUP_FUNCTIONS"]


def _f32(*values) -> list[np.float32]:
    return [np.float32(v) for v in values]


def _mbqm(x, multiplier: int, shift: int) -> np.ndarray:
    return multiply_by_quantized_multiplier(np.asarray(x, np.int64), np.asarray(multiplier),
                                            np.asarray(shift))


def relu_x(x, *, activation: str, input_scale: float, input_zp: int, output_scale: float,
           output_zp: int) -> np.ndarray:
    """RELU, RELU6 or RELU_N1_TO_1 (``activation``) as an operator (``QuantizedReluX``): the
    input rescaled to the output's quantization, then clamped to the activation's range."""
    s_in, s_out = _f32(input_scale, output_scale)
    multiplier, shift = quantize_multiplier(float(s_in / s_out))
    y = _mbqm(np.asarray(x, np.int64) - input_zp, multiplier, shift) + output_zp
    return np.clip(y, *activation_range(activation, output_scale, output_zp)).astype(np.int8)


def leaky_relu(x, *, alpha: float, input_scale: float, input_zp: int, output_scale: float,
               output_zp: int) -> np.ndarray:
    """LEAKY_RELU (``QuantizeLeakyRelu``): inputs at or above the zero point rescaled by
    ``s_in / s_out``, those below by ``s_in * alpha / s_out``."""
    s_in, s_out, a = _f32(input_scale, output_scale, alpha)
    identity = quantize_multiplier(float(s_in / s_out))
    negative = quantize_multiplier(float(s_in * a / s_out))
    v = np.asarray(x, np.int64) - input_zp
    y = np.where(v >= 0, _mbqm(v, *identity), _mbqm(v, *negative)) + output_zp
    return np.clip(y, -128, 127).astype(np.int8)


def mul(a, b, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int, output_scale: float,
        output_zp: int, act_range=(-128, 127)) -> np.ndarray:
    """MUL (``MulElementwise``): the product of the offset inputs rescaled by ``s_a * s_b /
    s_out``; numpy broadcasting."""
    s_a, s_b, s_out = _f32(a_scale, b_scale, output_scale)
    multiplier, shift = quantize_multiplier(float(s_a * s_b / s_out))
    product = (np.asarray(a, np.int64) - a_zp) * (np.asarray(b, np.int64) - b_zp)
    return np.clip(_mbqm(product, multiplier, shift) + output_zp, *act_range).astype(np.int8)


#: The functions LOGISTIC and TANH tabulate, in float32 as ``PopulateLookupTable`` calls them.
LOOKUP_FUNCTIONS = {
    "LOGISTIC": lambda v: np.float32(1) / (np.float32(1) + np.exp(-v)),
    "TANH": np.tanh,
}


def lookup_table(function: str, *, input_scale: float, input_zp: int, output_scale: float,
                 output_zp: int) -> np.ndarray:
    """The 256 outputs, by input ``-128 .. 127``, of LOGISTIC or TANH (``function``) on int8:
    the reference fills a table in float32 (``PopulateLookupTable``: each input dequantized,
    the function, times the output scale's reciprocal, rounded half away from zero, plus the
    zero point, clamped) and looks every input up."""
    s_in, s_out = _f32(input_scale, output_scale)
    inputs = np.arange(-128, 128, dtype=np.int64)
    dequantized = s_in * (inputs - input_zp).astype(np.float32)
    transformed = LOOKUP_FUNCTIONS[function](dequantized).astype(np.float32)
    scaled = transformed * (np.float32(1) / s_out)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))   # C's roundf
    return np.clip(rounded.astype(np.int64) + output_zp, -128, 127).astype(np.int8)

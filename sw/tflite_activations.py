"""LiteRT's reference int8 kernels for the activations and elementwise operators Keras models
hold beside MLPerf Tiny's seven: RELU, RELU6 and RELU_N1_TO_1 as operators of their own,
LEAKY_RELU, PRELU, LOGISTIC, TANH and HARD_SWISH, MUL, RESIZE_BILINEAR and
RESIZE_NEAREST_NEIGHBOR. They run on the host, bit for bit as
``OpResolverType.BUILTIN_REF`` computes them (:mod:`sw.tflite_kernels` has the rest, and the
conventions: int64 numpy, int32 wrap-around where C wraps, the reference's own float
precision where it computes in floating point).

The kernels' constants come from each operator's ``Prepare``, which computes them from the
tensors' float32 scales in float32 (``s_in / s_out`` of two floats is a float before it widens
to double for ``QuantizeMultiplier``): the products here are taken in float32 too, or a
multiplier's last bits would differ.
"""

from __future__ import annotations

import math

import numpy as np

from .requant import rounding_divide_by_pot, saturating_rounding_doubling_high_mul, wrap_int32
from .tflite_kernels import activation_range, mbqm, quantize_multiplier, round_half_away

__all__ = ["relu_x", "leaky_relu", "mul", "lookup_table", "LOOKUP_FUNCTIONS", "prelu",
           "hard_swish_table", "resize_bilinear", "resize_nearest", "batch_matmul"]


def _f32(*values) -> list[np.float32]:
    return [np.float32(v) for v in values]


def relu_x(x, *, activation: str, input_scale: float, input_zp: int, output_scale: float,
           output_zp: int) -> np.ndarray:
    """RELU, RELU6 or RELU_N1_TO_1 (``activation``) as an operator (``QuantizedReluX``): the
    input rescaled to the output's quantization, then clamped to the activation's range."""
    s_in, s_out = _f32(input_scale, output_scale)
    multiplier, shift = quantize_multiplier(float(s_in / s_out))
    y = mbqm(np.asarray(x, np.int64) - input_zp, multiplier, shift) + output_zp
    return np.clip(y, *activation_range(activation, output_scale, output_zp)).astype(np.int8)


def leaky_relu(x, *, alpha: float, input_scale: float, input_zp: int, output_scale: float,
               output_zp: int) -> np.ndarray:
    """LEAKY_RELU (``QuantizeLeakyRelu``): inputs at or above the zero point rescaled by
    ``s_in / s_out``, those below by ``s_in * alpha / s_out``."""
    s_in, s_out, a = _f32(input_scale, output_scale, alpha)
    identity = quantize_multiplier(float(s_in / s_out))
    negative = quantize_multiplier(float(s_in * a / s_out))
    v = np.asarray(x, np.int64) - input_zp
    y = np.where(v >= 0, mbqm(v, *identity), mbqm(v, *negative)) + output_zp
    return np.clip(y, -128, 127).astype(np.int8)


def mul(a, b, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int, output_scale: float,
        output_zp: int, act_range=(-128, 127)) -> np.ndarray:
    """MUL (``MulElementwise``): the product of the offset inputs rescaled by ``s_a * s_b /
    s_out``; numpy broadcasting."""
    s_a, s_b, s_out = _f32(a_scale, b_scale, output_scale)
    multiplier, shift = quantize_multiplier(float(s_a * s_b / s_out))
    product = (np.asarray(a, np.int64) - a_zp) * (np.asarray(b, np.int64) - b_zp)
    return np.clip(mbqm(product, multiplier, shift) + output_zp, *act_range).astype(np.int8)


def _erf(v: np.ndarray) -> np.ndarray:
    """``erff``, as the double ``erf`` rounded to float32 (correctly rounded: within the float
    function's error, which for 256 table entries the int8 rounding after it absorbs)."""
    return np.array([math.erf(float(value)) for value in v], np.float32)


def _gelu(v: np.ndarray) -> np.ndarray:
    """``reference_ops::GeluTransform``: ``0.5f * x * (1 + erf(x * float(M_SQRT1_2)))``."""
    return np.float32(0.5) * v * (np.float32(1) + _erf(v * np.float32(math.sqrt(0.5))))


def _gelu_approximate(v: np.ndarray) -> np.ndarray:
    """``GeluTransformApproximate``: ``0.5f * x * (1 + tanh(float(sqrt(2 / pi)) * (x +
    0.044715f * x^3)))``, the cube as ``x * x * x`` left to right."""
    cube = np.float32(0.044715) * v * v * v
    return np.float32(0.5) * v * (np.float32(1) + np.tanh(
        np.float32(2 / math.sqrt(math.pi) * math.sqrt(0.5)) * (v + cube)))


#: The functions LOGISTIC, TANH, GELU (``approximate`` or not), EXP and LOG tabulate, in
#: float32 as ``PopulateLookupTable`` calls them.
LOOKUP_FUNCTIONS = {
    "LOGISTIC": lambda v: np.float32(1) / (np.float32(1) + np.exp(-v)),
    "TANH": np.tanh,
    "GELU": _gelu,
    "GELU_APPROXIMATE": _gelu_approximate,
    "EXP": np.exp,
    "LOG": np.log,   # inputs at or below 0: the int8 range's floor (lookup_table)
}


def lookup_table(function: str, *, input_scale: float, input_zp: int, output_scale: float,
                 output_zp: int) -> np.ndarray:
    """The 256 outputs, by input ``-128 .. 127``, of LOGISTIC, TANH, GELU, EXP or LOG
    (``function``, :data:`LOOKUP_FUNCTIONS`) on int8:
    the reference fills a table in float32 (``PopulateLookupTable``: each input dequantized,
    the function, times the output scale's reciprocal, rounded half away from zero, plus the
    zero point, clamped) and looks every input up."""
    s_in, s_out = _f32(input_scale, output_scale)
    inputs = np.arange(-128, 128, dtype=np.int64)
    dequantized = s_in * (inputs - input_zp).astype(np.float32)
    if function == "LOG":   # LogLUTPrepare: the output's least value where log is undefined
        floor = np.float32(-128 - output_zp) * s_out
        positive = np.where(dequantized > 0, dequantized, np.float32(1))
        transformed = np.where(dequantized > 0, np.log(positive), floor).astype(np.float32)
    else:
        transformed = LOOKUP_FUNCTIONS[function](dequantized).astype(np.float32)
    scaled = transformed * (np.float32(1) / s_out)
    # C's roundf, exact in double (adding a half in float32 could round up 0.49999997)
    return np.clip(round_half_away(scaled).astype(np.int64) + output_zp, -128,
                   127).astype(np.int8)


def prelu(x, alpha, *, input_scale: float, input_zp: int, alpha_scale: float, alpha_zp: int,
          output_scale: float, output_zp: int) -> np.ndarray:
    """PRELU (``BroadcastPrelu4DSlow``): inputs at or above the zero point rescaled by ``s_in
    / s_out``, those below multiplied by their offset ``alpha`` and rescaled by ``s_in *
    s_alpha / s_out``; ``alpha`` broadcasts."""
    s_in, s_alpha, s_out = _f32(input_scale, alpha_scale, output_scale)
    identity = quantize_multiplier(float(s_in / s_out))
    negative = quantize_multiplier(float(s_in * s_alpha / s_out))
    v = np.asarray(x, np.int64) - input_zp
    a = np.asarray(alpha, np.int64) - alpha_zp
    y = np.where(v >= 0, mbqm(v, *identity), mbqm(v * a, *negative)) + output_zp
    return np.clip(y, -128, 127).astype(np.int8)


def _int16_high_mul(a: np.ndarray, b: int, rounding: bool) -> np.ndarray:
    """gemmlowp's int16 ``SaturatingRoundingDoublingHighMul`` (``rounding``), or TFLite's
    ``SaturatingDoublingHighMul`` (truncating)."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14)) if rounding else 0
    high = np.trunc((ab + nudge) / (1 << 15)).astype(np.int64)   # C's division
    return np.where((a == b) & (a == -(1 << 15)), (1 << 15) - 1, high)


def _int16_multiplier(real: np.float32) -> tuple[int, int]:
    """``QuantizeMultiplier`` then ``DownScaleInt32ToInt16Multiplier``."""
    multiplier, exponent = quantize_multiplier(float(real))
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def hard_swish_table(*, input_scale: float, input_zp: int, output_scale: float,
                     output_zp: int) -> np.ndarray:
    """The 256 outputs, by input ``-128 .. 127``, of HARD_SWISH on int8, in the reference's
    int16 fixed point (``reference_ops::HardSwish``): the input on a scale 128 times finer,
    a "reluish" factor in [0, 1] from it, their product shifted to the output scale."""
    s_in, s_out = _f32(input_scale, output_scale)
    hires = np.float32(1 / 128) * s_in
    out_m, out_exp = _int16_multiplier(hires / s_out)
    relu_m, relu_exp = _int16_multiplier(hires / np.float32(3 / 32768))
    if out_exp > 0:
        raise ValueError("HARD_SWISH's output multiplier exceeds one")
    value = (np.arange(-128, 128, dtype=np.int64) - input_zp) * (1 << 7)
    preshift = _int16_high_mul(value, out_m, rounding=True)
    reluish = value
    if relu_exp > 0:
        reluish = np.clip(reluish * (1 << (relu_exp - 1)), -(1 << 15), (1 << 15) - 1)
    reluish = _int16_high_mul(reluish, relu_m, rounding=True)
    if relu_exp > 0:
        reluish = np.clip(reluish * 2, -(1 << 15), (1 << 15) - 1)
    if relu_exp < 0:
        reluish = rounding_divide_by_pot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    out = rounding_divide_by_pot(_int16_high_mul(reluish, preshift, rounding=False), -out_exp)
    return np.clip(out + output_zp, -128, 127).astype(np.int8)


def _c_div(a, b: int) -> np.ndarray:
    """C's integer division (toward zero)."""
    a = np.asarray(a, np.int64)
    return np.sign(a) * (np.abs(a) // b)


def resize_bilinear(x, size: tuple[int, int], *, align_corners: bool,
                    half_pixel_centers: bool) -> np.ndarray:
    """RESIZE_BILINEAR of an NHWC int8 map to ``size`` (its int8 reference overload): each
    output pixel's source position in 10-bit fixed point, the four neighbours weighted in
    20-bit products, rounded half away from zero."""
    x = np.asarray(x, np.int64)

    def axis(out: int, size_in: int):
        scale = (((1 << 10) * (size_in - 1) + (out - 1) // 2) // (out - 1)
                 if align_corners and out > 1 else ((1 << 10) * size_in + out // 2) // out)
        position = np.arange(out, dtype=np.int64) * scale
        if half_pixel_centers:
            position = position + scale // 2 - (1 << 9)
        lower = np.maximum(_c_div(position, 1 << 10), 0)
        upper = np.minimum(_c_div(position + (1 << 10) - 1, 1 << 10), size_in - 1)
        return position - (1 << 10) * lower, lower, upper
    (fy, y0, y1), (fx, x0, x1) = axis(size[0], x.shape[1]), axis(size[1], x.shape[2])
    fy, fx = fy[:, None, None], fx[None, :, None]
    corner = [[x[:, y][:, :, xs] for xs in (x0, x1)] for y in (y0, y1)]
    total = (corner[0][0] * ((1 << 10) - fy) * ((1 << 10) - fx)
             + corner[1][0] * fy * ((1 << 10) - fx)
             + corner[0][1] * ((1 << 10) - fy) * fx
             + corner[1][1] * fy * fx)
    rounded = _c_div(total + np.where(total > 0, 1 << 19, -(1 << 19)), 1 << 20)
    return rounded.astype(np.int8)


def resize_nearest(x, size: tuple[int, int], *, align_corners: bool,
                   half_pixel_centers: bool) -> np.ndarray:
    """RESIZE_NEAREST_NEIGHBOR of an NHWC map to ``size``: each output pixel's source
    index from the float32 scale, as ``GetNearestNeighbor`` picks it."""
    x = np.asarray(x)

    def axis(out: int, size_in: int) -> np.ndarray:
        scale = (np.float32(size_in - 1) / np.float32(out - 1) if align_corners and out > 1
                 else np.float32(size_in) / np.float32(out))
        position = (np.arange(out, dtype=np.float32)
                    + np.float32(0.5 if half_pixel_centers else 0)) * scale
        index = (np.sign(position) * np.floor(np.abs(position) + np.float32(0.5))
                 if align_corners else np.floor(position)).astype(np.int64)
        index = np.minimum(index, size_in - 1)
        return np.maximum(index, 0) if half_pixel_centers else index
    return x[:, axis(size[0], x.shape[1])][:, :, axis(size[1], x.shape[2])]


def batch_matmul(a, b, *, adj_x: bool, adj_y: bool, a_scale: float, a_zp: int, b_scale: float,
                 b_zp: int, output_scale: float, output_zp: int) -> np.ndarray:
    """BATCH_MATMUL on int8 (``reference_ops::BatchMatMul``): the offset operands' products
    summed in int32, rescaled by ``s_a * s_b / s_out``; the leading axes broadcast."""
    s_a, s_b, s_out = _f32(a_scale, b_scale, output_scale)
    multiplier, shift = quantize_multiplier(float(np.float64(s_a * s_b) / np.float64(s_out)))
    a = np.asarray(a, np.int64) - a_zp
    b = np.asarray(b, np.int64) - b_zp
    if adj_x:
        a = np.swapaxes(a, -1, -2)
    if adj_y:
        b = np.swapaxes(b, -1, -2)
    total = wrap_int32(np.matmul(a, b))
    return np.clip(mbqm(total, multiplier, shift) + output_zp, -128, 127).astype(np.int8)


def _saturating_shift_left(x: int, exponent: int) -> int:
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT`` for a positive ``exponent``."""
    threshold = (1 << (31 - exponent)) - 1
    return (1 << 31) - 1 if x > threshold else -(1 << 31) if x < -threshold else x << exponent


def _srdhm(a: int, b: int) -> int:
    return int(saturating_rounding_doubling_high_mul(np.int64(a), np.int64(b)))


def inv_sqrt_multiplier(value: int) -> tuple[int, int]:
    """``GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1)``: ``1 / sqrt(value)`` as a
    Q31 multiplier and a shift, by five Newton-Raphson steps in gemmlowp's fixed point (3
    integer bits; products add integer bits, ``Rescale`` shifts back, saturating)."""
    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    half_input = int(rounding_divide_by_pot(np.int64(value >> 1), 1))
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28                                                   # F3 one
    for _ in range(5):
        cube = _saturating_shift_left(_srdhm(_srdhm(x, x), x), 6)   # F9 -> F3
        step = int(wrap_int32(_srdhm(half_three, x) - _srdhm(half_input, cube)))   # F6
        x = _saturating_shift_left(step, 3)
    x = _srdhm(x, 1518500250)                                     # times sqrt(2) / 2
    if shift < 0:
        x, shift = int(wrap_int32(x << -shift)), 0
    return x, -shift


def l2_normalization(x, *, input_zp: int) -> np.ndarray:
    """L2_NORMALIZATION int8 (``reference_integer_ops::L2Normalization``) over the last axis:
    the int32 sum of squares of ``x - input_zp``, its inverse square root
    (:func:`inv_sqrt_multiplier`), each value times it in 1/128 units (the output's fixed
    scale, zero point 0), clamped."""
    v = np.asarray(x, np.int64) - input_zp
    rows = v.reshape(-1, v.shape[-1])
    out = np.empty_like(rows)
    for index, row in enumerate(rows):
        multiplier, shift = inv_sqrt_multiplier(int(wrap_int32(np.sum(row * row))))
        out[index] = mbqm(row, multiplier, shift + 7)
    return np.clip(out, -128, 127).astype(np.int8).reshape(v.shape)


def abs_int8(x, *, input_scale: float, input_zp: int, output_scale: float,
             output_zp: int) -> np.ndarray:
    """ABS (``AbsEvalQuantized``): ``|x - in_zp|``, rescaled by ``s_in / s_out`` (float32)
    where the two scales differ, plus the output zero point, clamped."""
    s_in, s_out = _f32(input_scale, output_scale)
    value = np.abs(np.asarray(x, np.int64) - input_zp)
    if s_in != s_out:
        value = mbqm(value, *quantize_multiplier(float(s_in / s_out)))
    return np.clip(value + output_zp, -128, 127).astype(np.int8)


def rsqrt_int8(x, *, input_scale: float, input_zp: int, output_scale: float,
               output_zp: int) -> np.ndarray:
    """RSQRT (``RsqrtEvalQuantizedInt8``): ``1 / sqrt(x - in_zp)`` from
    :func:`inv_sqrt_multiplier`, shifted up 20 bits, times ``1 / (sqrtf(s_in) * s_out)``; 127
    at the zero point. Inputs below it are LiteRT's error too: refused."""
    s_in, s_out = _f32(input_scale, output_scale)
    value = np.asarray(x, np.int64) - input_zp
    if value.size and value.min() < 0:
        raise ValueError("RSQRT of a value below its zero point (LiteRT refuses it too)")
    multiplier, shift = quantize_multiplier(1.0 / float(np.sqrt(s_in) * s_out))
    table = {}
    for v in np.unique(value).tolist():
        if v == 0:
            table[v] = 127
            continue
        inv, inv_shift = inv_sqrt_multiplier(v)
        data = int(mbqm(1, inv, inv_shift + 20))
        table[v] = int(mbqm(data, multiplier, shift - 20)) + output_zp
    out = np.vectorize(table.__getitem__, otypes=[np.int64])(value) if value.size else value
    return np.clip(out, -128, 127).astype(np.int8)

"""LiteRT's reference int8 kernels in exact numpy: the host's half of a TFLite model and the oracle
the device's TFLite arithmetic is held to (``docs/tflite-arithmetic.md`` gives each formula and
where it comes from).

Every kernel here reproduces ``ai-edge-litert``'s ``OpResolverType.BUILTIN_REF`` bit for bit, not
its default resolver (XNNPACK rounds ties to even, the optimized kernels half up: both differ from
the reference by one unit now and then). Integer paths are int64 numpy with int32 wrap-around
where C wraps; the two kernels the reference computes in floating point (FULLY_CONNECTED's
requantization, QUANTIZE from float) compute in the same IEEE precision here, which numpy gives
exactly. Layouts are TFLite's: NHWC activations, OHWI conv filters, ``[1, H, W, C*M]`` depthwise
filters, ``[O, I]`` fully connected filters.
"""

from __future__ import annotations

import math

import numpy as np

from .requant import bit_length, encode_tflite_scale, multiply_by_quantized_multiplier, wrap_int32
from .requant import rounding_divide_by_pot as rdbpot
from .requant import saturating_rounding_doubling_high_mul as srdhm

__all__ = [
    "round_half_away", "quantize_multiplier", "mbqm", "activation_range", "same_padding",
    "conv2d", "depthwise_conv2d", "transpose_conv", "transpose_conv_input", "fully_connected",
    "requantize_double",
    "add", "add_multipliers",
    "mean_multiplier",
    "average_pool", "max_pool", "strided_slice", "mean", "softmax", "quantize", "requantize",
    "dequantize",
]

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(value) -> np.ndarray:
    """C's ``round``: half away from zero (``np.round`` rounds half to even)."""
    value = np.asarray(value, dtype=np.float64)
    return np.sign(value) * np.floor(np.abs(value) + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~ q * 2**(shift - 31)``, ``q`` a Q31 int32."""
    return encode_tflite_scale(real)


def mbqm(x, multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier`` of int64 ``x`` (any shape), per-element constants."""
    return multiply_by_quantized_multiplier(np.asarray(x, np.int64), np.asarray(multiplier),
                                            np.asarray(shift))


def _quantize_scalar(value: float, scale: float, zero_point: int) -> int:
    return zero_point + int(round_half_away(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for an int8 output: the clamp of a fused activation
    (``NONE``, ``RELU``, ``RELU6``, ``RELU_N1_TO_1``; any other is no clamp, as in TFLite)."""
    lo, hi = -128, 127
    if activation == "RELU":
        return max(lo, zero_point), hi
    if activation == "RELU6":
        return max(lo, zero_point), min(hi, _quantize_scalar(6.0, scale, zero_point))
    if activation == "RELU_N1_TO_1":
        return (max(lo, _quantize_scalar(-1.0, scale, zero_point)),
                min(hi, _quantize_scalar(1.0, scale, zero_point)))
    return lo, hi


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """``(out, before, after)`` of SAME padding along one axis: the odd extra after."""
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kernel, stride, dilation, pads, out, fill: int) -> np.ndarray:
    """``(N, OH, OW, KH, KW, C)`` taps of NHWC ``x``, out-of-bounds taps reading ``fill``."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    top, left = pads[:2]
    n, h, w, c = x.shape
    bottom = max((oh - 1) * sh + (kh - 1) * dh + 1 - h - top, 0)
    right = max((ow - 1) * sw + (kw - 1) * dw + 1 - w - left, 0)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    ys = np.arange(oh)[:, None] * sh + np.arange(kh)[None, :] * dh   # (OH, KH)
    xs = np.arange(ow)[:, None] * sw + np.arange(kw)[None, :] * dw   # (OW, KW)
    return padded[:, ys[:, None, :, None], xs[None, :, None, :], :]


def _requantize_per_channel(acc, multiplier, shift, zero_point, act_range) -> np.ndarray:
    y = mbqm(wrap_int32(acc), multiplier, shift) + zero_point
    return np.clip(y, *act_range).astype(np.int8)


def conv2d(x, filters, bias, *, input_zp: int, multiplier, shift, output_zp: int,
           stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0),
           act_range=(-128, 127)) -> np.ndarray:
    """``ConvPerChannel``: NHWC int8 ``x``, OHWI ``filters``, int32 ``bias`` per output channel;
    taps outside the input are skipped (as if padded with ``input_zp``)."""
    x, filters = np.asarray(x, np.int64), np.asarray(filters, np.int64)
    out = _out_size(x.shape[1:3], filters.shape[1:3], stride, dilation, pads)
    taps = _windows(x - input_zp, filters.shape[1:3], stride, dilation, pads, out, 0)
    acc = np.einsum("nyxijc,oijc->nyxo", taps, filters) + np.asarray(bias, np.int64)
    return _requantize_per_channel(acc, multiplier, shift, output_zp, act_range)


def depthwise_conv2d(x, filters, bias, *, input_zp: int, multiplier, shift, output_zp: int,
                     stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0),
                     act_range=(-128, 127)) -> np.ndarray:
    """``DepthwiseConvPerChannel``: ``filters`` ``[1, KH, KW, C*M]``; output channel ``c*M + m``
    reads input channel ``c``."""
    x, filters = np.asarray(x, np.int64), np.asarray(filters, np.int64)
    channels = x.shape[3]
    depth_multiplier = filters.shape[3] // channels
    out = _out_size(x.shape[1:3], filters.shape[1:3], stride, dilation, pads)
    taps = _windows(x - input_zp, filters.shape[1:3], stride, dilation, pads, out, 0)
    taps = np.repeat(taps, depth_multiplier, axis=-1)
    acc = np.einsum("nyxijc,ijc->nyxc", taps, filters[0])
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return _requantize_per_channel(acc, multiplier, shift, output_zp, act_range)


def transpose_conv(x, filters, bias, *, output_size: tuple[int, int], input_zp: int,
                   multiplier, shift, output_zp: int, stride=(1, 1), pads=(0, 0),
                   act_range=(-128, 127)) -> np.ndarray:
    """TRANSPOSE_CONV (``reference_integer_ops::TransposeConv``): each input pixel, less the
    zero point, times OHWI ``filters`` scattered into the output from ``(iy * stride - top,
    ix * stride - left)``, taps past the output dropped; then per output channel as a
    conv."""
    x, filters = np.asarray(x, np.int64) - input_zp, np.asarray(filters, np.int64)
    n, h, w, _ = x.shape
    o, kh, kw, _ = filters.shape
    (sh, sw), (top, left) = stride, pads
    canvas = np.zeros((n, (h - 1) * sh + kh + top + output_size[0],
                       (w - 1) * sw + kw + left + output_size[1], o), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            canvas[:, dy:dy + h * sh:sh, dx:dx + w * sw:sw] += np.einsum(
                "nyxc,oc->nyxo", x, filters[:, dy, dx])
    acc = canvas[:, top:top + output_size[0], left:left + output_size[1]]
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return _requantize_per_channel(acc, multiplier, shift, output_zp, act_range)


def transpose_conv_input(x, *, stride, pads, output_size, kernel, zero_point: int) -> np.ndarray:
    """The map over which a conv of stride 1, VALID, with the filters flipped in both spatial
    axes gives :func:`transpose_conv`'s sums: NHWC ``x``'s pixels ``stride`` apart, the rest
    ``zero_point`` (which adds nothing: the conv takes the zero point off), cut to the
    ``output_size + kernel - 1`` pixels its outputs read; NCHW out, for the device's conv."""
    x = np.asarray(x)
    n, h, w, c = x.shape
    (sh, sw), (kh, kw), (oh, ow) = stride, kernel, output_size
    full = np.full((n, (h - 1) * sh + 2 * kh - 1 + oh, (w - 1) * sw + 2 * kw - 1 + ow, c),
                   zero_point, x.dtype)
    full[:, kh - 1:kh - 1 + (h - 1) * sh + 1:sh, kw - 1:kw - 1 + (w - 1) * sw + 1:sw] = x
    cut = full[:, pads[0]:pads[0] + oh + kh - 1, pads[1]:pads[1] + ow + kw - 1]
    return np.ascontiguousarray(cut.transpose(0, 3, 1, 2))


def _out_size(size, kernel, stride, dilation, pads):
    """Output size of a window over ``size`` padded by ``pads`` (top, left, bottom, right)."""
    return tuple((size[i] + pads[i] + pads[i + 2] - (kernel[i] - 1) * dilation[i] - 1)
                 // stride[i] + 1 for i in range(2))


def fully_connected(x, filters, bias, *, input_zp: int, filter_zp: int = 0, input_scale: float,
                    filter_scale, output_scale: float, output_zp: int,
                    act_range=(-128, 127)) -> np.ndarray:
    """The reference FULLY_CONNECTED: ``(B, I)`` x ``[O, I]`` ``filters``; the int32 sum
    requantized in double precision (``double(acc) * s_in * s_w / s_out``, rounded half away),
    not by ``MultiplyByQuantizedMultiplier`` as the optimized kernel does."""
    x, filters = np.asarray(x, np.int64), np.asarray(filters, np.int64)
    acc = (x - input_zp) @ (filters - filter_zp).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize_double(acc, input_scale=input_scale, filter_scale=filter_scale,
                             output_scale=output_scale, output_zp=output_zp, act_range=act_range)


def requantize_double(acc, *, input_scale: float, filter_scale, output_scale: float,
                      output_zp: int, act_range=(-128, 127)) -> np.ndarray:
    """FULLY_CONNECTED's requantization of int32 sums ``acc`` (``(..., O)``): ``double(acc) *
    (double(s_in) * double(s_w) / double(s_out))``, rounded half away from zero."""
    scale = (np.float64(np.float32(input_scale)) * np.asarray(filter_scale, np.float32)
             .astype(np.float64) / np.float64(np.float32(output_scale)))
    y = round_half_away(wrap_int32(acc).astype(np.float64) * scale).astype(np.int64) + output_zp
    return np.clip(y, *act_range).astype(np.int8)


def add_multipliers(a_scale: float, b_scale: float,
                    output_scale: float) -> list[tuple[int, int]]:
    """TFLite's int8 ADD's ``(multiplier, shift)`` for each input and the output, as its
    ``Prepare`` computes them: the inputs to twice the larger input scale, the sum (inputs
    shifted left by 20) to the output scale."""
    twice_max = 2.0 * float(max(np.float32(a_scale), np.float32(b_scale)))
    shifted_output_scale = float(np.float32((1 << 20) * np.float32(output_scale)))
    return [quantize_multiplier(float(np.float32(a_scale)) / twice_max),
            quantize_multiplier(float(np.float32(b_scale)) / twice_max),
            quantize_multiplier(twice_max / shifted_output_scale)]


def add(a, b, *, a_scale: float, a_zp: int, b_scale: float, b_zp: int, output_scale: float,
        output_zp: int, act_range=(-128, 127), subtract: bool = False) -> np.ndarray:
    """TFLite's int8 ADD (with ``subtract``, its SUB, which scales alike): each input shifted
    left by 20 and scaled to twice the larger input scale, summed (or the second taken from
    the first), scaled to the output; numpy broadcasting."""
    (m1, s1), (m2, s2), (mo, so) = add_multipliers(a_scale, b_scale, output_scale)
    va = (np.asarray(a, np.int64) - a_zp) << 20
    vb = (np.asarray(b, np.int64) - b_zp) << 20
    scaled_b = mbqm(vb, m2, s2)
    total = wrap_int32(mbqm(va, m1, s1) + (-scaled_b if subtract else scaled_b))
    return np.clip(mbqm(total, mo, so) + output_zp, *act_range).astype(np.int8)


def average_pool(x, *, kernel, stride=(1, 1), pads=(0, 0, 0, 0),
                 act_range=(-128, 127)) -> np.ndarray:
    """AVERAGE_POOL_2D on the stored int8 values: the mean of the in-bounds taps, rounded half
    away from zero by C's truncating division (no zero point or scale enters)."""
    x = np.asarray(x, np.int64)
    out = _out_size(x.shape[1:3], kernel, stride, (1, 1), pads)
    ones = np.ones(x.shape[:3] + (1,), np.int64)
    taps = _windows(x, kernel, stride, (1, 1), pads, out, 0)
    count = _windows(ones, kernel, stride, (1, 1), pads, out, 0).sum(axis=(3, 4))
    total = taps.sum(axis=(3, 4))
    half = count // 2
    rounded = np.where(total > 0, total + half, total - half)
    quotient = np.sign(rounded) * (np.abs(rounded) // count)   # C division truncates
    return np.clip(quotient, *act_range).astype(np.int8)


def max_pool(x, *, kernel, stride=(1, 1), pads=(0, 0, 0, 0),
             act_range=(-128, 127)) -> np.ndarray:
    """MAX_POOL_2D: the largest in-bounds tap (every window holds one), clamped."""
    x = np.asarray(x, np.int64)
    out = _out_size(x.shape[1:3], kernel, stride, (1, 1), pads)
    taps = _windows(x, kernel, stride, (1, 1), pads, out, -(1 << 31))
    return np.clip(taps.max(axis=(3, 4)), *act_range).astype(np.int8)


def strided_slice(x, begin, end, strides, *, begin_mask: int = 0, end_mask: int = 0,
                  shrink_axis_mask: int = 0) -> np.ndarray:
    """STRIDED_SLICE without ellipsis or new axes: a mask bit takes the axis's whole extent,
    a shrink bit keeps the one element at ``begin``."""
    x = np.asarray(x)
    index = []
    for axis, (b, e, s) in enumerate(zip(begin, end, strides)):
        b = None if begin_mask >> axis & 1 else int(b)
        e = None if end_mask >> axis & 1 else int(e)
        index.append(int(b or 0) if shrink_axis_mask >> axis & 1 else slice(b, e, int(s)))
    return x[tuple(index)]


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """``(multiplier, shift)`` of the reference MEAN over ``count`` values: ``s_in / s_out``'s,
    divided by ``count`` with as much of it as fits folded into the shift."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale))
                                            / float(np.float32(output_scale)))
    step = min(count.bit_length() - 1, 32, 31 + shift)   # shift >= -31
    return (multiplier << step) // count, shift - step


def mean(x, axes, *, input_scale: float, input_zp: int, output_scale: float,
         output_zp: int, keep_dims: bool = True, compute_sum: bool = False) -> np.ndarray:
    """The reference MEAN (``QuantizedMeanOrSum``): the int32 sum, less ``input_zp`` per element,
    times ``s_in / s_out / n`` folded into one multiplier; SUM (``compute_sum``) times
    ``s_in / s_out``."""
    x = np.asarray(x, np.int64)
    axes = tuple(a % x.ndim for a in axes)
    count = int(np.prod([x.shape[a] for a in axes]))
    multiplier, shift = (mean_multiplier(input_scale, output_scale, 1) if compute_sum
                         else mean_multiplier(input_scale, output_scale, count))
    total = x.sum(axis=axes, keepdims=keep_dims) - input_zp * count
    y = mbqm(wrap_int32(total), multiplier, shift) + output_zp
    return np.clip(y, -128, 127).astype(np.int8)


def quantize(x, *, scale: float, zero_point: int) -> np.ndarray:
    """QUANTIZE from float32: float32 division, rounded half away from zero."""
    q = np.asarray(x, np.float32) / np.float32(scale)
    return np.clip(round_half_away(q).astype(np.int64) + zero_point, -128, 127).astype(np.int8)


def requantize(x, *, input_scale: float, input_zp: int, output_scale: float,
               output_zp: int, dtype=np.int8) -> np.ndarray:
    """QUANTIZE from int8 or uint8 to int8 or uint8 (``dtype``: a new scale and zero point;
    between the two types at one scale, a zero point 128 apart, that is the reference's XOR
    of the top bit)."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale))
                                            / float(np.float32(output_scale)))
    y = mbqm(np.asarray(x, np.int64) - input_zp, multiplier, shift) + output_zp
    info = np.iinfo(dtype)
    return np.clip(y, info.min, info.max).astype(dtype)


def dequantize(x, *, scale: float, zero_point: int) -> np.ndarray:
    """DEQUANTIZE: ``float32(double(scale) * (q - zp))``."""
    return (np.float64(np.float32(scale)) * (np.asarray(x, np.float64) - zero_point)) \
        .astype(np.float32)


# -- SOFTMAX: gemmlowp's fixed-point exp and reciprocal ------------------------------------------

def _srmpot(x, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT."""
    x = np.asarray(x, np.int64)
    if exponent < 0:
        return rdbpot(x, -exponent)
    if exponent == 0:
        return x
    limit = (1 << (31 - exponent)) - 1
    return np.where(x > limit, _I32_MAX, np.where(x < -limit, _I32_MIN, x << exponent))


def _exp_on_quarter(a) -> np.ndarray:
    """exp on [-1/4, 0), Q0.31 in and out."""
    constant, third = 1895147668, 715827883
    x = wrap_int32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    t = _srmpot(wrap_int32(srdhm(wrap_int32(_srmpot(x4, -2) + x3), third) + x2), -1)
    return wrap_int32(constant + srdhm(constant, wrap_int32(x + t)))


def _exp_on_negative_values(a) -> np.ndarray:
    """exp of Q5.26 ``a <= 0``, Q0.31 out."""
    quarter = 1 << 24
    below = wrap_int32((a & (quarter - 1)) - quarter)
    result = _exp_on_quarter(_srmpot(below, 5))
    remainder = wrap_int32(below - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                                 (1, 290630308), (2, 39332535), (3, 720401), (4, 242)):
        bit = (remainder & (1 << (26 + exponent))) != 0
        result = np.where(bit, srdhm(result, multiplier), result)
    return np.where(a == 0, _I32_MAX, result)


def _reciprocal(total) -> tuple[np.ndarray, np.ndarray]:
    """``GetReciprocal(x, 12)``: ``1 / (1 + x)`` in Q0.31 and the bits it was shifted by."""
    total = np.asarray(total, np.int64) & 0xFFFFFFFF
    leading = 32 - bit_length(total)
    shifted = wrap_int32(((total << leading) & 0xFFFFFFFF) - (1 << 31))
    s = shifted + _I32_MAX
    half = np.where(s >= 0, 1, -1)
    half_denominator = np.sign(s + half) * (np.abs(s + half) // 2)
    x = wrap_int32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        x = wrap_int32(x + _srmpot(srdhm(x, wrap_int32((1 << 29) - srdhm(half_denominator, x))), 2))
    return _srmpot(x, 1), 12 - leading


def softmax(x, *, input_scale: float, beta: float = 1.0) -> np.ndarray:
    """The reference int8 SOFTMAX over the last axis (output scale 1/256, zero point -128)."""
    real = min(float(beta) * float(np.float32(input_scale)) * float(1 << 26), float(_I32_MAX))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -math.floor(31.0 * (1 << 26) / (1 << left_shift))
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    exps = _exp_on_negative_values(srdhm(wrap_int32(diff << left_shift), multiplier))
    total = wrap_int32(np.where(used, rdbpot(exps, 12), 0).sum(axis=-1, keepdims=True))
    reciprocal, bits = _reciprocal(total)
    y = rdbpot(srdhm(reciprocal, exps), bits + 31 - 8)   # one exponent per row
    return np.where(used, np.clip(y - 128, -128, 127), -128).astype(np.int8)

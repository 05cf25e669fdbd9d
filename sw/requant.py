"""Requantization arithmetic: the exact integer oracle ``hw/requant.py`` matches bit for bit.

A Rill core turns each int32 accumulator into one output byte:
``bias`` add, a per-channel multiplier and shift, a rounding mode, a zero point, a clamp and ReLU.
Two rounding modes exist because the two ecosystems disagree in about 1 % of cases
(``docs/arithmetic.md``):

- :attr:`~hw.isa.Rounding.ONNX` reproduces onnxruntime's float32 path exactly, in integers.
  onnxruntime computes ``float32(acc) * float32(scale)`` (rounded to float32), clamps, and rounds
  half to even. A float32 is a 24-bit integer mantissa times a power of two, so each float32
  rounding step is "round to 24 significant bits, half to even", and the whole path is integer
  arithmetic on ``multiplier`` (the mantissa) and ``shift`` (the exponent).
- :attr:`~hw.isa.Rounding.TFLITE` is TFLite's reference ``MultiplyByQuantizedMultiplier``: a Q31
  multiplier, a doubling high multiply with its own nudge, then a rounding right shift.

Every function here is exact integer arithmetic on int64 numpy arrays: no value on any path exceeds
``2**63`` (the widest is ``|x| * m < 2**31 * 2**24`` in ONNX mode and ``2**62 + 2**30`` in TFLITE
mode), and no float is involved except in the scale *encoders*, which read float bits.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from hw.isa import OutType, Rounding

__all__ = [
    "OUT_RANGES", "requantize", "output_bytes", "raw_bytes",
    "encode_onnx_scale", "onnx_scale", "encode_tflite_scale", "encode_tflite_channel_scales",
    "wrap_int32", "rne_shift", "rne_sig", "bit_length", "multiply_by_quantized_multiplier",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
]

#: Clamp range ``(lo, hi)`` of each output type, before ReLU raises ``lo`` to the zero point.
OUT_RANGES: dict[OutType, tuple[int, int]] = {
    OutType.INT8: (-128, 127),
    OutType.UINT8: (0, 255),
    OutType.INT4: (-8, 7),
}

#: Significant bits of a float32 (23 stored mantissa bits plus the hidden bit).
_FLOAT32_SIG_BITS = 24
#: Right shifts above this are clamped: numpy shifts by >= 64 are undefined, and for magnitudes
#: below ``2**61`` (here they stay below ``2**56``) any shift >= 62 rounds to 0 anyway.
_MAX_SHIFT = 62


def _int64(value: ArrayLike) -> np.ndarray:
    return np.asarray(value).astype(np.int64)


def wrap_int32(value: ArrayLike) -> np.ndarray:
    """Two's-complement wrap of integers to the int32 range (as int64), as a 32-bit adder does."""
    value = _int64(value)
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _wrap_signed(value: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((value + half) & ((1 << bits) - 1)) - half


def rne_shift(a: ArrayLike, s: ArrayLike) -> np.ndarray:
    """``a / 2**s`` rounded half to even, for ``0 <= a < 2**61`` and ``s >= 0``.

    ``s == 0`` returns ``a``; shifts past the magnitude give 0.
    """
    a = _int64(a)
    s = np.minimum(_int64(s), _MAX_SHIFT)
    q = a >> s
    r = a & ((np.int64(1) << s) - 1)
    # For s == 0 the "half" is 1/2 of an integer step: r == 0 < half, never rounds up.
    half = np.where(s > 0, np.int64(1) << np.maximum(s - 1, 0), 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def bit_length(a: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exactly (no float log2)."""
    length = np.zeros(a.shape, dtype=np.int64)
    rest = a.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.int64(1) << step)
        length += np.where(big, step, 0)
        rest = np.where(big, rest >> step, rest)
    return length + (rest > 0)


def rne_sig(a: ArrayLike, bits: int = _FLOAT32_SIG_BITS) -> np.ndarray:
    """Round ``a >= 0`` to ``bits`` significant bits, half to even, keeping its magnitude.

    This is what converting an integer to float32 (``bits = 24``) does when it is below the float
    range limit; the result may carry into one more bit (``0xFFFFFF8 -> 2**28``), as a float does.
    """
    a = _int64(a)
    t = np.maximum(bit_length(a) - bits, 0)
    return rne_shift(a, t) << t


def _requantize_onnx(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    m = multiplier & 0xFFFFFF            # the float32 mantissa, hidden bit included
    s = shift & 0xFF                     # scale = m * 2**-s; ONNX scales are < 2**24 (s >= 0)
    a = rne_sig(np.abs(x))               # float32(x): exact below 2**24, rounded above
    p = rne_sig(a * m)                   # float32 multiply: the exact product rounded to float32
    v = rne_shift(p, s)                  # cvtps2dq: round half to even (MXCSR default)
    return np.where(x < 0, -v, v)


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` of int32 values: ``a * b / 2**31``
    rounded half up (the nudge, then C's truncating division); the one overflow,
    ``(-2**31) * (-2**31)``, saturates."""
    a, b = _int64(a), _int64(b)
    n = a * b + np.where(a * b >= 0, 1 << 30, 1 - (1 << 30))
    # C integer division truncates toward zero; >> floors, so correct inexact negative quotients.
    y = (n >> 31) + ((n < 0) & ((n & ((1 << 31) - 1)) != 0))
    return np.where((a == -(1 << 31)) & (b == -(1 << 31)), (1 << 31) - 1, y)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero
    (``0 <= exponent <= 31``, per element)."""
    x, exponent = _int64(x), _int64(exponent)
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def _requantize_tflite(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    big_m = _wrap_signed(multiplier, 32)
    sh = _wrap_signed(shift & 0xFF, 8)   # the wire carries a two's-complement int8 shift
    left = np.clip(sh, 0, 31)
    right = np.clip(-sh, 0, 31)
    xl = wrap_int32(x << left)           # int32 multiply by 2**left: wraps in the C reference too
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xl, big_m), right)


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike,
                                     shift: ArrayLike) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier`` as its pip builds compile it (double rounding):
    int32 ``x`` times the Q31 ``multiplier`` times ``2**shift``, ``-31 <= shift <= 31``."""
    x, multiplier, shift = np.broadcast_arrays(_int64(x), _int64(multiplier), _int64(shift))
    return _requantize_tflite(x, multiplier, shift & 0xFF)


def requantize(acc: ArrayLike, bias: ArrayLike, multiplier: ArrayLike, shift: ArrayLike,
               zero_point: ArrayLike, *, rounding: Rounding, relu: bool,
               out_type: OutType, clamp: tuple[int, int] | None = None) -> np.ndarray:
    """Requantize accumulators to output values, exactly as the hardware does.

    All array arguments broadcast against each other (typically ``acc`` is ``(m, n)`` and the
    per-channel parameters are ``(n,)``).

    Parameters
    ----------
    acc : array_like of int
        int32 accumulators.
    bias : array_like of int
        int32 bias, added with int32 wrap-around.
    multiplier : array_like of int
        ONNX mode: the scale's float32 mantissa (low 24 bits used). TFLITE mode: the Q31
        multiplier as a signed int32.
    shift : array_like of int
        The raw shift byte: an unsigned right shift in ONNX mode, a signed (int8) left shift in
        TFLITE mode. Values outside a byte are reduced to their low 8 bits.
    zero_point : array_like of int
        Output zero point (int16).
    rounding : Rounding
        Which arithmetic to emulate (see the module docstring).
    relu : bool
        Clamp below at the zero point (a fused ReLU).
    out_type : OutType
        Output range: INT8 ``[-128, 127]``, UINT8 ``[0, 255]``, INT4 ``[-8, 7]``.
    clamp : (lo, hi), optional
        Narrow the output range to ``[max(lo, type's lo), min(hi, type's hi)]`` (in place of
        ``relu``'s floor: ``hw.isa.Config.clamp``).

    Returns
    -------
    numpy.ndarray of int32
        Clamped output values, in the range of ``out_type``.

    Notes
    -----
    This is the specification the gateware matches. With ``x = wrap_int32(acc + bias)``:

    - ONNX: ``m = multiplier & 0xFFFFFF``, ``s = shift & 0xFF``;
      ``v = sign(x) * rne_shift(rne_sig(rne_sig(|x|) * m), s)`` (:func:`rne_sig` to 24 bits is
      float32 conversion; the outer one is the float32 multiply's rounding).
    - TFLITE: ``M = int32(multiplier)``, ``sh = int8(shift)``, ``left = clip(sh, 0, 31)``,
      ``right = clip(-sh, 0, 31)``; ``v = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
      wrap_int32(x << left), M), right)`` exactly as gemmlowp defines them (C truncating
      division, the ``(-2**31)**2`` saturation).
    - Then ``y = v + int16(zero_point)``, clamped to the ``out_type`` range, whose low end ReLU
      raises to ``max(lo, zero_point)`` (or ``clamp`` narrows); max is applied before min.
    """
    acc, bias, multiplier, shift, zero_point = np.broadcast_arrays(
        _int64(acc), _int64(bias), _int64(multiplier), _int64(shift), _int64(zero_point))
    x = wrap_int32(acc + bias)
    if Rounding(rounding) == Rounding.ONNX:
        v = _requantize_onnx(x, multiplier, shift)
    else:
        v = _requantize_tflite(x, multiplier, shift)
    zero_point = _wrap_signed(zero_point, 16)
    lo, hi = OUT_RANGES[OutType(out_type)]
    if clamp is not None:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    lo = np.maximum(lo, zero_point) if relu else np.full_like(zero_point, lo)
    # Max, then min, like np.clip: a ReLU zero point above ``hi`` yields ``hi`` (so does the RTL).
    return np.minimum(np.maximum(v + zero_point, lo), hi).astype(np.int32)


def output_bytes(values: ArrayLike, out_type: OutType) -> np.ndarray:
    """The bytes sent on the wire for requantized values (INT4 values go sign-extended to a byte).

    ``out_type`` is accepted for symmetry with :func:`requantize`: every type is sent as the low
    8 bits of its two's-complement value.
    """
    OutType(out_type)
    return (_int64(values) & 0xFF).astype(np.uint8)


def raw_bytes(acc: ArrayLike, bias: ArrayLike) -> np.ndarray:
    """``STORE RAW``: ``wrap_int32(acc + bias)`` as little-endian int32 bytes, flattened in C order.

    Returns a uint8 array of ``4 * size`` bytes (``.tobytes()`` gives the wire form).
    """
    acc, bias = np.broadcast_arrays(_int64(acc), _int64(bias))
    x = wrap_int32(acc + bias).astype("<i4")
    return np.ascontiguousarray(x).view(np.uint8).reshape(-1)


def _scalar_or_array(value: np.ndarray):
    return int(value) if value.ndim == 0 else value


def encode_onnx_scale(scale: ArrayLike) -> tuple:
    """``(multiplier, shift)`` of a float32 scale for :attr:`Rounding.ONNX`: ``scale = m * 2**-s``.

    Parameters
    ----------
    scale : numpy.float32 or array_like of float32
        Positive, finite scale(s), typically from :func:`onnx_scale`.

    Returns
    -------
    (multiplier, shift)
        Python ints for a scalar, int64 arrays otherwise.

    Raises
    ------
    ValueError
        For negative, infinite or NaN scales (ONNX scales are positive; a negative one would need
        a sign the hardware does not carry).
    """
    scale = np.asarray(scale, dtype=np.float32)
    bits = scale.view(np.uint32).astype(np.int64)
    if np.any(bits >> 31) or not np.all(np.isfinite(scale)):
        raise ValueError("ONNX requantization scales must be positive and finite; got "
                         f"{scale[~np.isfinite(scale) | (scale < 0) | np.signbit(scale)]}")
    exponent = (bits >> 23) & 0xFF
    multiplier = (bits & 0x7FFFFF) | (1 << 23)
    shift = 150 - exponent
    # Zero or subnormal (< 2**-126): |acc| * scale < 2**-95 rounds to 0 in float32; m = 0 does too.
    tiny = exponent == 0
    multiplier = np.where(tiny, 0, multiplier)
    shift = np.where(tiny, 0, shift)
    # Cannot happen for a normal float32 (s <= 149), kept so the byte can never wrap.
    shift = np.minimum(shift, 255)
    # scale >= 2**24: every nonzero accumulator lands beyond any int16 zero point plus clamp
    # range, in float32 and with (2**24 - 1, 0) alike, so both saturate identically (0 stays 0).
    huge = shift < 0
    multiplier = np.where(huge, (1 << 24) - 1, multiplier)
    shift = np.where(huge, 0, shift)
    return _scalar_or_array(multiplier), _scalar_or_array(shift)


def onnx_scale(a_scale: ArrayLike, w_scale: ArrayLike, y_scale: ArrayLike) -> np.float32:
    """The requantization scale exactly as onnxruntime computes it (float32, in this order).

    onnxruntime's ``QLinearMatMul`` kernel (``quantize_linear_matmul.cc``) and ``QLinearConv``
    compute ``a_scale * b_scale[i] / y_scale`` in float32 arithmetic, left to right; a different
    order rounds differently in the last bit and changes outputs near ties.
    """
    return (np.float32(a_scale) * np.asarray(w_scale, dtype=np.float32)) / np.float32(y_scale)


def encode_tflite_scale(real_scale: float) -> tuple[int, int]:
    """``(multiplier, shift)`` of a real scale for :attr:`Rounding.TFLITE` (QuantizeMultiplier).

    ``real_scale ~= multiplier * 2**(shift - 31)`` with ``multiplier`` in ``[2**30, 2**31)``.
    ``shift`` is signed: positive is a left shift (it travels as an int8 byte).

    Raises
    ------
    ValueError
        For non-finite scales, or scales of ``2**31`` and above (their left shift exceeds 31).
    """
    real_scale = float(real_scale)
    if not math.isfinite(real_scale):
        raise ValueError(f"TFLite requantization scale must be finite, got {real_scale}")
    if real_scale == 0.0:
        return 0, 0
    q, shift = math.frexp(real_scale)
    # TfLiteRound is std::round: half away from zero. q * 2**31 is exact in a double.
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))
    if q_fixed == 1 << 31:   # (-2**31 fits an int32 and TFLite keeps it)
        q_fixed //= 2
        shift += 1
    if shift < -31:
        # TFLite flushes multipliers below ~2**-31 to zero rather than shifting right by > 31.
        return 0, 0
    if shift > 31:
        raise ValueError(f"TFLite requantization scale {real_scale} is too large "
                         "(left shifts above 31 are not supported)")
    return q_fixed, shift


def encode_tflite_channel_scales(a_scale: float, w_scale, y_scale: float,
                                 n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(multipliers, shifts)`` (shifts signed) of a TFLite conv or fully
    connected layer: ``QuantizeMultiplier(double(a_scale) * double(w_scale[c]) /
    double(y_scale))``, each scale a float32, in that order, as TFLite computes them."""
    pairs = [encode_tflite_scale(float(np.float32(a_scale)) * float(s) / float(np.float32(y_scale)))
             for s in np.broadcast_to(np.asarray(w_scale, np.float32), (n,))]
    return (np.array([m for m, _ in pairs], np.int64),
            np.array([shift for _, shift in pairs], np.int64))

"""Requantization's golden arithmetic (``sw.requant``) against outside oracles: onnxruntime itself
(``QLinearMatMul`` models), numpy's float32 arithmetic (for the ONNX mode's float emulation), exact
rational arithmetic (for TFLite's definition) and hand-worked TFLite cases. The gateware is checked
against ``sw.requant`` in ``tests/test_requant_rtl.py``.
"""

import math
from fractions import Fraction

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from hw.isa import OutType, Rounding
from sim.requant_cases import (
    INT32_MAX,
    INT32_MIN,
    high_product_near_ties,
    interesting_accs,
    product_ties,
)
from sw import oracle
from sw.requant import (
    OUT_RANGES,
    encode_onnx_scale,
    encode_tflite_scale,
    onnx_scale,
    output_bytes,
    raw_bytes,
    requantize,
)

# -- onnxruntime ---------------------------------------------------------------------------------


def qlinear_matmul(a: np.ndarray, a_scale, a_zp: int, w: np.ndarray, w_scale, w_zp: int,
                   y_scale, y_zp: int) -> np.ndarray:
    """``a @ w`` through onnxruntime's ``QLinearMatMul``, as the oracle (:mod:`sw.oracle`) gives it.

    ``a`` and the output share a dtype (ORT's kernels pair int8 with int8, uint8 with uint8);
    ``w`` is int8. ``w_scale`` may be per column.
    """
    dtype = a.dtype.type
    elem = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    k, n = w.shape
    inits = [numpy_helper.from_array(np.array(a_scale, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(a_zp, dtype), "a_zp"),
             numpy_helper.from_array(w.astype(np.int8), "w"),
             numpy_helper.from_array(np.array(w_scale, np.float32), "w_scale"),
             numpy_helper.from_array(np.array(w_zp, np.int8), "w_zp"),
             numpy_helper.from_array(np.array(y_scale, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(y_zp, dtype), "y_zp")]
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zp", "w", "w_scale", "w_zp",
                                              "y_scale", "y_zp"], ["y"])
    graph = helper.make_graph([node], "qmm", [helper.make_tensor_value_info("a", elem, [None, k])],
                              [helper.make_tensor_value_info("y", elem, [None, n])], inits)
    # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 reads IR <= 13.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model)
    return oracle.run(model, {"a": a})["y"]


def exact_acc(a: np.ndarray, a_zp: int, w: np.ndarray, w_zp: int) -> np.ndarray:
    return (a.astype(np.int64) - a_zp) @ (w.astype(np.int64) - w_zp)


def golden_onnx(acc, scale, y_zp, out_type: OutType, bias=0) -> np.ndarray:
    multiplier, shift = encode_onnx_scale(scale)
    return requantize(acc, bias, multiplier, shift, y_zp, rounding=Rounding.ONNX, relu=False,
                      out_type=out_type)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_onnx_mode_matches_onnxruntime(dtype):
    rng = np.random.default_rng(int(dtype == np.uint8))
    out_type = OutType.INT8 if dtype == np.int8 else OutType.UINT8
    info = np.iinfo(dtype)
    count = 0
    for _ in range(60):
        m, k, n = int(rng.integers(1, 33)), int(rng.integers(1, 257)), int(rng.integers(1, 17))
        a = rng.integers(info.min, info.max + 1, (m, k)).astype(dtype)
        w = rng.integers(-128, 128, (k, n)).astype(np.int8)
        a_zp = int(rng.integers(info.min, info.max + 1))
        w_zp = int(rng.integers(-128, 128)) if rng.random() < 0.3 else 0
        a_scale = np.float32(rng.uniform(1e-3, 0.1))
        w_scale = rng.uniform(1e-3, 0.1, n).astype(np.float32) if rng.random() < 0.5 \
            else np.float32(rng.uniform(1e-3, 0.1))
        # Spread outputs over the range, with some saturating.
        y_scale = np.float32(a_scale * np.max(w_scale) * np.sqrt(k) * 128 * 110
                             / rng.uniform(2, 150))
        y_zp = int(rng.integers(info.min, info.max + 1))
        expected = qlinear_matmul(a, a_scale, a_zp, w, w_scale, w_zp, y_scale, y_zp)
        acc = exact_acc(a, a_zp, w, w_zp)
        got = golden_onnx(acc, onnx_scale(a_scale, w_scale, y_scale), y_zp, out_type)
        assert np.array_equal(got, expected), (k, a_scale, w_scale, y_scale)
        count += acc.size
    assert count > 3000


def operands_for(targets: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 ``a`` (1 x k) and ``w`` (k x len(targets)) with ``a @ w == targets`` exactly.

    ``a`` is 127 except a final 1, so column ``c`` sums to ``127 * sum(w[:-1, c]) + w[-1, c]``.
    """
    w = np.zeros((k, len(targets)), dtype=np.int64)
    for c, target in enumerate(targets):
        q, r = divmod(int(target), 127)
        if r > 63:
            q, r = q + 1, r - 127
        full, rest = divmod(abs(q), 127)
        assert full < k - 1, "k too small for this accumulator"
        w[:full, c] = 127 * np.sign(q)
        w[full, c] = rest * np.sign(q)
        w[k - 1, c] = r
    a = np.full((1, k), 127, dtype=np.int8)
    a[0, k - 1] = 1
    assert np.array_equal(exact_acc(a, 0, w, 0)[0], targets)
    return a, w.astype(np.int8)


def test_onnx_mode_matches_onnxruntime_where_float32_rounds_acc():
    """Accumulators far above 2**24, placed just off exact halves, where float32(acc) matters.

    With ``y_scale = 2**p`` the output is ``acc / 2**p``; ``acc = (2j + 1) * 2**(p-1) + d`` for a
    small ``d`` is a half in float32 (``float32(acc)`` drops ``d``) but not in exact arithmetic,
    so the float path and the exact one round to different integers.
    """
    rng = np.random.default_rng(7)
    p = 20
    j = rng.integers(32, 120, 48) * rng.choice([-1, 1], 48)
    targets = ((2 * j + 1) * (1 << (p - 1)) + rng.integers(-20, 21, 48)).tolist()
    a, w = operands_for(targets, 8000)
    acc = exact_acc(a, 0, w, 0)
    assert np.all(np.abs(acc) > 1 << 24)
    expected = qlinear_matmul(a, 1.0, 0, w, 1.0, 0, np.float32(2.0 ** p), 0)
    assert np.array_equal(golden_onnx(acc, onnx_scale(1.0, 1.0, 2.0 ** p), 0, OutType.INT8),
                          expected)
    # Exact rounding of acc / 2**p disagrees with onnxruntime on some of these, so this test
    # would catch an emulation that skipped the float32(acc) step.
    assert np.any(np.clip(np.rint(acc / 2.0 ** p), -128, 127) != expected)


def test_onnx_mode_matches_onnxruntime_at_float32_product_ties():
    """Accumulators whose float32 product with the scale is an exact tie (see product_ties).

    Per-column ``w_scale`` carries each column's scale; with ``a_scale = y_scale = 1`` the
    onnxruntime scale is ``w_scale`` exactly.
    """
    rng = np.random.default_rng(8)
    x, multiplier, shift = product_ties(rng, 64)
    scale = np.ldexp(multiplier.astype(np.float64), -shift).astype(np.float32)
    a, w = operands_for(x.tolist(), 1000)
    expected = qlinear_matmul(a, 1.0, 0, w, scale, 0, 1.0, 0)
    assert np.array_equal(golden_onnx(x, onnx_scale(1.0, scale, 1.0), 0, OutType.INT8),
                          expected[0])


def test_onnx_scale_order_matches_onnxruntime():
    """``a_scale * w_scale / y_scale`` in float32, in that order.

    Pick scales where ``a * (w / y)`` differs from ``(a * w) / y`` in the last bit, find the
    accumulators where that bit changes the output, and ask onnxruntime which one it computes.
    """
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 100:
        a_s, w_s = (np.float32(v) for v in rng.uniform(1e-3, 1e-2, 2))
        y_s = np.float32(a_s * w_s * 2.0 ** 18 * rng.uniform(1, 2))
        ours = onnx_scale(a_s, w_s, y_s)
        other = np.float32(a_s * np.float32(w_s / y_s))
        if ours == other:
            continue
        # Near each rounding boundary (j + 1/2) / scale the two scales may round apart.
        centers = np.rint((np.arange(-120, 120) + 0.5) / np.float64(ours)).astype(np.int64)
        cands = (centers[:, None] + np.arange(-3, 4)).reshape(-1)
        differ = golden_onnx(cands, ours, 0, OutType.INT8) != golden_onnx(cands, other, 0,
                                                                           OutType.INT8)
        targets = cands[differ][:48].tolist()
        if not targets:
            continue
        a, w = operands_for(targets, 4500)
        expected = qlinear_matmul(a, a_s, 0, w, w_s, 0, y_s, 0)[0]
        assert np.array_equal(golden_onnx(np.array(targets), ours, 0, OutType.INT8), expected)
        assert np.all(golden_onnx(np.array(targets), other, 0, OutType.INT8) != expected)
        checked += len(targets)


# -- ONNX mode against numpy's float32 arithmetic ------------------------------------------------


def float32_oracle(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, out_type: OutType):
    """onnxruntime's path written in numpy float32: float32(x) * scale, rounded half to even."""
    with np.errstate(over="ignore"):
        product = np.float32(x.astype(np.float32) * scale.astype(np.float32))
    lo, hi = OUT_RANGES[out_type]
    return np.clip(np.rint(product.astype(np.float64)) + zp, lo, hi).astype(np.int64)


@pytest.mark.parametrize("out_type", list(OutType))
def test_onnx_mode_matches_float32_arithmetic(out_type):
    rng = np.random.default_rng(100 + out_type.value)
    size = 200_000
    x = interesting_accs(rng, size)
    # Scales from vanishing to huge, biased to ones that keep x * scale near the output range.
    bits = np.floor(np.log2(np.maximum(np.abs(x), 1))).astype(np.int64)
    exponent = -bits + rng.integers(-3, 9, size)
    wild = rng.random(size) < 0.1
    exponent[wild] = rng.integers(-150, 40, wild.sum())
    scale = np.ldexp(rng.uniform(1.0, 2.0, size), exponent).astype(np.float32)
    # A third sit a few units off an exact half of the output step, where each float32
    # rounding (of x, and of the product) decides the result.
    near = rng.random(size) < 0.35
    half = rng.integers(-100, 100, near.sum()) + 0.5
    scale[near] = np.ldexp(rng.uniform(1.0, 2.0, near.sum()),
                           -rng.integers(10, 26, near.sum())).astype(np.float32)
    x[near] = np.clip(np.rint(half / scale[near].astype(np.float64))
                      + rng.integers(-40, 41, near.sum()), INT32_MIN, INT32_MAX)
    # And a tenth are exact float32 product ties (rare in random data, decisive here).
    ties = rng.random(size) < 0.1
    x[ties], tie_multiplier, tie_shift = product_ties(rng, ties.sum())
    scale[ties] = np.ldexp(tie_multiplier.astype(np.float64), -tie_shift).astype(np.float32)
    zp = rng.integers(-200, 200, size)
    expected = float32_oracle(x, scale, zp, out_type)
    multiplier, shift = encode_onnx_scale(scale)
    got = requantize(x, 0, multiplier, shift, zp, rounding=Rounding.ONNX, relu=False,
                     out_type=out_type)
    assert np.array_equal(got, expected)
    # The cases are sharp: exact (float64) rounding disagrees with float32 on many of them.
    lo, hi = OUT_RANGES[out_type]
    exact = np.clip(np.rint(x * scale.astype(np.float64)) + zp, lo, hi)
    assert np.sum(exact != expected) > 100
    # Bias enters before the float conversion, with int32 wrap-around.
    bias = rng.integers(INT32_MIN, INT32_MAX + 1, size)
    wrapped = ((x + bias + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    got = requantize(x, bias, multiplier, shift, zp, rounding=Rounding.ONNX, relu=False,
                     out_type=out_type)
    assert np.array_equal(got, float32_oracle(wrapped, scale, zp, out_type))


def test_encode_onnx_scale():
    rng = np.random.default_rng(3)
    scale = np.ldexp(rng.uniform(1.0, 2.0, 1000), rng.integers(-126, 24, 1000)).astype(np.float32)
    multiplier, shift = encode_onnx_scale(scale)
    assert np.all((multiplier >= 1 << 23) & (multiplier < 1 << 24))
    assert np.all((shift >= 0) & (shift <= 255))
    assert np.array_equal(np.ldexp(multiplier.astype(np.float64), -shift), scale)
    assert encode_onnx_scale(np.float32(1.0)) == (1 << 23, 23)
    assert encode_onnx_scale(np.float32(0.0)) == (0, 0)
    assert encode_onnx_scale(np.float32(1e-45)) == (0, 0)             # subnormal
    assert encode_onnx_scale(np.float32(2.0 ** 24)) == ((1 << 24) - 1, 0)
    assert encode_onnx_scale(np.float32(2.0 ** -126)) == (1 << 23, 149)
    for bad in (-1.0, np.inf, np.nan):
        with pytest.raises(ValueError):
            encode_onnx_scale(np.float32(bad))


# -- TFLITE mode ---------------------------------------------------------------------------------


def tflite_rational(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier from its definition, in exact rationals.

    ``SaturatingRoundingDoublingHighMul`` rounds ``a * b / 2**31`` to nearest with exact halves
    toward +inf (its nudge is ``2**30`` for ``ab >= 0`` and ``1 - 2**30`` below, under truncating
    division); ``RoundingDivideByPOT`` rounds to nearest with halves away from zero.
    """
    def wrap(v):
        return (v + (1 << 31)) % (1 << 32) - (1 << 31)
    left, right = min(max(shift, 0), 31), min(max(-shift, 0), 31)
    xl = wrap(x << left)
    if xl == multiplier == INT32_MIN:
        high = INT32_MAX
    else:
        high = math.floor(Fraction(xl * multiplier, 1 << 31) + Fraction(1, 2))
    quotient = Fraction(high, 1 << right)
    rounded = math.floor(abs(quotient) + Fraction(1, 2))
    return rounded if quotient >= 0 else -rounded


def tflite(x, multiplier, shift, zp=0, out_type=OutType.INT8, relu=False):
    return requantize(x, 0, multiplier, shift & 0xFF, zp, rounding=Rounding.TFLITE, relu=relu,
                      out_type=out_type)


def test_tflite_known_cases():
    # multiplier 2**30 (0.5), shift 0: halves go toward +inf in the doubling high multiply.
    x = np.array([0, 1, 2, 3, 5, -1, -2, -3, -5, 254, -255])
    assert tflite(x, 1 << 30, 0).tolist() == [0, 1, 1, 2, 3, 0, -1, -1, -2, 127, -127]
    # shift -1 on top: RoundingDivideByPOT rounds the (already rounded) value, halves away from
    # zero. Double rounding: 5 / 4 = 1.25 comes out as 2 (2.5 -> 3, then 1.5 -> 2).
    assert tflite(x, 1 << 30, -1).tolist() == [0, 1, 1, 1, 2, 0, -1, -1, -1, 64, -64]
    # The one saturating case, and left shifts wrapping like the int32 C code.
    assert int(tflite(INT32_MIN, INT32_MIN, 0, out_type=OutType.UINT8)) == 255
    assert int(tflite(INT32_MIN, INT32_MIN, -31)) == 1
    assert int(tflite(1 << 30, 1 << 30, 1)) == -128   # (2**30 << 1) wraps to -2**31
    # QuantizeMultiplier: scale = multiplier * 2**(shift - 31), multiplier in [2**30, 2**31).
    assert encode_tflite_scale(0.5) == (1 << 30, 0)
    assert encode_tflite_scale(0.25) == (1 << 30, -1)
    assert encode_tflite_scale(1.0) == (1 << 30, 1)
    assert encode_tflite_scale(0.0) == (0, 0)
    assert encode_tflite_scale(2.0 ** -40) == (0, 0)                     # flushed to zero
    assert encode_tflite_scale(1 - 2.0 ** -40) == (1 << 30, 1)           # q rounds to 2**31
    with pytest.raises(ValueError):
        encode_tflite_scale(2.0 ** 40)


@settings(max_examples=400, deadline=None, database=None)
@given(x=st.integers(INT32_MIN, INT32_MAX), multiplier=st.integers(INT32_MIN, INT32_MAX),
       shift=st.integers(-128, 127))
def test_tflite_matches_rational_definition(x, multiplier, shift):
    expected = max(-128, min(127, tflite_rational(x, multiplier, shift)))
    assert int(tflite(x, multiplier, shift)) == expected


def test_tflite_near_half_ties_match_rational_definition():
    """The doubling high multiply a hair past a half, the hair far below the half's bit (the
    gateware's stage 7a must keep it; see high_product_near_ties)."""
    x, multiplier, shift = high_product_near_ties(np.random.default_rng(11), 200)
    expected = [max(-128, min(127, tflite_rational(int(a), int(b), int(c))))
                for a, b, c in zip(x, multiplier, shift)]
    assert tflite(x, multiplier, shift).tolist() == expected


@settings(max_examples=300, deadline=None, database=None)
@given(x=st.integers(-(1 << 20), 1 << 20), scale=st.floats(2.0 ** -30, 0.99))
def test_tflite_scale_encoding_within_one_step(x, scale):
    multiplier, shift = encode_tflite_scale(scale)
    assert (1 << 30) <= multiplier < (1 << 31) and -31 <= shift <= 0
    assert abs(multiplier * 2.0 ** (shift - 31) - scale) <= scale * 2.0 ** -30
    got = requantize(x, 0, multiplier, shift & 0xFF, 0, rounding=Rounding.TFLITE, relu=False,
                     out_type=OutType.INT8)
    # Two roundings of at most half a step each, then the clamp.
    exact = x * Fraction(multiplier) * Fraction(2) ** (shift - 31)
    assert abs(int(got) - max(-128, min(127, exact))) <= 1


# -- output stage --------------------------------------------------------------------------------


@pytest.mark.parametrize("out_type", list(OutType))
def test_clamp_relu_and_bytes(out_type):
    lo, hi = OUT_RANGES[out_type]
    v = np.arange(-300, 300)
    for zp in (-200, -5, 0, 3, 100, 30000):
        for relu in (False, True):
            got = requantize(v, 0, 1 << 23, 23, zp, rounding=Rounding.ONNX, relu=relu,
                             out_type=out_type)   # scale 1.0
            floor = max(lo, zp) if relu else lo
            assert np.array_equal(got, np.minimum(np.maximum(v + zp, floor), hi))
    values = np.arange(lo, hi + 1)
    assert np.array_equal(output_bytes(values, out_type), (values % 256).astype(np.uint8))


def test_raw_bytes():
    acc = np.array([[1, -2], [INT32_MAX, INT32_MIN]])
    bias = np.array([0, -1])
    assert raw_bytes(acc, bias).tobytes() == np.array(
        [1, -3, INT32_MAX, INT32_MAX], dtype="<i4").tobytes()

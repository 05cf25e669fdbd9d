"""Requantization: the golden arithmetic against onnxruntime, and the gateware against the golden.

Outside oracles check ``sw.requant``: onnxruntime itself (``QLinearMatMul`` models), numpy's
float32 arithmetic (for the ONNX mode's float emulation), exact rational arithmetic (for TFLite's
definition) and hand-worked TFLite cases. ``hw.requant.RequantUnit`` is then
checked byte for byte and cycle for cycle against ``sw.requant`` alone.
"""

import math
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from amaranth.hdl import EnableInserter, Module, Signal
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from hw.isa import REQUANT_STAGES, OutType, Rounding
from hw.requant import RequantUnit
from sw.requant import (
    OUT_RANGES,
    encode_onnx_scale,
    encode_tflite_scale,
    onnx_scale,
    output_bytes,
    raw_bytes,
    requantize,
)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

# -- onnxruntime ---------------------------------------------------------------------------------


def qlinear_matmul(a: np.ndarray, a_scale, a_zp: int, w: np.ndarray, w_scale, w_zp: int,
                   y_scale, y_zp: int) -> np.ndarray:
    """``a @ w`` through onnxruntime's ``QLinearMatMul`` (full graph optimization, one thread).

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
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


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


def interesting_accs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Accumulators of every magnitude, many around 2**24 and at the int32 edges."""
    bits = rng.integers(0, 32, size)
    acc = rng.integers(0, 1 << 32, size, dtype=np.int64) >> (32 - bits)
    near = rng.random(size) < 0.3
    acc[near] = (1 << 24) + rng.integers(-64, 64, near.sum()) * rng.integers(1, 9, near.sum())
    acc = np.where(rng.random(size) < 0.5, -acc, acc)
    edges = np.array([0, 1, -1, INT32_MAX, INT32_MIN, INT32_MIN + 1, (1 << 24) - 1, 1 << 24,
                      (1 << 24) + 1, (1 << 24) + 3, -(1 << 24) - 1, (1 << 25) + 2, (1 << 25) + 6])
    acc[rng.choice(size, min(size, edges.size), replace=False)] = edges[:size]
    return np.clip(acc, INT32_MIN, INT32_MAX)


def product_ties(rng: np.random.Generator, size: int):
    """``(x, multiplier, shift)`` where the float32 product ``x * scale`` is an exact tie.

    With ``m = c * 2**(23 - b)`` (``c`` odd, ``b`` bits) and ``c * x`` odd in ``[2**24, 2**25)``,
    the product ``c * x * 2**(23 - b)`` sits exactly halfway between two float32 values. ``x`` is
    also chosen so that one of the two neighbours lies exactly on a half of the final shift by
    ``k``, which makes the tie-break visible in the output.
    """
    b = rng.integers(1, 5, size)
    c = 2 * rng.integers(1 << (b - 1), 1 << b) + 1
    k = rng.integers(15, 19, size)
    x = np.zeros(size, dtype=np.int64)
    for n in range(size):
        modulus = 1 << (int(k[n]) + 1)
        base = ((1 << int(k[n])) - 1) * pow(int(c[n]), -1, modulus) % modulus
        lo = -(-(1 << 24) // int(c[n]))
        first = lo + (base - lo) % modulus
        steps = ((1 << 25) // int(c[n]) - first) // modulus
        x[n] = first + modulus * int(rng.integers(0, steps + 1))
    multiplier = c << (23 - b)
    shift = 24 - b + k
    sign = rng.choice([-1, 1], size)
    return sign * x, multiplier, shift


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


# -- the gateware against the golden -------------------------------------------------------------

MODES = [(rounding, relu, out_type) for rounding in Rounding for relu in (False, True)
         for out_type in OutType]


def random_requests(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Requests that hit the edges on purpose: int32 extremes, every shift regime, all modes."""
    acc = interesting_accs(rng, size)
    bias = np.where(rng.random(size) < 0.7, rng.integers(-5000, 5000, size),
                    rng.integers(INT32_MIN, INT32_MAX + 1, size))
    rounding = rng.integers(0, 2, size)
    onnx_mode = rounding == Rounding.ONNX.value
    # ONNX: float32 mantissas, plus values a float never has (the low 24 bits are used).
    multiplier = np.where(onnx_mode, rng.integers(1 << 23, 1 << 24, size),
                          rng.integers(1 << 30, 1 << 31, size))
    odd = rng.random(size) < 0.15
    multiplier[odd] = rng.choice([0, 1, -1, (1 << 24) - 1, 1 << 23, INT32_MIN, INT32_MAX,
                                  -(1 << 30)], odd.sum())
    wild = rng.random(size) < 0.1
    multiplier[wild] = rng.integers(INT32_MIN, INT32_MAX + 1, wild.sum())
    # Shifts that keep outputs in range for this accumulator, plus edge and random values.
    bits = np.floor(np.log2(np.maximum(np.abs(acc + bias), 1))).astype(np.int64)
    fitting = np.where(onnx_mode, bits + 24 - rng.integers(0, 8, size),
                       -(bits - rng.integers(0, 8, size)))
    shift = np.where(onnx_mode, np.clip(fitting, 0, 255), np.clip(fitting, -128, 127))
    edge = rng.random(size) < 0.25
    shift[edge] = np.where(onnx_mode[edge],
                           rng.choice([0, 23, 31, 40, 63, 200, 255], edge.sum()),
                           rng.choice([0, 1, 31, 32, 127, -1, -31, -32, -128], edge.sum()))
    wild = rng.random(size) < 0.1
    shift[wild] = rng.integers(0, 256, wild.sum())
    zero_point = np.where(rng.random(size) < 0.8, rng.integers(-10, 10, size),
                          rng.integers(-(1 << 15), 1 << 15, size))

    # Unit scale (ONNX 2**23 * 2**-23; TFLITE 2**30 * 2**(1 - 31)): v = x, so acc = -zp + a bit
    # puts every zero point, however far out, right at the clamp, and v up to 2**15 and beyond
    # tests the saturation before the zero point is added.
    unit = rng.random(size) < 0.1
    n = unit.sum()
    zero_point[unit] = np.where(rng.random(n) < 0.5, rng.integers(-(1 << 15), 1 << 15, n),
                                rng.choice([-1, 1], n) * ((1 << 15) - rng.integers(0, 300, n)))
    acc[unit] = -zero_point[unit] + rng.integers(-300, 300, n)
    bias[unit] = 0
    multiplier[unit] = np.where(onnx_mode[unit], 1 << 23, 1 << 30)
    shift[unit] = np.where(onnx_mode[unit], 23, 1)

    # Near ties. ONNX: x a few units from (j + 1/2) * 2**s / m, where float32(x), the float32
    # product and the final rounding each decide the output. TFLITE: multipliers with few bits
    # set and small x, so both roundings meet exact halves.
    tie = (rng.random(size) < 0.25) & ~unit
    onnx_tie, tflite_tie = tie & onnx_mode, tie & ~onnx_mode
    n = onnx_tie.sum()
    mantissa = np.where(rng.random(n) < 0.3, 1 << 23, rng.integers(1 << 23, 1 << 24, n))
    exponent = rng.integers(20, 47, n)
    x = np.rint(np.ldexp((rng.integers(-130, 130, n) + 0.5) / mantissa, exponent))
    acc[onnx_tie] = np.clip(x + rng.integers(-3, 4, n), INT32_MIN, INT32_MAX).astype(np.int64)
    multiplier[onnx_tie] = mantissa
    shift[onnx_tie] = exponent
    product_tie = onnx_tie & (rng.random(size) < 0.4)
    acc[product_tie], multiplier[product_tie], shift[product_tie] = product_ties(
        rng, product_tie.sum())
    n = tflite_tie.sum()
    acc[tflite_tie] = rng.integers(-4096, 4096, n)
    multiplier[tflite_tie] = rng.choice([1 << 30, 3 << 29, 5 << 28, 7 << 28, -(1 << 30)], n)
    shift[tflite_tie] = rng.integers(-6, 2, n)
    bias[tie] = 0
    zero_point[tie] = rng.integers(-10, 10, tie.sum())
    return {
        "acc": acc, "bias": bias, "multiplier": multiplier, "shift": shift & 0xFF,
        "zero_point": zero_point, "byte_index": rng.integers(0, 4, size),
        "rounding": rounding, "relu": rng.integers(0, 2, size),
        "out_type": rng.integers(0, len(OutType), size), "raw": rng.random(size) < 0.15,
    }


def expected_bytes(req: dict[str, np.ndarray]) -> np.ndarray:
    """The golden byte of every request, each under its own mode."""
    out = np.zeros(req["acc"].size, dtype=np.uint8)
    for rounding, relu, out_type in MODES:
        sel = ((req["rounding"] == rounding.value) & (req["relu"] == relu)
               & (req["out_type"] == out_type.value))
        values = requantize(req["acc"][sel], req["bias"][sel], req["multiplier"][sel],
                            req["shift"][sel], req["zero_point"][sel], rounding=rounding,
                            relu=relu, out_type=out_type)
        out[sel] = output_bytes(values, out_type)
    raw = raw_bytes(req["acc"], req["bias"]).reshape(-1, 4)
    index = np.arange(out.size)
    return np.where(req["raw"], raw[index, req["byte_index"]], out)


def simulate(req: dict[str, np.ndarray], rng: np.random.Generator, *, idle: float = 0.1,
             stall: float = 0.0) -> tuple[list[tuple[int, int]], list[int]]:
    """Stream the requests; returns ``(working cycle, byte)`` of every valid output, and the
    working cycle each request went in.

    Requests go in back to back with random idle cycles (``valid = 0`` over random payloads).
    With ``stall > 0`` the unit runs under an ``EnableInserter`` as in the core, and stalled
    cycles carry random garbage on every input.
    """
    dut = RequantUnit()
    top, enable = dut, None
    if stall:
        enable = Signal(init=1)
        top = Module()
        top.submodules.requant = EnableInserter(enable)(dut)
    size = req["acc"].size
    schedule = []   # per real cycle: request index, -1 for idle, None for a stall
    issued = 0
    while issued < size:
        if stall and rng.random() < stall:
            schedule.append(None)
        elif rng.random() < idle:
            schedule.append(-1)
        else:
            schedule.append(issued)
            issued += 1
    schedule += [-1] * (REQUANT_STAGES + 2)
    outputs = []

    def garbage():
        return {"acc": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "bias": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "multiplier": int(rng.integers(INT32_MIN, INT32_MAX + 1)),
                "shift": int(rng.integers(256)),
                "zero_point": int(rng.integers(-(1 << 15), 1 << 15)),
                "byte_index": int(rng.integers(4)), "rounding": int(rng.integers(2)),
                "relu": int(rng.integers(2)), "out_type": int(rng.integers(len(OutType))),
                "raw": int(rng.integers(2))}

    async def producer(ctx):
        for index in schedule:
            if enable is not None:
                ctx.set(enable, index is not None)
            # A stalled cycle may show anything, valid included; an idle one is valid = 0.
            valid = int(rng.integers(2)) if index is None else int(index >= 0)
            fields = garbage() if index is None or index < 0 else \
                {name: int(values[index]) for name, values in req.items()}
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, {name: fields[name] for name in (
                "acc", "bias", "multiplier", "shift", "zero_point", "byte_index")})
            ctx.set(dut.rounding, Rounding(fields["rounding"]))
            ctx.set(dut.relu, fields["relu"])
            ctx.set(dut.out_type, OutType(fields["out_type"]))
            ctx.set(dut.raw, fields["raw"])
            await ctx.tick()

    async def monitor(ctx):
        working = 0
        for index in schedule:
            if index is not None:
                if ctx.get(dut.o.valid):
                    outputs.append((working, ctx.get(dut.o.payload)))
                working += 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    # Working cycle of each request: its position among the non-stalled cycles.
    issue_cycles = [c for c, index in enumerate(i for i in schedule if i is not None) if index >= 0]
    return outputs, issue_cycles


def check(req, outputs, issue_cycles):
    expected = expected_bytes(req)
    want = [(cycle + REQUANT_STAGES, int(byte)) for cycle, byte in
            zip(issue_cycles, expected, strict=True)]
    assert len(outputs) == len(want), "one output per request, none for idle cycles"
    for n, (got, exp) in enumerate(zip(outputs, want, strict=True)):
        assert got == exp, (f"request {n}: got (cycle, byte) {got}, expected {exp}; "
                            + ", ".join(f"{k}={int(v[n])}" for k, v in req.items()))


def test_rtl_matches_golden_back_to_back():
    rng = np.random.default_rng(2024)
    req = random_requests(rng, 5000)
    check(req, *simulate(req, rng))


def test_rtl_freezes_under_enable_inserter():
    rng = np.random.default_rng(99)
    req = random_requests(rng, 300)
    check(req, *simulate(req, rng, idle=0.2, stall=0.3))

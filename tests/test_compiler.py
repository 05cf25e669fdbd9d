"""The layer compiler against outside oracles: onnxruntime's QGemm / QLinearConv and numpy int64.

Every layer runs on the golden device; every program's predicted cycles must equal the device's
``cycles`` counter delta.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from hw import cycles, isa
from hw.isa import Opcode, Precision
from hw.params import RillParams
from sw import oracle
from sw.compiler import CompileError, QuantizedLinear, compile_linear, run_linear
from sw.conv import QuantizedConv, conv_program, run_conv
from sw.conv_device import device_conv_program, device_linear
from sw.device import DeviceError, ParamsMismatch, open_device
from sw.golden import GoldenCore

SMALL = RillParams(rows=4, cols=4, act_depth=128, weight_depth=128, acc_depth=128,
                   qparam_depth=32)
DEFAULT = RillParams()
READ_COUNTERS_CYCLES = cycles.cycle_cost(DEFAULT, isa.Config(), Opcode.READ_COUNTERS.value, {},
                                      isa.Status.OK)


# -- outside oracles ------------------------------------------------------------------------------

def _onnx_model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "oracle", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return model


def _ort_run(model, feeds):
    return oracle.run(model, feeds)["y"]


def _elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def ort_qgemm(layer: QuantizedLinear, x: np.ndarray) -> np.ndarray:
    """onnxruntime's com.microsoft.QGemm for ``layer`` (output dtype = activation dtype)."""
    n = layer.weights.shape[1]
    w_scale = np.asarray(layer.w_scale, dtype=np.float32)
    inits = [numpy_helper.from_array(np.float32(layer.a_scale), "a_scale"),
             numpy_helper.from_array(np.array(layer.a_zp, x.dtype), "a_zp"),
             numpy_helper.from_array(layer.weights.astype(np.int8), "w"),
             numpy_helper.from_array(w_scale, "w_scale"),
             numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), "w_zp"),
             numpy_helper.from_array(np.asarray(layer.bias, np.int32).reshape(n), "bias"),
             numpy_helper.from_array(np.float32(layer.y_scale), "y_scale"),
             numpy_helper.from_array(np.array(layer.y_zp, x.dtype), "y_zp")]
    node = helper.make_node("QGemm", ["x", "a_scale", "a_zp", "w", "w_scale", "w_zp", "bias",
                                      "y_scale", "y_zp"], ["y"], domain="com.microsoft")
    model = _onnx_model([node], [helper.make_tensor_value_info("x", _elem(x.dtype), list(x.shape))],
                        [helper.make_tensor_value_info("y", _elem(x.dtype), None)], inits)
    return _ort_run(model, {"x": x})


def ort_qlinearconv(conv: QuantizedConv, filters: np.ndarray, x: np.ndarray) -> np.ndarray:
    layer = conv.linear
    w_scale = np.asarray(layer.w_scale, dtype=np.float32)
    inits = [numpy_helper.from_array(np.float32(layer.a_scale), "x_scale"),
             numpy_helper.from_array(np.array(layer.a_zp, x.dtype), "x_zp"),
             numpy_helper.from_array(filters.astype(np.int8), "w"),
             numpy_helper.from_array(w_scale, "w_scale"),
             numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), "w_zp"),
             numpy_helper.from_array(np.float32(layer.y_scale), "y_scale"),
             numpy_helper.from_array(np.array(layer.y_zp, x.dtype), "y_zp"),
             numpy_helper.from_array(np.asarray(layer.bias, np.int32), "bias")]
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp",
                                            "y_scale", "y_zp", "bias"], ["y"],
                            kernel_shape=list(conv.kernel), pads=list(conv.pads),
                            strides=list(conv.strides))
    model = _onnx_model([node], [helper.make_tensor_value_info("x", _elem(x.dtype), list(x.shape))],
                        [helper.make_tensor_value_info("y", _elem(x.dtype), None)], inits)
    return _ort_run(model, {"x": x})


# -- helpers --------------------------------------------------------------------------------------

def random_layer(rng, m, k, n, act_dtype=np.int8, per_channel=True, precision=Precision.INT8,
                 tie_scales=False):
    """A random layer and input whose outputs spread over the int8 range.

    ``tie_scales``: small weights and activations near the zero point with a requant scale of
    exactly 1/4, so a quarter of the outputs are exact ties that must round half to even.
    """
    info = np.iinfo(act_dtype)
    a_zp = int(rng.integers(info.min + 20, info.max - 20))
    if tie_scales:
        weights = rng.integers(-3, 4, (k, n))
        x = (a_zp + rng.integers(-12, 13, (m, k))).astype(act_dtype)
        a_scale, w_scale, y_scale = np.float32(0.5), np.float32(0.25), np.float32(0.5)
        bias = rng.integers(-200, 200, n)
    else:
        lo, hi = (-8, 8) if precision == Precision.INT4 else (-127, 128)
        weights = rng.integers(lo, hi, (k, n))
        x = rng.integers(info.min, info.max + 1, (m, k)).astype(act_dtype)
        a_scale = np.float32(rng.uniform(0.005, 0.05))
        w_scale = np.asarray(rng.uniform(0.002, 0.02, n if per_channel else None), np.float32)
        spread = np.sqrt(k) * 74 * (4.6 if precision == Precision.INT4 else 74)
        y_scale = np.float32(a_scale * np.max(w_scale) * spread / 40)
        bias = rng.integers(-20000, 20000, n)
    if per_channel:
        w_scale = np.broadcast_to(w_scale, (n,)).astype(np.float32)
    layer = QuantizedLinear(weights, a_scale=a_scale, a_zp=a_zp, w_scale=w_scale,
                            y_scale=y_scale, y_zp=int(rng.integers(info.min // 2, info.max // 2)),
                            bias=bias, act_dtype=act_dtype, out_dtype=act_dtype,
                            precision=precision, name=f"{m}x{k}x{n}")
    return layer, x


def run_measured(device, lp):
    """Execute a layer program between counter reads; returns (response, measured cycles)."""
    before = device.read_counters()["cycles"]
    response = device.execute(lp.command_bytes, lp.response_bytes)
    after = device.read_counters()["cycles"]
    return response, after - before - READ_COUNTERS_CYCLES


def load_bytes(lp, opcode: Opcode) -> int:
    return sum(len(c) - isa.HEADER_BYTES for c in lp.program.chunks if c[0] == opcode.value)


# -- requantized GEMMs vs onnxruntime -------------------------------------------------------------

GEMMS = [  # params, (m, k, n), activation dtype, per channel, precision, ties
    (SMALL, (300, 700, 90), np.uint8, True, Precision.INT8, False),
    (SMALL, (37, 50, 29), np.int8, False, Precision.INT4, False),
    (SMALL, (9, 130, 33), np.int8, True, Precision.INT8, True),
    (DEFAULT, (64, 64, 64), np.int8, False, Precision.INT8, False),
    (DEFAULT, (1, 1, 1), np.uint8, False, Precision.INT8, False),
    (DEFAULT, (200, 40, 300), np.uint8, True, Precision.INT8, True),   # N > qparam_depth
    (DEFAULT, (50, 2100, 20), np.int8, False, Precision.INT8, False),  # K tiles > 255
    (DEFAULT, (70, 100, 50), np.int8, True, Precision.INT4, True),
]


@pytest.mark.parametrize("params, shape, act_dtype, per_channel, precision, ties", GEMMS,
                         ids=[f"{p.rows}x{p.cols}-{'x'.join(map(str, s))}-{np.dtype(a).name}-"
                              f"{'ch' if c else 't'}-{pr.name}{'-ties' if t else ''}"
                              for p, s, a, c, pr, t in GEMMS])
def test_gemm_matches_onnxruntime_and_cycles(params, shape, act_dtype, per_channel, precision,
                                             ties):
    rng = np.random.default_rng(sum(shape))
    layer, x = random_layer(rng, *shape, act_dtype=act_dtype, per_channel=per_channel,
                            precision=precision, tie_scales=ties)
    expected = ort_qgemm(layer, x)
    compiled = compile_linear(params, layer)
    lp = compiled.program(x)
    with open_device("golden", params) as device:
        response, cycles = run_measured(device, lp)
    got = lp.assemble(response)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert len(np.unique(expected)) > min(20, expected.size // 2)   # not a saturated, flat output
    assert cycles == lp.predicted_cycles == compiled.predicted_cycles(len(x))
    assert compiled._cost(lp.plan)[0] == lp.wire_bytes   # the planner's closed form is exact


def test_big_gemm_accumulates_over_k_and_chunks_m_and_n():
    rng = np.random.default_rng(3)
    layer, x = random_layer(rng, 300, 700, 90)
    plan = compile_linear(SMALL, layer).plan(300)
    assert len(plan.k_groups) > 1 and len(plan.n_groups) > 1 and len(plan.chunks) > 1
    lp = compile_linear(SMALL, layer).program(x)
    flags = [c[1 + isa.field_offsets(Opcode.MATMUL)["flags"][0]] for c in lp.program.chunks
             if c[0] == Opcode.MATMUL.value]
    assert 0 < sum(flags) < len(flags)   # ACCUMULATE on every K group after the first


def test_relu_clamps_at_the_zero_point():
    rng = np.random.default_rng(4)
    layer, x = random_layer(rng, 40, 70, 30)
    layer.relu = True
    with open_device("golden", SMALL) as device:
        got = run_linear(device, layer, x)
    assert np.array_equal(got, np.maximum(ort_qgemm(layer, x), layer.y_zp))


def _order_critical_biases(rng, n):
    """Per-channel scales and biases where ``(a * w) / y`` and ``a * (w / y)`` round differently.

    Returns ``(a_scale, w_scale, y_scale, bias)``; ``bias[j]`` times channel j's scale lands so
    close to .5 that the last bit of the scale decides the output.
    """
    a_scale, y_scale = np.float32(0.0123), np.float32(0.377)
    w_scales, biases = [], []
    candidates = np.arange(1, 1 << 17, dtype=np.float32)
    while len(biases) < n:
        w = np.float32(rng.uniform(0.001, 0.02))
        ort_scale, other = (a_scale * w) / y_scale, a_scale * (w / y_scale)
        differs = np.rint(candidates * ort_scale) != np.rint(candidates * other)
        hits = candidates[differs & (np.abs(candidates * ort_scale) < 120)]
        if len(hits):
            w_scales.append(w)
            biases.append(int(hits[0]) * (1 if len(biases) % 2 else -1))
    return a_scale, np.array(w_scales, np.float32), y_scale, np.array(biases)


def test_scale_is_computed_in_onnxruntime_order():
    rng = np.random.default_rng(8)
    m, k, n = 6, 20, 24
    a_scale, w_scale, y_scale, bias = _order_critical_biases(rng, n)
    a_zp = 3
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x[0] = a_zp   # row 0: (x - a_zp) = 0, so its outputs are requant(bias) alone
    layer = QuantizedLinear(rng.integers(-127, 128, (k, n)), a_scale=a_scale, a_zp=a_zp,
                            w_scale=w_scale, y_scale=y_scale, y_zp=0, bias=bias)
    expected = ort_qgemm(layer, x)
    assert not np.array_equal(expected[0], np.rint(bias * (a_scale * (w_scale / y_scale))))
    with open_device("golden", SMALL) as device:
        assert np.array_equal(run_linear(device, layer, x), expected)


# -- raw int32 (MatMulInteger) vs numpy -----------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 90), n=st.integers(1, 40),
       uint8=st.booleans(), int4=st.booleans(), seed=st.integers(0, 2**16),
       depth=st.sampled_from([16, 40, 128]))
def test_raw_gemm_matches_numpy_on_tiny_srams(m, k, n, uint8, int4, seed, depth):
    params = RillParams(rows=2, cols=3, act_depth=depth, weight_depth=depth, acc_depth=depth,
                        qparam_depth=6)
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if uint8 else np.int8
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (m, k)).astype(dtype)
    w = rng.integers(-8, 8, (k, n)) if int4 else rng.integers(-128, 128, (k, n))
    a_zp, bias = int(rng.integers(info.min, info.max + 1)), rng.integers(-2**20, 2**20, n)
    layer = QuantizedLinear(w, a_zp=a_zp, bias=bias, act_dtype=dtype, out_dtype=np.int32,
                            precision=Precision.INT4 if int4 else Precision.INT8)
    compiled = compile_linear(params, layer)
    lp = compiled.program(x)
    with open_device("golden", params) as device:
        response, cycles = run_measured(device, lp)
    assert np.array_equal(lp.assemble(response), (x.astype(np.int64) - a_zp) @ w + bias)
    assert cycles == lp.predicted_cycles
    assert compiled._cost(lp.plan)[0] == lp.wire_bytes


# -- wire efficiency ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 64, 64), (200, 96, 80), (512, 64, 96), (1024, 128, 64)])
def test_wire_bytes_near_compulsory_on_default_params(shape):
    """GEMMs whose weights fit in weight SRAM: weights and activations each cross the wire once.

    (Past that, e.g. 128x128x128 on 8x8 defaults, one operand must be re-sent: the weight SRAM,
    the INT8 activation SRAM and the accumulators each hold only 8 K elements.)
    """
    m, k, n = shape
    rng = np.random.default_rng(5)
    layer, x = random_layer(rng, m, k, n)
    lp = compile_linear(DEFAULT, layer).program(x)
    assert load_bytes(lp, Opcode.LOAD_WEIGHTS) == k * n   # weights once
    assert load_bytes(lp, Opcode.LOAD_ACTS) == m * k      # activations once
    # 12 bytes per channel (bias, multiplier, shift, zero point): the ISA's floor for a layer;
    # compulsory bytes count the 4-byte bias.
    qparams = n * (isa.QPARAM_BYTES - 4)
    assert lp.wire_bytes <= 1.05 * (lp.compulsory_bytes + qparams)
    if m >= 200:   # the qparams amortized over enough rows
        assert lp.wire_bytes <= 1.05 * lp.compulsory_bytes


# -- convolution ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, strides, pads", [(np.uint8, (1, 1), (1, 1, 1, 1)),
                                                  (np.int8, (2, 1), (0, 2, 1, 0)),
                                                  (np.uint8, (2, 2), (2, 1, 0, 1))])
def test_conv_matches_onnxruntime_qlinearconv(dtype, strides, pads):
    rng = np.random.default_rng(6)
    c_in, c_out, kernel = 3, 5, (3, 2)
    filters = rng.integers(-127, 128, (c_out, c_in, *kernel))
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (2, c_in, 9, 7)).astype(dtype)
    # A zero point far from 0 makes padding with 0 instead of the zero point visible.
    a_zp = info.max - 20
    linear = QuantizedLinear(QuantizedConv.filters_to_weights(filters), a_scale=np.float32(0.02),
                             a_zp=a_zp, w_scale=rng.uniform(0.005, 0.01, c_out).astype(np.float32),
                             y_scale=np.float32(0.6), y_zp=int(info.min // 2 + 10),
                             bias=rng.integers(-3000, 3000, c_out), act_dtype=dtype,
                             out_dtype=dtype, name="conv")
    conv = QuantizedConv(linear, kernel, pads, strides)
    expected = ort_qlinearconv(conv, filters, x)
    with open_device("golden", SMALL) as device:
        got = run_conv(device, conv, x)
        lp, _ = conv_program(compile_linear(SMALL, linear), conv, x)
        _, cycles = run_measured(device, lp)
    assert got.shape == expected.shape and np.array_equal(got, expected)
    assert cycles == lp.predicted_cycles


@pytest.mark.parametrize("url", ["golden", "sim"])
@pytest.mark.parametrize("channels, stride", [(5, 1), (16, 2), (21, 1)])
def test_depthwise_conv_walked_from_diagonal_words_matches_onnxruntime(url, channels, stride):
    """A depthwise conv walked a channel chunk per output tile keeps a word per weight tile, its
    diagonal (one chunk, one word of two chunks, two words of three on the default 8x8 core),
    and equals onnxruntime's QLinearConv of the same filters."""
    rng = np.random.default_rng(channels)
    own = rng.integers(-127, 128, (channels, 1, 3, 3))
    dense = QuantizedConv.dense_filters(own, channels)
    linear = QuantizedLinear(QuantizedConv.filters_to_weights(dense), a_scale=np.float32(0.02),
                             a_zp=7, w_scale=rng.uniform(0.002, 0.004, channels).astype(np.float32),
                             y_scale=np.float32(0.05), y_zp=-3,
                             bias=rng.integers(-3000, 3000, channels), name="depthwise")
    conv = QuantizedConv(linear, (3, 3), (1, 1, 1, 1), (stride, stride), depthwise=True)
    x = rng.integers(-128, 128, (1, channels, 7, 6)).astype(np.int8)
    params = RillParams()
    compiled = compile_linear(params, device_linear(params, conv))
    assert compiled.diagonal and compiled.weight_word_count == 9 * -(-channels // params.cols)
    lp, (n, oh, ow) = device_conv_program(compiled, conv, x)
    matmuls = [isa.decode_fields(Opcode.MATMUL, h[1:]) for headers in lp.program.executes
               for h in headers if h[0] == Opcode.MATMUL.value]
    assert matmuls and all(f["flags"] & isa.MatmulFlags.DEPTHWISE.value for f in matmuls)
    with open_device(url, params) as device:
        response, cycles = run_measured(device, lp)
    got = lp.assemble(response).reshape(n, oh, ow, channels).transpose(0, 3, 1, 2)
    assert np.array_equal(got, ort_qlinearconv(conv, dense, x))
    assert cycles == lp.predicted_cycles


# -- errors ---------------------------------------------------------------------------------------

def test_refuses_what_it_cannot_compile():
    w = np.ones((4, 3), np.int64)
    with pytest.raises(CompileError, match="zero point must be 0"):
        compile_linear(DEFAULT, QuantizedLinear(w, w_zp=3, out_dtype=np.int32))
    with pytest.raises(CompileError, match="INT4"):
        compile_linear(DEFAULT, QuantizedLinear(w * 9, out_dtype=np.int32,
                                                precision=Precision.INT4))
    with pytest.raises(CompileError, match="a_scale, w_scale and y_scale"):
        compile_linear(DEFAULT, QuantizedLinear(w))
    compiled = compile_linear(DEFAULT, QuantizedLinear(w, out_dtype=np.int32))
    with pytest.raises(CompileError, match="must be int8"):
        compiled.program(np.zeros((2, 4), np.float32))
    with pytest.raises(CompileError, match=r"\(M, 4\)"):
        compiled.program(np.zeros((2, 5), np.int8))
    # Tiles stored as their diagonals: a value off one, a K of part of a tile, INT4.
    diagonal = np.diag(np.arange(1, DEFAULT.cols + 1))
    assert compile_linear(DEFAULT, QuantizedLinear(diagonal, out_dtype=np.int32,
                                                   diagonal=True)).weight_word_count == 1
    off = diagonal.copy()
    off[0, 1] = 5
    with pytest.raises(CompileError, match="off its diagonal"):
        compile_linear(DEFAULT, QuantizedLinear(off, out_dtype=np.int32, diagonal=True))
    with pytest.raises(CompileError, match="whole K tiles"):
        compile_linear(DEFAULT, QuantizedLinear(diagonal[:-1], out_dtype=np.int32,
                                                diagonal=True))
    with pytest.raises(CompileError, match="INT8 only"):
        compile_linear(DEFAULT, QuantizedLinear(np.zeros((DEFAULT.rows, 1), np.int64),
                                                out_dtype=np.int32, diagonal=True,
                                                precision=Precision.INT4))


def test_device_errors_are_raised_with_the_status():
    layer = QuantizedLinear(np.ones((64, 16), np.int64), out_dtype=np.int32)
    lp = compile_linear(DEFAULT, layer).program(np.ones((300, 64), np.int8))
    # A core with a smaller activation SRAM refuses the loads: its responses carry the status.
    small_core = GoldenCore(RillParams(act_depth=16))
    response = small_core.feed(lp.command_bytes)[:lp.response_bytes]
    response += bytes(lp.response_bytes - len(response))
    with pytest.raises(DeviceError, match="OUT_OF_RANGE"):
        lp.assemble(response)
    with open_device("golden", SMALL) as device, pytest.raises(ParamsMismatch):
        run_linear(device, compile_linear(DEFAULT, layer), np.ones((3, 64), np.int8))

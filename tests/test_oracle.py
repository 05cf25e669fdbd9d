"""The onnxruntime oracle (``sw.oracle``): its emulation against onnxruntime where onnxruntime is
exact, the saturation probe, the device against the oracle on a case a saturating CPU gets wrong,
and ``python -m sw run --compare onnxruntime``.
"""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sw import oracle
from sw.device import open_device
from sw.onnx_import import RillModel


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "oracle-test", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return model


def _elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def qoperator_node(rng, op: str, act_dtype, per_channel: bool):
    """A random QLinearMatMul, QGemm (bias, transB) or QLinearConv (padding, strides) model with
    activation zero points far from 0 and outputs spread over the range; returns (model, feeds)."""
    info = np.iinfo(act_dtype)
    m, k, n = int(rng.integers(1, 40)), int(rng.integers(1, 300)), int(rng.integers(1, 40))
    a_zp = act_dtype(rng.integers(info.min, info.max + 1))
    a_scale, y_zp = np.float32(rng.uniform(0.005, 0.05)), act_dtype(rng.integers(-20, 20) + (
        0 if info.min < 0 else 128))
    w_scale = np.asarray(rng.uniform(0.002, 0.02, n if per_channel else None), np.float32)
    w_zp = np.zeros(np.shape(w_scale), np.int8)
    if op == "QLinearConv":
        c_in, kernel = int(rng.integers(1, 5)), (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        k = c_in * kernel[0] * kernel[1]
        x = rng.integers(info.min, info.max + 1, (2, c_in, 9, 7)).astype(act_dtype)
        w = rng.integers(-127, 128, (n, c_in, *kernel)).astype(np.int8)
    else:
        x = rng.integers(info.min, info.max + 1, (m, k)).astype(act_dtype)
        w = rng.integers(-127, 128, (n, k) if op == "QGemm" else (k, n)).astype(np.int8)
    y_scale = np.float32(a_scale * np.max(w_scale) * np.sqrt(k) * 74 * 74 / 40)
    bias = _init("bias", rng.integers(-20000, 20000, n).astype(np.int32))
    qparams = [_init("a_scale", a_scale), _init("a_zp", a_zp), _init("w", w),
               _init("w_scale", w_scale), _init("w_zp", w_zp)]
    out = [_init("y_scale", y_scale), _init("y_zp", y_zp)]
    names = ["x", "a_scale", "a_zp", "w", "w_scale", "w_zp"]
    if op == "QLinearMatMul":
        node = helper.make_node(op, names + ["y_scale", "y_zp"], ["y"])
        inits = qparams + out
    elif op == "QGemm":
        node = helper.make_node(op, names + ["bias", "y_scale", "y_zp"], ["y"],
                                domain="com.microsoft", transB=1)
        inits = qparams + [bias] + out
    else:
        node = helper.make_node(op, names + ["y_scale", "y_zp", "bias"], ["y"],
                                kernel_shape=list(kernel), pads=[1, 0, 2, 1], strides=[2, 1])
        inits = qparams + out + [bias]
    model = _model([node], [helper.make_tensor_value_info("x", _elem(act_dtype), list(x.shape))],
                   [helper.make_tensor_value_info("y", _elem(act_dtype), None)], inits)
    return model, {"x": x}


def _assert_same(got: dict, want: dict):
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert np.array_equal(got[name], value), name


# -- the emulation against onnxruntime ------------------------------------------------------------

@pytest.mark.parametrize("op", ["QLinearMatMul", "QGemm", "QLinearConv"])
def test_emulation_matches_onnxruntime_on_s8s8_nodes(op):
    """int8 activations with int8 weights: onnxruntime's S8S8 GEMM is exact on every CPU (x86
    without AVX-VNNI-INT8 runs MLAS's portable kernel, which accumulates in int32), so this
    holds wherever it runs."""
    rng = np.random.default_rng(["QLinearMatMul", "QGemm", "QLinearConv"].index(op))
    count = 0
    for trial in range(12):
        model, feeds = qoperator_node(rng, op, np.int8, per_channel=bool(trial % 2))
        want = oracle.onnxruntime_run(model, feeds)
        _assert_same(oracle.emulate(model, feeds), want)
        count += want["y"].size
        assert len(np.unique(want["y"])) > min(20, want["y"].size // 2)   # not saturated
    assert count > 2000


needs_exact_onnxruntime = pytest.mark.skipif(
    oracle.onnxruntime_saturates(),
    reason="this CPU's onnxruntime saturates its U8S8 GEMM (no AVX-VNNI): it is not a reference "
           "for uint8 activations here; the emulation is checked against it on VNNI x86 and ARM")


@needs_exact_onnxruntime
@pytest.mark.parametrize("op", ["QLinearMatMul", "QGemm", "QLinearConv"])
def test_emulation_matches_onnxruntime_on_u8s8_nodes(op):
    rng = np.random.default_rng(10 + ["QLinearMatMul", "QGemm", "QLinearConv"].index(op))
    for trial in range(12):
        model, feeds = qoperator_node(rng, op, np.uint8, per_channel=bool(trial % 2))
        _assert_same(oracle.emulate(model, feeds), oracle.onnxruntime_run(model, feeds))


@needs_exact_onnxruntime
def test_emulation_matches_onnxruntime_on_every_quantized_model(zoo, with_quantized_intermediates):
    """Every digits variant (QDQ and QOperator, int8 and uint8, per tensor and per channel), every
    quantized layer output, the whole test split."""
    for variant, (path, float_model) in zoo.items():
        model = with_quantized_intermediates(onnx.load(path))
        feeds = {"input": float_model.test_inputs}
        want = oracle.onnxruntime_run(model, feeds)
        assert len(want) >= 4, variant
        _assert_same(oracle.emulate(model, feeds), want)


@needs_exact_onnxruntime
@pytest.mark.parametrize("family,fmt", [("transformer_encoder", "QDQ"),
                                        ("depthwise_cnn", "QOperator"),
                                        ("residual_cnn", "QDQ")])
def test_mixed_emulation_matches_onnxruntime_on_models_with_float_operators(tmp_path, family,
                                                                             fmt):
    """Softmax, LayerNormalization, GELU, residual adds, pooling in onnxruntime around the
    emulated integer operators (grouped convs among them) equal onnxruntime's whole model."""
    from sw import model_families, models
    from sw.oracle_mixed import emulate_mixed
    fm = model_families.FAMILIES[family]()
    path = models.quantize(fm, tmp_path, quant_format=fmt, calibration_samples=60)
    feeds = {fm.input_name: fm.test_inputs[:40]}
    with pytest.raises(oracle.NotEmulated, match="covers quantized integer operators"):
        oracle.emulate(path, feeds)
    _assert_same(emulate_mixed(path, feeds), oracle.onnxruntime_run(path, feeds))


def test_emulation_refuses_float_arithmetic():
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="fp32")
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   [_init("w", np.ones((3, 2), np.float32))])
    with pytest.raises(oracle.NotEmulated, match="'fp32' \\(MatMul\\)"):
        oracle.emulate(model, {"x": np.ones((1, 3), np.float32)})


# -- the probe ------------------------------------------------------------------------------------

def _saturating_u8s8_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What an int16-saturating U8S8 kernel (``vpmaddubsw``) computes: adjacent pairs of products
    added with int16 saturation, the pair sums added in int32."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    if a.shape[1] % 2:
        a, b = np.pad(a, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0)))
    products = a[:, :, None] * b[None, :, :]
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -2**15, 2**15 - 1)
    return pairs.sum(axis=1)


def test_probe_is_a_case_saturation_breaks():
    model, feeds, exact = oracle.saturation_probe()
    b = numpy_helper.to_array(model.graph.initializer[0])
    assert exact == int((feeds["a"].astype(np.int64) @ b)[0, 0])
    assert int(oracle.emulate(model, feeds)["y"][0, 0]) == exact
    saturated = int(_saturating_u8s8_matmul(feeds["a"], b)[0, 0])
    assert saturated != exact
    got = int(oracle.onnxruntime_run(model, feeds)["y"][0, 0])
    assert got == (saturated if oracle.onnxruntime_saturates() else exact)


# -- the device against the oracle where saturation matters ---------------------------------------

@pytest.fixture
def emulation_forced(monkeypatch):
    """The oracle's emulation branch, whatever this CPU's onnxruntime does."""
    monkeypatch.setenv(oracle.ENV_VAR, "emulate")
    oracle.choice.cache_clear()
    yield
    monkeypatch.undo()
    oracle.choice.cache_clear()


def saturating_model():
    """QuantizeLinear -> QLinearMatMul (uint8 activations, int8 weights) -> MatMulInteger beside
    it, fed rows of 255s against columns of 127s: every pair of products overflows int16, and
    the requantized outputs stay inside the range, so a saturating GEMM changes them."""
    k, n = 64, 6
    w = np.full((k, n), 127, np.int8)
    w[:, 1::2] = np.arange(k * (n // 2)).reshape(k, n // 2) % 255 - 127
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                              ["yq"], name="qmm"),
             helper.make_node("MatMulInteger", ["xq", "w"], ["acc"], name="mmi")]
    acc_max = k * 255 * 127
    inits = [_init("xs", np.float32(1.0)), _init("xz", np.uint8(0)), _init("w", w),
             _init("ws", np.float32(1.0)), _init("wz", np.int8(0)),
             _init("ys", np.float32(acc_max / 250)), _init("yz", np.uint8(0))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
                   [helper.make_tensor_value_info("yq", TensorProto.UINT8, None),
                    helper.make_tensor_value_info("acc", TensorProto.INT32, None)], inits)
    rows = np.full((4, k), 255, np.float32)
    rows[1] = np.arange(k) * 4 % 256
    rows[2, ::2] = 0
    return model, {"x": rows}


@pytest.mark.parametrize("device", ["golden", "sim"])
def test_device_matches_the_oracle_where_saturation_would_not(emulation_forced, device):
    model, feeds = saturating_model()
    assert oracle.choice().path == "emulation"
    want = oracle.run(model, feeds)
    xq, w = feeds["x"].astype(np.uint8), numpy_helper.to_array(model.graph.initializer[2])
    # The case is one a saturating U8S8 GEMM gets wrong, in the accumulators and the outputs.
    assert np.array_equal(want["acc"], xq.astype(np.int64) @ w)
    assert not np.array_equal(want["acc"], _saturating_u8s8_matmul(xq, w))
    assert len(np.unique(want["yq"])) > 4 and want["yq"].max() < 255
    with open_device(device) as dev:
        got = RillModel.load(model).run(dev, feeds)
    _assert_same(got, want)


# -- python -m sw run --compare onnxruntime -------------------------------------------------------

def test_comparison_names_the_saturating_onnxruntime():
    model, feeds = saturating_model()
    exact = oracle.emulate(model, feeds)
    xq, w = feeds["x"].astype(np.uint8), numpy_helper.to_array(model.graph.initializer[2])
    # onnxruntime's answer on a saturating CPU, for the accumulator output.
    saturating = dict(exact, acc=_saturating_u8s8_matmul(xq, w).astype(np.int32))
    comparison = oracle.Comparison(exact, saturating, exact, saturates=True)
    assert comparison.device_is_right
    text = "\n".join(comparison.lines())
    assert f"{np.count_nonzero(saturating['acc'] != exact['acc'])} of" in text
    assert "saturation" in text and oracle.PRECISION_OPTION in text
    wrong = dict(exact, yq=exact["yq"] + np.uint8(1))
    comparison = oracle.Comparison(wrong, exact, exact, saturates=False)
    assert not comparison.device_is_right
    assert "the device is wrong" in "\n".join(comparison.lines())


def test_run_compare_onnxruntime_says_equal(tmp_path):
    model, feeds = saturating_model()
    onnx.save(model, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", feeds["x"])
    result = subprocess.run(
        [sys.executable, "-m", "sw", "run", str(tmp_path / "m.onnx"), "--input",
         f"x={tmp_path / 'x.npy'}", "--output", f"yq={tmp_path / 'y.npy'}", "--output",
         f"acc={tmp_path / 'acc.npy'}", "--device", "golden", "--compare", "onnxruntime"],
        capture_output=True, text=True, timeout=300)
    if oracle.onnxruntime_saturates():
        assert result.returncode == 0, result.stderr
        assert "differ" in result.stdout and oracle.PRECISION_OPTION in result.stdout
    else:
        assert result.returncode == 0, result.stderr
        assert "onnxruntime: equal" in result.stdout

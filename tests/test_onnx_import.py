"""Quantized ONNX models on the golden device, byte-identical to onnxruntime (ORT_ENABLE_ALL).

The digits models are trained and quantized once per test run into a temporary folder; each
variant then runs the whole test split (360 images). Intermediate quantized tensors are made
graph outputs too, so every layer's output is compared, not only the logits.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.oracle import exact_onnxruntime

from sw import models, oracle
from sw.bench import counter_read_cost
from sw.device import Device, open_device
from sw.host_ops import quantize_linear
from sw.onnx_import import InputMismatch, InvalidModel, RillModel, UnsupportedOperator

READ_COUNTERS_CYCLES = counter_read_cost(open_device("golden").params)


class MeasuringDevice(Device):
    """Wraps a device; records the ``cycles`` counter delta and a count of every execute."""

    def __init__(self, inner: Device):
        super().__init__(inner.params)
        self.inner, self.cycles = inner, []

    def _exchange(self, commands, response_bytes, cuts=()):
        before = self.inner.read_counters()["cycles"]
        out = self.inner.execute(commands, response_bytes, cuts)
        self.cycles.append(self.inner.read_counters()["cycles"] - before - READ_COUNTERS_CYCLES)
        return out


def ort_outputs(model: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    """onnxruntime's exact result (``ORT_ENABLE_ALL``) from the oracle, on any CPU."""
    return oracle.run(model, feeds)


VARIANTS = [f"{m}-{v[0]}" for m in ("mlp", "conv") for v in models.QUANT_VARIANTS]


@pytest.mark.parametrize("variant", VARIANTS)
def test_quantized_model_matches_onnxruntime(zoo, with_quantized_intermediates, variant):
    path, float_model = zoo[variant]
    model = with_quantized_intermediates(onnx.load(path))
    feeds = {"input": float_model.test_inputs}
    expected = ort_outputs(model, feeds)
    rill = RillModel.load(model)
    device = MeasuringDevice(open_device("golden"))
    got = rill.run(device, feeds)
    assert set(got) == set(expected) and len(expected) >= 4
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert np.array_equal(got[name], value), name
    # Every matmul-like node ran on the device, each as one program predicted to the cycle.
    assert len(rill.programs) == len(rill.layers) == 2
    assert device.cycles == [lp.predicted_cycles for lp in rill.programs]
    accuracy = np.mean(got["logits"].argmax(axis=1) == float_model.test_labels)
    assert accuracy > 0.93


def test_model_loads_from_path_bytes_and_proto(zoo):
    path, float_model = zoo["mlp-qdq-tensor-s8"]
    x = {"input": float_model.test_inputs[:7]}
    device = open_device("golden")
    results = [RillModel.load(src).run(device, x)["logits"]
               for src in (path, str(path), path.read_bytes(), onnx.load(path))]
    assert all(np.array_equal(r, results[0]) for r in results)
    assert np.array_equal(results[0], ort_outputs(onnx.load(path), x)["logits"])


def test_quantize_linear_rounds_like_onnxruntime():
    rng = np.random.default_rng(0)
    for dtype, elem in ((np.int8, TensorProto.INT8), (np.uint8, TensorProto.UINT8)):
        scale, zp = np.float32(0.0371), np.array(7 if dtype == np.int8 else 131, dtype)
        k = rng.integers(-300, 300, 5000).astype(np.float32)
        ties = ((k + 0.5) * scale).astype(np.float32)
        x = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)),
                            rng.normal(0, 4, 5000).astype(np.float32)])
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
        model = _model([node], [("x", TensorProto.FLOAT, ["N"])], [("y", elem, ["N"])],
                       [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")])
        assert np.array_equal(quantize_linear(x, scale, zp), ort_outputs(model, {"x": x})["y"])


# -- hand-built models: QOperator MatMul forms, N-D inputs, host data movement --------------------

def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def test_matmul_integer_with_dequantize_matches_onnxruntime():
    rng = np.random.default_rng(1)
    k, n = 40, 24
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("Transpose", ["xq"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("MatMulInteger", ["xt", "w", "xz"], ["acc"], name="mmi"),
             helper.make_node("DequantizeLinear", ["acc", "accs"], ["y"])]
    inits = [_init("xs", np.float32(0.02)), _init("xz", np.uint8(100)),
             _init("w", rng.integers(-128, 128, (k, n)).astype(np.int8)),
             _init("accs", np.float32(0.02 * 0.003))]
    model = _model(nodes, [("x", TensorProto.FLOAT, [5, "B", k])],
                   [("acc", TensorProto.INT32, None), ("y", TensorProto.FLOAT, None)], inits)
    feeds = {"x": rng.normal(0, 1.5, (5, 11, k)).astype(np.float32)}
    expected = ort_outputs(model, feeds)
    got = RillModel.load(model).run(open_device("golden"), feeds)
    for name in ("acc", "y"):
        assert got[name].dtype == expected[name].dtype and got[name].shape == (11, 5, n)
        assert np.array_equal(got[name], expected[name])


def test_qlinear_matmul_on_3d_input_with_reshape_matches_onnxruntime():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("Reshape", ["xq", "shape"], ["xr"]),
             helper.make_node("QLinearMatMul", ["xr", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                              ["yq"], name="qmm"),
             helper.make_node("Flatten", ["yq"], ["yf"], axis=2),
             helper.make_node("DequantizeLinear", ["yf", "ys", "yz"], ["y"])]
    inits = [_init("xs", np.float32(0.05)), _init("xz", np.int8(-5)),
             _init("shape", np.array([0, -1, 30], np.int64)),
             _init("w", rng.integers(-127, 128, (30, 17)).astype(np.int8)),
             _init("ws", np.float32(0.004)), _init("wz", np.int8(0)),
             _init("ys", np.float32(0.3)), _init("yz", np.int8(12))]
    model = _model(nodes, [("x", TensorProto.FLOAT, ["N", 60])],
                   [("y", TensorProto.FLOAT, None)], inits)
    feeds = {"x": rng.normal(0, 2, (9, 60)).astype(np.float32)}
    got = RillModel.load(model).run(open_device("golden"), feeds)["y"]
    expected = ort_outputs(model, feeds)["y"]
    assert got.shape == expected.shape == (18, 17) and np.array_equal(got, expected)


# -- refusals -------------------------------------------------------------------------------------

def _with_softmax(path) -> onnx.ModelProto:
    model = onnx.load(path)
    out = model.graph.output[0]
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == out.name:
                node.output[i] = "logits_pre"
    model.graph.node.append(helper.make_node("Softmax", ["logits_pre"], [out.name],
                                             name="probabilities"))
    return model


def test_device_only_names_the_host_nodes_before_anything_runs(zoo):
    with pytest.raises(UnsupportedOperator, match="'probabilities' \\(Softmax\\)") as err:
        RillModel.load(_with_softmax(zoo["mlp-qdq-tensor-s8"][0]), device_only=True)
    assert err.value.node_name == "probabilities" and "would run on the host" in str(err.value)


def test_softmax_runs_on_the_host_and_the_model_equals_onnxruntime(zoo):
    path, fm = zoo["mlp-qdq-tensor-s8"]
    model = _with_softmax(path)
    rill = RillModel.load(model)
    feeds = {fm.input_name: fm.test_inputs[:20]}
    got = rill.run(open_device("golden"), feeds)
    want = exact_onnxruntime(model, feeds)
    assert got[fm.output_name].dtype == np.float32 and set(got) == set(want)
    assert all(np.array_equal(got[name], want[name]) for name in want)
    hosts = [step for step in rill.model.steps if not hasattr(step, "linear")]
    assert len(rill.model.layers) == 2 and {step.op for step in hosts} == {"onnxruntime"}
    assert "probabilities" in hosts[-1].nodes   # after the last device layer


def test_an_operator_no_one_runs_is_named_before_anything_runs():
    node = helper.make_node("Frobnicate", ["x"], ["y"], name="mystery")
    model = _model([node], [("x", TensorProto.FLOAT, [5, 3])], [("y", TensorProto.FLOAT, None)],
                   [])
    with pytest.raises(UnsupportedOperator, match="'mystery' \\(Frobnicate\\).*no implementation"):
        RillModel.load(model)


def test_float_matmul_and_unfused_relu_run_on_the_host_or_are_refused():
    inits = [_init("w", np.ones((3, 2), np.float32))]
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="fp32")
    model = _model([node], [("x", TensorProto.FLOAT, [1, 3])], [("y", TensorProto.FLOAT, None)],
                   inits)
    with pytest.raises(UnsupportedOperator, match="'fp32'.*float"):
        RillModel.load(model, device_only=True)
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    assert np.array_equal(RillModel.load(model).run(open_device("golden"), {"x": x})["y"],
                          exact_onnxruntime(model, {"x": x})["y"])
    # DQ -> MatMul -> Relu -> Q with a zero point above the minimum: onnxruntime keeps it float.
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "s"], ["wf"]),
             helper.make_node("MatMul", ["xf", "wf"], ["m"], name="mm"),
             helper.make_node("Relu", ["m"], ["r"], name="act"),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"])]
    inits = [_init("w", np.ones((3, 2), np.int8)), _init("s", np.float32(0.1)),
             _init("z", np.int8(5))]
    model = _model(nodes, [("x", TensorProto.INT8, [1, 3])], [("y", TensorProto.INT8, None)],
                   inits)
    with pytest.raises(UnsupportedOperator, match="mm \\(MatMul: .*zero point.*act \\(Relu"):
        RillModel.load(model, device_only=True)
    x = np.array([[-7, 3, 90]], np.int8)
    assert np.array_equal(RillModel.load(model).run(open_device("golden"), {"x": x})["y"],
                          exact_onnxruntime(model, {"x": x})["y"])


def test_not_onnx_is_an_invalid_model(tmp_path):
    junk = tmp_path / "notes.onnx"
    junk.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(InvalidModel, match="not an ONNX model|no nodes"):
        RillModel.load(junk)
    with pytest.raises(InvalidModel):
        RillModel.load(bytes(range(256)) * 4)


def test_wrong_inputs_are_refused(zoo):
    path, float_model = zoo["conv-qdq-tensor-s8"]
    model, device = RillModel.load(path), open_device("golden")
    x = float_model.test_inputs[:3]
    with pytest.raises(InputMismatch, match="float32, got float64"):
        model.run(device, {"input": x.astype(np.float64)})
    with pytest.raises(InputMismatch, match=r"shape \['\?', 1, 8, 8\], got \[3, 64\]"):
        model.run(device, {"input": x.reshape(3, 64)})
    with pytest.raises(InputMismatch, match="takes \\['input'\\]"):
        model.run(device, {"image": x})
    with pytest.raises(InputMismatch):
        model.run(device, {})

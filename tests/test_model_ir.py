"""Rill's model representation (``sw.model_ir``): what front ends lower into and devices run.

A model built directly in the representation, with no ONNX in it, must give what onnxruntime
gives for the same model written in ONNX; the ONNX importer's lowering must leave nothing of the
ONNX format in it; feeds are checked against the inputs' dtypes and shapes.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sw import oracle
from sw.compiler import QuantizedLinear
from sw.device import open_device
from sw.model_ir import DeviceLayer, HostStep, InputError, QuantizedModel, TensorSpec
from sw.onnx_import import RillModel

K, N = 37, 19


def _operands(seed: int):
    rng = np.random.default_rng(seed)
    return {"w": rng.integers(-127, 128, (K, N)).astype(np.int8),
            "bias": rng.integers(-3000, 3000, N).astype(np.int32),
            "xs": np.float32(0.05), "xz": np.int8(-7), "ws": np.float32(0.004),
            "ys": np.float32(0.21), "yz": np.int8(-128)}


def _onnx_model(c) -> onnx.ModelProto:
    """x -> Q -> QLinearMatMul -> DQ, ReLU folded into the zero point, with a bias via QGemm."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QGemm", ["xq", "xs", "xz", "w", "ws", "wz", "bias", "ys", "yz"],
                              ["yq"], domain="com.microsoft", name="fc"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    inits = [numpy_helper.from_array(np.asarray(c[name]), name)
             for name in ("xs", "xz", "w", "ws", "bias", "ys", "yz")]
    inits.append(numpy_helper.from_array(np.int8(0), "wz"))
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", K])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def _direct_model(c) -> QuantizedModel:
    """The same model written in the representation by hand."""
    linear = QuantizedLinear(c["w"], a_scale=c["xs"], a_zp=int(c["xz"]),
                             w_scale=np.array([c["ws"]], np.float32), y_scale=c["ys"],
                             y_zp=int(c["yz"]), bias=c["bias"], act_dtype=np.int8,
                             out_dtype=np.int8, name="fc")
    steps = [HostStep("quantize", "QuantizeLinear", ("x", "xs", "xz"), ("xq",)),
             DeviceLayer("fc", "matmul", "xq", "yq", linear),
             HostStep("dequantize", "DequantizeLinear", ("yq", "ys", "yz"), ("y",))]
    constants = {name: np.asarray(c[name]) for name in ("xs", "xz", "ys", "yz")}
    return QuantizedModel([TensorSpec("x", np.dtype(np.float32), (None, K))], ["y"], constants,
                          steps)


def test_a_model_written_in_the_representation_runs_like_onnxruntime():
    c = _operands(3)
    feeds = {"x": np.random.default_rng(4).normal(0, 2, (23, K)).astype(np.float32)}
    expected = oracle.run(_onnx_model(c), feeds)["y"]
    with open_device("golden") as device:
        got = _direct_model(c).run(device, feeds)["y"]
    assert got.dtype == expected.dtype and got.shape == expected.shape == (23, N)
    assert np.array_equal(got, expected)


def test_lowering_from_onnx_leaves_no_onnx_in_the_model(zoo):
    for path, _ in zoo.values():
        model = RillModel.load(path).model
        assert model.layers, path
        for step in model.steps:
            assert isinstance(step, DeviceLayer | HostStep)
            if isinstance(step, HostStep):
                for value in step.attrs.values():
                    assert not type(value).__module__.startswith("onnx"), (step, value)
        assert all(isinstance(value, np.ndarray) for value in model.constants.values())
        assert all(isinstance(spec.dtype, np.dtype) for spec in model.inputs)


def test_feeds_are_checked_against_the_inputs():
    model = _direct_model(_operands(5))
    with open_device("golden") as device:
        with pytest.raises(InputError, match="must be float32, got float64"):
            model.run(device, {"x": np.zeros((2, K))})
        with pytest.raises(InputError, match=r"must have shape \['\?', 37\], got \[2, 36\]"):
            model.run(device, {"x": np.zeros((2, K - 1), np.float32)})
        with pytest.raises(InputError, match="the model takes"):
            model.run(device, {"image": np.zeros((2, K), np.float32)})

"""Shared pytest configuration and fixtures.

The report header names the path the onnxruntime oracle (:mod:`sw.oracle`) takes on this machine.
The small core shapes the tests share are constants in ``support.params`` (tests import them at
module level, for ``parametrize``); test-only gateware and host pieces are in ``support``.
"""

import onnx
import pytest
from onnx import helper

from sw import models, oracle


def pytest_report_header(config):
    return [oracle.describe()]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """Every quantized digits variant: ``{"mlp-qdq-tensor-s8": (path, float model), ...}``."""
    split = models.digits_split()
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for float_model in (models.train_mlp(split), models.train_conv(split)):
        for variant, fmt, per_channel, act in models.QUANT_VARIANTS:
            path = models.quantize(float_model, folder, quant_format=fmt,
                                   per_channel=per_channel, activation_type=act)
            out[f"{float_model.name}-{variant}"] = (path, float_model)
    return out


def _with_quantized_intermediates(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every quantized tensor a device layer writes also a graph output."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {o.name for o in model.graph.output}
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        name = node.output[0]
        if node.op_type in ("QuantizeLinear", "QLinearConv", "QGemm") and name not in outputs:
            # com.microsoft.QGemm has no onnx shape inference: type it from its zero point.
            elem = inits[node.input[-1] if node.op_type != "QLinearConv" else node.input[7]]
            model.graph.output.append(inferred.get(name) or helper.make_tensor_value_info(
                name, elem.data_type, None))
    return model


@pytest.fixture
def with_quantized_intermediates():
    """A function: the model with every quantized intermediate tensor also a graph output, so a
    comparison covers every layer, not only the logits."""
    return _with_quantized_intermediates

"""Models split between the device and the host (sw.onnx_partition, sw.runtime_layer).

ONNX's own node test cases for the quantized matmuls and convolutions (every operand a graph
input; uint8 weights with zero points; float16 scales) against each case's expected outputs, and
the model families people quantize with onnxruntime (residual and depthwise CNNs, a transformer
encoder; static QDQ and QOperator, per tensor and per channel, int8 and uint8, and dynamic)
against the onnxruntime oracle for the whole model.
"""

import warnings

import numpy as np
import pytest
from support.oracle import exact_onnxruntime

from hw.params import RillParams
from sw import cli, model_families, models
from sw.device import open_device
from sw.onnx_import import InputMismatch, RillModel
from sw.runtime_layer import RuntimeLayer, RuntimeOperandError, signed_weights

NODE_OPS = ("qlinearmatmul", "matmulinteger", "qlinearconv", "convinteger")


def _node_cases():
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return {c.name: c for c in cases if c.name.removeprefix("test_").startswith(NODE_OPS)}


NODE_CASES = _node_cases()


def _run_case(device, case):
    (inputs, expected), = case.data_sets
    feeds = {info.name: np.asarray(value) for info, value in zip(case.model.graph.input, inputs)}
    rill = RillModel.load(case.model)
    got = rill.run(device, feeds)
    assert all(isinstance(step, RuntimeLayer) for step in rill.model.steps)
    return [got[o.name] for o in case.model.graph.output], [np.asarray(e) for e in expected]


def test_every_onnx_node_case_of_the_quantized_matmuls_is_here():
    assert len(NODE_CASES) == 12


@pytest.mark.parametrize("name", sorted(NODE_CASES))
def test_onnx_node_case_on_golden(name):
    got, want = _run_case(open_device("golden"), NODE_CASES[name])
    assert [g.dtype for g in got] == [w.dtype for w in want]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_onnx_node_cases_on_sim():
    with open_device("sim", RillParams()) as device:
        for name in sorted(NODE_CASES):
            got, want = _run_case(device, NODE_CASES[name])
            assert [g.dtype for g in got] == [w.dtype for w in want], name
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), name


def test_signed_weights_split_exactly():
    b = np.arange(256, dtype=np.uint8).reshape(64, 4)
    zp = np.array([0, 1, 128, 255], np.uint8)
    w, c = signed_weights(b, zp)
    assert w.dtype == np.int8
    assert np.array_equal(w.astype(np.int64) + c, b.astype(np.int64) - zp)


def test_run_time_weights_compile_once_per_value_and_bad_operands_are_typed_errors():
    case = NODE_CASES["test_qlinearmatmul_2D_uint8_float32"]
    (inputs, _), = case.data_sets
    feeds = {info.name: np.asarray(v) for info, v in zip(case.model.graph.input, inputs)}
    rill = RillModel.load(case.model)
    device = open_device("golden")
    first = rill.run(device, feeds)
    layer, = rill.model.steps
    with pytest.raises(InputMismatch, match="input 'b' must be uint8, got float32"):
        rill.run(device, {**feeds, "b": feeds["b"].astype(np.float32)})
    # The layer's own checks, for operands computed inside a model.
    with pytest.raises(RuntimeOperandError, match="input B .* is float32"):
        layer.run(device, {**feeds, "b": feeds["b"].astype(np.float32)})
    with pytest.raises(RuntimeOperandError, match="do not multiply"):
        layer.run(device, {**feeds, "b": feeds["b"][:3]})
    with pytest.raises(RuntimeOperandError, match="zero point has 2 values for 3 columns"):
        layer.run(device, {**feeds, "b_zero_point": np.array([1, 2], np.uint8)})
    again = rill.run(device, feeds)   # the device still answers, from the cache
    assert np.array_equal(first["y"], again["y"])
    assert layer.stats["compiles"] == 1 and layer.stats["cache_hits"] >= 1


# -- model families -------------------------------------------------------------------------------

#: (tag, quant_format, per_channel, activation_type, weight_type); "dynamic": quantize_dynamic.
VARIANTS = (("qdq-s8-tensor", "QDQ", False, "QInt8", "QInt8"),
            ("qdq-u8-channel", "QDQ", True, "QUInt8", "QInt8"),
            ("qop-s8-channel", "QOperator", True, "QInt8", "QInt8"),
            ("qdq-u8-u8weights", "QDQ", False, "QUInt8", "QUInt8"),
            ("dynamic", None, None, None, None))


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    out = tmp_path_factory.mktemp("families")
    made = {}
    for family, build in model_families.FAMILIES.items():
        fm = build()
        for tag, fmt, per_channel, acts, weights in VARIANTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = model_families.quantize_dynamic(fm, out) if fmt is None else \
                    models.quantize(fm, out, quant_format=fmt, per_channel=per_channel,
                                    activation_type=acts, weight_type=weights,
                                    calibration_samples=100)
            made[family, tag] = path, fm
    return made


def _device_macs(rill: RillModel) -> tuple[int, int]:
    line = rill.placement_lines()[-1]   # "  device: A of B MACs at batch 1 (S%)"
    done, total = (int(v.replace(",", "")) for v in line.split()[1:4:2])
    return done, total


@pytest.mark.parametrize("tag", [v[0] for v in VARIANTS])
@pytest.mark.parametrize("family", sorted(model_families.FAMILIES))
def test_model_family_on_golden_equals_onnxruntime(families, family, tag):
    path, fm = families[family, tag]
    rill = RillModel.load(path)
    feeds = {fm.input_name: fm.test_inputs[:24]}
    got = rill.run(open_device("golden"), feeds)
    want = exact_onnxruntime(path, feeds)
    assert set(got) == set(want)
    assert all(got[n].dtype == want[n].dtype and np.array_equal(got[n], want[n]) for n in want)
    # Every quantized matmul and conv runs on the device, the depthwise convs as dense ones,
    # except where weights are known only by value (uint8 weights, dynamic quantization): then
    # the depthwise convs (8x8x8 and 4x4x16 outputs, 3x3 taps each) run on the host. In the
    # dynamic transformer attention's two matmuls a layer (Q K^T and softmax V: quantize_dynamic
    # leaves them float; 2 heads, 8 tokens, 8 values a head) run on the host too.
    by_value = tag in ("qdq-u8-u8weights", "dynamic")
    host = {"depthwise_cnn": (8 * 8 * 8 + 4 * 4 * 16) * 9 if by_value else 0,
            "transformer_encoder": 2 * 2 * (2 * 8 * 8 * 8) if tag == "dynamic" else 0}
    done, total = _device_macs(rill)
    assert total - done == host.get(family, 0) and done > 0


@pytest.mark.parametrize("family,tag", [("transformer_encoder", "qdq-s8-tensor"),
                                        ("residual_cnn", "qdq-u8-u8weights"),
                                        ("depthwise_cnn", "qop-s8-channel")])
def test_model_family_on_sim_equals_onnxruntime(families, family, tag):
    path, fm = families[family, tag]
    feeds = {fm.input_name: fm.test_inputs[:2]}
    with open_device("sim", RillParams()) as device:
        got = RillModel.load(path).run(device, feeds)
    want = exact_onnxruntime(path, feeds)
    assert all(np.array_equal(got[n], want[n]) for n in want)


def test_run_report_and_device_only_on_the_command_line(families, tmp_path, capsys):
    path, fm = families["transformer_encoder", "qdq-s8-tensor"]
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, fm.test_inputs[:3])
    argv = ["run", str(path), "--input", str(x), "--output", str(y), "--device", "golden"]
    assert cli.main(argv + ["--report", "--compare", "onnxruntime"]) == 0
    out, err = capsys.readouterr()
    assert "layer0.ln1                   LayerNormalization   host" in err
    assert "layer0.scores                MatMul               device+host" in err
    assert "device: 38,048 of 38,048 MACs at batch 1 (100.0%)" in err
    assert "layer0.scores: compiled 6x" in out   # 3 inputs x 2 heads
    assert "onnxruntime: equal" in out
    assert cli.main(argv + ["--device-only"]) == 2
    err = capsys.readouterr().err
    assert "--device-only" in err and "layer0.ln1 (LayerNormalization" in err

"""Full-integer TFLite models (the four MLPerf Tiny architectures and Keras test models,
tests/assets/tflite, made by scripts/tflite_models/make_models.py) on golden and sim, against
LiteRT's reference kernels, where each operator runs, and the front end's refusals; the
stretches run on chip are tests/test_tflite_on_chip.py's."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from support.tflite import ASSETS, load_asset

from hw import isa
from hw.params import RillParams
from sw.bench import counter_read_cost
from sw.device import open_device
from sw.litert_oracle import litert_run
from sw.tflite_import import TfliteImportError, TfliteModel, UnsupportedTfliteOperator
from sw.tflite_reader import InvalidTflite, read_tflite

MODELS = ("ds_cnn", "resnet8", "mobilenet_v1_025", "autoencoder",
          # a plain Keras CNN converted as users convert theirs: float input and output,
          # RELU6, MAX_POOL_2D, and Flatten as SHAPE/STRIDED_SLICE/PACK/RESHAPE (dynamic batch)
          "keras_cnn",
          # two ResNet stacks small enough to run whole on the default core
          "residual_tiny",
          # an ADD whose second operand is a constant map (broadcast over the batch)
          "const_add",
          # MobileNetV2's inverted residual blocks: ReLU6, depthwise convs, residual adds
          "mobilenet_v2_tiny",
          # LEAKY_RELU, CONCATENATION, a standalone RELU, LOGISTIC, MUL, TANH, SUB
          "keras_ops",
          # Conv1D and MaxPooling1D as 2-D ops of height 1 between RESHAPEs, MEAN over time
          "keras_conv1d",
          # MUL by a constant, HARD_SWISH, PRELU, MAXIMUM, MINIMUM, RESIZE_BILINEAR,
          # RESIZE_NEAREST_NEIGHBOR, TRANSPOSE, REDUCE_MAX
          "keras_more_ops",
          # FULLY_CONNECTED with keep_num_dims (an SE gate, a Dense on a sequence), and a
          # RESHAPE to (C,) that drops the batch axis (run image by image)
          "keras_se_sequence",
          # TRANSPOSE_CONV: SAME of stride 2 with a fused ReLU, VALID of strides 1 and 3
          "keras_conv_transpose",
          # self-attention: BATCH_MATMUL, TRANSPOSE, SOFTMAX over keys; SPLIT
          "keras_attention",
          # uint8 input and output (the older recipe): QUANTIZE from and to uint8
          "keras_uint8_io",
          # dilated convs and depthwise convs (CONV_2D's dilation), a grouped conv
          "keras_dilated",
          # a dynamic batch's dilated Conv1D (SPACE_TO_BATCH_ND, EXPAND_DIMS,
          # BATCH_TO_SPACE_ND), MIRROR_PAD, SLICE, UNPACK, GATHER and REDUCE_PROD on shapes,
          # REDUCE_MIN, and a second output: ARG_MAX's int32 class index
          "keras_sequence_ops",
          # GELU exact and approximate, L2_NORMALIZATION, ABS, EXP, LOG, RSQRT
          "keras_activations",
          # int32 token ids: an Embedding's LESS, ADD, SELECT on them, its table's GATHER
          "keras_embedding")
# keras_upsampling's TILE, DEPTH_TO_SPACE and SUM LiteRT's reference kernels cannot check: below.


@pytest.mark.parametrize("name", MODELS)
def test_models_equal_litert_on_golden(name):
    path, model, inputs = load_asset(name)
    feeds = {model.input_names[0]: inputs}
    with open_device("golden", RillParams()) as device:
        got = model.run(device, feeds)
    expected = litert_run(path, feeds)
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and np.array_equal(got[key], want)
    # LiteRT's outputs vary with the input: the comparison is not of constant answers.
    assert len({row.tobytes() for row in next(iter(expected.values()))}) > 1


def _sim_run(name: str, rows: int):
    """Each vector step a call of its own, so that the vector unit's RTL runs it too."""
    path, model, inputs = load_asset(name)
    feeds = {model.input_names[0]: inputs[:rows]}
    with open_device("sim", RillParams()) as device:
        before = device.read_counters()["cycles"]
        got = model.run(device, feeds, vector_calls=True)
        cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
    assert cycles == sum(model.predicted_cycles().values())
    expected = litert_run(path, feeds)
    for key, want in expected.items():
        assert np.array_equal(got[key], want)


@pytest.mark.parametrize("name", ["ds_cnn", "autoencoder", "keras_cnn", "keras_conv1d",
                                  "keras_conv_transpose", "keras_dilated",
                                  "keras_sequence_ops", "keras_activations"])
def test_models_equal_litert_on_the_rtl_in_the_predicted_cycles(name):
    _sim_run(name, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "mobilenet_v1_025"])
def test_larger_models_equal_litert_on_the_rtl(name):
    _sim_run(name, 1)


def test_placement_says_where_each_operator_runs():
    """Which depthwise convs run on the array depends on the core's SRAMs: on the 85F's all of
    DS-CNN's, on the default core's none (their dense filters would take its weight SRAM)."""
    from boards import get_board
    model = TfliteModel.load(ASSETS / "ds_cnn.tflite", get_board("ulx3s-85f").params)
    where = {p.op: p.where for p in model.placements}
    assert where == {"CONV_2D": "device", "DEPTHWISE_CONV_2D": "device",
                     "AVERAGE_POOL_2D": "device", "FULLY_CONNECTED": "device + host",
                     "SOFTMAX": "host"}
    lines = model.placement_lines()
    assert lines[-1] == "  device: 2,656,768 of 2,656,768 MACs (100.0%)"
    # The convs hand their maps on in NCHW, and the pooling takes it so: the input cut into
    # 2x2 pixel blocks for the first conv (NHWC in, NCHW out), one transpose out of the pooled
    # 1x1 map.
    moves = [s.op for s in model.model.steps if getattr(s, "op", "") in ("Transpose",
                                                                         "PixelBlocks")]
    assert moves == ["PixelBlocks", "Transpose"]
    # Without a vector unit the pooling runs on the host, saying why.
    plain = TfliteModel.load(ASSETS / "ds_cnn.tflite",
                             replace(get_board("ulx3s-85f").params, vector_unit=False,
                                     add_lanes=1))
    (pool,) = [p for p in plain.placements if p.op == "AVERAGE_POOL_2D"]
    assert (pool.where, pool.why) == ("host", "no vector unit on this core")
    # MobileNet's depthwise convs all run on the 85F's array (their requantization entries
    # beyond its SRAM stream, sw/resident.py); with half its weight SRAM the model's weights
    # would not all stay, and those with many channels run on the host.
    mobilenet_85f = get_board("ulx3s-85f").params
    for params, where in ((mobilenet_85f, {"device"}), (replace(mobilenet_85f,
                                                                 weight_depth=8192),
                                                         {"device", "host"})):
        mobilenet = TfliteModel.load(ASSETS / "mobilenet_v1_025.tflite", params)
        assert {p.where for p in mobilenet.placements if p.op == "DEPTHWISE_CONV_2D"} == where
    _, default, _ = load_asset("ds_cnn")
    assert {p.where for p in default.placements if p.op == "DEPTHWISE_CONV_2D"} == {"host"}


def test_elementwise_operators_run_on_the_host_and_refuse_what_they_cannot_take():
    """The Keras operators beyond MLPerf Tiny's seven run on the host in the reference
    kernels' arithmetic (the models above equal LiteRT), saying so; a CONCATENATION of inputs
    quantized unlike its output (the int8 kernel copies bytes) is refused at load, naming the
    operator. A MaxPooling1D's stride along its single row moves nothing: it pools on the
    vector unit."""
    for name, ops in (("keras_ops", ("LEAKY_RELU", "CONCATENATION", "RELU", "LOGISTIC", "MUL",
                                     "TANH", "SUB")),
                      ("keras_more_ops", ("HARD_SWISH", "PRELU", "MAXIMUM", "MINIMUM",
                                          "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
                                          "TRANSPOSE", "REDUCE_MAX")),
                      ("keras_attention", ("BATCH_MATMUL", "SPLIT"))):
        _, model, _ = load_asset(name)
        where = {p.op: (p.where, p.why) for p in model.placements}
        for op in ops:
            assert where[op][0] == "host" and "host" in where[op][1], op
    graph = read_tflite(ASSETS / "keras_ops.tflite")
    (concat,) = [op for op in graph.operators if op.name == "CONCATENATION"]
    first = concat.inputs[0]
    graph.tensors[first] = replace(graph.tensors[first],
                                   scale=graph.tensors[first].scale * 2)
    with pytest.raises(UnsupportedTfliteOperator, match="CONCATENATION.*quantized unlike"):
        TfliteModel(graph)
    _, conv1d, _ = load_asset("keras_conv1d")
    assert [p.where for p in conv1d.placements if p.op == "MAX_POOL_2D"] == ["device"]
    # A tensor without the batch axis makes a batch run image by image (as LiteRT runs it);
    # the others run a batch at once.
    assert load_asset("keras_se_sequence")[1].per_image
    assert not any(load_asset(name)[1].per_image for name in ("resnet8", "keras_cnn"))


def test_data_movement_runs_on_the_host_and_dilated_and_grouped_convs_on_the_array():
    """The data-movement operators and the integer arithmetic on indices run on the host
    (bytes moved, never changed: the models above equal LiteRT), the convs between them on
    the array: dilated ones (CONV_2D's
    dilation; with a dynamic batch SPACE_TO_BATCH_ND's sub-maps) and grouped ones. Refused at
    load, naming the operator: a SLICE whose output is quantized unlike its input, a GATHER
    with batch_dims, a conv whose filters' depth does not divide its input's, a comparison of
    int8 values, an operator the converter left in float."""
    _, sequence, _ = load_asset("keras_sequence_ops")
    where = {p.op: p.where for p in sequence.placements}
    _, embedding, _ = load_asset("keras_embedding")
    assert {p.op: p.where for p in embedding.placements if p.op != "RESHAPE"} == {
        "LESS": "host", "ADD": "host", "SELECT": "host", "GATHER": "host", "CONV_2D": "device",
        "MEAN": "host", "FULLY_CONNECTED": "device + host"}
    for op in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "EXPAND_DIMS", "MIRROR_PAD", "SLICE",
               "UNPACK", "GATHER", "REDUCE_PROD", "REDUCE_MIN", "ARG_MAX"):
        assert where[op] == "host", op
    _, dilated, _ = load_asset("keras_dilated")
    assert {p.where for p in dilated.placements
            if p.op in ("CONV_2D", "DEPTHWISE_CONV_2D")} == {"device"}
    assert {p.where for p in sequence.placements if p.op == "CONV_2D"} == {"device"}

    def refused(name: str, operator: str, change, match: str):
        graph = read_tflite(ASSETS / f"{name}.tflite")
        change(graph, next(op for op in graph.operators if op.name == operator))
        with pytest.raises(UnsupportedTfliteOperator, match=match):
            TfliteModel(graph)

    def rescale(graph, op):
        out = op.outputs[0]
        graph.tensors[out] = replace(graph.tensors[out], scale=graph.tensors[out].scale * 2)

    refused("keras_sequence_ops", "SLICE", rescale, r"\(SLICE\): inputs quantized unlike")

    def in_float(graph, op):   # what the converter does to Keras' ELU: float between
        graph.tensors[op.inputs[0]] = replace(graph.tensors[op.inputs[0]],   # (DE)QUANTIZEs
                                              dtype=np.dtype(np.float32))
    def quantized(graph, op):   # an int8 comparison rescales: not taken
        graph.tensors[op.inputs[0]] = replace(graph.tensors[op.inputs[0]],
                                              dtype=np.dtype(np.int8))
    refused("keras_embedding", "LESS", quantized,
            r"\(LESS\): int8 operands \(integers that are not quantized only\)")
    refused("keras_activations", "GELU", in_float,
            r"\(GELU\): float32 input: the converter left this operator in float")
    refused("keras_sequence_ops", "GATHER",
            lambda graph, op: op.options.update(batch_dims=1), r"\(GATHER\): batch_dims")

    def three_deep(graph, op):   # filters of 3 input channels over 8
        filters = op.inputs[1]
        graph.tensors[filters] = replace(graph.tensors[filters],
                                         data=graph.tensors[filters].data[..., :3])
    grouped = next(op.index for op in read_tflite(ASSETS / "keras_dilated.tflite").operators
                   if op.name == "CONV_2D" and op.index > 0)
    refused("keras_dilated", "CONV_2D",
            lambda graph, op: three_deep(graph, graph.operators[grouped]),
            rf"#{grouped} \(CONV_2D\): filters of 3 input channels over 8")


def test_operators_the_reference_lacks_are_checked_against_the_optimized_kernels(tmp_path):
    """int8 TILE (version 3: UpSampling2D's nearest) and DEPTH_TO_SPACE (version 2): LiteRT's
    reference resolver has neither, so ``--compare litert`` says it cannot check the model,
    naming the version, after writing the output; its int8 SUM writes a constant (a defect
    the oracle names). TILE and DEPTH_TO_SPACE move bytes; SUM is the reference source's
    ``QuantizedMeanOrSum``, which LiteRT's optimized kernels (no delegates) also compute: on
    this model they equal golden, and the RTL equals golden."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from sw.litert_oracle import _defects
    path, model, inputs = load_asset("keras_upsampling")
    assert {p.op: p.where for p in model.placements}["TILE"] == "host"
    assert _defects(path) == ["SUM (its int8 SUM writes one constant whatever the input)"]
    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    optimized = []
    for row in inputs:
        interpreter.set_tensor(source["index"], row[None])
        interpreter.invoke()
        optimized.append(interpreter.get_tensor(result["index"]).copy())
    feeds = {model.input_names[0]: inputs}
    with open_device("golden", RillParams()) as device:
        (golden,) = model.run(device, feeds).values()
    assert np.array_equal(golden, np.concatenate(optimized))
    assert len({row.tobytes() for row in golden}) > 1
    with open_device("sim", RillParams()) as device:
        (rtl,) = model.run(device, {model.input_names[0]: inputs[:2]}).values()
    assert np.array_equal(rtl, golden[:2])
    np.save(tmp_path / "x.npy", inputs[:2])
    result = subprocess.run(
        [sys.executable, "-m", "sw", "run", str(path), "--input", str(tmp_path / "x.npy"),
         "--output", str(tmp_path / "y.npy"), "--device", "golden", "--compare", "litert"],
        capture_output=True, text=True)
    assert result.returncode == 2
    assert "have no TILE version 3, so they cannot check this model" in result.stderr
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden[:2])


def test_a_model_litert_aborts_on_is_reported_and_the_oracle_goes_on(tmp_path):
    """A SOFTMAX input scale too small for the reference kernel's multiplier (an untrained
    network's) makes LiteRT abort its process: the oracle, which runs LiteRT in a worker
    process, says it cannot check the model, and checks the next one."""
    from sw.litert_oracle import ReferenceCannotCheck
    path, model, inputs = load_asset("keras_uint8_io")
    graph = read_tflite(path)
    (softmax,) = [op for op in graph.operators if op.name == "SOFTMAX"]
    scale = np.float32(graph.tensors[softmax.inputs[0]].scale[0]).tobytes()
    data = path.read_bytes()
    assert data.count(scale) == 1
    tiny = tmp_path / "tiny_softmax_scale.tflite"
    tiny.write_bytes(data.replace(scale, np.float32(1e-9).tobytes()))
    feeds = {model.input_names[0]: inputs[:1]}
    with pytest.raises(ReferenceCannotCheck, match="aborted on this model"):
        litert_run(tiny, feeds)
    (out,) = litert_run(path, feeds).values()
    assert out.shape == (1, 4) and out.dtype == np.uint8


def test_activation_tables_and_fixed_point_kernels_equal_litert_op_by_op():
    """Each GELU, EXP and LOG table, ABS, RSQRT's and L2_NORMALIZATION's fixed-point inverse
    square roots against LiteRT's own intermediate tensors, on 64 random inputs (wider than
    the model's 8 test inputs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from sw.tflite_activations import abs_int8, l2_normalization, lookup_table, rsqrt_int8
    path = ASSETS / "keras_activations.tflite"
    graph = read_tflite(path)
    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    checked = ("GELU", "L2_NORMALIZATION", "ABS", "EXP", "LOG", "RSQRT")
    ops = [op for op in graph.operators if op.name in checked]
    assert sorted(op.name for op in ops) == sorted((*checked, "GELU"))

    def quant(index):
        return float(graph.tensors[index].scale[0]), int(graph.tensors[index].zero_point[0])
    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(64):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               rng.integers(-128, 128, (1, 8, 8, 3), dtype=np.int8))
        interpreter.invoke()
        for op in ops:
            x, want = (interpreter.get_tensor(i) for i in (op.inputs[0], op.outputs[0]))
            (s_in, zp_in), (s_out, zp_out) = quant(op.inputs[0]), quant(op.outputs[0])
            scales = dict(input_scale=s_in, input_zp=zp_in, output_scale=s_out,
                          output_zp=zp_out)
            if op.name in ("GELU", "EXP", "LOG"):
                function = op.name + ("_APPROXIMATE" if op.options.get("approximate") else "")
                got = lookup_table(function, **scales)[x.astype(np.int64) + 128]
                seen.add(function)
            elif op.name == "L2_NORMALIZATION":
                got = l2_normalization(x, input_zp=zp_in)
            else:
                got = (abs_int8 if op.name == "ABS" else rsqrt_int8)(x, **scales)
            assert np.array_equal(got, want), op.index
    assert seen == {"GELU", "GELU_APPROXIMATE", "EXP", "LOG"}


def test_an_add_of_a_constant_runs_on_the_host():
    """A constant operand (stored without the batch dimension) is the model's constant, in the
    layout its reader takes; the ADD then broadcasts it on the host."""
    _, model, _ = load_asset("const_add")
    (add,) = [p for p in model.placements if p.op == "ADD"]
    assert (add.where, add.why) == ("host", "an operand is a constant")
    assert [c.shape for c in model.model.constants.values()] == [(8, 8, 8)]


def _with_operator(name: str, op_index: int, builtin: int) -> bytes:
    """The model's bytes with operator ``op_index``'s operator code changed to ``builtin``."""
    import tflite
    data = bytearray((ASSETS / f"{name}.tflite").read_bytes())
    root = tflite.Model.GetRootAs(bytes(data), 0)
    code = root.OperatorCodes(root.Subgraphs(0).Operators(op_index).OpcodeIndex())
    for slot, width in ((4, 1), (10, 4)):   # deprecated_builtin_code (int8), builtin_code (int32)
        offset = code._tab.Offset(slot)
        if offset:
            data[code._tab.Pos + offset:code._tab.Pos + offset + width] = \
                builtin.to_bytes(width, "little", signed=True)
    return bytes(data)


def _with_activation(name: str, operator: str, activation: int) -> bytes:
    """The model's bytes with every ``operator``'s fused activation set to ``activation``."""
    import tflite
    data = bytearray((ASSETS / f"{name}.tflite").read_bytes())
    graph = read_tflite(bytes(data))
    root = tflite.Model.GetRootAs(bytes(data), 0)
    for op in graph.operators:
        if op.name == operator:
            table = root.Subgraphs(0).Operators(op.index).BuiltinOptions()
            options = tflite.Conv2DOptions()
            options.Init(table.Bytes, table.Pos)
            offset = options._tab.Offset(10)   # fused_activation_function, stored (not default)
            assert offset, "the converter stores a non-default activation"
            data[options._tab.Pos + offset] = activation
    return bytes(data)


@pytest.mark.parametrize("device_url, clamp", [("golden", True), ("sim", True),
                                               ("golden", False)])
def test_a_fused_clamp_inside_the_range_runs_on_the_device(tmp_path, device_url, clamp):
    """RELU_N1_TO_1 (and RELU6) clamp inside the int8 range: on a core with the programmable
    clamp the requantizer clamps (CONFIG's clamp, so the conv's output could stay on chip);
    without it the conv runs on the device and the clamp on the host. Either way the result is
    LiteRT's."""
    import tflite
    path = tmp_path / "clamped.tflite"
    path.write_bytes(_with_activation("ds_cnn", "CONV_2D",
                                      tflite.ActivationFunctionType.RELU_N1_TO_1))
    params = replace(RillParams(), clamp=clamp)
    model, inputs = TfliteModel.load(path, params), np.load(ASSETS / "ds_cnn_inputs.npy")[:2]
    where = "device" if clamp else "device + host"
    assert [p.where for p in model.placements if p.op == "CONV_2D"] == [where] * 5
    feeds = {model.input_names[0]: inputs}
    with open_device(device_url, params) as device:
        got = model.run(device, feeds)
    configs = [isa.Config.from_fields(isa.decode_fields(isa.Opcode.CONFIG, header[1:]))
               for call in model.programs for headers in call.program.executes
               for header in headers if header[0] == isa.Opcode.CONFIG.value]
    assert any(config.clamp for config in configs) == clamp
    expected = litert_run(path, feeds)
    unclamped = litert_run(ASSETS / "ds_cnn.tflite", feeds)
    for key, want in expected.items():
        assert np.array_equal(got[key], want) and not np.array_equal(want, unclamped[key])


def test_an_unsupported_operator_is_refused_by_name():
    import tflite
    data = _with_operator("ds_cnn", 9, tflite.BuiltinOperator.NEG)
    assert read_tflite(data).operators[9].name == "NEG"
    with pytest.raises(UnsupportedTfliteOperator, match=r"#9 \(NEG\).*Supported: CONV_2D"):
        TfliteModel.load(data)


def test_not_a_tflite_file():
    with pytest.raises(InvalidTflite, match="not a TFLite flatbuffer"):
        read_tflite(b"\x00" * 64)


def test_a_float_model_is_refused_saying_how_to_convert_it():
    with pytest.raises(UnsupportedTfliteOperator,
                       match=r"#0 \(CONV_2D\): float32 weights: .*TFLITE_BUILTINS_INT8"):
        TfliteModel.load(ASSETS / "float_cnn.tflite")


def test_a_damaged_tensor_is_refused():
    """A weight tensor whose data does not match its type and shape (here int8 filters whose
    type byte says int32) is a clear error, not a numpy one."""
    import tflite
    data = bytearray((ASSETS / "ds_cnn.tflite").read_bytes())
    root = tflite.Model.GetRootAs(bytes(data), 0)
    tensor = root.Subgraphs(0).Tensors(root.Subgraphs(0).Operators(0).Inputs(1))
    data[tensor._tab.Pos + tensor._tab.Offset(6)] = tflite.TensorType.INT32   # its type
    with pytest.raises(InvalidTflite, match="bytes of data for shape"):
        read_tflite(bytes(data))


def test_feeds_of_the_wrong_type_or_name():
    _, model, inputs = load_asset("autoencoder")
    with open_device("golden", RillParams()) as device:
        with pytest.raises(TfliteImportError, match="must be int8, got float32"):
            model.run(device, {model.input_names[0]: inputs.astype(np.float32)})
        with pytest.raises(TfliteImportError, match="the model takes"):
            model.run(device, {"nonesuch": inputs})
        with pytest.raises(TfliteImportError, match="shape"):
            model.run(device, {model.input_names[0]: inputs[:, :100]})


def test_cli_runs_a_tflite_model_and_compares_with_litert(tmp_path):
    _, model, inputs = load_asset("ds_cnn")
    np.save(tmp_path / "x.npy", inputs[:3])
    run = [sys.executable, "-m", "sw", "--board-params", "ulx3s-85f", "run",
           str(ASSETS / "ds_cnn.tflite"), "--input",
           str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"), "--device", "golden"]
    result = subprocess.run([*run, "--compare", "litert"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LiteRT (reference kernels): equal (36 outputs)" in result.stdout
    assert "DEPTHWISE_CONV_2D    device" in result.stderr
    assert "AVERAGE_POOL_2D      device" in result.stderr
    # One call per layer, not resident: the pooling's input comes back anyway, so the host
    # pools it, and says so.
    assert "computed on the host in the vector unit's arithmetic" in result.stderr
    assert "#9 AVERAGE_POOL_2D" in result.stderr
    assert np.load(tmp_path / "y.npy").shape == (3, 12)
    result = subprocess.run([*run, "--compare", "onnxruntime"], capture_output=True, text=True)
    assert result.returncode == 2 and "use --compare litert" in result.stderr

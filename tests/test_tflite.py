"""Full-integer TFLite models (the four MLPerf Tiny architectures and a plain Keras CNN,
tests/assets/tflite, made by scripts/tflite_models/make_models.py) on golden and sim, against
LiteRT's reference kernels; and the front end's refusals."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hw import isa
from hw.params import RillParams
from sw.bench import counter_read_cost
from sw.device import open_device
from sw.litert_oracle import litert_run
from sw.tflite_import import TfliteImportError, TfliteModel, UnsupportedTfliteOperator
from sw.tflite_reader import InvalidTflite, read_tflite

ASSETS = Path(__file__).parent / "assets" / "tflite"
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
          "keras_uint8_io")


def _model(name: str):
    path = ASSETS / f"{name}.tflite"
    return path, TfliteModel.load(path), np.load(ASSETS / f"{name}_inputs.npy")


@pytest.mark.parametrize("name", MODELS)
def test_models_equal_litert_on_golden(name):
    path, model, inputs = _model(name)
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
    path, model, inputs = _model(name)
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
                                  "keras_conv_transpose"])
def test_models_equal_litert_on_the_rtl_in_the_predicted_cycles(name):
    _sim_run(name, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "mobilenet_v1_025"])
def test_larger_models_equal_litert_on_the_rtl(name):
    _sim_run(name, 1)


@pytest.mark.parametrize("name", ["resnet8", "mobilenet_v1_025"])
def test_models_stay_resident_on_the_85f_and_stay_exact(name):
    """With the ULX3S-85F's params every layer's weights stay on the device. ResNet-8 runs whole
    on chip, one call an image: its 32x32 convs in two bands of output rows, two of them over
    their dying inputs bottom up (sw/map_placement.py). MobileNet's 96x96 input a word a pixel
    would exceed the activation SRAM; in 2x2 blocks (sw/space_to_depth.py) its first conv is a
    2x2 conv of stride 1 over a 48x48 map, and the whole model runs on chip, the 48x48 maps
    each over its dying input."""
    from boards import get_board
    path, model, inputs = _model(name)
    feeds = {model.input_names[0]: inputs[:2]}
    with open_device("golden", get_board("ulx3s-85f").params) as device:
        model.run(device, feeds, resident=True)
        got = model.run(device, feeds, resident=True)
        allocation = device.resident.allocation
    assert len(allocation.residences) == len(model.layers)
    if name == "resnet8":
        (graph,) = allocation.graphs.values()
        assert graph.layers == tuple(range(len(model.layers))) and not allocation.chains
        assert model.model.vector_on_host == [] and len(model.programs) == 1
        assert len(graph.descending) == 2
        first_rows = {f["first_row"] for f in _headers(model, isa.Opcode.CONV_GEOMETRY)}
        assert first_rows == {0, 16}
    else:
        walked = [layer.in_size[0] for layer in model.layers if layer.addressed(device.params)]
        first = model.layers[0]
        assert max(walked) == 48 and first.in_size == (48, 48)
        assert (first.conv.kernel, first.conv.strides) == ((2, 2), (1, 1))
        # Its 2,738 requantization entries exceed the 85F's 2,048: seven layers of 128 stream
        # through a window of 128 at the bottom, loaded by each call; the model runs whole,
        # input to classifier sums, as one call.
        (graph,) = allocation.graphs.values()
        assert graph.layers == tuple(range(len(model.layers)))
        streamed = [r for r in allocation.residences.values() if r.streamed_qparams]
        assert len(streamed) == 7 and {r.qparam_base for r in streamed} == {0}
        assert all(r.qparam_base >= 128 for r in allocation.residences.values()
                   if not r.streamed_qparams)
        assert model.model.vector_on_host == [] and len(model.programs) == 1
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


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
    _, default, _ = _model("ds_cnn")
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
        _, model, _ = _model(name)
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
    _, conv1d, _ = _model("keras_conv1d")
    assert [p.where for p in conv1d.placements if p.op == "MAX_POOL_2D"] == ["device"]
    # A tensor without the batch axis makes a batch run image by image (as LiteRT runs it);
    # the others run a batch at once.
    assert _model("keras_se_sequence")[1].per_image
    assert not any(_model(name)[1].per_image for name in ("resnet8", "keras_cnn"))


def test_a_depthwise_conv_on_the_array_chains_on_chip():
    """DS-CNN on the 85F's core: its depthwise convs run on the array, walked depthwise (each
    output tile over its own 16 channels: nine K tiles, not 9 x 4), and its global pooling on
    the vector unit, so all nine convs, the pooling and the classifier chain on chip: a call
    sends little more than its input and receives little more than the classifier's twelve
    int32 sums."""
    from boards import get_board
    path, model, inputs = _model("ds_cnn")
    feeds = {model.input_names[0]: inputs[:1]}
    with open_device("golden", get_board("ulx3s-85f").params) as device:
        model.run(device, feeds, resident=True)
        stats = device.host.stats
        sent, received = stats.wire_bytes_sent, stats.wire_bytes_received
        got = model.run(device, feeds, resident=True)
        sent, received = stats.wire_bytes_sent - sent, stats.wire_bytes_received - received
        assert device.resident.allocation.chains == {0: tuple(range(10))}
    matmuls = [isa.decode_fields(isa.Opcode.MATMUL, header[1:])
               for call in model.programs for headers in call.program.executes
               for header in headers if header[0] == isa.Opcode.MATMUL.value]
    depthwise = [f for f in matmuls if f["flags"] & isa.MatmulFlags.DEPTHWISE.value]
    assert [(f["k_tiles"], f["n_tiles"]) for f in depthwise] == [(9, 4)] * 4
    assert sent < 2 * inputs[0].size
    assert received < 2 * 12 * 4
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn", "resnet8", "mobilenet_v1_025"])
def test_models_run_on_chip_on_the_85fs_rtl(name):
    """DS-CNN's chain (nine convs, the pooling on the vector unit, the classifier), ResNet-8
    whole (convs in bands, maps in place, the adds on the vector unit) and MobileNetV1 whole
    (its input in pixel blocks, seven layers' requantization entries streamed through a
    window) on the 85F's core in RTL, its weight tile stacked of two memories: equal to
    LiteRT, in the predicted cycles, one call an inference (a 16x16 build: ~75 s, runs ~25 s
    each)."""
    from boards import get_board
    path, model, inputs = _model(name)
    feeds = {model.input_names[0]: inputs[:2]}
    with open_device("sim", get_board("ulx3s-85f").params) as device:
        got, cycles, allocation = _second_call(device, model, feeds)
    assert len(model.programs) == 1 and model.model.vector_on_host == []
    layers = len(model.layers)
    if name == "ds_cnn":
        assert allocation.chains == {0: tuple(range(layers))}
    else:
        assert [graph.layers for graph in allocation.graphs.values()] == [tuple(range(layers))]
    streamed = {i for i, r in allocation.residences.items() if r.streamed_qparams}
    assert len(streamed) == (7 if name == "mobilenet_v1_025" else 0)
    assert cycles == sum(model.predicted_cycles().values())
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


def _second_call(device, model, feeds):
    """A resident model's second call on ``device`` (the first loads it): its outputs, its
    working cycles and the device's allocation."""
    model.run(device, feeds, resident=True)
    before = device.read_counters()["cycles"]
    got = model.run(device, feeds, resident=True)
    cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
    return got, cycles, device.resident.allocation


def _headers(model, opcode: isa.Opcode) -> list[dict]:
    """The fields of every ``opcode`` instruction of the model's last calls."""
    return [isa.decode_fields(opcode, header[1:]) for call in model.programs
            for headers in call.program.executes for header in headers
            if header[0] == opcode.value]


@pytest.mark.parametrize("device_url", ["golden", "sim"])
def test_max_pooling_chains_on_chip(device_url):
    """The Keras CNN's two MAX_POOL_2D run on the vector unit (``POOL``) between its convs:
    conv, pooling, conv, pooling are one call on the default core, each map in the activation
    SRAM, the last pooled map read back for the classifier. Equal to LiteRT, in the predicted
    cycles."""
    path, model, inputs = _model("keras_cnn")
    assert [p.where for p in model.placements if p.op == "MAX_POOL_2D"] == ["device"] * 2
    feeds = {model.input_names[0]: inputs[:3]}
    with open_device(device_url, RillParams()) as device:
        got, cycles, allocation = _second_call(device, model, feeds)
    (graph,) = allocation.graphs.values()
    assert graph.layers == (0, 1) and model.model.vector_on_host == []
    pools = _headers(model, isa.Opcode.POOL)
    assert [(f["out_h"], f["average"]) for f in pools] == [(7, 0), (3, 0)] * 3
    assert cycles == sum(model.predicted_cycles().values())
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


@pytest.mark.parametrize("device_url", ["golden", "sim"])
@pytest.mark.parametrize("name", ["residual_tiny", "mobilenet_v2_tiny"])
def test_a_residual_network_runs_whole_on_chip(device_url, name):
    """Two ResNet stacks (identity and strided 1x1 shortcuts), or three MobileNetV2 blocks
    (ReLU6 clamped in the requantizer, depthwise convs walked depthwise, residual adds, MEAN for
    the pooling), the pooling and the classifier on the default core, resident: one call per
    batch (sw/graph_chain.py), the maps between the layers at their own activation-SRAM
    addresses, the adds and the pooling on the vector unit; the input goes in, the classifier's
    sums come out. Equal to LiteRT, in the predicted cycles."""
    path, model, inputs = _model(name)
    feeds = {model.input_names[0]: inputs[:3]}
    with open_device(device_url, RillParams()) as device:
        model.run(device, feeds, resident=True)
        stats = device.host.stats
        received = stats.wire_bytes_received
        before = device.read_counters()["cycles"]
        got = model.run(device, feeds, resident=True)
        cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
        received = stats.wire_bytes_received - received
        allocation = device.resident.allocation
    (graph,) = allocation.graphs.values()
    assert graph.layers == tuple(range(len(model.layers))) and not allocation.chains
    assert model.model.vector_on_host == [] and len(model.programs) == 1
    assert cycles == sum(model.predicted_cycles().values())
    assert received < 2 * 3 * 4 * 4 + 200   # 3 x 4 int32 sums, headers and framing
    if name == "mobilenet_v2_tiny":
        depthwise = [f for f in _headers(model, isa.Opcode.MATMUL)
                     if f["flags"] & isa.MatmulFlags.DEPTHWISE.value]
        assert len(depthwise) == 3 * 3   # three depthwise convs, three images
        configs = [isa.Config.from_fields(f) for f in _headers(model, isa.Opcode.CONFIG)]
        assert any(config.clamp for config in configs)
        assert len(_headers(model, isa.Opcode.MEAN)) == 3   # GlobalAveragePooling2D's MEAN
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


#: A core with few accumulator rows and requantization entries (one simulator build for both
#: tests below).
FEW_ROWS_AND_ENTRIES = RillParams(acc_depth=64, qparam_depth=64)


@pytest.mark.parametrize("device_url", ["golden", "sim"])
def test_entries_beyond_the_qparam_sram_stream_through_a_window(device_url):
    """The small residual network's 76 requantization entries on a core that holds 64: its
    three layers of 8 stream through a window of 8 at the bottom of the qparam SRAM, each call
    loading them just before the layer runs (sw/resident.py), the others stay. Still one call
    for the whole model, equal to LiteRT, in the predicted cycles."""
    path, model, inputs = _model("residual_tiny")
    feeds = {model.input_names[0]: inputs[:2]}
    with open_device(device_url, FEW_ROWS_AND_ENTRIES) as device:
        got, cycles, allocation = _second_call(device, model, feeds)
    streamed = [r for r in allocation.residences.values() if r.streamed_qparams]
    assert len(streamed) == 3 and {r.qparam_base for r in streamed} == {0}
    assert all(r.qparam_base >= 8 for r in allocation.residences.values()
               if not r.streamed_qparams)
    (graph,) = allocation.graphs.values()
    assert graph.layers == tuple(range(len(model.layers))) and len(model.programs) == 1
    loads = _headers(model, isa.Opcode.LOAD_QPARAMS)
    assert [(f["addr"], f["count"]) for f in loads] == [(0, 8)] * 3 * 2   # 3 layers, 2 images
    assert cycles == sum(model.predicted_cycles().values())
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


@pytest.mark.parametrize("device_url", ["golden", "sim"])
def test_a_residual_network_runs_in_bands_where_the_accumulators_hold_few_rows(device_url):
    """MobileNetV2's blocks on a core with 64 accumulator rows (and 64 requantization entries,
    so that most of its layers' entries stream, as in the test above): convs whose output rows
    outnumber them run in bands (a CONV_GEOMETRY, MATMUL and STORE each; a map of two channel
    blocks a STORE a block), some over their dying input bottom up (sw/map_placement.py).
    Still one call, equal to LiteRT, in the predicted cycles; the RTL checks no STORE meets a
    read (hw/sram.py)."""
    path, model, inputs = _model("mobilenet_v2_tiny")
    feeds = {model.input_names[0]: inputs[:1]}
    with open_device(device_url, FEW_ROWS_AND_ENTRIES) as device:
        got, cycles, allocation = _second_call(device, model, feeds)
    (graph,) = allocation.graphs.values()
    assert graph.descending and len(model.programs) == 1
    assert max(f["first_row"] for f in _headers(model, isa.Opcode.CONV_GEOMETRY)) > 0
    stored = [f for f in _headers(model, isa.Opcode.STORE)
              if f["flags"] & isa.StoreFlags.TO_ACTS.value]
    assert any(f["acc_addr"] > 0 for f in stored)   # a band's second channel block
    assert cycles == sum(model.predicted_cycles().values())
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


def test_cli_runs_a_residual_network_on_chip_with_resident(tmp_path):
    """``sw run --resident``: the small residual network as one call, nothing computed on the
    host but the classifier's requantization and the softmax; without it, each layer a call
    and the adds and pooling on the host, saying so. Both equal LiteRT."""
    np.save(tmp_path / "x.npy", np.load(ASSETS / "residual_tiny_inputs.npy")[:3])
    run = [sys.executable, "-m", "sw", "run", str(ASSETS / "residual_tiny.tflite"),
           "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
           "--device", "golden", "--compare", "litert"]
    resident = subprocess.run([*run, "--resident"], capture_output=True, text=True)
    assert resident.returncode == 0, resident.stderr
    assert "computed on the host" not in resident.stderr
    assert "1 device program(s)" in resident.stdout and "equal (12 outputs)" in resident.stdout
    layered = subprocess.run(run, capture_output=True, text=True)
    assert layered.returncode == 0, layered.stderr
    assert "#3 ADD, #7 ADD, #8 AVERAGE_POOL_2D" in layered.stderr
    assert "equal (12 outputs)" in layered.stdout


def test_cli_says_which_entries_stream(tmp_path):
    """``sw run --resident`` says what each call sends besides the activations: MobileNetV1 on
    the 85F's params, seven layers' requantization entries (the model has 2,738, the SRAM
    2,048); one call, equal to LiteRT."""
    np.save(tmp_path / "x.npy", np.load(ASSETS / "mobilenet_v1_025_inputs.npy")[:1])
    result = subprocess.run(
        [sys.executable, "-m", "sw", "--board-params", "ulx3s-85f", "run",
         str(ASSETS / "mobilenet_v1_025.tflite"), "--input", str(tmp_path / "x.npy"),
         "--output", str(tmp_path / "y.npy"), "--device", "golden", "--compare", "litert",
         "--resident"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("requantization entries streamed with each call: 7 layers' 896 (10,752 bytes; the "
            "model has 2,738, the device's qparam SRAM 2,048" in result.stderr)
    assert "1 device program(s)" in result.stdout and "equal (2 outputs)" in result.stdout


def test_an_add_of_a_constant_runs_on_the_host():
    """A constant operand (stored without the batch dimension) is the model's constant, in the
    layout its reader takes; the ADD then broadcasts it on the host."""
    _, model, _ = _model("const_add")
    (add,) = [p for p in model.placements if p.op == "ADD"]
    assert (add.where, add.why) == ("host", "an operand is a constant")
    assert [c.shape for c in model.model.constants.values()] == [(8, 8, 8)]


def test_a_stretch_ending_in_the_vector_unit_reads_its_map_back():
    """With a weight SRAM that holds only the first block's convs, the stretch on chip ends at
    the block's ADD: its sum comes back by READ_ACTS (a map, as NCHW) for the layers after it."""
    params = replace(RillParams(), weight_depth=512)
    path, _, inputs = _model("residual_tiny")
    model = TfliteModel.load(path, params)
    feeds = {model.input_names[0]: inputs[:2]}
    with open_device("golden", params) as device:
        model.run(device, feeds, resident=True)
        before = device.read_counters()["cycles"]
        got = model.run(device, feeds, resident=True)
        cycles = device.read_counters()["cycles"] - before - counter_read_cost(params)
        (graph,) = device.resident.allocation.graphs.values()
    assert model.model.steps[graph.last].name == "#3 ADD" and graph.layers == (0, 1, 2)
    assert cycles == sum(model.predicted_cycles().values())
    for key, want in litert_run(path, feeds).items():
        assert np.array_equal(got[key], want)


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
    data = _with_operator("ds_cnn", 9, tflite.BuiltinOperator.EXP)
    assert read_tflite(data).operators[9].name == "EXP"
    with pytest.raises(UnsupportedTfliteOperator, match=r"#9 \(EXP\).*Supported: CONV_2D"):
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
    _, model, inputs = _model("autoencoder")
    with open_device("golden", RillParams()) as device:
        with pytest.raises(TfliteImportError, match="must be int8, got float32"):
            model.run(device, {model.input_names[0]: inputs.astype(np.float32)})
        with pytest.raises(TfliteImportError, match="the model takes"):
            model.run(device, {"nonesuch": inputs})
        with pytest.raises(TfliteImportError, match="shape"):
            model.run(device, {model.input_names[0]: inputs[:, :100]})


def test_cli_runs_a_tflite_model_and_compares_with_litert(tmp_path):
    _, model, inputs = _model("ds_cnn")
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

"""TFLite models whose stretches run on chip (``sw/graph_chain.py``, ``sw/chain.py``) with
their weights resident: one call an inference, the maps between layers in the activation SRAM,
the vector unit's adds and poolings among them; on golden and on the RTL, equal to LiteRT, in
the predicted cycles."""

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
from sw.tflite_import import TfliteModel


@pytest.mark.parametrize("name", ["resnet8", "mobilenet_v1_025"])
def test_models_stay_resident_on_the_85f_and_stay_exact(name):
    """With the ULX3S-85F's params every layer's weights stay on the device. ResNet-8 runs whole
    on chip, one call an image: its 32x32 convs in two bands of output rows, two of them over
    their dying inputs bottom up (sw/map_placement.py). MobileNet's 96x96 input a word a pixel
    would exceed the activation SRAM; in 2x2 blocks (sw/space_to_depth.py) its first conv is a
    2x2 conv of stride 1 over a 48x48 map, and the whole model runs on chip, the 48x48 maps
    each over its dying input."""
    from boards import get_board
    path, model, inputs = load_asset(name)
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


def test_a_depthwise_conv_on_the_array_chains_on_chip():
    """DS-CNN on the 85F's core: its depthwise convs run on the array, walked depthwise (each
    output tile over its own 16 channels: nine K tiles, not 9 x 4), and its global pooling on
    the vector unit, so all nine convs, the pooling and the classifier chain on chip: a call
    sends little more than its input and receives little more than the classifier's twelve
    int32 sums."""
    from boards import get_board
    path, model, inputs = load_asset("ds_cnn")
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
    path, model, inputs = load_asset(name)
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
    path, model, inputs = load_asset("keras_cnn")
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
    path, model, inputs = load_asset(name)
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
    path, model, inputs = load_asset("residual_tiny")
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
    path, model, inputs = load_asset("mobilenet_v2_tiny")
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


def test_a_stretch_ending_in_the_vector_unit_reads_its_map_back():
    """With a weight SRAM that holds only the first block's convs, the stretch on chip ends at
    the block's ADD: its sum comes back by READ_ACTS (a map, as NCHW) for the layers after it."""
    params = replace(RillParams(), weight_depth=512)
    path, _, inputs = load_asset("residual_tiny")
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

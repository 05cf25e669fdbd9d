"""Resident weights (``sw.resident``): loaded once, each call sends its activations and
instructions only, outputs still exactly onnxruntime's, cycles still predicted exactly."""

import numpy as np
import pytest

from sw import oracle
from sw.bench import counter_read_cost
from sw.device import open_device
from sw.models import autoencoder, quantize, train_mlp
from sw.onnx_import import RillModel
from sw.program import Program
from sw.resident import allocate, streamed_entries


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    float_model = train_mlp()
    path = quantize(float_model, tmp_path_factory.mktemp("mlp"), per_channel=True)
    return path, {"input": float_model.test_inputs[:24]}


def _call(device, model, feeds, resident):
    """Outputs, bytes sent and working cycles of one call; the model's predicted cycles."""
    stats = device.host.stats
    sent, before = stats.wire_bytes_sent, device.read_counters()["cycles"]
    outputs = model.run(device, feeds, resident=resident)
    cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
    return outputs, stats.wire_bytes_sent - sent, cycles, sum(model.predicted_cycles().values())


@pytest.mark.parametrize("url", ["golden", "sim"])
def test_resident_calls_send_no_weights_and_stay_exact(mlp, url):
    path, feeds = mlp
    expected = oracle.run(path, feeds)
    model = RillModel.load(path)
    with open_device(url) as device:
        _, streamed, _, _ = _call(device, model, feeds, resident=False)
        first, _, _, _ = _call(device, model, feeds, resident=True)   # loads the weights
        again, sent, cycles, predicted = _call(device, model, feeds, resident=True)
        chains = device.resident.allocation.chains
    # Both layers run as one program: the hidden layer's outputs stay in the activation SRAM.
    assert chains == {0: (0, 1)} and len(model.programs) == 1
    m, n = feeds["input"].shape[0], expected["logits"].shape[1]
    assert model.programs[0].response_bytes == 4 + m * n
    allocation = allocate(device.params, [layer.compiled(device.params)
                                          for layer in model.layers])
    assert len(allocation.residences) == len(model.layers) == 2
    weight_bytes = sum(r.weight_words for r in allocation.residences.values()) * \
        device.params.cols
    assert sent <= streamed - weight_bytes
    assert cycles == predicted
    for outputs in (first, again):
        for name, value in expected.items():
            assert np.array_equal(outputs[name], value), name


def test_a_foreign_program_makes_the_model_load_again(mlp):
    """Any command stream may overwrite the SRAMs: the device forgets what was resident, and the
    next call loads the weights again. Had it not forgotten, the zeroed weights would show."""
    path, feeds = mlp
    expected = oracle.run(path, feeds)
    model = RillModel.load(path)
    with open_device("golden") as device:
        model.run(device, feeds, resident=True)
        top = device.params.weight_depth
        wipe = Program(device.params)
        wipe.load_weights(top // 2, np.zeros((top - top // 2, device.params.cols), np.uint8))
        device.execute(wipe.to_bytes(), 0)
        assert device.resident is None
        got = model.run(device, feeds, resident=True)
        assert np.array_equal(got["logits"], expected["logits"])
        # The control: the same wipe, kept secret from the model, corrupts its answer.
        device.execute(wipe.to_bytes(), 0, keeps_resident=True)
        wrong = model.run(device, feeds, resident=True)
        assert not np.array_equal(wrong["logits"], expected["logits"])


def test_a_model_larger_than_the_sram_streams_the_rest(tmp_path):
    """The autoencoder's 264k weights against an 8x8 core's 16 KiB: the small layers reside, the
    large ones stream below them, and the answer is still exact."""
    float_model = autoencoder(samples=32)
    path = quantize(float_model, tmp_path)
    feeds = {"input": float_model.test_inputs[:5]}
    model = RillModel.load(path)
    with open_device("golden") as device:
        model.run(device, feeds, resident=True)
        got = model.run(device, feeds, resident=True)
        allocation = device.resident.allocation
    assert 0 < len(allocation.residences) < len(model.layers)
    top = min(r.weight_base for r in allocation.residences.values())
    assert allocation.streaming_params.weight_depth == top
    assert np.array_equal(got["logits"], oracle.run(path, feeds)["logits"])


@pytest.mark.parametrize("activation_type", ["QInt8", "QUInt8"])
def test_chained_layers_equal_layer_by_layer(tmp_path, activation_type):
    """The autoencoder's ten layers as one chain on a core that holds them all (the ULX3S-85F's
    array with a larger weight SRAM): only the input and the output cross the link, and the
    outputs are the layer-by-layer calls' and onnxruntime's, uint8 tensors between layers
    included (kept as int8 on chip)."""
    from dataclasses import replace

    from hw.params import RillParams
    float_model = autoencoder(samples=32)
    path = quantize(float_model, tmp_path, activation_type=activation_type)
    feeds = {"input": float_model.test_inputs[:3]}
    params = RillParams(rows=16, cols=16, act_depth=2048, weight_depth=20480, acc_depth=1024,
                        qparam_depth=2048)
    model = RillModel.load(path)
    with open_device("golden", params) as device:
        streamed = model.run(device, feeds)
        chained = model.run(device, feeds, resident=True)
        assert device.resident.allocation.chains == {0: tuple(range(10))}
        assert len(model.programs) == 1
        assert model.programs[0].response_bytes == 4 + 3 * 640
    with open_device("golden", replace(params, store_to_acts=False)) as device:
        unchained = model.run(device, feeds, resident=True)
        assert device.resident.allocation.chains == {}
    expected = oracle.run(path, feeds)
    for outputs in (streamed, chained, unchained):
        assert np.array_equal(outputs["logits"], expected["logits"])


def test_the_fewest_entries_stream():
    """Which layers' requantization entries stream (sw/resident.py): none where all fit; else
    the window size that streams fewest, largest layers first within it. MobileNetV1's 2,738
    entries against the 85F's 2,048: seven layers of 128 through a window of 128 (896 entries a
    call), where the three of 256 and two of 128 through a window of 256 would be 1,024."""
    assert streamed_entries([8, 16, 4], 28) == (0, set())
    mobilenet = [8, 8, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, 128, 128, 128, 128, 128, 128,
                 128, 128, 128, 128, 128, 128, 256, 256, 256, 2]
    assert sum(mobilenet) == 2738
    window, streamed = streamed_entries(mobilenet, 2048)
    assert window == 128 and len(streamed) == 7
    assert {mobilenet[i] for i in streamed} == {128}
    assert sum(mobilenet) - 7 * 128 <= 2048 - window
    # A layer larger than the whole SRAM has no window; small ones may all stream.
    assert streamed_entries([80, 8], 60) is None
    assert streamed_entries([40, 40, 40], 60) == (40, {0, 1, 2})

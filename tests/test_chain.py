"""Models on chip: a conv walked on the device, its feature map flattened into the Gemm after it
and both run by one RUN from the program memory; outputs exactly onnxruntime's, cycles exactly
predicted, and per inference only the image and the logits (and a few headers) on the wire."""

from dataclasses import replace

import numpy as np
import pytest

from hw.params import RillParams
from sw import oracle
from sw.bench import counter_read_cost
from sw.compiler import QuantizedLinear
from sw.device import open_device
from sw.flatten import fmap_linear, fmap_order
from sw.models import QUANT_VARIANTS, conv_stack, quantize
from sw.onnx_import import RillModel

#: An 8x8 core with room for the whole conv model (its Gemm reads 64 words of 8 channels).
PARAMS = RillParams(weight_depth=2048)


def _call(device, model, feeds):
    """Outputs, bytes each way and working cycles of one resident call; the prediction."""
    stats = device.host.stats
    before = device.read_counters()["cycles"]
    sent, received = stats.wire_bytes_sent, stats.wire_bytes_received
    outputs = model.run(device, feeds, resident=True)
    sent, received = stats.wire_bytes_sent - sent, stats.wire_bytes_received - received
    cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
    return outputs, sent, received, cycles, sum(model.predicted_cycles().values())


@pytest.mark.parametrize("variant", [v[0] for v in QUANT_VARIANTS])
def test_every_conv_variant_chains_and_stays_exact(zoo, variant):
    path, float_model = zoo[f"conv-{variant}"]
    feeds = {"input": float_model.test_inputs[:5]}
    model = RillModel.load(path)
    with open_device("golden", PARAMS) as device:
        model.run(device, feeds, resident=True)
        got = model.run(device, feeds, resident=True)
        assert device.resident.allocation.chains == {0: (0, 1)}
    assert len(model.programs) == 1
    expected = oracle.run(path, feeds)
    for name, value in expected.items():
        assert np.array_equal(got[name], value), name


@pytest.mark.parametrize("url", ["golden", "sim"])
def test_a_resident_conv_model_moves_its_input_and_output_only(zoo, url):
    """Batch 1: the 8x8 image in (64 bytes), ten logits out, and at most 64 bytes of headers
    and framing besides; the device's cycles are the prediction, the first call's (which
    stores the program) and the second's."""
    path, float_model = zoo["conv-qdq-tensor-s8"]
    feeds = {"input": float_model.test_inputs[:1]}
    model = RillModel.load(path)
    expected = oracle.run(path, feeds)
    with open_device(url, PARAMS) as device:
        first = _call(device, model, feeds)   # loads the weights, then stores the program
        outputs, sent, received, cycles, predicted = _call(device, model, feeds)
    assert first[3] == model.model.load_program.predicted_cycles + first[4]
    assert cycles == predicted
    io = feeds["input"].size + expected["logits"].size
    assert sent + received <= io + 64, (sent, received)
    for got in (first[0], outputs):
        assert np.array_equal(got["logits"], expected["logits"])


def test_without_chaining_the_layers_run_one_by_one_and_agree(zoo):
    """The same model on a core without STORE to the activation SRAM: no chain, the conv's
    output through the host, the same logits."""
    path, float_model = zoo["conv-qdq-channel-u8"]
    feeds = {"input": float_model.test_inputs[:4]}
    model = RillModel.load(path)
    with open_device("golden", replace(PARAMS, store_to_acts=False)) as device:
        got = model.run(device, feeds, resident=True)
        assert device.resident.allocation.chains == {}
    assert np.array_equal(got["logits"], oracle.run(path, feeds)["logits"])


@pytest.mark.parametrize("kc", [4, 8, 16])
def test_feature_map_order_keeps_every_product(kc):
    """A Gemm over a flattened (channels, pixels) map: reordering its weight rows and its
    inputs alike (zero rows and inputs past the last channel) gives the same sums."""
    rng = np.random.default_rng(kc)
    channels, pixels, n = 6, 10, 5
    x = rng.integers(-128, 128, (3, channels * pixels))
    w = rng.integers(-128, 128, (channels * pixels, n))
    moved = fmap_linear(QuantizedLinear(weights=w), channels, pixels, kc).weights
    assert moved.shape == (-(-channels // kc) * kc * pixels, n)
    assert np.array_equal(fmap_order(x, channels, pixels, kc) @ moved, x @ w)


@pytest.mark.parametrize("url,activation_type",
                         [("golden", "QInt8"), ("golden", "QUInt8"), ("sim", "QInt8")])
def test_convs_chain_map_to_map(tmp_path, url, activation_type):
    """Two convs (the second stride 2) and a Gemm as one chain: the first conv's map stays in
    the activation SRAM for the second to walk; exactly onnxruntime's logits."""
    float_model = conv_stack()
    path = quantize(float_model, tmp_path, activation_type=activation_type)
    feeds = {"input": float_model.test_inputs[:6]}
    model = RillModel.load(path)
    with open_device(url, PARAMS) as device:
        got = model.run(device, feeds, resident=True)
        assert device.resident.allocation.chains == {0: (0, 1, 2)}
    assert len(model.programs) == 1
    assert np.array_equal(got["logits"], oracle.run(path, feeds)["logits"])

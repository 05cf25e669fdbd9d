"""``python -m sw bench --models``: whole models' cycles, wire bytes and link bounds."""

import pytest

from sw.bench_models import LinkPace, measure_model
from sw.device import open_device
from sw.models import AUTOENCODER_WIDTHS, autoencoder, quantize
from sw.onnx_import import RillModel

ICEBREAKER = LinkPace("icebreaker", 21e6, 3_000_000)


def test_a_uart_byte_is_ten_bit_times_of_the_core_clock():
    # The iCEBreaker's 21 MHz core at 3 Mbaud: 7 clocks per bit (boards/icebreaker.py).
    assert ICEBREAKER.cycles_per_byte == 70


@pytest.fixture(scope="module")
def autoencoder_model(tmp_path_factory):
    float_model = autoencoder(samples=64)
    return float_model, RillModel.load(quantize(float_model, tmp_path_factory.mktemp("ae")))


def test_the_autoencoder_has_mlperf_tinys_shape(autoencoder_model):
    _, model = autoencoder_model
    assert [layer.linear.weights.shape for layer in model.layers] == \
        list(zip(AUTOENCODER_WIDTHS, AUTOENCODER_WIDTHS[1:]))


# On the RTL the autoencoder's 264k weights cross the simulated link: over a minute, a
# benchmark's run (slow); the RTL's counters against the prediction are checked in the default
# run by the bench's GEMMs (tests/test_cli.py) and every model test on the sim device.
@pytest.mark.parametrize("url", ["golden", pytest.param("sim", marks=pytest.mark.slow)])
def test_whole_model_cycles_are_predicted_and_bytes_counted(autoencoder_model, url):
    """The device's own cycle count for a whole model equals the compiler's prediction, on the
    RTL too; the link carries at least the weights (nothing is resident yet)."""
    float_model, model = autoencoder_model
    feeds = {model.input_names[0]: float_model.test_inputs[:3]}
    with open_device(url) as device:
        row = measure_model(device, "autoencoder", model, feeds, [ICEBREAKER])
    assert row.device_cycles == row.predicted_cycles
    weights = sum(layer.linear.weights.size for layer in model.layers)
    assert row.bytes_sent > weights and row.io_bytes == 3 * (640 + 640)

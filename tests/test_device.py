"""The Device API on the golden model and on the RTL behind the co-simulation bridge."""

import numpy as np
import pytest

from hw.params import RillParams
from sim.cases import expectations, random_gemm_program
from sw.device import DeviceError, GoldenDevice, ParamsMismatch, open_device
from sw.program import Program

SMALL = RillParams(rows=4, cols=4, act_depth=256, weight_depth=256, acc_depth=256,
                   qparam_depth=64)


def test_params_mismatch_is_refused():
    device = GoldenDevice(SMALL)
    device.params = RillParams()
    with pytest.raises(ParamsMismatch, match="rebuild the bitstream or pass matching"):
        device.check_params()


def test_unknown_url_is_a_clear_error():
    with pytest.raises(DeviceError, match="unknown device URL"):
        open_device("tcp:/nowhere")


@pytest.mark.parametrize("batch", [None, 37], ids=["default", "batches-of-37-cycles"])
def test_sim_device_runs_programs_like_the_golden_model(monkeypatch, batch):
    """With the bridge's batches short (``RILL_BRIDGE_BATCH``) they end during MATMULs, in the
    middle of frames and while the testbench sleeps through work (a batch's last cycle once
    asked for a negative timer)."""
    if batch is not None:
        monkeypatch.setenv("RILL_BRIDGE_BATCH", str(batch))
    rng = np.random.default_rng(4)
    connect = Program(SMALL)
    connect.info()   # what open_device sends to check the params
    named = [(f"gemm{i}", random_gemm_program(SMALL, rng, max_m=20, max_k=20, max_n=10))
             for i in range(4)]
    _, *exps = expectations(SMALL, [("connect", connect), *named])
    with open_device("sim", SMALL) as device:
        proc = device._proc
        for exp in exps:
            got = bytearray(device.execute(exp.program.to_bytes(), len(exp.expected)))
            # Every byte, the cycles counter included, but the stall counter: a command split
            # across TCP segments can leave the core waiting for a byte for a cycle.
            for offset in exp.counter_offsets:
                got[offset + 8:offset + 12] = exp.expected[offset + 8:offset + 12]
            assert bytes(got) == exp.expected, exp.name
    assert proc.poll() is not None, "closing the device must end the simulation"

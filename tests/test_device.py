"""The Device API on the golden model and on the RTL behind both co-simulation bridges: the C++
harness (``sim``) and cocotb (``sim+cocotb``)."""

import numpy as np
import pytest
from support.params import SMALL

from hw import isa
from hw.isa import Opcode, Precision
from hw.params import RillParams
from sim.cases import counters_in, expectations, random_gemm_program
from sw.device import DeviceError, ParamsMismatch, device_kinds, open_device
from sw.program import Program, gemm_program


def test_params_mismatch_is_refused():
    with open_device("golden", SMALL) as device:
        device.params = RillParams()
        with pytest.raises(ParamsMismatch, match="rebuild the bitstream or pass matching"):
            device.check_params()


def test_unknown_url_is_a_clear_error():
    with pytest.raises(DeviceError, match="unknown device URL"):
        open_device("tcp:/nowhere")


def test_simulated_devices_are_registered_kinds():
    assert {"sim", "sim+cocotb"} <= set(device_kinds())


def test_options_are_refused_where_a_device_takes_none():
    with pytest.raises(DeviceError, match="takes no options"):
        open_device("golden", SMALL, trace="wave.vcd")


#: The waveform test's core: a traced build of its own, so the smallest that runs a GEMM.
TRACED = RillParams(rows=2, cols=2, act_depth=64, weight_depth=64, acc_depth=64, qparam_depth=16,
                    program_depth=16, vector_unit=False)


def _programs(seed: int, params: RillParams = SMALL):
    rng = np.random.default_rng(seed)
    connect = Program(params)
    connect.info()   # what open_device sends to check the params
    named = [(f"gemm{i}", random_gemm_program(params, rng, max_m=20, max_k=20, max_n=10))
             for i in range(4)]
    _, *exps = expectations(params, [("connect", connect), *named])
    return exps


def _run(url: str, exps, params: RillParams = SMALL, **options) -> list[bytearray]:
    """Every response, its stall counters zeroed: a command split across TCP segments can leave
    the core waiting for a byte for a cycle, so only ``stalls`` depends on wall-clock time."""
    stalls = 4 * isa.COUNTER_NAMES.index("stalls")
    out = []
    with open_device(url, params, **options) as device:
        proc = device._proc
        for exp in exps:
            got = bytearray(device.execute(exp.program.to_bytes(), len(exp.expected)))
            for offset in exp.counter_offsets:
                got[offset + stalls:offset + stalls + 4] = bytes(4)
            out.append(got)
    assert proc.poll() is not None, "closing the device must end the simulation"
    return out


def _without_stalls(exp) -> bytes:
    expected = bytearray(exp.expected)
    stalls = 4 * isa.COUNTER_NAMES.index("stalls")
    for offset in exp.counter_offsets:
        expected[offset + stalls:offset + stalls + 4] = bytes(4)
    return bytes(expected)


@pytest.mark.parametrize("batch", [None, 37], ids=["default", "batches-of-37-cycles"])
def test_sim_device_runs_programs_like_the_golden_model(batch):
    """With short batches (37 cycles) the harness looks at the socket during MATMULs and in the
    middle of frames; every payload and the deterministic counters (cycles, busy, instructions)
    are still the golden model's."""
    exps = _programs(4)
    for exp, got in zip(exps, _run("sim", exps, **({"batch": batch} if batch else {}))):
        assert bytes(got) == _without_stalls(exp), exp.name


def test_both_bridges_give_the_same_answers(monkeypatch):
    """The same programs through the C++ harness and the cocotb bridge (with 37-cycle batches,
    so that its batches end in every state): equal payloads and deterministic counters, each
    the golden model's."""
    monkeypatch.setenv("RILL_BRIDGE_BATCH", "37")
    exps = _programs(5)
    harness, cocotb = _run("sim", exps), _run("sim+cocotb", exps)
    for exp, fast, slow in zip(exps, harness, cocotb):
        assert fast == slow, exp.name
        assert bytes(fast) == _without_stalls(exp), exp.name


def test_sim_device_writes_a_waveform_window(tmp_path):
    """``trace`` with a window: a VCD whose timestamps lie only in the cycles asked for."""
    wave = tmp_path / "wave.vcd"
    exps = _programs(6, TRACED)[:2]
    _run("sim", exps, TRACED, trace=wave, trace_cycles=(10, 40))
    text = wave.read_text()
    assert "$enddefinitions" in text and " idle " in text
    stamps = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    # Two dumps per cycle, at 2c+2 and 2c+3 (see sim/harness/harness.cpp).
    assert stamps and min(stamps) == 2 * 10 + 2 and max(stamps) == 2 * 39 + 3, stamps[:4]


def test_trace_needs_a_known_suffix():
    with pytest.raises(DeviceError, match=r"\.vcd or \.fst"):
        open_device("sim", SMALL, trace="wave.txt")


def _counters(device, program: Program) -> dict[str, int]:
    """The counters the program's last instruction, a READ_COUNTERS, reports."""
    response = device.execute(program.to_bytes(), program.response_bytes)
    assert len(response) == program.response_bytes
    return counters_in(response, len(response) - 16)


@pytest.mark.parametrize("precision", [Precision.INT8, Precision.INT4])
@pytest.mark.parametrize("shape", [(12, 9, 6), (3, 17, 11), (1, 4, 4)])
def test_rtl_counters_equal_the_compilers_prediction(precision, shape):
    """The RTL's own ``cycles`` over a GEMM program equal the cycles the compiler predicts for it
    (the ISA's cycle costs), and ``busy`` the rows its MATMULs issue."""
    rng = np.random.default_rng(sum(shape) + precision.value)
    m, k, n = shape
    lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
    prog = gemm_program(SMALL, rng.integers(-128, 128, (m, k)), rng.integers(lo, hi, (k, n)),
                        precision=precision,
                        qparams=([0] * n, [1 << 23] * n, [30] * n, [0] * n))
    assert prog.chunks[-1][0] == Opcode.READ_COUNTERS.value
    first = Program(SMALL)
    first.read_counters()
    with open_device("sim", SMALL) as device:
        before, after = _counters(device, first), _counters(device, prog)
    # Between the two reads ran the first READ_COUNTERS and all of ``prog`` but its own
    # READ_COUNTERS, whose cost equals the first's: the difference is ``prog``'s prediction.
    assert after["cycles"] - before["cycles"] == prog.predicted_cycles
    assert after["instructions"] - before["instructions"] == len(prog.chunks)
    matmuls = [isa.decode_fields(Opcode.MATMUL, chunk[1:]) for chunk in prog.chunks
               if chunk[0] == Opcode.MATMUL.value]
    assert matmuls
    assert after["busy"] - before["busy"] == sum(f["m"] * f["k_tiles"] * f["n_tiles"]
                                                 for f in matmuls)

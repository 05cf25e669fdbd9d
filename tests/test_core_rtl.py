"""The random regression on Verilator: the core RTL against the golden model, byte for byte.

Each test builds (or reuses from the cache) the core for one array shape and runs a sequence of
random programs on one device, either on the core's own streams under cocotb or through the link on
the ``sim`` device (the C++ harness, fast enough for many more programs): random GEMM shapes
(mostly not multiples of the array), both precisions, both rounding modes, ReLU on and off, every
output type, raw int32 stores, random SRAM placement, and every bad-input case, with random idle
cycles on the command stream and random backpressure on the response stream. Every program ends
with READ_COUNTERS, whose ``cycles`` value must equal the ISA's prediction exactly (the only byte
not compared is the ``stalls`` counter, which depends on the backpressure).
"""

import zlib
from dataclasses import replace

import numpy as np
import pytest
from support.params import SMALL

from hw.isa import Config
from hw.params import RillParams
from sim.cases import (
    bad_input_program,
    counters_in,
    expectations,
    random_chain_program,
    random_conv_program,
    random_gemm_program,
    random_run_program,
    random_vector_program,
    write_cases,
)
from sim.core_rtl import run_case_file
from sim.runner import icarus_available
from sw.device import open_device
from sw.program import Program, pack_act_words, pack_weight_tiles

SHAPES = {
    "8x8": RillParams(),
    # Store lanes (their qparam entries banked and split) and ADD lanes, as the 85F has (its
    # models run on the RTL in the slow tests).
    "2x2": replace(SMALL, rows=2, cols=2, store_lanes=2),
    "4x4": SMALL,
    # A weight tile of 1,536 words, stacked of two memories (hw/stacked_tile.py): random
    # addresses put programs' weights on both sides of the seam and across it.
    "3x5": replace(SMALL, rows=3, cols=5, weight_depth=1536),
    # The small parts' core (iCEBreaker): the serial requantizer, paced by the sequencer, and
    # accumulator reads without the register.
    "2x2-serial": replace(SMALL, rows=2, cols=2, serial_requant=True,
                          deep_pipeline=False, store_to_acts=False, program_depth=0,
                          conv_addressing=False, packed_int8_acts=False, vector_unit=False,
                          add_lanes=1, clamp=False),
}


def _regression(params: RillParams, seed: int, programs: int, before=()):
    """Expectations for random programs with a bad-input program among them, after ``before``'s
    programs (run on the device first, their answers not returned)."""
    rng = np.random.default_rng(seed)
    limit = dict(max_m=40, max_k=4 * params.rows + 7, max_n=3 * params.cols + 2)
    # Where the core has them: every third program a chain of layers through the activation
    # SRAM, every sixth such a chain stored in the program memory and RUN, every sixth a
    # convolution addressed on the device, every sixth vector unit instructions.
    def program(i):
        if params.store_to_acts and params.program_depth and i % 6 == 1:
            return f"run{i}", random_run_program(params, rng)
        if params.conv_addressing and i % 6 == 4:
            return f"conv{i}", random_conv_program(params, rng)
        if params.vector_unit and i % 6 == 3:
            return f"vector{i}", random_vector_program(params, rng)
        if params.store_to_acts and i % 3 == 2:
            return f"chain{i}", random_chain_program(params, rng)
        return f"gemm{i}", random_gemm_program(params, rng, **limit)
    named = [program(i) for i in range(programs)]
    named.insert(programs // 2, ("bad input", bad_input_program(params)))
    return expectations(params, [*before, *named])[len(before):]


def _run(tmp_path, params, exps, *, seed, idle_in, busy_out, simulator="verilator"):
    cases = write_cases(tmp_path, exps, seed=seed, idle_in=idle_in, busy_out=busy_out)
    run_case_file(params, cases, simulator=simulator)
    # The testbench compared every byte; check the cycle counts against the prediction here too,
    # so a failure says which program mispredicted.
    for i, exp in enumerate(exps):
        received = (tmp_path / f"{i:03d}.received").read_bytes()
        for offset in exp.counter_offsets:
            assert counters_in(received, offset)["cycles"] == \
                counters_in(exp.expected, offset)["cycles"], exp.name


#: Random programs per shape on the core's own streams under cocotb, with idle cycles and
#: backpressure; the many more random programs run through the link on the sim device below.
BACKPRESSURE_PROGRAMS = 4
#: The shapes run under cocotb: the same generator as the default 8x8 core's at a fraction of
#: its build (cocotb's is the slowest), every feature of it present; the 8x8 core runs its
#: random programs through the link on the sim device, and every model test on it.
COCOTB_SHAPES = [shape for shape in SHAPES if shape != "8x8"]


@pytest.mark.parametrize("shape", COCOTB_SHAPES)
def test_random_programs_with_backpressure(tmp_path, shape):
    params = SHAPES[shape]
    exps = _regression(params, seed=zlib.crc32(shape.encode()), programs=BACKPRESSURE_PROGRAMS)
    _run(tmp_path, params, exps, seed=1, idle_in=0.2, busy_out=0.3)


#: Random programs per shape through the link on the sim device: with the cocotb runs above,
#: some 160 random programs on the RTL per test run.
LINKED_PROGRAMS = 28


#: The small shapes' link runs are in the slow run: their cocotb runs above and the link's own
#: RTL tests cover them in the default one (the 2x2-serial core is also the iCEBreaker's, which
#: tests/test_boards.py runs through its UART).
@pytest.mark.parametrize("shape", [
    pytest.param(shape, marks=pytest.mark.slow) if shape in ("2x2", "3x5", "2x2-serial")
    else shape for shape in SHAPES])
def test_random_programs_through_the_link(shape):
    """Random programs through the host driver, the link and the core on the ``sim`` device:
    every byte the golden model's, the ``cycles`` counter the prediction (``stalls`` alone
    depends on when the host's bytes arrive)."""
    params = SHAPES[shape]
    connect = Program(params)
    connect.info()   # what open_device sends to check the params: its cycles count too
    exps = _regression(params, seed=zlib.crc32(b"link " + shape.encode()),
                       programs=LINKED_PROGRAMS, before=[("connect", connect)])
    with open_device("sim", params) as device:
        for exp in exps:
            got = bytearray(device.execute(exp.program.to_bytes(), len(exp.expected),
                                           exp.program.frame_cuts()))
            for offset in exp.counter_offsets:
                assert counters_in(got, offset)["cycles"] == \
                    counters_in(exp.expected, offset)["cycles"], exp.name
                got[offset + 8:offset + 12] = exp.expected[offset + 8:offset + 12]
            assert bytes(got) == exp.expected, exp.name


def test_random_programs_full_rate(tmp_path):
    """No idle cycles and no backpressure: the stall counter must read 0 as well."""
    params = SHAPES["4x4"]
    exps = _regression(params, seed=77, programs=6)
    cases = write_cases(tmp_path, exps, seed=2)
    run_case_file(params, cases)
    for i, exp in enumerate(exps):
        received = (tmp_path / f"{i:03d}.received").read_bytes()
        assert received == exp.expected, exp.name
        assert all(counters_in(received, o)["stalls"] == 0 for o in exp.counter_offsets)


#: A tall array for the drain bound: its sums take longer to arrive than a STORE's own fetch,
#: checks and response header, so only the bound keeps its reads behind the last writes.
TALL = RillParams(rows=16, cols=2, act_depth=64, weight_depth=64, acc_depth=64, qparam_depth=16,
                 vector_unit=False)   # 32 lanes of it would only slow the build


@pytest.mark.parametrize("params", [SHAPES["4x4"], TALL], ids=["4x4", "16x2"])
def test_store_of_the_last_row_right_after_matmul(tmp_path, params):
    """A STORE that first reads the row the MATMUL wrote last, with nothing between them, waits
    long enough. Ordinary programs store from the first row, long written by the time the last
    one is read. On a short array the STORE's fetch, checks and response header alone outlast
    the array (this passes there with no drain wait at all); on the 16x2 they do not: this fails
    with the bound (``hw.cycles.matmul_drain_cycles``) one cycle shorter (``hw.isa``'s comment on
    ``MATMUL_DRAIN_EXTRA`` keeps the margin's history)."""
    rng = np.random.default_rng(11)
    m = 20
    acts = rng.integers(-128, 128, (m, params.rows))
    weights = rng.integers(-128, 128, (params.rows, params.cols))
    prog = Program(params)
    prog.configure(Config())
    prog.load_weights(0, pack_weight_tiles(params, weights, False))
    prog.load_acts(0, pack_act_words(params, acts, False))
    prog.matmul(0, 0, 0, m, 1, 1)
    prog.store(m - 1, 1, params.cols, 0, raw=True)
    prog.read_counters()
    exps = expectations(params, [("last row first", prog)])
    got = (acts[-1].astype(np.int64) @ weights).astype("<i4").tobytes()
    assert got in exps[0].expected   # the golden model's STORE is the product itself
    _run(tmp_path, params, exps, seed=4, idle_in=0.0, busy_out=0.0)


def test_k_tiles_two_cycles_apart(tmp_path):
    """One- and two-row GEMMs on a 2x2 array: a row's sums for consecutive K tiles reach its
    accumulator two cycles apart, the closest they can be. With ``deep_pipeline`` the
    second sum's row is read before the first one's write lands, so the banks must forward it."""
    params = SHAPES["2x2"]
    assert params.deep_pipeline
    rng = np.random.default_rng(12)
    named = []
    for m in (1, 2):
        acts = rng.integers(-128, 128, (m, 4 * params.rows))
        weights = rng.integers(-128, 128, (4 * params.rows, 2 * params.cols))
        prog = Program(params)
        prog.configure(Config())
        prog.load_weights(0, pack_weight_tiles(params, weights, False))
        prog.load_acts(0, pack_act_words(params, acts, False))
        prog.matmul(0, 0, 0, m, 4, 2)
        prog.store(0, m, 2 * params.cols, 0, raw=True)
        named.append((f"m={m}", prog))
        expected = (acts.astype(np.int64) @ weights).astype("<i4").tobytes()
    exps = expectations(params, named)
    assert expected in exps[-1].expected   # the golden model's STORE is the product itself
    _run(tmp_path, params, exps, seed=5, idle_in=0.0, busy_out=0.0)


@pytest.mark.skipif(not icarus_available(), reason="Icarus Verilog not installed "
                    "(apt-get install iverilog); skipping the second-simulator run")
def test_random_programs_on_icarus(tmp_path):
    params = SHAPES["4x4"]
    exps = _regression(params, seed=5, programs=4)
    _run(tmp_path, params, exps, seed=3, idle_in=0.2, busy_out=0.2, simulator="icarus")

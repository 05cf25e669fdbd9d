"""The whole core in Amaranth's simulator: quick, small-shape checks against the golden model.

The long random regression runs on Verilator (``test_core_rtl.py``); these catch integration
mistakes in seconds and run on any machine.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from support.params import TINY as SMALL

from hw import cycles, isa
from hw.core import RillCore
from hw.isa import Opcode
from hw.params import RillParams
from sim.cases import bad_input_program, counters_in, expectations, random_gemm_program
from sim.testbenches.byte_exchange import ByteExchange
from sw.program import gemm_program


def run_core(params: RillParams, program: bytes, response_bytes: int, *, seed=0,
             idle_in=0.0, busy_out=0.0, pauses: frozenset[int] = frozenset(), pause_cycles=0,
             timeout=200_000) -> bytes:
    """Stream ``program`` in and collect the responses (see :class:`ByteExchange`)."""
    dut = RillCore(params)
    exchange = ByteExchange(program, response_bytes, np.random.default_rng(seed).random,
                            idle_in, busy_out, pauses, pause_cycles)

    async def testbench(ctx):
        for _ in range(timeout):
            valid, payload, ready = exchange.drive()
            ctx.set(dut.cmd.valid, valid)
            ctx.set(dut.cmd.payload, payload)
            ctx.set(dut.rsp.ready, ready)
            exchange.sample(ctx.get(dut.cmd.ready), ctx.get(dut.rsp.valid),
                            lambda: ctx.get(dut.rsp.payload))
            await ctx.tick()
            if exchange.done:
                return
        raise AssertionError(exchange.hung(timeout))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return bytes(exchange.received)


def _check(params, named, **kw):
    for exp in expectations(params, named):
        got = run_core(params, exp.program.to_bytes(), len(exp.expected), **kw)
        stall_free = kw.get("idle_in", 0) == 0 and kw.get("busy_out", 0) == 0
        if not stall_free:   # the stall counter is the one value the golden model cannot know
            got = bytearray(got)
            for offset in exp.counter_offsets:
                got[offset + 8:offset + 12] = exp.expected[offset + 8:offset + 12]
        assert got == exp.expected, exp.name
        for offset in exp.counter_offsets:
            assert counters_in(bytes(got), offset)["cycles"] == \
                counters_in(exp.expected, offset)["cycles"]


@pytest.mark.parametrize("seed", range(3))
def test_random_gemm_small_core(seed):
    rng = np.random.default_rng(seed)
    prog = random_gemm_program(SMALL, rng, max_m=6, max_k=7, max_n=7)
    _check(SMALL, [(f"gemm{seed}", prog)])


@pytest.mark.parametrize("m, k, n", [(5, 2, 9), (4, 7, 3), (1, 2, 3), (1, 5, 7)])
def test_matmul_loops_at_their_smallest_bounds(m, k, n):
    """One k tile under several n tiles (the k loop restarts at its bound of 0), several k tiles
    in one n tile, one of each, one activation row: shapes random programs rarely draw."""
    rng = np.random.default_rng(100 * m + 10 * k + n)
    prog = gemm_program(SMALL, rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))
    _check(SMALL, [(f"gemm {m}x{k}x{n}", prog)])


def test_random_gemm_with_backpressure():
    rng = np.random.default_rng(10)
    prog = random_gemm_program(SMALL, rng, max_m=5, max_k=5, max_n=5)
    _check(SMALL, [("gemm-bp", prog)], idle_in=0.3, busy_out=0.3, seed=1)


def test_command_stream_quiet_after_each_matmul():
    """The sequencer waits for a byte right after each MATMUL: the tiles run on meanwhile, so a
    row read in the MATMUL's last cycle (``m`` at least ``rows`` and ``cols``) must reach the
    array at once, and the STORE that follows must still read every sum."""
    for seed in (21, 24):   # one MATMUL each, m = 3 and 4; each program on a fresh core
        prog = random_gemm_program(SMALL, np.random.default_rng(seed), max_m=9, max_k=5, max_n=5)
        exp, = expectations(SMALL, [(f"quiet{seed}", prog)])
        matmuls = [isa.decode_fields(Opcode.MATMUL, chunk[1:]) for chunk in exp.program.chunks
                   if chunk[0] == Opcode.MATMUL.value]
        assert max(f["m"] for f in matmuls) >= max(SMALL.rows, SMALL.cols)
        ends = np.cumsum([len(chunk) for chunk in exp.program.chunks])
        after_matmul = frozenset(int(end) for end, chunk in zip(ends, exp.program.chunks)
                                 if chunk[0] == Opcode.MATMUL.value)
        longest = max(cycles.cycle_cost(SMALL, isa.Config(), Opcode.MATMUL.value, f, isa.Status.OK)
                      for f in matmuls)
        got = run_core(SMALL, exp.program.to_bytes(), len(exp.expected), pauses=after_matmul,
                       pause_cycles=longest + 10)   # past the MATMUL's end, whatever its shape
        assert got == exp.expected, exp.name


@pytest.mark.slow
def test_bad_input_small_core():
    """Slow in Amaranth's simulator (half a minute); the same program runs on the RTL of every
    core shape, SMALL's among them, in tests/test_core_rtl.py's regressions (seconds)."""
    _check(SMALL, [("bad", bad_input_program(SMALL))])

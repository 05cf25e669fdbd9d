"""The whole core in Amaranth's simulator: quick, small-shape checks against the golden model.

The long random regression runs on Verilator (``test_core_rtl.py``); these catch integration
mistakes in seconds and run on any machine.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.core import RillCore
from hw.params import RillParams
from sim.cases import bad_input_program, counters_in, expectations, random_gemm_program

SMALL = RillParams(rows=2, cols=3, act_depth=64, weight_depth=64, acc_depth=64, qparam_depth=16)


def run_core(params: RillParams, program: bytes, response_bytes: int, *, seed=0,
             idle_in=0.0, busy_out=0.0, timeout=200_000) -> bytes:
    dut = RillCore(params)
    rng = np.random.default_rng(seed)
    received = bytearray()

    async def testbench(ctx):
        sent, offering = 0, False
        for _ in range(timeout):
            if not offering and sent < len(program) and rng.random() >= idle_in:
                offering = True
            ctx.set(dut.cmd.valid, offering)
            ctx.set(dut.cmd.payload, program[sent] if offering else 0)
            ctx.set(dut.rsp.ready, rng.random() >= busy_out)
            if offering and ctx.get(dut.cmd.ready):
                sent, offering = sent + 1, False
            if ctx.get(dut.rsp.valid) and ctx.get(dut.rsp.ready):
                received.append(ctx.get(dut.rsp.payload))
            await ctx.tick()
            if sent == len(program) and len(received) >= response_bytes:
                return
        raise AssertionError(f"hung: sent {sent}/{len(program)}, got {len(received)}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return bytes(received)


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


def test_random_gemm_with_backpressure():
    rng = np.random.default_rng(10)
    prog = random_gemm_program(SMALL, rng, max_m=5, max_k=5, max_n=5)
    _check(SMALL, [("gemm-bp", prog)], idle_in=0.3, busy_out=0.3, seed=1)


def test_bad_input_small_core():
    _check(SMALL, [("bad", bad_input_program(SMALL))])

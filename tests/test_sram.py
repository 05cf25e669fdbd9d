"""The SRAM tiles' no-collision promise reaches the read ports Yosys maps, and simulations check
it (hw/sram.py)."""

from dataclasses import replace

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, unsigned
from amaranth.sim import Simulator
from support.params import TINY
from support.params import TINY as PARAMS

from hw.accumulator import AccumulatorBanks
from hw.cycles import acc_read_latency
from hw.link import LinkedCore
from hw.sram import apply_no_rw_check, check_no_collision, sram_tile


def test_every_tile_read_port_and_nothing_else_is_marked():
    text = rtlil.convert(LinkedCore(PARAMS))
    marked, count = apply_no_rw_check(text)
    # act and weight tiles, the qparam tile's three parts, the program memory, one accumulator
    # bank per column; not the link's buffers.
    assert count == 6 + PARAMS.cols
    assert marked.count("COLLISION_X_MASK 1'1") == count
    assert text.count("COLLISION_X_MASK 1'1") == 0
    assert apply_no_rw_check(marked) == (marked, count)


def _run(dut, bench, fires: bool):
    """Simulate ``bench`` against ``dut``; the collision check must fire exactly when
    ``fires``."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    if fires:
        with pytest.raises(AssertionError, match="read whose data is used met a write"):
            sim.run()
    else:
        sim.run()


@pytest.mark.parametrize("used, same_address, fires", [
    (1, True, True), (0, True, False), (1, False, False)])
def test_a_used_read_meeting_a_write_fails_the_simulation(used, same_address, fires):
    """The promise's check: only a read whose data is used, at the address written."""
    m = Module()
    read_used = Signal()
    m.submodules.tile = tile = sram_tile(unsigned(8), 16)
    read, write = tile.read_port(), tile.write_port()
    check_no_collision(m, tile, read_used)

    async def bench(ctx):
        ctx.set(read.addr, 3)
        ctx.set(write.addr, 3 if same_address else 4)
        ctx.set(write.en, 1)
        ctx.set(read_used, used)
        await ctx.tick()
        await ctx.tick()

    _run(m, bench, fires)


@pytest.mark.parametrize("apart, fires", [(1, True), (2, False)])
def test_sums_for_a_row_one_cycle_apart_fail_the_accumulators_check(apart, fires):
    """A shallow core's accumulator banks read a row a cycle before its sum arrives; sums for a
    row come two cycles apart or more, so no read meets the previous sum's write. One apart
    breaks that, and the check says so."""
    shallow = replace(TINY, deep_pipeline=False)
    assert acc_read_latency(shallow) == 1
    dut = AccumulatorBanks(shallow)
    upcoming, sums = dut.upcoming[0], dut.sums[0]

    async def bench(ctx):
        for cycle in range(apart + 2):
            ctx.set(upcoming.valid, cycle in (0, apart))
            ctx.set(upcoming.payload.addr, 5)
            ctx.set(sums.valid, cycle in (1, apart + 1))
            ctx.set(sums.payload.tag.addr, 5)
            await ctx.tick()

    _run(dut, bench, fires)

"""The SRAM tiles' no-collision promise reaches the read ports Yosys maps, and simulations check
it (hw/sram.py); a deep tile stacked of two memories reads and writes as one
(hw/stacked_tile.py)."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator
from support.params import TINY
from support.params import TINY as PARAMS

from hw.accumulator import AccumulatorBanks
from hw.cycles import acc_read_latency
from hw.link import LinkedCore
from hw.sram import apply_no_rw_check, check_no_collision, sram_tile
from hw.stacked_tile import StackedTile, tile_parts


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
    check_no_collision(m, read, [write], read_used)

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


def test_a_deep_tile_is_stacked_only_where_its_depth_is_not_a_row_of_blocks():
    assert tile_parts(16896) == (16384, 512)
    assert tile_parts(2560) == (2048, 512)
    assert tile_parts(1536) == (1024, 512)
    for depth in (512, 1000, 1024, 2048, 18432):
        assert tile_parts(depth) == (depth,)


def test_a_stacked_tile_reads_what_was_written_on_either_side_of_its_seam():
    """Words written across the seam between the two memories, some lanes at a time, read back
    as one memory holds them; a read's data holds while its enable is low."""
    depth, lanes = 1536, 4
    tile = StackedTile(data.ArrayLayout(unsigned(8), lanes), depth)
    rng = np.random.default_rng(5)
    addresses = [0, 1, 1023, 1024, 1025, 1300, 1535, 700]
    model = np.zeros((depth, lanes), np.uint8)

    async def bench(ctx):
        for address in addresses * 2:   # twice: the second writes only some lanes
            value = rng.integers(0, 256, lanes, dtype=np.uint8)
            enables = int(rng.integers(1, 1 << lanes))
            ctx.set(tile.write.addr, address)
            ctx.set(tile.write.data, [int(v) for v in value])
            ctx.set(tile.write.en, enables)
            await ctx.tick()
            for lane in range(lanes):
                if enables >> lane & 1:
                    model[address, lane] = value[lane]
        ctx.set(tile.write.en, 0)
        ctx.set(tile.read.en, 1)
        for address in addresses:
            ctx.set(tile.read.addr, address)
            await ctx.tick()
            assert [ctx.get(tile.read.data[lane]) for lane in range(lanes)] == \
                list(model[address])
        ctx.set(tile.read.en, 0)
        ctx.set(tile.read.addr, 1024)   # across the seam, not enabled: the data stays
        await ctx.tick()
        assert [ctx.get(tile.read.data[lane]) for lane in range(lanes)] == \
            list(model[addresses[-1]])

    sim = Simulator(tile)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

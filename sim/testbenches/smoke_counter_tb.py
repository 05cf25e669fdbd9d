"""cocotb testbench for the runner's smoke-test counter (``tests/test_sim_runner.py``).

The counter: ``count`` increments when ``en`` is high, takes ``value`` when ``load`` is high (load
wins), wraps at 256 and clears on ``rst``. Parameters come as JSON in ``SMOKE_TB``: ``cycles``,
``seed`` and ``expect_off_by`` (a deliberate error in the expected value, to prove that failures
reach pytest). ``SMOKE_TB_HANG=1`` adds a test that never finishes, to prove the runner's timeout.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge

PARAMS = json.loads(os.environ.get("SMOKE_TB", "{}"))


async def reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    dut.load.value = 0
    dut.value.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


@cocotb.test()
async def counts_loads_and_wraps(dut):
    rng = random.Random(PARAMS.get("seed", 1))
    await reset(dut)
    expected = wraps = 0
    for _ in range(PARAMS.get("cycles", 600)):
        en, load, value = rng.random() < 0.8, rng.random() < 0.05, rng.randrange(240, 256)
        dut.en.value, dut.load.value, dut.value.value = int(en), int(load), value
        await RisingEdge(dut.clk)
        await ReadOnly()
        wraps += not load and en and expected == 255
        expected = value if load else (expected + en) % 256
        expected_seen = expected + PARAMS.get("expect_off_by", 0)
        assert int(dut.count.value) == expected_seen, \
            f"count is {int(dut.count.value)}, expected {expected_seen}"
        await FallingEdge(dut.clk)  # leave the read-only phase before driving the next inputs
    assert wraps, "the stimulus never made the counter wrap"


@cocotb.test()
async def reset_clears(dut):
    await reset(dut)
    dut.en.value = 1
    await ClockCycles(dut.clk, 7)
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.count.value) == 0


if os.environ.get("SMOKE_TB_HANG") == "1":
    @cocotb.test()
    async def hangs(dut):
        Clock(dut.clk, 10, unit="ns").start()
        await Event().wait()

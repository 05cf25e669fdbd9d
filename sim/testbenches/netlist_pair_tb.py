"""cocotb testbench: a design's RTL and its synthesized netlist side by side, cycle by cycle.

Not collected by pytest: ``tests/support/netlist_pair.py`` launches it through ``sim.runner`` on
a wrapper that feeds the same inputs to both and brings out each output twice, ``rtl_<name>``
and ``net_<name>``. The JSON in ``RILL_PAIR_TB`` names the inputs with their widths, the outputs
and the number of cycles. Every cycle drives random inputs and, after the clock edge, asserts
that each output pair agrees. An input named ``*addr`` takes one of 48 addresses drawn at the
start, so words are written, overwritten and read back, and the read and write ports meet at
one address now and then: the primitives' simulation models behave as the RTL's memories and
multipliers do.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

PARAMS = json.loads(os.environ.get("RILL_PAIR_TB", "{}"))


@cocotb.test()
async def netlist_matches_rtl(dut):
    rng = random.Random(PARAMS.get("seed", 1))
    inputs, outputs = PARAMS["inputs"], PARAMS["outputs"]
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in inputs:
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    pools = {name: [rng.getrandbits(width) for _ in range(48)]
             for name, width in inputs.items() if name.endswith("addr")}
    compared = 0
    for cycle in range(PARAMS.get("cycles", 2000)):
        await FallingEdge(dut.clk)
        for name, width in inputs.items():
            value = rng.choice(pools[name]) if name in pools else rng.getrandbits(width)
            getattr(dut, name).value = value
        await RisingEdge(dut.clk)
        await ReadOnly()
        for name in outputs:
            rtl = int(getattr(dut, f"rtl_{name}").value)
            net = int(getattr(dut, f"net_{name}").value)
            assert rtl == net, \
                f"cycle {cycle}: {name} is {net:#x} in the netlist, {rtl:#x} in the RTL"
            compared += 1
    assert compared == len(outputs) * PARAMS.get("cycles", 2000)

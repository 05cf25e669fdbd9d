"""The ECP5 primitives' simulation models (``flow/ecp5_models.py``) against Amaranth's RTL.

A small design holds each kind of block RAM and multiplier Yosys makes of the core's memories
and products on the ECP5: 512 words of 32 bits with byte enables (the 36-bit pseudo dual port),
1,024 of 16 (an 18-bit port), 2,048 of 8 (9 bits), 4,096 of 4, 8,192 of 2 and 16,384 of 2 (a
4-, a 2- and two 1-bit blocks: the 85F's weight tile is 128 of those), signed and unsigned
18x18 products and a 24x20 one split over several multipliers. Its RTL and its ``synth_ecp5``
netlist run side by side in Verilator on the same random inputs for 2,000 cycles, every output
compared each cycle (``sim/testbenches/netlist_pair_tb.py``). The ULX3S-85F's netlist co-simulation
(``tests/test_boards.py``, slow) rests on these models.
"""

from __future__ import annotations

import json
import re

import pytest
from amaranth import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from support.netlist_pair import compare_with_netlist

from flow.build import toolchain_env
from flow.netlist import primitive_models
from sim.runner import CocotbTestFailure, SimulationError, run_cocotb

pytestmark = pytest.mark.skipif(not toolchain_env().get("YOSYS"), reason="no Yosys")

#: (name, depth, width, write granularity or None)
MEMORIES = [("wide", 512, 32, 8), ("half", 1024, 16, None), ("byte", 2048, 8, None),
            ("nibble", 4096, 4, None), ("pair", 8192, 2, None), ("bits", 16384, 2, None)]
#: (name, a shape, b shape)
PRODUCTS = [("signed18", signed(18), signed(18)), ("unsigned18", unsigned(17), unsigned(17)),
            ("split", signed(24), signed(20))]


class PrimitiveMix(wiring.Component):
    """Memories with a write and a read port each, and products registered once."""

    def __init__(self, memories=MEMORIES, products=PRODUCTS):
        self.memories, self.products = memories, products
        members = {}
        for name, depth, width, granularity in memories:
            abits = (depth - 1).bit_length()
            members |= {f"{name}_waddr": In(abits), f"{name}_raddr": In(abits),
                        f"{name}_wdata": In(width), f"{name}_rdata": Out(width),
                        f"{name}_wen": In(width // granularity if granularity else 1)}
        for name, a, b in products:
            members |= {f"{name}_a": In(a), f"{name}_b": In(b),
                        f"{name}_p": Out(a.width + b.width)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, depth, width, granularity in self.memories:
            m.submodules[name] = memory = Memory(shape=width, depth=depth, init=[])
            write = memory.write_port(granularity=granularity)
            read = memory.read_port()   # not transparent: a collision returns the old word
            m.d.comb += [write.addr.eq(getattr(self, f"{name}_waddr")),
                         write.data.eq(getattr(self, f"{name}_wdata")),
                         write.en.eq(getattr(self, f"{name}_wen")),
                         read.addr.eq(getattr(self, f"{name}_raddr")),
                         getattr(self, f"{name}_rdata").eq(read.data)]
        for name, _, _ in self.products:
            m.d.sync += getattr(self, f"{name}_p").eq(
                getattr(self, f"{name}_a") * getattr(self, f"{name}_b"))
        return m


def _compare(tmp_path, models: str, memories=MEMORIES, products=PRODUCTS) -> str:
    """Run the RTL and the netlist side by side; the netlist's Verilog."""
    return compare_with_netlist(lambda: PrimitiveMix(memories, products), tmp_path, models)


def test_ecp5_models_match_the_rtl(tmp_path):
    netlist = _compare(tmp_path, primitive_models("ecp5"))
    # The netlist holds each mode the models cover, so the comparison exercised them.
    widths = set(re.findall(r"\.DATA_WIDTH_A\(32'd(\d+)\)", netlist))
    assert widths == {"1", "2", "4", "9", "18", "36"}, widths
    assert netlist.count("MULT18X18D ") >= 4


def test_a_wrong_model_is_caught(tmp_path):
    """The comparison fails when a model is wrong: here the 36-bit port's byte enables
    ignored (every byte written). On the 36-bit memory alone, a smaller model to build."""
    broken = primitive_models("ecp5").replace(
        "wire [35:0] wide_new = (wide_old & ~wide_mask) | ({di_B, di_A} & wide_mask);",
        "wire [35:0] wide_new = {di_B, di_A};")
    assert broken != primitive_models("ecp5")
    with pytest.raises(CocotbTestFailure, match="wide_rdata"):
        _compare(tmp_path, broken, memories=MEMORIES[:1], products=[])


@pytest.mark.slow
def test_a_mode_the_models_do_not_cover_stops_the_simulation(tmp_path):
    """A netlist needing a DP16KD mode the model lacks (here the output register) fails at
    elaboration with a message, instead of simulating something else."""
    design = "\n".join([primitive_models("ecp5"), """
module pair(clk, rst);
  input clk;
  input rst;
  DP16KD #(.DATA_WIDTH_A(18), .DATA_WIDTH_B(18), .REGMODE_B("OUTREG"))
    bram (.CLKA(clk), .CLKB(clk));
endmodule
"""])
    with pytest.raises((CocotbTestFailure, SimulationError)):
        run_cocotb(design, "pair", "sim.testbenches.netlist_pair_tb",
                   extra_env={"RILL_PAIR_TB": json.dumps({"inputs": {}, "outputs": [],
                                                          "cycles": 4})},
                   test_dir=tmp_path / "run", log_file=tmp_path / "run" / "sim.log", timeout=120)
    assert "a mode this model does not cover" in (tmp_path / "run" / "sim.log").read_text()

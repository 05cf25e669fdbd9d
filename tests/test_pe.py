"""The PE's adder-built multiplier, exhaustively: every activation by every nibble."""

import itertools

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.pe import nibble_product


def test_nibble_product_is_exact_for_every_operand():
    m = Module()
    a = Signal(signed(8))
    nibble = Signal(unsigned(4))
    negative_top = Signal()
    product = nibble_product(m, a, nibble, negative_top, "dut")
    wrong = []

    async def testbench(ctx):
        for x, n, negative in itertools.product(range(-128, 128), range(16), (0, 1)):
            ctx.set(a, x)
            ctx.set(nibble, n)
            ctx.set(negative_top, negative)
            want = x * (n - 16 if negative and n >= 8 else n)
            if ctx.get(product) != want:
                wrong.append((x, n, negative, ctx.get(product), want))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert not wrong, f"{len(wrong)} of 8192 products wrong, e.g. {wrong[:3]}"

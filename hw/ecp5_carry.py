"""Adders on the ECP5's carry chains whose operand bits are logic of the adder's own LUT inputs.

An ECP5 carry cell (``CCU2C``) holds two bits of an adder, each a 4-input LUT ``f(A, B, C, D)``
beside the carry logic: the bit's sum is ``f ^ carry_in`` and its carry out is ``carry_in`` where
``f`` is 1, else ``f(A, B, 0, 0)`` (the LUT read with C and D low). Yosys' mapping of ``+`` feeds
the operand bits to A and B and computes ``f = A ^ B``, so any logic making an operand bit takes
LUTs of its own in front of the chain. :func:`carry_add` puts that logic into the carry cell's
LUT: bit ``i`` of the sum of two operands ``x`` and ``y``, each a function of the bit's four
inputs, is ``f = x ^ y`` with carry out ``x`` when ``x == y``. That is right whenever
``f(A, B, 0, 0)`` equals ``x`` for every input where ``x == y``, which holds when ``x`` depends
on A and B only and ``y`` is 0 with C and D low: a row of a multiplier gated by one bit of its
multiplicand (``a & n``), or a multiplexer between operands. Each bit's functions are checked
for it when the chain is built.

On the array's PEs (:mod:`hw.pe`) this takes the rows' gating and the INT4/INT8 select out of
plain LUTs into the carry cells they feed: a PE's 105 LUT4s and 12 wide multiplexers become
18 LUT4s.

The chains exist in the ECP5 build only: the simulator has no ``CCU2C``, so simulations run the
same arithmetic written with ``+`` (the PE chooses by the platform it is elaborated for), and
``tests/test_ecp5_carry.py`` compares the two in Verilator, the ``CCU2C`` from Yosys' own model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

from amaranth.hdl import Const, Instance, Module, Signal, Value

__all__ = ["CarryBit", "carry_add", "lut_init"]

Bits = Callable[[int, int, int, int], int]


@dataclass(frozen=True)
class CarryBit:
    """One bit of a sum: its carry cell's LUT inputs A, B, C, D (a constant for an unused one)
    and its operand bits ``x`` and ``y`` as functions of those inputs' values."""
    inputs: tuple[Value, Value, Value, Value]
    x: Bits
    y: Bits


def lut_init(bit: CarryBit) -> int:
    """The 16-bit LUT function of ``bit`` (``x ^ y``; the index is ``D C B A``), after checking
    that the carry cell's generate, the LUT read with C and D low, is the carry out ``x`` wherever
    ``x == y``."""
    init = 0
    for a, b, c, d in product((0, 1), repeat=4):
        init |= (bit.x(a, b, c, d) ^ bit.y(a, b, c, d)) << (a | b << 1 | c << 2 | d << 3)
    for a, b, c, d in product((0, 1), repeat=4):
        x = bit.x(a, b, c, d)
        if x == bit.y(a, b, c, d) and (init >> (a | b << 1) & 1) != x:
            raise ValueError("these operand bits need a carry generate the CCU2C cannot give: "
                             "y must be 0 whenever inputs C and D are")
    return init


def carry_add(m: Module, name: str, bits: list[CarryBit],
              carry_in: tuple[Value, Value, Bits] | None = None) -> Signal:
    """``x + y (+ carry_in)`` over ``bits`` (least significant first), modulo ``2**len(bits)``,
    in ``CCU2C`` cells. ``carry_in``, ``(p, q, g)``, adds ``g(p, q)`` (``g(0, 0)`` must be 0): a
    half cell before bit 0 whose ``x`` and ``y`` are both ``g``, on A, B and again on C, D, so
    its carry out is ``g`` and its sum is unused."""
    if carry_in is not None:
        p, q, g = carry_in
        bits = [CarryBit((p, q, p, q), lambda a, b, c, d: g(a, b),
                         lambda a, b, c, d: g(c, d)), *bits]
    width = len(bits) - (carry_in is not None)
    total = Signal(width, name=name)
    sums = Signal(len(bits) + len(bits) % 2, name=f"{name}_cells")
    unused = CarryBit((Const(0, 1),) * 4, lambda *_: 0, lambda *_: 0)
    cells = bits + [unused] * (len(bits) % 2)
    carry: Value = Const(0, 1)
    for pair in range(0, len(cells), 2):
        low, high = cells[pair], cells[pair + 1]
        carry_out = Signal(name=f"{name}_carry{pair // 2}")
        m.submodules[f"{name}_ccu{pair // 2}"] = Instance(
            "CCU2C",
            p_INIT0=Const(lut_init(low), 16), p_INIT1=Const(lut_init(high), 16),
            p_INJECT1_0="NO", p_INJECT1_1="NO",
            i_CIN=carry,
            **{f"i_{pin}0": value for pin, value in zip("ABCD", low.inputs)},
            **{f"i_{pin}1": value for pin, value in zip("ABCD", high.inputs)},
            o_S0=sums[pair], o_S1=sums[pair + 1], o_COUT=carry_out)
        carry = carry_out
    first = carry_in is not None
    m.d.comb += total.eq(sums[first:first + width])
    return total

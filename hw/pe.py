"""One processing element of the weight-stationary systolic array."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_carry import CarryBit, carry_add
from .params import RillParams

__all__ = ["PE_ACT_LAYOUT", "product_stages", "nibble_product", "carry_nibble_product",
           "carry_contribution", "ProcessingElement"]


def product_stages(params: RillParams) -> int:
    """Registers between a PE's input and its partial-sum adder: with ``params.deep_pipeline``
    the selected weight (beside ``act_out``, the activation's register), the two products and the
    contribution; otherwise the contribution only."""
    return 3 if params.deep_pipeline else 1


def nibble_product(m: Module, a: Value, nibble: Value, negative_top: Value, name: str) -> Value:
    """``a * n``, ``n`` the 4-bit ``nibble`` read unsigned, or signed when ``negative_top``: as
    two pairs of partial products, each pair one carry-chain adder, and a third adder joining
    them. A LUT-built PE is then smaller than with Yosys' Booth mapping of ``*``: about 35 LUTs
    per PE on the ECP5, and on the iCE40 160 against 194 cells for a PE's two multipliers and
    their sum.

    A row is ``a`` gated by one bit of the nibble; a negative top row is ``8 * ~a + 8`` (``-a``
    in two's complement), its ``+ 8`` two fours: the high pair's carry-in and the free low bit of
    its shifted row. Each sum is a ``keep`` wire: without it Yosys gathers all four rows and the
    adder joining them into one multi-operand sum and maps it to plain LUTs, no carry chains,
    larger than the Booth mapping.
    """
    def row(bit):
        return Mux(nibble[bit], a, 0)

    top_negated = nibble[3] & negative_top
    top = Mux(nibble[3], Mux(negative_top, ~a, a), 0)
    low_pair = Signal(signed(len(a) + 2), name=f"{name}_low_pair", attrs={"keep": 1})
    high_pair = Signal(signed(len(a) + 2), name=f"{name}_high_pair", attrs={"keep": 1})
    product = Signal(signed(len(a) + 4), name=f"{name}_product", attrs={"keep": 1})
    m.d.comb += [
        low_pair.eq(row(0) + (row(1) << 1)),                              # a * (n0 + 2 n1)
        high_pair.eq(row(2) + Cat(top_negated, top).as_signed() + top_negated),  # (n2 +- 2 n3)
        product.eq(low_pair + (high_pair << 2)),
    ]
    return product


def _extended_bit(value: Value, i: int) -> Value:
    """Bit ``i`` of ``value`` sign-extended, and 0 below bit 0 (a row shifted up)."""
    return value[min(i, len(value) - 1)] if i >= 0 else Const(0, 1)


def _row_on_ab(a, b, c, d):
    """A carry bit's operand: the row bit on input A gated by the nibble bit on B."""
    return a & b


def _row_on_cd(a, b, c, d):
    return c & d


def carry_nibble_product(m: Module, a: Value, nibble: Value, negative_top: Value | int,
                         name: str) -> Value:
    """:func:`nibble_product` in ECP5 carry chains (:mod:`hw.ecp5_carry`), each row's gating in
    the carry cells' LUTs: the pairs are ``a n0 + 2 a n1`` and ``a n2 + 2 top``, ``top`` the top
    row (``a``, or ``~a`` plus the pair's carry-in one when ``negative_top``). A top row negated
    by a signal reads ``a ^ negative_top``, a LUT per bit; a constant 1 inverts in the LUTs."""
    width, zero = len(a), Const(0, 1)

    at = functools.partial(_extended_bit, a)   # ``a`` sign-extended, 0 below bit 0
    low = carry_add(m, f"{name}_low_pair", [
        CarryBit((at(i), nibble[0], at(i - 1), nibble[1] if i else zero),
                 _row_on_ab, _row_on_cd) for i in range(width + 2)])
    if isinstance(negative_top, int):
        assert negative_top == 1, "a constant top row is negated (the signed nibble)"
        # y = n3 & ~a[i - 1]; at bit 0 (C low) n3: the "+ 1" of the negation's two's complement.
        top = [CarryBit((at(i), nibble[2], at(i - 1), nibble[3]),
                        _row_on_ab, lambda a_, b, c, d: d & ~c & 1) for i in range(width + 2)]
        carry_in = (nibble[3], Const(1, 1), operator.and_)
    else:
        flipped = Signal(width, name=f"{name}_top_row")
        m.d.comb += flipped.eq(a.as_unsigned() ^ negative_top.replicate(width))
        top = [CarryBit((at(i), nibble[2],
                         flipped[min(i - 1, width - 1)] if i else negative_top, nibble[3]),
                        _row_on_ab, _row_on_cd) for i in range(width + 2)]
        carry_in = (nibble[3], negative_top, operator.and_)
    high = carry_add(m, f"{name}_high_pair", top, carry_in)
    product = Signal(signed(width + 4), name=f"{name}_product")
    m.d.comb += product.eq(low.as_signed() + (high.as_signed() << 2))
    return product


def carry_contribution(m: Module, lo: Value, hi: Value, int4: Value, width: int) -> Value:
    """``Mux(int4, hi, hi << 4) + lo`` (``width`` bits, signed) in an ECP5 carry chain, the
    select in its LUTs."""
    return carry_add(m, "contribution_sum", [
        CarryBit((_extended_bit(lo, i), int4, _extended_bit(hi, i), _extended_bit(hi, i - 4)),
                 lambda a, b, c, d: a, lambda a, b, c, d: c if b else d)
        for i in range(width)]).as_signed()


#: What moves one PE to the right each cycle: the activation each of the two multipliers takes
#: (``lo_a``, ``hi_a``), the weight buffer they use and the precision they were issued in.
PE_ACT_LAYOUT = data.StructLayout({"lo_a": signed(8), "hi_a": signed(8), "buf": 1, "int4": 1})


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell holding two weight bytes (the active tile and its shadow).

    Each cycle the PE multiplies the activations on :attr:`act_in` by the weight byte
    ``w = weights[act_in.buf]`` and adds the result to :attr:`psum_in`. For a row's activation
    ``a0`` (and, in INT4, its pair ``a1``):

    - INT8 (``int4 = 0``): ``a0 * int8(w)``, with ``lo_a = hi_a = a0``;
    - INT4 (``int4 = 1``): ``a0 * sext(w[0:4]) + a1 * sext(w[4:8])`` (element 0 in the low nibble),
      with ``lo_a = a0`` and ``hi_a = a1``.

    Both modes share two multipliers of an activation by a weight nibble. INT8 splits the weight
    as ``int8(w) = 16 * sext(w[4:8]) + zext(w[0:4])``, so it is ``(a0 * hi) << 4 + a0 * lo``;
    INT4 feeds the same two multipliers ``(a0, sext(lo))`` and ``(a1, sext(hi))``. Only the low
    nibble's reading (unsigned or signed) changes with the mode; the high
    multiplier's activation is chosen once per row, before the array (:attr:`act_in` ``hi_a``),
    rather than by a mux in front of every PE's multiplier.

    Every output is a register, so the PE has no combinational path from input to output and
    freezes correctly under an ``EnableInserter``; it has no stall logic of its own. :attr:`act_out`
    follows :attr:`act_in` by a cycle; the contribution of the activation in ``act_in`` in cycle
    ``t`` is added to the ``psum_in`` of cycle ``t + product_stages(params)``.

    Parameters
    ----------
    params : RillParams
        Gives the partial-sum width (``params.psum_width``).
    dsp : bool
        Multiply with ``*`` (8 x 5-bit signed), which Yosys gives to DSP blocks, instead of the
        carry-chain adders of :func:`nibble_product`: for the few PEs a small part's spare DSPs
        hold (``boards.board.Board.dsp_pes``).

    Elaborated for an ECP5 platform, the adders are ECP5 carry chains with the rows' gating and
    the INT4/INT8 select in their LUTs (:func:`carry_nibble_product`,
    :func:`carry_contribution`); the same arithmetic, in a third of the logic.

    Members
    -------
    act_in : ``In(PE_ACT_LAYOUT)``
        The multipliers' activations ``lo_a``, ``hi_a``, the weight buffer ``buf`` this row was
        issued against, and its precision ``int4``. The mode travels with the data, PE to PE,
        like ``buf``: no net spans the array (a per-PE copy of a global mode register is one
        register to Yosys, whose fan-out would span the array).
    act_out : ``Out(PE_ACT_LAYOUT)``
        :attr:`act_in`, registered: the input of the PE to the right.
    psum_in : ``In(signed(params.psum_width))``
        Partial sum from the PE above (0 in the top row).
    psum_out : ``Out(signed(params.psum_width))``
        ``psum_in + contribution`` (the contribution :func:`product_stages` cycles old),
        registered: the input of the PE below.
    w_we : ``In(1)``, w_buf : ``In(1)``, w_data : ``In(unsigned(8))``
        Weight write: when ``w_we``, ``weights[w_buf]`` takes ``w_data`` at the end of the cycle.
    """

    def __init__(self, params: RillParams, *, dsp: bool = False):
        self._params = params
        self._dsp = dsp
        super().__init__({
            "act_in": In(PE_ACT_LAYOUT),
            "act_out": Out(PE_ACT_LAYOUT),
            "psum_in": In(signed(params.psum_width)),
            "psum_out": Out(signed(params.psum_width)),
            "w_we": In(1),
            "w_buf": In(1),
            "w_data": In(unsigned(8)),
        })

    def elaborate(self, platform):
        m = Module()

        # No register here has a reset: a valid row's sum depends only on its own activations and
        # the weights its MATMUL wrote (the array's valid line, which has one, says which sums
        # count). Without it the reset reaches ~90 fewer flip-flops per PE, and the reset net
        # stays small enough not to limit the clock.
        weights = [Signal(8, name=f"weight{b}", reset_less=True) for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_buf):
                m.d.sync += weights[1].eq(self.w_data)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_data)

        # Deep: the weight this activation uses, registered beside it (act_out), so that the
        # multipliers start from registers, not from the buffer select; then each product
        # registered. Otherwise both are combinational.
        deep = self._params.deep_pipeline
        stage = m.d.sync if deep else m.d.comb
        act_registered = Signal(PE_ACT_LAYOUT, reset_less=True)
        m.d.sync += act_registered.eq(self.act_in)
        m.d.comb += self.act_out.eq(act_registered)
        # The weight, decided with the select: every input of the multipliers is then a register.
        w = Signal(8, reset_less=True)
        stage += w.eq(Mux(self.act_in.buf, weights[1], weights[0]))
        act = act_registered if deep else self.act_in

        # The two multipliers: activation (8-bit signed) x weight nibble, the low one signed in
        # INT4 and unsigned in INT8 (``int8(w) = 16 * sext(w[4:8]) + zext(w[0:4])``).
        carry = getattr(platform, "family", None) == "ecp5"
        if self._dsp:
            lo = act.lo_a * Cat(w[0:4], act.int4 & w[3]).as_signed()
            hi = act.hi_a * w[4:8].as_signed()
        elif carry:
            lo = carry_nibble_product(m, act.lo_a, w[0:4], act.int4, "lo")
            hi = carry_nibble_product(m, act.hi_a, w[4:8], 1, "hi")
        else:
            lo = nibble_product(m, act.lo_a, w[0:4], act.int4, "lo")
            hi = nibble_product(m, act.hi_a, w[4:8], 1, "hi")
        lo_product = Signal(signed(13), reset_less=True)
        hi_product = Signal(signed(13), reset_less=True)
        product_int4 = Signal(reset_less=True)
        stage += [lo_product.eq(lo), hi_product.eq(hi), product_int4.eq(act.int4)]

        # The contribution, registered before it joins the partial sum: the multiply, the
        # two adds and the partial sum are too long for one cycle. Every PE adds the same
        # cycle, so a row's partial sum still meets its next contribution in the PE below.
        contribution = Signal(signed(self._params.product_width), reset_less=True)
        if carry:
            m.d.sync += contribution.eq(carry_contribution(m, lo_product, hi_product,
                                                           product_int4, len(contribution)))
        else:
            m.d.sync += contribution.eq(
                Mux(product_int4, hi_product, hi_product << 4) + lo_product)

        psum = Signal(signed(self._params.psum_width), reset_less=True)
        m.d.sync += psum.eq(self.psum_in + contribution)
        m.d.comb += self.psum_out.eq(psum)
        return m

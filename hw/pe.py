"""One processing element of the weight-stationary systolic array."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .params import RillParams

__all__ = ["PE_ACT_LAYOUT", "ProcessingElement"]

#: What moves one PE to the right each cycle: the activation pair and the weight buffer it uses.
PE_ACT_LAYOUT = data.StructLayout({"a0": signed(8), "a1": signed(8), "buf": 1})


def _booth_row(m: Module, x: Value, b1: Value, b0: Value, below: Value,
               name: str) -> tuple[Signal, Value]:
    """One radix-4 Booth partial product of signed ``x`` for the digit ``-2 b1 + b0 + below``
    (-2..2): ``|digit| * x``, inverted when the digit is negative; and that sign, which the
    caller adds to complete the negation."""
    negative = b1 & ~(b0 & below)
    double = (b1 & ~b0 & ~below) | (~b1 & b0 & below)
    single = b0 ^ below
    row = Signal(signed(10), name=name)
    m.d.comb += row.eq(Mux(double, x << 1, Mux(single, x, 0)) ^ negative.replicate(10))
    return row, negative


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell holding two weight bytes (the active tile and its shadow).

    Each cycle the PE multiplies the activation pair on :attr:`act_in` by the weight byte
    ``w = weights[act_in.buf]`` and adds the result to :attr:`psum_in`:

    - INT8 (``int4 = 0``): ``a0 * int8(w)``;
    - INT4 (``int4 = 1``): ``a0 * sext(w[0:4]) + a1 * sext(w[4:8])`` (element 0 in the low nibble).

    Both modes share four radix-4 Booth partial products. The Booth digits of ``int8(w)`` are
    ``d0..d3`` (``w = d0 + 4 d1 + 16 d2 + 64 d3``); those of ``sext(w[0:4])`` are ``d0, d1`` and
    those of ``sext(w[4:8])`` are ``d2, d3`` but for the bit ``d2`` borrows from below (``w[3]``
    in INT8, 0 in INT4). So INT8 is ``a0 (d0 + 4 d1) + 16 a0 (d2 + 4 d3)`` and INT4 is
    ``a0 (d0 + 4 d1) + a1 (d2 + 4 d3)``: only that bit, the upper digits' activation and their
    weight (16 or 1) change with the mode. Four partial products, not the five of two 8 x 5-bit
    Booth multipliers, and one sum for their negation corrections: ~30 logic cells fewer per PE
    on iCE40.

    Every output is a register (:attr:`act_out` and :attr:`psum_out` change one cycle after their
    inputs), so the PE has no combinational path from input to output and freezes correctly under an
    ``EnableInserter``; it has no stall logic of its own.

    Parameters
    ----------
    params : RillParams
        Gives the partial-sum width (``params.psum_width``).

    Members
    -------
    int4 : ``In(1)``
        Precision mode, taken a cycle late: a copy in every PE keeps the mode's fan-out across
        the array off the multiplier paths (it was the ECP5 critical path). The mode only
        changes at CONFIG, with the array drained, and rows reach a PE at least a cycle after
        they enter the array.
    act_in : ``In(PE_ACT_LAYOUT)``
        Activation pair ``a0``, ``a1`` and the weight buffer ``buf`` this row was issued against.
    act_out : ``Out(PE_ACT_LAYOUT)``
        :attr:`act_in`, registered: the input of the PE to the right.
    psum_in : ``In(signed(params.psum_width))``
        Partial sum from the PE above (0 in the top row).
    psum_out : ``Out(signed(params.psum_width))``
        ``psum_in + contribution``, registered: the input of the PE below.
    w_we : ``In(1)``, w_buf : ``In(1)``, w_data : ``In(unsigned(8))``
        Weight write: when ``w_we``, ``weights[w_buf]`` takes ``w_data`` at the end of the cycle.
    """

    def __init__(self, params: RillParams):
        self._params = params
        super().__init__({
            "int4": In(1),
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

        int4 = Signal()
        m.d.sync += int4.eq(self.int4)

        weights = [Signal(8, name=f"weight{b}") for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_buf):
                m.d.sync += weights[1].eq(self.w_data)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_data)

        w = Signal(8)
        m.d.comb += w.eq(Mux(self.act_in.buf, weights[1], weights[0]))

        # Each partial product is ``digit * x`` as ``|digit| * x``, inverted when the digit is
        # negative; the +1 that completes each negation goes into a free bit under the next
        # partial product (rows 0 and 2) or into one small correction term (rows 1 and 3).
        upper_x = Signal(signed(8))
        m.d.comb += upper_x.eq(Mux(int4, self.act_in.a1, self.act_in.a0))
        a0 = self.act_in.a0
        p0, neg0 = _booth_row(m, a0, w[1], w[0], Const(0), "p0")
        p1, neg1 = _booth_row(m, a0, w[3], w[2], w[1], "p1")
        p2, neg2 = _booth_row(m, upper_x, w[5], w[4], w[3] & ~int4, "p2")
        p3, neg3 = _booth_row(m, upper_x, w[7], w[6], w[5], "p3")
        lower = Signal(signed(13))
        upper = Signal(signed(13))
        correction = Signal(7)
        m.d.comb += [
            lower.eq(p0 + Cat(neg0, Const(0, 1), p1).as_signed()),
            upper.eq(p2 + Cat(neg2, Const(0, 1), p3).as_signed()),
            correction.eq(Mux(int4, (neg1 << 2) + (neg3 << 2), (neg1 << 2) + (neg3 << 6))),
        ]

        contribution = Signal(signed(self._params.product_width))
        m.d.comb += contribution.eq(Mux(int4, upper, upper << 4) + lower + correction)

        m.d.sync += [
            self.act_out.eq(self.act_in),
            self.psum_out.eq(self.psum_in + contribution),
        ]
        return m

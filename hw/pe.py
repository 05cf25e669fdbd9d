"""One processing element of the weight-stationary systolic array."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .params import RillParams

__all__ = ["PE_ACT_LAYOUT", "product_stages", "ProcessingElement"]


def product_stages(params: RillParams) -> int:
    """Registers between a PE's input and its partial-sum adder: with ``params.deep_pipeline``
    the selected weight (beside ``act_out``, the activation's register), the two products and the
    contribution; otherwise the contribution only."""
    return 3 if params.deep_pipeline else 1

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

    Both modes share two 8 x 5-bit signed multipliers. INT8 splits the weight as
    ``int8(w) = 16 * sext(w[4:8]) + zext(w[0:4])``, so it is ``(a0 * hi) << 4 + a0 * lo``; INT4
    feeds the same two multipliers ``(a0, sext(lo))`` and ``(a1, sext(hi))``. Only the low
    multiplier's fifth weight bit (sign- or zero-extension) changes with the mode; the high
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

    Members
    -------
    act_in : ``In(PE_ACT_LAYOUT)``
        The multipliers' activations ``lo_a``, ``hi_a``, the weight buffer ``buf`` this row was
        issued against, and its precision ``int4``. The mode travels with the data, PE to PE,
        like ``buf``: no net spans the array (a per-PE copy of a global mode register is one
        register to Yosys, and its fan-out across the array set the ECP5 clock).
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

    def __init__(self, params: RillParams):
        self._params = params
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
        # count). Without it the reset reaches ~90 fewer flip-flops per PE: its fan-out set the
        # 45F's clock on two placements of three.
        weights = [Signal(8, name=f"weight{b}", reset_less=True) for b in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_buf):
                m.d.sync += weights[1].eq(self.w_data)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_data)

        # Deep: the weight this activation uses, registered beside it (act_out), so that the
        # multipliers start from registers (the buffer select began the 45F's critical path);
        # then each product registered. Otherwise both are combinational.
        deep = self._params.deep_pipeline
        stage = m.d.sync if deep else m.d.comb
        act_registered = Signal(PE_ACT_LAYOUT, reset_less=True)
        m.d.sync += act_registered.eq(self.act_in)
        m.d.comb += self.act_out.eq(act_registered)
        # The weight, and the low nibble's fifth bit (INT8: 0, zero-extended; INT4: its sign),
        # decided with the select: every input of the multipliers is then a register (the mode's
        # gate in front of one was a LUT level on the 85F's path through a PE's multiplier).
        selected = Mux(self.act_in.buf, weights[1], weights[0])
        w = Signal(8, reset_less=True)
        lo_extend = Signal(reset_less=True)
        stage += [w.eq(selected), lo_extend.eq(self.act_in.int4 & selected[3])]
        act = act_registered if deep else self.act_in

        # The two shared multipliers: activation (8-bit signed) x weight nibble (5-bit signed).
        lo_w = Signal(signed(5))
        hi_w = Signal(signed(5))
        m.d.comb += [lo_w.eq(Cat(w[0:4], lo_extend)), hi_w.eq(w[4:8].as_signed())]
        lo_product = Signal(signed(13), reset_less=True)
        hi_product = Signal(signed(13), reset_less=True)
        product_int4 = Signal(reset_less=True)
        stage += [lo_product.eq(act.lo_a * lo_w), hi_product.eq(act.hi_a * hi_w),
                  product_int4.eq(act.int4)]

        # The contribution, registered before it joins the partial sum: multiply, the
        # two adds and the partial sum in one cycle set the ECP5 clock. Every PE adds the same
        # cycle, so a row's partial sum still meets its next contribution in the PE below.
        contribution = Signal(signed(self._params.product_width), reset_less=True)
        m.d.sync += contribution.eq(
            Mux(product_int4, hi_product, hi_product << 4) + lo_product)

        psum = Signal(signed(self._params.psum_width), reset_less=True)
        m.d.sync += psum.eq(self.psum_in + contribution)
        m.d.comb += self.psum_out.eq(psum)
        return m

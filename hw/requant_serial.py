"""The serial requantizer: the pipelined unit's arithmetic, one bit per cycle, for small parts.

Bit-exact with :mod:`sw.requant`, like :class:`hw.requant.RequantUnit`, whose members it shares.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed

from .cycles import SERIAL_REQUANT_CYCLES
from .isa import Rounding
from .params import RillParams
from .requant import (
    SATURATION,
    RequantMode,
    RequantPorts,
    RequantUnit,
    cap,
    raise_to_floor,
    signed_value,
)

__all__ = ["SerialRequantUnit", "requantizer_class"]

# The schedule, in cycles after the request's (each phase's length is fixed, so the latency is
# too: a phase whose work is done early idles to its end).
_ADD_CYCLES = 1       # x = acc + bias
_ABS_CYCLES = 1       # |x|, and the multiplier arrives
_PRE_CYCLES = 31      # ONNX: float32(|x|), up to 8 right shifts; TFLITE: |x| << left, up to 31
_PRE_FIX_CYCLES = 1   # ONNX: round the mantissa; TFLITE: |int32(u)|
_MUL_CYCLES = 32      # shift-and-add: one multiplier bit per cycle
_FIRST_CYCLES = 31    # ONNX: float32(P), up to 25 right shifts; TFLITE: P / 2**31, 31 shifts
_SECOND_CYCLES = 32   # the final right shift: ONNX s - exponent (capped at 32); TFLITE right
_ROUND_CYCLES = 1     # after each of the last two shifts
_OUT_CYCLES = 4       # saturate; sign and zero point; floor; cap, into the output register
_LATENCY = (1 + _ADD_CYCLES + _ABS_CYCLES + _PRE_CYCLES + _PRE_FIX_CYCLES + _MUL_CYCLES
            + _FIRST_CYCLES + _ROUND_CYCLES + _SECOND_CYCLES + _ROUND_CYCLES + _OUT_CYCLES)
assert _LATENCY == SERIAL_REQUANT_CYCLES, "hw/cycles.py promises the store path this schedule"
#: When the late parameters arrive: the multiplier in ABS, the zero point during PRE.
_MULTIPLIER_DELAY = 1 + _ADD_CYCLES
_ZERO_POINT_DELAY = 8
#: PRE's cycle in which the zero point arrives (the request's cycle, ADD and ABS come first).
_ZERO_POINT_PRE_CYCLE = _ZERO_POINT_DELAY - 1 - _ADD_CYCLES - _ABS_CYCLES
assert 0 <= _ZERO_POINT_PRE_CYCLE < _PRE_CYCLES


def requantizer_class(params: RillParams) -> type[RequantPorts]:
    """The requantizer ``params`` asks for: serial (``params.serial_requant``) or pipelined."""
    return SerialRequantUnit if params.serial_requant else RequantUnit


class SerialRequantUnit(RequantPorts):
    """Turns ``acc + bias`` into the output byte in :data:`~hw.cycles.SERIAL_REQUANT_CYCLES` cycles.

    The same arithmetic as :class:`hw.requant.RequantUnit` (see its table), in sign and
    magnitude, on one 64-bit register that shifts one bit per cycle: no barrel shifter, no wide
    multiplier, one adder on each half. Every data-dependent loop runs in a phase of fixed length,
    so a request accepted in cycle ``t`` leaves on :attr:`o` in cycle ``t + SERIAL_REQUANT_CYCLES``
    whatever its values; the next request may come in that same cycle, not earlier (requests that
    come while the unit is busy are ignored; the sequencer paces them,
    ``hw.cycles.requant_interval``).

    Where the pipelined unit keeps a float32 in place, this one shifts the mantissa down and
    counts the exponent (``exponent``), as rounding to 24 significant bits does not depend on
    where the value sits; the final shift is then ``s - exponent``.

    The members and the configuration sampled with each request are those of
    :class:`hw.requant.RequantUnit`; the late parameters arrive earlier, as the unit takes its
    request without a register first (``multiplier_delay``, ``zero_point_delay``). It has no
    stall logic either: the core freezes it with an ``EnableInserter``.
    """

    multiplier_delay = _MULTIPLIER_DELAY
    zero_point_delay = _ZERO_POINT_DELAY

    def elaborate(self, platform):
        m = Module()
        req = self.i.payload

        lo = Signal(32)       # the value's low half: the multiplicand, then the result
        hi = Signal(32)       # its high half: acc, then the product's high half
        b = Signal(32)        # the other operand: bias, then |multiplier|
        guard = Signal()      # the last bit shifted out
        sticky = Signal()     # any bit shifted out before it
        sign = Signal()       # the result's sign (until PRE_FIX in TFLITE mode: x's)
        mult_neg = Signal()   # TFLITE: the multiplier's sign
        exponent = Signal(range(64))   # ONNX: right shifts so far (float32 exponents, <= 33)
        count = Signal(range(33))      # cycle within the phase
        amount = Signal(range(33))     # the shift PRE (TFLITE) or SECOND makes, from a register
        shift = Signal(8)
        byte_index = Signal(2)
        mode = Signal(RequantMode)
        zero_point = Signal(signed(16))
        raw_byte = Signal(8)
        m.d.sync += self.o.valid.eq(0)

        # One adder per half: hi + b (x = acc + bias; the multiply's partial sums), and
        # (lo ^ invert) + carry_in (|x| and |int32(u)| as ~lo + 1; the rounding increments).
        add_b = Signal()
        hi_sum = Signal(33)
        m.d.comb += hi_sum.eq(hi + Mux(add_b, b, 0))
        invert = Signal()
        carry_in = Signal()
        lo_sum = Signal(32)
        m.d.comb += lo_sum.eq((lo ^ invert.replicate(32)) + carry_in)

        def negate_if_negative():
            m.d.comb += [invert.eq(lo[31]), carry_in.eq(lo[31])]
            m.d.sync += lo.eq(lo_sum)

        def shift_right():
            m.d.sync += [Cat(lo, hi).eq(Cat(lo, hi) >> 1), guard.eq(lo[0]),
                         sticky.eq(sticky | guard)]

        def round_to_nearest(tie_up):
            m.d.comb += carry_in.eq(guard & (sticky | tie_up))
            m.d.sync += [lo.eq(lo_sum), guard.eq(0), sticky.eq(0)]

        def next_phase_after(cycles, phase):
            m.d.sync += count.eq(count + 1)
            with m.If(count == cycles - 1):
                m.d.sync += count.eq(0)
                m.next = phase

        # TFLITE's shifts: shift is a signed left shift, clipped to 31 either way.
        sh = shift.as_signed()
        left = Mux(sh > 31, 31, Mux(sh > 0, sh.as_unsigned()[:5], 0))
        right = Mux(sh < -31, 31, Mux(sh < 0, (-sh).as_unsigned()[:5], 0))
        # ONNX's final shift, s - exponent: negative only when the value saturates anyway (as in
        # the pipelined unit's first rounding), and past 32 the mantissa (<= 2**24) rounds to 0.
        onnx_right = Signal(signed(10))
        m.d.comb += onnx_right.eq(shift - exponent)
        second = Mux(mode.onnx, Mux(onnx_right < 0, 0, Mux(onnx_right > 32, 32, onnx_right)),
                     right)
        # Each amount is worked out the phase before it is used, so that no subtract and clamps
        # sit in front of the count compare.

        # The registers and the datapath's helpers the states share.
        r = SimpleNamespace(
            req=req, lo=lo, hi=hi, b=b, guard=guard, sticky=sticky, sign=sign, mult_neg=mult_neg,
            exponent=exponent, count=count, amount=amount, shift=shift, byte_index=byte_index,
            mode=mode, zero_point=zero_point, raw_byte=raw_byte, add_b=add_b,
            negate_if_negative=negate_if_negative, shift_right=shift_right,
            round_to_nearest=round_to_nearest, next_phase_after=next_phase_after, left=left,
            hi_sum=hi_sum, second=second)
        with m.FSM():
            self._load_and_multiply(m, r)
            self._round_and_clamp(m, r)
        return m

    def _load_and_multiply(self, m, r):
        """The request in, x = acc + bias, |x| and its first shift (float32 or ``<< left``), then
        the product by shifts and adds."""
        with m.State("IDLE"):
            with m.If(self.i.valid):
                m.d.sync += [
                    r.hi.eq(r.req.acc), r.b.eq(r.req.bias),
                    r.shift.eq(Mux(self.raw, 0, r.req.shift)),
                    r.byte_index.eq(r.req.byte_index),
                    r.mode.onnx.eq((self.rounding == Rounding.ONNX) | self.raw),
                    r.mode.relu.eq(self.relu), r.mode.out_type.eq(self.out_type),
                    r.mode.raw.eq(self.raw),
                ]
                m.next = "ADD"

        with m.State("ADD"):
            m.d.comb += r.add_b.eq(1)
            x = r.hi_sum[:32]
            m.d.sync += [r.lo.eq(x), r.raw_byte.eq(x.word_select(r.byte_index, 8))]
            m.next = "ABS"

        with m.State("ABS"):
            # |x| (2**31 for -2**31, as unsigned), and the multiplier: the float32 mantissa
            # (ONNX) or |M| <= 2**31 (TFLITE), its sign kept apart for PRE_FIX.
            r.negate_if_negative()
            mult = self.multiplier
            m.d.sync += [r.sign.eq(r.lo[31]), r.mult_neg.eq(mult < 0), r.hi.eq(0), r.guard.eq(0),
                         r.sticky.eq(0), r.exponent.eq(0), r.amount.eq(r.left),
                         r.b.eq(Mux(r.mode.onnx, mult[:24], Mux(mult < 0, -mult, mult)))]
            m.next = "PRE"

        with m.State("PRE"):
            with m.If(r.count == _ZERO_POINT_PRE_CYCLE):
                m.d.sync += r.zero_point.eq(self.zero_point)
            with m.If(r.mode.onnx):
                with m.If(r.lo[24:].any()):     # float32(|x|): 24 significant bits
                    r.shift_right()
                    m.d.sync += r.exponent.eq(r.exponent + 1)
            with m.Elif(r.count < r.amount):      # u = |x| << left, mod 2**32
                m.d.sync += r.lo.eq(r.lo << 1)
            r.next_phase_after(_PRE_CYCLES, "PRE_FIX")

        with m.State("PRE_FIX"):
            with m.If(r.mode.onnx):
                r.round_to_nearest(tie_up=r.lo[0])   # half to even
            with m.Else():
                # |int32(u)|; x << left is negative when u and x differ in sign, and when
                # u = 2**31 (-2**31 either way); the product's sign is that xor M's.
                r.negate_if_negative()
                is_min = r.lo[31] & ~r.lo[:31].any()
                m.d.sync += r.sign.eq(((r.sign ^ r.lo[31]) | is_min) ^ r.mult_neg)
            m.next = "MUL"

        with m.State("MUL"):
            # {hi, lo} = lo * b: add b to the high half when the multiplicand's next bit is
            # set, then shift the sum and the multiplicand down together.
            m.d.comb += r.add_b.eq(r.lo[0])
            m.d.sync += Cat(r.lo, r.hi).eq(Cat(r.lo, r.hi_sum) >> 1)
            r.next_phase_after(_MUL_CYCLES, "FIRST")


    def _round_and_clamp(self, m, r):
        """The product's two roundings, the saturation, the zero point and the clamp."""
        with m.State("FIRST"):
            with m.If(r.mode.onnx):
                with m.If(Cat(r.lo, r.hi)[24:].any()):   # float32(P): 24 significant bits
                    r.shift_right()
                    m.d.sync += r.exponent.eq(r.exponent + 1)
            with m.Else():                              # P / 2**31
                r.shift_right()
            r.next_phase_after(_FIRST_CYCLES, "FIRST_ROUND")

        with m.State("FIRST_ROUND"):
            # ONNX: half to even. TFLITE: the doubling high multiply's nudge rounds halves
            # toward +inf: up in magnitude for a positive product, down for a negative one.
            r.round_to_nearest(tie_up=Mux(r.mode.onnx, r.lo[0], ~r.sign))
            m.d.sync += r.amount.eq(r.second)
            m.next = "SECOND"

        with m.State("SECOND"):
            with m.If(r.count < r.amount):
                r.shift_right()
            r.next_phase_after(_SECOND_CYCLES, "SECOND_ROUND")

        with m.State("SECOND_ROUND"):
            # ONNX: half to even. TFLITE: RoundingDivideByPOT, halves away from zero.
            r.round_to_nearest(tie_up=Mux(r.mode.onnx, r.lo[0], 1))
            m.next = "SATURATE"

        with m.State("SATURATE"):
            m.d.sync += r.lo.eq(Mux(r.lo[SATURATION.bit_length() - 1:].any(), SATURATION, r.lo))
            m.next = "ADD_ZERO_POINT"

        with m.State("ADD_ZERO_POINT"):
            # The value, saturated (see hw.requant.signed_value), lands in lo as well.
            value = signed_value(m, r.lo[:SATURATION.bit_length()], r.sign, r.zero_point)
            m.d.sync += r.lo.eq(value.as_signed())
            m.next = "FLOOR"

        with m.State("FLOOR"):
            # |value| < 2**18: 20 bits hold it and the floor.
            m.d.sync += r.lo.eq(raise_to_floor(m, r.lo[:20].as_signed(), r.zero_point, r.mode,
                                                    self))
            m.next = "OUT"

        with m.State("OUT"):
            clamped = cap(m, r.lo[:20].as_signed(), r.mode, self)
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Mux(r.mode.raw, r.raw_byte, clamped[:8]))]
            m.next = "IDLE"

"""The requantization pipeline: an int32 accumulator in, one output byte out.

Bit-exact with :mod:`sw.requant`, the specification.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import REQUANT_STAGES, OutType, Rounding
from .rounding import bit_length, named, rounding_shift, whole_byte_stage

__all__ = ["RequantRequest", "RequantPorts", "RequantUnit", "MULTIPLIER_DELAY", "ZERO_POINT_DELAY",
           "RequantMode", "signed_value", "floor_of", "raise_to_floor", "cap", "SATURATION"]

#: |v| is saturated to this before the zero point is added (stage 5 says why that is safe).
SATURATION = 1 << 17


#: Cycles after its request that the unit takes a request's multiplier (stage 3 starts the
#: product) and its zero point (stage 9): they come late, straight from their own block RAMs
#: (:class:`hw.qparams.QparamTile`), rather than down the pipeline's registers.
MULTIPLIER_DELAY = 3
ZERO_POINT_DELAY = 11


class RequantRequest(data.Struct):
    """One accumulator and the early part of its output channel's requantization entry."""
    acc: signed(32)
    bias: signed(32)
    shift: unsigned(8)
    byte_index: unsigned(2)   #: in raw mode, which byte of ``acc + bias`` to send


class RequantMode(data.Struct):
    """The configuration a request was issued under; it travels down the pipeline with it."""
    onnx: 1
    relu: 1
    out_type: OutType
    raw: 1


def signed_value(m: Module, mag: Value, sign: Value, zero_point: Value) -> Signal:
    """``sign * mag + zp``, the value :func:`raise_to_floor` and :func:`cap` clamp.

    ``mag`` is already saturated at :data:`SATURATION`. That cannot change the clamped result:
    with ``|zp| <= 2**15``, ``v >= 2**17`` gives ``v + zp > 2**16 > max(lo, hi)``, and
    ``v <= -2**17`` gives ``v + zp < -2**16 < min(lo, hi)``, so the clamp yields ``hi`` (resp.
    ``min(lo, hi)``) either way. (:class:`RequantUnit` builds it in two stages, with the rounding
    increment as the adder's carry-in.)
    """
    return named(m, Mux(sign, -mag, mag) + zero_point, "value")


def _output_range(m: Module, out_type: Value) -> tuple[Signal, Signal]:
    lo = Signal(signed(17))
    hi = Signal(signed(17))
    with m.Switch(out_type):
        with m.Case(OutType.UINT8):
            m.d.comb += [lo.eq(0), hi.eq(255)]
        with m.Case(OutType.INT4):
            m.d.comb += [lo.eq(-8), hi.eq(7)]
        with m.Default():
            m.d.comb += [lo.eq(-128), hi.eq(127)]
    return lo, hi


def floor_of(m: Module, zero_point: Value, mode: RequantMode) -> Value:
    """The output range's low end, which ReLU raises to the zero point."""
    lo, _ = _output_range(m, mode.out_type)
    return named(m, Mux(mode.relu & (zero_point > lo), zero_point, lo), "floor")


def raise_to_floor(m: Module, value: Value, zero_point: Value, mode: RequantMode) -> Value:
    """``max(value, floor)`` (:func:`floor_of`)."""
    floor = floor_of(m, zero_point, mode)
    return named(m, Mux(value < floor, floor, value), "raised")


def cap(m: Module, raised: Value, mode: RequantMode) -> Value:
    """``min(raised, hi)``, after :func:`raise_to_floor`: max, then min, as sw.requant does, so
    a ReLU zero point above ``hi`` yields ``hi``."""
    _, hi = _output_range(m, mode.out_type)
    return Mux(raised > hi, hi, raised)


class RequantPorts(wiring.Component):
    """The members both requantizers have (:class:`RequantUnit`, documented there, and
    :class:`hw.requant_serial.SerialRequantUnit`).

    Each says, as class attributes, when it takes a request's late parameters (the qparam tile
    delivers them then): ``multiplier_delay`` and ``zero_point_delay`` cycles after the request.
    """

    i: In(stream.Signature(RequantRequest, always_ready=True))
    multiplier: In(signed(32))
    zero_point: In(signed(16))
    o: Out(stream.Signature(unsigned(8), always_ready=True))
    rounding: In(Rounding)
    relu: In(1)
    out_type: In(OutType)
    raw: In(1)


class RequantUnit(RequantPorts):
    """Turns ``acc + bias`` into the output byte, in either rounding mode, at one request per cycle.

    The arithmetic is :func:`sw.requant.requantize` (its Notes are the specification), followed
    by :func:`sw.requant.output_bytes`; in raw mode the byte is ``byte_index`` of the little-endian
    ``wrap_int32(acc + bias)`` (:func:`sw.requant.raw_bytes`). A request accepted in cycle ``t``
    leaves on :attr:`o` in cycle ``t + REQUANT_STAGES``; :attr:`o` is driven from registers.

    Both rounding modes are carried as *sign and magnitude* through one unsigned 32 x 32 multiplier
    and two rounding shifters, which differ only in where they cut and how they break ties:

    ===== ========================================= ========================================
    stage ONNX (float32 emulation)                  TFLITE (MultiplyByQuantizedMultiplier)
    ===== ========================================= ========================================
    0     the request, registered                   (same)
    1     ``x = acc + bias`` and ``-x``             (same), and ``left``, ``right`` from ``shift``
    2     ``|x|`` and its exponent ``ta``           ``u = |x| << left``
    3     ``ma = float32(|x|)`` in place: 24        ``|int32(u)| = |x << left|`` and its
          significant bits, half even; ``M``        sign; ``|M|`` (M arrives)
          arrives
    4-5   ``P = ma * (M & 0xFFFFFF)``               ``P = |x << left| * |M|``
          (four 16 x 16 products, then their sum)
    6     exponent ``t2`` of ``float32(P)``         (amount 31)
    7a    ``P`` shifted by the amount's whole       (same)
          bytes, the dropped bits' highest and the
          OR of the rest kept below it
    7b    ``y = float32(P)``: 24 significant bits,  ``y = round(P / 2**31)``, exact halves
          half even                                 toward +inf (the Q31 nudge)
    8a    ``y`` shifted by whole bytes (as 7a)      (same)
    8b    ``y / 2**(s - t2)`` half even,            ``y / 2**right``, halves away from zero,
          saturate                                  saturate
    9     sign, ``+ zp`` (zp arrives); the floor    (same)
    10    raise to the floor                        (same)
    11    cap at the range's top                    (same)
    ===== ========================================= ========================================

    Fourteen stages so that no stage holds more than one shifter, one or two carry chains or one
    multiplier (each rounding's shifter is split in two; the clamp's four carry chains are
    spread over three stages). Stage 0 only registers the request: it comes from the
    accumulator banks' read ports through a ``cols``-way column select, and a block RAM's
    clock-to-out and the select leave no time in that cycle for stage 1's adder.

    The configuration inputs are sampled with each request and travel with it, so a change only
    affects requests accepted afterwards. The unit has no stall logic: the core freezes it with
    an ``EnableInserter``, and every state element is a ``sync`` register.

    Members
    -------
    i : ``In(stream.Signature(RequantRequest, always_ready=True))``
        One accumulator, its channel's bias and shift per cycle.
    multiplier : ``In(signed(32))``
        The multiplier of the request accepted :data:`MULTIPLIER_DELAY` cycles earlier.
    zero_point : ``In(signed(16))``
        The zero point of the request accepted :data:`ZERO_POINT_DELAY` cycles earlier.
    o : ``Out(stream.Signature(unsigned(8), always_ready=True))``
        The output byte, :data:`~hw.isa.REQUANT_STAGES` cycles after its request.
    rounding : ``In(Rounding)``
        Rounding mode (a value other than ``ONNX`` runs TFLITE arithmetic).
    relu : ``In(1)``
        Clamp below at the zero point.
    out_type : ``In(OutType)``
        Output range (``INT8``, ``UINT8``, ``INT4``; INT4 is sent sign-extended to a byte).
    raw : ``In(1)``
        Send byte ``byte_index`` of ``acc + bias`` instead of the requantized value.
    """

    multiplier_delay = MULTIPLIER_DELAY
    zero_point_delay = ZERO_POINT_DELAY

    def elaborate(self, platform):
        m = Module()
        stages = 0
        # Only the valids have a reset: a stage's data means nothing until its valid says so, and
        # the reset net stays small (on a large core it would otherwise span the die).

        # -- stage 0: the request and the configuration it was issued under, registered --------
        valid0 = Signal()
        req = Signal.like(self.i.payload, name="req0", reset_less=True)
        mode0 = Signal(RequantMode, reset_less=True)
        m.d.sync += [
            valid0.eq(self.i.valid),
            req.eq(self.i.payload),
            # A raw request travels the ONNX path as ``byte * 1 / 2**0``, so that its byte needs
            # no registers of its own.
            mode0.onnx.eq((self.rounding == Rounding.ONNX) | self.raw),
            mode0.relu.eq(self.relu),
            mode0.out_type.eq(self.out_type),
            mode0.raw.eq(self.raw),
        ]
        stages += 1

        # -- stage 1: x = acc + bias, and the negations the magnitudes need -------------------
        # Only adds, in parallel; everything that depends on x starts in stage 2.
        valid1 = Signal()
        mode1 = Signal(RequantMode, reset_less=True)
        x1 = Signal(signed(32), reset_less=True)
        # -x mod 2**32: |x| when x < 0, including -2**31
        neg_x1 = Signal(unsigned(32), reset_less=True)
        left1 = Signal(range(32), reset_less=True)  # TFLITE's left shift (0 in ONNX mode)
        # the right shift after the product: ONNX s, TFLITE right
        k1 = Signal(unsigned(8), reset_less=True)
        byte_index1 = Signal(2, reset_less=True)
        # TFLITE: shift is a signed left shift, split into left and right amounts here, so that
        # stage 2 starts its shifter from a register (the clamp and the shifter would not fit one
        # stage). A raw request shifts by nothing.
        shift = Mux(mode0.raw, 0, req.shift)
        sh = shift.as_signed()
        left = Mux(sh > 31, 31, Mux(sh > 0, sh.as_unsigned()[:5], 0))
        right = Mux(sh < -31, 31, Mux(sh < 0, (-sh).as_unsigned()[:5], 0))
        m.d.sync += [
            valid1.eq(valid0),
            mode1.eq(mode0),
            x1.eq(req.acc + req.bias),
            neg_x1.eq(-req.acc - req.bias),
            left1.eq(Mux(mode0.onnx, 0, left)),
            k1.eq(Mux(mode0.onnx, shift, right)),
            byte_index1.eq(req.byte_index),
        ]
        stages += 1

        # -- stage 2: |x|, shifted left (TFLITE) ------------------------------------------------
        # ONNX: float32(|x|) rounds |x| to 24 significant bits, at bit ta = the bit length of
        # |x| >> 24 (0..8); stage 3 rounds it in place, so that no right shifter is needed.
        # TFLITE: x << left wraps as the int32 C code does. As -(v << left) = (-v) << left
        # modulo 2**32, u = |x| << left is x << left or its negation, and one shifter serves
        # both signs: |x << left| = |int32(u)|.
        abs_x = named(m, Mux(x1 < 0, neg_x1, x1.as_unsigned()), "abs_x")

        valid2 = Signal()
        mode2 = Signal(RequantMode, reset_less=True)
        u2 = Signal(unsigned(32), reset_less=True)  # ONNX: |x|; TFLITE: |x| << left, mod 2**32
        # ta as a thermometer code: bit i is ta > i, i.e. float32(|x|) drops bit i.
        dropped2 = Signal(8, reset_less=True)
        x_neg2 = Signal(reset_less=True)
        # the right shift after the product: ONNX s, TFLITE right
        k2 = Signal(unsigned(8), reset_less=True)
        raw_byte = x1.word_select(byte_index1, 8)
        m.d.sync += [
            valid2.eq(valid1), mode2.eq(mode1),
            u2.eq(Mux(mode1.raw, raw_byte, (abs_x << left1)[:32])),
            # ta > i exactly when |x| >> (24 + i) is not 0: ORs beside the other stage-2 logic,
            # so that stage 3's rounding is AND-ORs of registers, not a bit length's compares
            # and selects.
            dropped2.eq(Mux(mode1.raw, 0, Cat(*(abs_x[24 + i:].any() for i in range(8))))),
            x_neg2.eq(~mode1.raw & (x1 < 0)),
            k2.eq(k1),
        ]
        stages += 1

        # -- stage 3: the multiplicand, as a magnitude and a sign --------------------------------
        # ONNX: float32(|x|) in place, its low ta bits cleared: P = float32(|x|) * M is then the
        # float32 product's exact value, and its first rounding (stage 6-7) sees the exponent
        # ta in P's bit length, so the final shift stays s.
        # TFLITE: |int32(u)|; x << left is negative when u and x differ in sign, and when
        # u = 2**31 (-2**31 either way). A zero product's sign does not matter.
        # The multiplier arrives now (MULTIPLIER_DELAY), as the other operand: the float32
        # mantissa ``M & 0xFFFFFF`` (ONNX) or ``|M| <= 2**31`` (TFLITE); 1 for a raw request.
        low = dropped2                                      # the bits float32(|x|) drops
        at_ta = Cat(~low[0], *(low[i - 1] & ~low[i] for i in range(1, 8)), low[7])   # one-hot
        guard = Cat(*(at_ta[i] & u2[i - 1] for i in range(1, 9))).any()   # bit ta - 1
        sticky = (u2[:8] & (low >> 1)).any()                              # bits below it
        round_up = guard & (sticky | (at_ta & u2[:9]).any())              # ... and bit ta
        float_x = named(m, Cat(u2[:8] & ~low, u2[8:]) + (at_ta & round_up.replicate(9)),
                         "float_x")
        int32_u = named(m, Mux(u2[31], -u2, u2)[:32], "int32_u")
        u_is_min = u2[31] & ~u2[:31].any()
        xl_neg = (x_neg2 ^ u2[31]) | u_is_min

        valid3 = Signal()
        mode3 = Signal(RequantMode, reset_less=True)
        op_a3 = Signal(unsigned(32), reset_less=True)
        op_b3 = Signal(unsigned(32), reset_less=True)
        sign3 = Signal(reset_less=True)   # sign of the result (of x, or of x << left times M)
        # right shift still to apply, before stage 6's exponent
        k3 = Signal(signed(10), reset_less=True)
        mult = self.multiplier
        abs_mult = Mux(mult < 0, -mult, mult)
        m.d.sync += [valid3.eq(valid2), mode3.eq(mode2), k3.eq(k2),
                     op_b3.eq(Mux(mode2.raw, 1, Mux(mode2.onnx, mult[:24], abs_mult)))]
        with m.If(mode2.onnx):
            m.d.sync += [op_a3.eq(float_x), sign3.eq(x_neg2)]
        with m.Else():
            m.d.sync += [op_a3.eq(int32_u), sign3.eq(xl_neg ^ (mult < 0))]
        assert stages == MULTIPLIER_DELAY, "stage 3's registers take the multiplier"
        stages += 1

        # -- stages 4 and 5: the one wide multiplier, as four 16 x 16 products, then their sum ---
        # Split so that each product fits one DSP block and the sum gets a cycle of its own.
        # a_lo * b_lo and a_hi * b_hi do not overlap: they are registered side by side, and the
        # two middle products summed first, so the pipeline holds 97 bits here rather than 128.
        a_lo, a_hi = op_a3[:16], op_a3[16:]
        b_lo, b_hi = op_b3[:16], op_b3[16:]
        valid4 = Signal()
        mode4 = Signal(RequantMode, reset_less=True)
        outer4 = Signal(unsigned(64), reset_less=True)  # a_lo * b_lo + 2**32 * a_hi * b_hi
        middle4 = Signal(unsigned(33), reset_less=True)  # a_lo * b_hi + a_hi * b_lo
        sign4 = Signal(reset_less=True)
        k4 = Signal(signed(10), reset_less=True)
        m.d.sync += [valid4.eq(valid3), mode4.eq(mode3), sign4.eq(sign3), k4.eq(k3),
                     outer4.eq(Cat(a_lo * b_lo, a_hi * b_hi)),
                     middle4.eq(a_lo * b_hi + a_hi * b_lo)]
        stages += 1

        valid5 = Signal()
        mode5 = Signal(RequantMode, reset_less=True)
        product5 = Signal(unsigned(64), reset_less=True)  # ONNX: < 2**55; TFLITE: <= 2**62
        sign5 = Signal(reset_less=True)
        k5 = Signal(signed(10), reset_less=True)
        m.d.sync += [valid5.eq(valid4), mode5.eq(mode4), sign5.eq(sign4), k5.eq(k4),
                     product5.eq(outer4 + (middle4 << 16))]
        stages += 1

        # -- stage 6: the first rounding's exponent --------------------------------------------
        # ONNX: the float32 product keeps 24 significant bits of P, half even; its exponent t2
        # (0..31: P < 2**31 * 2**24) joins the final shift. TFLITE: the doubling high multiply's
        # nudge rounds |ab| / 2**31 to nearest with halves up for ab >= 0 and toward zero for
        # ab < 0.
        t2 = bit_length(m, product5[24:56], "t2")
        valid6 = Signal()
        mode6 = Signal(RequantMode, reset_less=True)
        product6 = Signal(unsigned(63), reset_less=True)
        first_amount6 = Signal(range(32), reset_less=True)
        sign6 = Signal(reset_less=True)
        k6 = Signal(signed(10), reset_less=True)  # ONNX: s; TFLITE: right
        t2_6 = Signal(range(33), reset_less=True)  # ONNX: t2; TFLITE: 0
        # s - t2 waits for stage 7: the bit length's tree and the subtraction's carry chain do
        # not fit one stage.
        m.d.sync += [valid6.eq(valid5), mode6.eq(mode5), product6.eq(product5[:63]),
                     first_amount6.eq(Mux(mode5.onnx, t2, 31)), sign6.eq(sign5),
                     k6.eq(k5), t2_6.eq(Mux(mode5.onnx, t2, 0))]
        stages += 1

        # -- stage 7a: the first rounding's shift by whole bytes -------------------------------
        # Shifting P by first_amount6 and rounding it (a 63-bit shifter of five levels, then
        # the increment's carry chain) is too long for one stage: whole bytes here, the rest in
        # 7b. 42 bits: stage 7b's quotient needs 32, after a shift of at most 9.
        valid7a = Signal()
        mode7a = Signal(RequantMode, reset_less=True)
        kept7a, fine7a, guard7a = whole_byte_stage(m, product6, first_amount6, 42, "first")
        sign7a = Signal(reset_less=True)
        k7a = Signal.like(k6, reset_less=True)
        t2_7a = Signal.like(t2_6, reset_less=True)
        m.d.sync += [valid7a.eq(valid6), mode7a.eq(mode6), sign7a.eq(sign6), k7a.eq(k6),
                     t2_7a.eq(t2_6)]
        stages += 1

        # -- stage 7b: first rounding ------------------------------------------------------------
        # TFLITE's one overflow, (-2**31) * (-2**31), yields 2**31 here where C saturates to
        # 2**31 - 1. Both then give the same final value: for right = 0 both saturate, and for
        # 1 <= right <= 31, 2**31 + 2**(right-1) is never a multiple of 2**right, so rounding
        # 2**31 and 2**31 - 1 by 2**right agree.
        first = rounding_shift(m, kept7a, fine7a, guard7a, half_even=mode7a.onnx,
                               tie_up=~sign7a, name="first")
        valid7 = Signal()
        mode7 = Signal(RequantMode, reset_less=True)
        mag7 = Signal(unsigned(32), reset_less=True)  # ONNX: <= 2**24; TFLITE: <= 2**31
        sign7 = Signal(reset_less=True)
        amount7 = Signal(range(64), reset_less=True)
        # k = s - t2 (ONNX; TFLITE: right)
        k = named(m, k7a - t2_7a, "k")
        # A negative k (ONNX: s < t2) would shift left. It needs t2 >= 1, so P >= 2**24 and
        # mag7, its 24-bit mantissa, is >= 2**23: shifted or not, it saturates, so shifting by 0
        # instead gives the same byte.
        m.d.sync += [valid7.eq(valid7a), mode7.eq(mode7a), mag7.eq(first), sign7.eq(sign7a),
                     amount7.eq(Mux(k < 0, 0, Mux(k > 63, 63, k.as_unsigned()[:6])))]
        stages += 1

        # -- stage 8a: the second rounding's shift by whole bytes ------------------------------
        # As stage 7a, for the same reason: the second rounding's shift and increment do not
        # fit one stage. 34 bits: mag7 has 32.
        valid8a = Signal()
        mode8a = Signal(RequantMode, reset_less=True)
        kept8a, fine8a, guard8a = whole_byte_stage(m, mag7, amount7, 34, "second")
        sign8a = Signal(reset_less=True)
        m.d.sync += [valid8a.eq(valid7), mode8a.eq(mode7), sign8a.eq(sign7)]
        stages += 1

        # -- stage 8b: second rounding ---------------------------------------------------------
        mag, round_up = rounding_shift(m, kept8a, fine8a, guard8a, half_even=mode8a.onnx,
                                       tie_up=1, name="second",
                                       saturate_bits=SATURATION.bit_length() - 1)
        valid8 = Signal()
        mode8 = Signal(RequantMode, reset_less=True)
        # The signed value is term8 + carry8 (+ the zero point, in stage 9): with |v| = mag +
        # round_up, -|v| = ~mag + 1 - round_up. The sign is applied here, in the saturation
        # mux's LUTs, so that stage 9 is one adder with the rounding as its carry-in, with no
        # sign mux in front of it.
        # Saturating |v| at 2**17 cannot change the clamped result (see signed_value).
        wide = Cat(mag, Const(0, 1)).as_signed()   # mag, zero-extended: ~wide is -mag - 1
        term8 = Signal(signed(len(wide)), reset_less=True)
        carry8 = Signal(reset_less=True)
        raw_byte8 = Signal(8, reset_less=True)
        m.d.sync += [valid8.eq(valid8a), mode8.eq(mode8a),
                     term8.eq(Mux(sign8a, ~wide, wide)), carry8.eq(sign8a ^ round_up),
                     raw_byte8.eq(mag[:8])]
        stages += 1

        # -- stage 9: sign and zero point; the floor ------------------------------------------
        assert stages == ZERO_POINT_DELAY, "stage 9's registers take the zero point"
        valid9 = Signal()
        mode9 = Signal(RequantMode, reset_less=True)
        # |v| <= 2**17 (stage 8) plus a 16-bit zero point
        value9 = Signal(signed(19), reset_less=True)
        floor9 = Signal(signed(17), reset_less=True)
        raw_byte9 = Signal(8, reset_less=True)
        # term8 + zero point + carry8 as one adder: both operands doubled, with the carry as
        # their low bits, so the carry ripples into bit 1 (an added one-bit term would be a
        # second adder).
        zero_point = self.zero_point.as_signed()
        doubled = (Cat(carry8, term8).as_signed()
                   + Cat(carry8, zero_point, zero_point[-1].replicate(len(term8) - len(zero_point)))
                   .as_signed())
        # A raw request's byte is shifted by 0 (stage 0): it never rounds up.
        m.d.sync += [valid9.eq(valid8), mode9.eq(mode8), raw_byte9.eq(raw_byte8),
                     value9.eq(doubled[1:1 + len(value9)].as_signed()),
                     floor9.eq(floor_of(m, self.zero_point, mode8))]
        stages += 1

        # -- stage 10: raise to the floor -------------------------------------------------------
        valid10 = Signal()
        mode10 = Signal(RequantMode, reset_less=True)
        raised10 = Signal(signed(19), reset_less=True)
        raw_byte10 = Signal(8, reset_less=True)
        m.d.sync += [valid10.eq(valid9), mode10.eq(mode9), raw_byte10.eq(raw_byte9),
                     raised10.eq(Mux(value9 < floor9, floor9, value9))]
        stages += 1

        # -- stage 11: cap, into the output register --------------------------------------------
        clamped = cap(m, raised10, mode10)
        m.d.sync += [self.o.valid.eq(valid10),
                     self.o.payload.eq(Mux(mode10.raw, raw_byte10, clamped[:8]))]
        stages += 1

        assert stages == REQUANT_STAGES, "hw/isa.py promises the store path this latency"
        return m

"""The requantization pipeline: an int32 accumulator in, one output byte out.

Bit-exact with :mod:`sw.requant`, the specification.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import REQUANT_STAGES, OutType, Rounding

__all__ = ["RequantRequest", "RequantUnit"]

#: |v| is saturated to this before the zero point is added (stage 5 says why that is safe).
_SATURATION = 1 << 17


class RequantRequest(data.Struct):
    """One accumulator and the requantization entry of its output channel."""
    acc: signed(32)
    bias: signed(32)
    multiplier: signed(32)
    shift: unsigned(8)
    zero_point: signed(16)
    byte_index: unsigned(2)   #: in raw mode, which byte of ``acc + bias`` to send


class _Mode(data.Struct):
    """The configuration a request was issued under; it travels down the pipeline with it."""
    onnx: 1
    relu: 1
    out_type: OutType
    raw: 1


def _named(m: Module, value: Value, name: str) -> Signal:
    """``value`` through a comb signal, so that each use shares one copy of its logic."""
    signal = Signal.like(value, name=name)
    m.d.comb += signal.eq(value)
    return signal


def _leading_zeros(m: Module, value: Value) -> tuple[Value, Value]:
    """``(is_zero, count)`` of a power-of-two-wide value; ``count`` is meaningless when zero.

    A tree of halves, so the depth grows with log2 of the width rather than the width.
    """
    if len(value) == 2:
        return ~value.any(), ~value[1]
    half = len(value) // 2
    hi_zero, hi_count = _leading_zeros(m, value[half:])
    lo_zero, lo_count = _leading_zeros(m, value[:half])
    hi_zero = _named(m, hi_zero, f"hi_zero_{len(value)}")
    return hi_zero & lo_zero, Cat(Mux(hi_zero, lo_count, hi_count), hi_zero)


def _bit_length(m: Module, value: Value, name: str) -> Signal:
    """Position of the highest set bit plus one (0 for 0) of an unsigned value."""
    width = 1 << max(1, (len(value) - 1).bit_length())
    is_zero, count = _leading_zeros(m, Cat(value, Const(0, width - len(value))))
    length = Signal(range(width + 1), name=name)
    m.d.comb += length.eq(Mux(is_zero, 0, width - count))
    return length


def _rounding_shift(m: Module, value: Value, amount: Value, *, half_even: Value,
                    tie_up: Value, name: str) -> Signal:
    """``value / 2**amount`` rounded to nearest, for unsigned ``value`` and ``amount``.

    An exact half rounds up when the quotient is odd (``half_even``) or, otherwise, when
    ``tie_up``. Amounts past the width give 0. The result is one bit wider than ``value``.
    """
    value = _named(m, value, f"{name}_in")
    amount = _named(m, amount, f"{name}_amount")
    quotient = _named(m, value >> amount, f"{name}_quotient")
    # The first discarded bit decides "at least half"; any bit below it, "more than half".
    guard = (amount != 0) & value.bit_select((amount - 1)[:len(amount)], 1)
    below_guard = Cat(*(amount > i + 1 for i in range(len(value))))
    sticky = (value & below_guard).any()
    tie = Mux(half_even, quotient[0], tie_up)
    result = Signal(len(value) + 1, name=name)
    m.d.comb += result.eq(quotient + (guard & (sticky | tie)))
    return result


class RequantUnit(wiring.Component):
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
    1     ``x = acc + bias`` and ``-x``; ``|M|``    (same)
    2     ``ma = float32(|x|)``: 24 significant     ``|x << left|``, sign of ``x << left``
          bits, half even, exponent ``ta``          and of ``M``
    3     ``P = ma * (M & 0xFFFFFF)``               ``P = |x << left| * |M|``
    4     ``y = float32(P)``: 24 significant bits,  ``y = round(P / 2**31)``, exact halves
          half even, exponent ``t2``                toward +inf (the Q31 nudge)
    5     ``y / 2**(s - ta - t2)`` half even,       ``y / 2**right``, halves away from zero,
          saturate, sign, ``+ zp``, clamp           saturate, sign, ``+ zp``, clamp
    ===== ========================================= ========================================

    The configuration inputs are sampled with each request and travel with it, so a change only
    affects requests accepted afterwards. The unit has no stall logic: the core freezes it with
    an ``EnableInserter``, and every state element is a ``sync`` register.

    Members
    -------
    i : ``In(stream.Signature(RequantRequest, always_ready=True))``
        One accumulator and its channel's requantization entry per cycle.
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

    i: In(stream.Signature(RequantRequest, always_ready=True))
    o: Out(stream.Signature(unsigned(8), always_ready=True))
    rounding: In(Rounding)
    relu: In(1)
    out_type: In(OutType)
    raw: In(1)

    def elaborate(self, platform):
        m = Module()
        stages = 0

        # -- stage 1: x = acc + bias, and the negations the magnitudes need -------------------
        # The request comes straight from the SRAM read ports, so this stage only adds, in
        # parallel; everything that depends on x starts in stage 2.
        req = self.i.payload
        valid1 = Signal()
        mode1 = Signal(_Mode)
        x1 = Signal(signed(32))
        neg_x1 = Signal(unsigned(32))     # -x mod 2**32: |x| when x < 0, including -2**31
        abs_mult1 = Signal(unsigned(32))  # |M| <= 2**31 (TFLITE)
        mult_neg1 = Signal()
        mantissa1 = Signal(unsigned(24))  # M & 0xFFFFFF (ONNX)
        shift1 = Signal(unsigned(8))
        zp1 = Signal(signed(16))
        byte_index1 = Signal(2)
        m.d.sync += [
            valid1.eq(self.i.valid),
            mode1.onnx.eq(self.rounding == Rounding.ONNX),
            mode1.relu.eq(self.relu),
            mode1.out_type.eq(self.out_type),
            mode1.raw.eq(self.raw),
            x1.eq(req.acc + req.bias),
            neg_x1.eq(-req.acc - req.bias),
            abs_mult1.eq(Mux(req.multiplier < 0, -req.multiplier, req.multiplier)),
            mult_neg1.eq(req.multiplier < 0),
            mantissa1.eq(req.multiplier[:24]),
            shift1.eq(req.shift),
            zp1.eq(req.zero_point),
            byte_index1.eq(req.byte_index),
        ]
        stages += 1

        # -- stage 2: the multiplicand, as a magnitude and a sign --------------------------------
        # ONNX: float32(|x|) is |x| rounded to 24 significant bits; its exponent ta = the bit
        # length of |x| >> 24 (0..8) moves into the final shift, so the multiplicand stays 25 bits.
        abs_x = Mux(x1 < 0, neg_x1, x1.as_unsigned())
        abs_x = _named(m, abs_x, "abs_x")
        ta = _bit_length(m, abs_x[24:], "ta")
        mantissa_x = _rounding_shift(m, abs_x, ta, half_even=1, tie_up=0, name="mantissa_x")
        # TFLITE: shift is a signed left shift; x << left wraps as the int32 C code does, and
        # -(x << left) = (-x) << left modulo 2**32 gives its magnitude without another adder.
        sh = shift1.as_signed()
        left = _named(m, Mux(sh > 31, 31, Mux(sh > 0, sh.as_unsigned()[:5], 0)), "left")
        right = Mux(sh < -31, 31, Mux(sh < 0, (-sh).as_unsigned()[:5], 0))
        xl = _named(m, (x1.as_unsigned() << left)[:32], "xl")
        neg_xl = (neg_x1 << left)[:32]

        valid2 = Signal()
        mode2 = Signal(_Mode)
        op_a2 = Signal(unsigned(32))
        op_b2 = Signal(unsigned(32))
        sign2 = Signal()                  # sign of the result (of x, or of x << left times M)
        k2 = Signal(signed(10))           # right shift still to apply, before stage 4's exponent
        zp2 = Signal(signed(16))
        raw_byte2 = Signal(8)
        m.d.sync += [valid2.eq(valid1), mode2.eq(mode1), zp2.eq(zp1),
                     raw_byte2.eq(x1.word_select(byte_index1, 8))]
        with m.If(mode1.onnx):
            m.d.sync += [op_a2.eq(mantissa_x), op_b2.eq(mantissa1), sign2.eq(x1 < 0),
                         k2.eq(shift1 - ta)]
        with m.Else():
            m.d.sync += [op_a2.eq(Mux(xl[31], neg_xl, xl)), op_b2.eq(abs_mult1),
                         sign2.eq(xl[31] ^ mult_neg1), k2.eq(right)]
        stages += 1

        # -- stage 3: the one wide multiplier --------------------------------------------------
        valid3 = Signal()
        mode3 = Signal(_Mode)
        product3 = Signal(unsigned(64))   # ONNX: < 2**48; TFLITE: <= 2**62
        sign3 = Signal()
        k3 = Signal(signed(10))
        zp3 = Signal(signed(16))
        raw_byte3 = Signal(8)
        m.d.sync += [valid3.eq(valid2), mode3.eq(mode2), product3.eq(op_a2 * op_b2),
                     sign3.eq(sign2), k3.eq(k2), zp3.eq(zp2), raw_byte3.eq(raw_byte2)]
        stages += 1

        # -- stage 4: first rounding -----------------------------------------------------------
        # ONNX: the float32 product keeps 24 significant bits of P, half even; its exponent t2
        # (0..24) joins the final shift. TFLITE: the doubling high multiply's nudge rounds
        # |ab| / 2**31 to nearest with halves up for ab >= 0 and toward zero for ab < 0.
        # TFLITE's one overflow, (-2**31) * (-2**31), yields 2**31 here where C saturates to
        # 2**31 - 1. Both then give the same final value: for right = 0 both saturate, and for
        # 1 <= right <= 31, 2**31 + 2**(right-1) is never a multiple of 2**right, so rounding
        # 2**31 and 2**31 - 1 by 2**right agree.
        t2 = _bit_length(m, product3[24:48], "t2")
        first = _rounding_shift(m, product3[:63], Mux(mode3.onnx, t2, 31),
                                half_even=mode3.onnx, tie_up=~sign3, name="first")
        valid4 = Signal()
        mode4 = Signal(_Mode)
        mag4 = Signal(unsigned(32))       # ONNX: <= 2**24; TFLITE: <= 2**31
        sign4 = Signal()
        k4 = Signal(signed(10))           # ONNX: s - ta - t2 in -32..255; TFLITE: right
        zp4 = Signal(signed(16))
        raw_byte4 = Signal(8)
        m.d.sync += [valid4.eq(valid3), mode4.eq(mode3), mag4.eq(first), sign4.eq(sign3),
                     k4.eq(Mux(mode3.onnx, k3 - t2, k3)), zp4.eq(zp3), raw_byte4.eq(raw_byte3)]
        stages += 1

        # -- stage 5: second rounding, zero point, clamp ---------------------------------------
        # A negative k (ONNX: s < ta + t2) would shift left. It needs ta + t2 >= 1, and then a
        # nonzero mag4 is >= 2**23: with t2 >= 1, P >= 2**24 and mag4 is its 24-bit mantissa;
        # with t2 = 0 and ta >= 1, mag4 = P = ma * m with ma >= 2**23. Shifted or not, it
        # saturates, so shifting by 0 instead gives the same byte.
        amount = Mux(k4 < 0, 0, Mux(k4 > 63, 63, k4.as_unsigned()[:6]))
        mag = _rounding_shift(m, mag4, amount, half_even=mode4.onnx, tie_up=1, name="second")
        # Saturating |v| at 2**17 cannot change the clamped result: with |zp| <= 2**15,
        # v >= 2**17 gives v + zp > 2**16 > max(lo, hi), and v <= -2**17 gives
        # v + zp < -2**16 < min(lo, hi), so clamp(v + zp) is hi (resp. min(lo, hi)) either way.
        mag_sat = _named(m, Mux(mag > _SATURATION, _SATURATION, mag)[:_SATURATION.bit_length()],
                         "mag_sat")
        value = _named(m, Mux(sign4, -mag_sat, mag_sat) + zp4, "value")
        lo = Signal(signed(17))
        hi = Signal(signed(17))
        with m.Switch(mode4.out_type):
            with m.Case(OutType.UINT8):
                m.d.comb += [lo.eq(0), hi.eq(255)]
            with m.Case(OutType.INT4):
                m.d.comb += [lo.eq(-8), hi.eq(7)]
            with m.Default():
                m.d.comb += [lo.eq(-128), hi.eq(127)]
        floor = _named(m, Mux(mode4.relu & (zp4 > lo), zp4, lo), "floor")
        # Max, then min, as sw.requant does: a ReLU zero point above hi yields hi.
        raised = _named(m, Mux(value < floor, floor, value), "raised")
        clamped = Mux(raised > hi, hi, raised)
        m.d.sync += [self.o.valid.eq(valid4),
                     self.o.payload.eq(Mux(mode4.raw, raw_byte4, clamped[:8]))]
        stages += 1

        assert stages == REQUANT_STAGES, "hw/isa.py promises the store path this latency"
        return m

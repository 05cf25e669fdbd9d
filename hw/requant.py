"""The requantization pipeline: an int32 accumulator in, one output byte out.

Bit-exact with :mod:`sw.requant`, the specification.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cycles import REQUANT_STAGES
from .isa import OutType, Rounding
from .pipeline import PipelineStages
from .rounding import bit_length, named, rounding_shift, whole_byte_stage

__all__ = ["RequantRequest", "RequantPorts", "RequantUnit", "MULTIPLIER_DELAY", "ZERO_POINT_DELAY",
           "RequantMode", "signed_value", "floor_of", "raise_to_floor", "cap", "SATURATION"]

#: |v| is saturated to this before the zero point is added (:func:`signed_value` says why that
#: is safe).
SATURATION = 1 << 17


#: Cycles after its request that the unit takes a request's multiplier (stage 3 starts the
#: product) and its zero point (stage 11): they come late, straight from their own block RAMs
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


def floor_of(m: Module, zero_point: Value, mode: RequantMode, ports: "RequantPorts") -> Value:
    """The output range's low end, which ReLU raises to the zero point, or a clamp to its
    bound (``ports.clamp``, ``clamp_lo``)."""
    lo, _ = _output_range(m, mode.out_type)
    lo = Mux(ports.clamp & (ports.clamp_lo > lo), ports.clamp_lo, lo)
    return named(m, Mux(mode.relu & (zero_point > lo), zero_point, lo), "floor")


def raise_to_floor(m: Module, value: Value, zero_point: Value, mode: RequantMode,
                   ports: "RequantPorts") -> Value:
    """``max(value, floor)`` (:func:`floor_of`)."""
    floor = floor_of(m, zero_point, mode, ports)
    return named(m, Mux(value < floor, floor, value), "raised")


def cap(m: Module, raised: Value, mode: RequantMode, ports: "RequantPorts") -> Value:
    """``min(raised, hi)``, after :func:`raise_to_floor`: max, then min, as sw.requant does, so
    a ReLU zero point (or a clamp's low bound) above ``hi`` yields ``hi``; a clamp lowers ``hi``
    to its bound (``ports.clamp``, ``clamp_hi``)."""
    _, hi = _output_range(m, mode.out_type)
    hi = Mux(ports.clamp & (ports.clamp_hi < hi), ports.clamp_hi, hi)
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
    #: ``hw.isa.Config.clamp``: the bounds as values of the output type. Like the other
    #: configuration inputs they hold still while requests are in flight (a CONFIG waits for
    #: the STORE before it to flush), so they are used where the clamp happens, not piped.
    clamp: In(1)
    clamp_lo: In(signed(9))
    clamp_hi: In(signed(9))


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
    7     ``P`` shifted by the amount's whole       (same)
          bytes, the dropped bits' highest and the
          OR of the rest kept below it
    8     ``y = float32(P)``: 24 significant bits,  ``y = round(P / 2**31)``, exact halves
          half even                                 toward +inf (the Q31 nudge)
    9     ``y`` shifted by whole bytes (as 7)       (same)
    10    ``y / 2**(s - t2)`` half even,            ``y / 2**right``, halves away from zero,
          saturate                                  saturate
    11    sign, ``+ zp`` (zp arrives); the floor    (same)
    12    raise to the floor                        (same)
    13    cap at the range's top                    (same)
    ===== ========================================= ========================================

    Fourteen stages so that no stage holds more than one shifter, one or two carry chains or one
    multiplier (each rounding's shifter is split in two; the clamp's four carry chains are
    spread over three stages). Stage 0 only registers the request: it comes from the
    accumulator banks' read ports through a ``cols``-way column select, and a block RAM's
    clock-to-out and the select leave no time in that cycle for stage 1's adder. The stages are
    built by :class:`hw.pipeline.PipelineStages`, which numbers them (``valid7``, ``mode7``, ...
    are stage 7's registers) and so counts the latency checked against ``REQUANT_STAGES``.

    The configuration inputs but the clamp's are sampled with each request and travel with it,
    so a change only affects requests accepted afterwards (the clamp's are read at the clamp:
    :class:`RequantPorts`). The unit has no stall logic: the core freezes it with
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
        The output byte, :data:`~hw.cycles.REQUANT_STAGES` cycles after its request.
    rounding : ``In(Rounding)``
        Rounding mode (a value other than ``ONNX`` runs TFLITE arithmetic).
    relu : ``In(1)``
        Clamp below at the zero point.
    out_type : ``In(OutType)``
        Output range (``INT8``, ``UINT8``, ``INT4``; INT4 is sent sign-extended to a byte).
    raw : ``In(1)``
        Send byte ``byte_index`` of ``acc + bias`` instead of the requantized value.
    clamp, clamp_lo, clamp_hi : ``In``
        Clamp to ``[clamp_lo, clamp_hi]`` within the output range (``hw.isa.Config.clamp``).
    """

    multiplier_delay = MULTIPLIER_DELAY
    zero_point_delay = ZERO_POINT_DELAY

    def elaborate(self, platform):
        m = Module()
        # The configuration a request was issued under travels with it. A raw request travels the
        # ONNX path as ``byte * 1 / 2**0``, so that its byte needs no registers of its own.
        mode = Signal(RequantMode, name="mode_in")
        m.d.comb += [mode.onnx.eq((self.rounding == Rounding.ONNX) | self.raw),
                     mode.relu.eq(self.relu), mode.out_type.eq(self.out_type),
                     mode.raw.eq(self.raw)]
        pipe = PipelineStages(m, self.i.valid, mode, RequantMode)
        # The request, registered: it comes from the accumulator banks' read ports through a
        # ``cols``-way column select, and a block RAM's clock-to-out and the select leave no
        # time in that cycle for the next stage's adder.
        req = pipe.stage().reg("req", self.i.payload.shape(), self.i.payload)
        x, neg_x, left, k, byte_index = self._sum(m, pipe, req)
        u, dropped, x_neg, k = self._magnitude(m, pipe, x, neg_x, left, k, byte_index)
        assert pipe.count == MULTIPLIER_DELAY, "the next stage's registers take the multiplier"
        op_a, op_b, sign, k = self._multiplicand(m, pipe, u, dropped, x_neg, k)
        product, sign, k = self._product(pipe, op_a, op_b, sign, k)
        mag, sign, amount = self._first_rounding(m, pipe, product, sign, k)
        term, carry, raw_byte = self._second_rounding(m, pipe, mag, sign, amount)
        assert pipe.count == ZERO_POINT_DELAY, "the next stage's registers take the zero point"
        self._clamp(m, pipe, term, carry, raw_byte)
        assert pipe.count == REQUANT_STAGES, "hw/cycles.py promises the store path this latency"
        return m

    def _sum(self, m, pipe, req):
        """``x = acc + bias``, and the negations the magnitudes need: only adds, in parallel;
        everything that depends on ``x`` starts in the next stage."""
        # TFLITE: shift is a signed left shift, split into left and right amounts here, so that
        # the next stage starts its shifter from a register (the clamp and the shifter would not
        # fit one stage). A raw request shifts by nothing.
        onnx, raw = pipe.mode.onnx, pipe.mode.raw
        shift = Mux(raw, 0, req.shift)
        sh = shift.as_signed()
        left = Mux(sh > 31, 31, Mux(sh > 0, sh.as_unsigned()[:5], 0))
        right = Mux(sh < -31, 31, Mux(sh < 0, (-sh).as_unsigned()[:5], 0))
        st = pipe.stage()
        return (st.reg("x", signed(32), req.acc + req.bias),
                # -x mod 2**32: |x| when x < 0, including -2**31
                st.reg("neg_x", unsigned(32), -req.acc - req.bias),
                st.reg("left", range(32), Mux(onnx, 0, left)),   # TFLITE's (0 in ONNX mode)
                # the right shift after the product: ONNX s, TFLITE right
                st.reg("k", unsigned(8), Mux(onnx, shift, right)),
                st.reg("byte_index", 2, req.byte_index))

    def _magnitude(self, m, pipe, x, neg_x, left, k, byte_index):
        """``|x|``, shifted left (TFLITE).

        ONNX: float32(|x|) rounds |x| to 24 significant bits, at bit ta = the bit length of
        |x| >> 24 (0..8); the next stage rounds it in place, so that no right shifter is needed.
        TFLITE: x << left wraps as the int32 C code does. As -(v << left) = (-v) << left modulo
        2**32, u = |x| << left is x << left or its negation, and one shifter serves both signs:
        |x << left| = |int32(u)|.
        """
        raw = pipe.mode.raw
        abs_x = named(m, Mux(x < 0, neg_x, x.as_unsigned()), "abs_x")
        raw_byte = x.word_select(byte_index, 8)
        st = pipe.stage()
        # ONNX: |x|; TFLITE: |x| << left, mod 2**32
        u = st.reg("u", unsigned(32), Mux(raw, raw_byte, (abs_x << left)[:32]))
        # ta as a thermometer code: bit i is ta > i, i.e. float32(|x|) drops bit i. ta > i
        # exactly when |x| >> (24 + i) is not 0: ORs beside the other logic of this stage, so
        # that the next stage's rounding is AND-ORs of registers, not a bit length's compares
        # and selects.
        dropped = st.reg("dropped", 8, Mux(raw, 0, Cat(*(abs_x[24 + i:].any() for i in range(8)))))
        x_neg = st.reg("x_neg", 1, ~raw & (x < 0))
        return u, dropped, x_neg, st.reg("k", unsigned(8), k)

    def _multiplicand(self, m, pipe, u, dropped, x_neg, k):
        """The multiplicand, as a magnitude and a sign, and the multiplier, which arrives now
        (:data:`MULTIPLIER_DELAY`).

        ONNX: float32(|x|) in place, its low ta bits cleared: P = float32(|x|) * M is then the
        float32 product's exact value, and its first rounding sees the exponent ta in P's bit
        length, so the final shift stays s. TFLITE: |int32(u)|; x << left is negative when u and
        x differ in sign, and when u = 2**31 (-2**31 either way). A zero product's sign does not
        matter. The multiplier is the float32 mantissa ``M & 0xFFFFFF`` (ONNX) or ``|M| <=
        2**31`` (TFLITE); 1 for a raw request.
        """
        low = dropped                                       # the bits float32(|x|) drops
        at_ta = Cat(~low[0], *(low[i - 1] & ~low[i] for i in range(1, 8)), low[7])   # one-hot
        guard = Cat(*(at_ta[i] & u[i - 1] for i in range(1, 9))).any()   # bit ta - 1
        sticky = (u[:8] & (low >> 1)).any()                              # bits below it
        round_up = guard & (sticky | (at_ta & u[:9]).any())              # ... and bit ta
        float_x = named(m, Cat(u[:8] & ~low, u[8:]) + (at_ta & round_up.replicate(9)), "float_x")
        int32_u = named(m, Mux(u[31], -u, u)[:32], "int32_u")
        u_is_min = u[31] & ~u[:31].any()
        xl_neg = (x_neg ^ u[31]) | u_is_min
        mult = self.multiplier
        abs_mult = Mux(mult < 0, -mult, mult)
        onnx, raw = pipe.mode.onnx, pipe.mode.raw
        st = pipe.stage()
        return (st.reg("op_a", unsigned(32), Mux(onnx, float_x, int32_u)),
                st.reg("op_b", unsigned(32), Mux(raw, 1, Mux(onnx, mult[:24], abs_mult))),
                # the sign of the result (of x, or of x << left times M)
                st.reg("sign", 1, Mux(onnx, x_neg, xl_neg ^ (mult < 0))),
                # the right shift still to apply, before the first rounding's exponent
                st.reg("k", signed(10), k))

    def _product(self, pipe, op_a, op_b, sign, k):
        """The one wide multiplier, as four 16 x 16 products, then their sum: split so that each
        product fits one DSP block and the sum gets a cycle of its own. a_lo * b_lo and a_hi *
        b_hi do not overlap: they are registered side by side, and the two middle products
        summed first, so the pipeline holds 97 bits here rather than 128."""
        a_lo, a_hi = op_a[:16], op_a[16:]
        b_lo, b_hi = op_b[:16], op_b[16:]
        st = pipe.stage()
        outer = st.reg("outer", unsigned(64), Cat(a_lo * b_lo, a_hi * b_hi))
        middle = st.reg("middle", unsigned(33), a_lo * b_hi + a_hi * b_lo)
        sign, k = st.reg("sign", 1, sign), st.reg("k", signed(10), k)
        st = pipe.stage()
        # ONNX: < 2**55; TFLITE: <= 2**62
        product = st.reg("product", unsigned(64), outer + (middle << 16))
        return product, st.reg("sign", 1, sign), st.reg("k", signed(10), k)

    def _first_rounding(self, m, pipe, product, sign, k):
        """The product's rounding: its exponent, its shift by whole bytes, then the rounding.

        ONNX: the float32 product keeps 24 significant bits of P, half even; its exponent t2
        (0..31: P < 2**31 * 2**24) joins the final shift. TFLITE: the doubling high multiply's
        nudge rounds |ab| / 2**31 to nearest with halves up for ab >= 0 and toward zero for
        ab < 0.
        """
        onnx = pipe.mode.onnx
        t2 = bit_length(m, product[24:56], "t2")
        st = pipe.stage()
        product = st.reg("product", unsigned(63), product[:63])
        first_amount = st.reg("first_amount", range(32), Mux(onnx, t2, 31))
        sign = st.reg("sign", 1, sign)
        k = st.reg("k", signed(10), k)   # ONNX: s; TFLITE: right
        # s - t2 waits for the next stage: the bit length's tree and the subtraction's carry
        # chain do not fit one stage.
        t2 = st.reg("t2_", range(33), Mux(onnx, t2, 0))   # ONNX: t2; TFLITE: 0

        # Shifting P by first_amount and rounding it (a 63-bit shifter of five levels, then the
        # increment's carry chain) is too long for one stage: whole bytes here, the rest in the
        # next. 42 bits: the quotient needs 32, after a shift of at most 9.
        st = pipe.stage()
        kept, fine, guard = whole_byte_stage(m, product, first_amount, 42, "first")
        sign, k = st.reg("sign", 1, sign), st.reg("k", signed(10), k)
        t2 = st.reg("t2_", range(33), t2)

        # TFLITE's one overflow, (-2**31) * (-2**31), yields 2**31 here where C saturates to
        # 2**31 - 1. Both then give the same final value: for right = 0 both saturate, and for
        # 1 <= right <= 31, 2**31 + 2**(right-1) is never a multiple of 2**right, so rounding
        # 2**31 and 2**31 - 1 by 2**right agree.
        first = rounding_shift(m, kept, fine, guard, half_even=pipe.mode.onnx, tie_up=~sign,
                               name="first")
        k = named(m, k - t2, "k")   # k = s - t2 (ONNX; TFLITE: right)
        st = pipe.stage()
        mag = st.reg("mag", unsigned(32), first)   # ONNX: <= 2**24; TFLITE: <= 2**31
        # A negative k (ONNX: s < t2) would shift left. It needs t2 >= 1, so P >= 2**24 and
        # mag, its 24-bit mantissa, is >= 2**23: shifted or not, it saturates, so shifting by 0
        # instead gives the same byte.
        return mag, st.reg("sign", 1, sign), st.reg(
            "amount", range(64), Mux(k < 0, 0, Mux(k > 63, 63, k.as_unsigned()[:6])))

    def _second_rounding(self, m, pipe, mag, sign, amount):
        """The final shift, by whole bytes (as the first rounding's, for the same reason), then
        rounded and saturated, with the sign applied."""
        st = pipe.stage()
        kept, fine, guard = whole_byte_stage(m, mag, amount, 34, "second")   # 34: mag has 32
        sign = st.reg("sign", 1, sign)
        mag, round_up = rounding_shift(m, kept, fine, guard, half_even=pipe.mode.onnx,
                                       tie_up=1, name="second",
                                       saturate_bits=SATURATION.bit_length() - 1)
        # The signed value is term + carry (+ the zero point, in the next stage): with |v| =
        # mag + round_up, -|v| = ~mag + 1 - round_up. The sign is applied here, in the
        # saturation mux's LUTs, so that the next stage is one adder with the rounding as its
        # carry-in, with no sign mux in front of it. Saturating |v| at 2**17 cannot change the
        # clamped result (see signed_value).
        wide = Cat(mag, Const(0, 1)).as_signed()   # mag, zero-extended: ~wide is -mag - 1
        st = pipe.stage()
        return (st.reg("term", signed(len(wide)), Mux(sign, ~wide, wide)),
                st.reg("carry", 1, sign ^ round_up),
                st.reg("raw_byte", 8, mag[:8]))

    def _clamp(self, m, pipe, term, carry, raw_byte):
        """The sign and the zero point (which arrives now, :data:`ZERO_POINT_DELAY`) and the
        floor; raised to the floor; capped, into the output register. The clamp's four carry
        chains are spread over these three stages."""
        # term + zero point + carry as one adder: both operands doubled, with the carry as their
        # low bits, so the carry ripples into bit 1 (an added one-bit term would be a second
        # adder).
        zero_point = self.zero_point.as_signed()
        doubled = (Cat(carry, term).as_signed()
                   + Cat(carry, zero_point, zero_point[-1].replicate(len(term) - len(zero_point)))
                   .as_signed())
        floor = floor_of(m, self.zero_point, pipe.mode, self)
        st = pipe.stage()
        # |v| <= 2**17 plus a 16-bit zero point
        value = st.reg("value", signed(19), doubled[1:20].as_signed())
        floor = st.reg("floor", signed(17), floor)
        # A raw request's byte is shifted by 0: it never rounds up.
        raw_byte = st.reg("raw_byte", 8, raw_byte)
        st = pipe.stage()
        raised = st.reg("raised", signed(19), Mux(value < floor, floor, value))
        raw_byte = st.reg("raw_byte", 8, raw_byte)
        clamped = cap(m, raised, pipe.mode, self)
        pipe.output(self.o.valid, self.o.payload, Mux(pipe.mode.raw, raw_byte, clamped[:8]))

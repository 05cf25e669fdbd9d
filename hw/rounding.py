"""Unsigned shifts and roundings the requantization pipeline (:mod:`hw.requant`) is built from:
bit lengths, rounding right shifts (to nearest, with the tie rule a mode asks for), and a
whole-byte pre-shift that splits a wide rounding shift over two stages."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned

__all__ = ["named", "bit_length", "rounding_shift", "whole_byte_stage"]


def named(m: Module, value: Value, name: str) -> Signal:
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
    hi_zero = named(m, hi_zero, f"hi_zero_{len(value)}")
    return hi_zero & lo_zero, Cat(Mux(hi_zero, lo_count, hi_count), hi_zero)


def bit_length(m: Module, value: Value, name: str) -> Signal:
    """Position of the highest set bit plus one (0 for 0) of an unsigned value."""
    width = 1 << max(1, (len(value) - 1).bit_length())
    is_zero, count = _leading_zeros(m, Cat(value, Const(0, width - len(value))))
    length = Signal(range(width + 1), name=name)
    m.d.comb += length.eq(Mux(is_zero, 0, width - count))
    return length


def rounding_shift(m: Module, value: Value, amount: Value, guard_index: Value, *,
                   half_even: Value, tie_up: Value, name: str,
                   saturate_bits: int | None = None) -> Signal | tuple[Signal, Signal]:
    """``value / 2**amount`` rounded to nearest, for unsigned ``value`` and ``amount``.

    An exact half rounds up when the quotient is odd (``half_even``) or, otherwise, when
    ``tie_up``. Amounts past the width give 0. The result is one bit wider than ``value``.

    With ``saturate_bits = L`` it is saturated at ``2**L`` and left unsummed: ``(quotient,
    round_up)``, whose sum is the result (``round_up`` is 0 when saturated), so that the
    increment can join the next stage's adder as its carry-in rather than follow the shift in
    the same stage. The shifter then only builds the quotient's low ``L``
    bits, and a quotient of ``2**L`` or more is found by testing the bits of ``value`` at
    ``amount + L`` and above.

    ``guard_index`` is ``amount - 1`` (for a nonzero amount) from a register, so the guard
    bit's select need not wait for the subtraction (:func:`whole_byte_stage` registers both).
    """
    value = named(m, value, f"{name}_in")
    amount = named(m, amount, f"{name}_amount")
    quotient = named(m, value >> amount, f"{name}_quotient")
    # The first discarded bit decides "at least half"; any bit below it, "more than half".
    guard = (amount != 0) & value.bit_select(guard_index, 1)
    below_guard = Cat(*(amount > i + 1 for i in range(len(value))))
    sticky = (value & below_guard).any()
    tie = Mux(half_even, quotient[0], tie_up)
    round_up = guard & (sticky | tie)
    if saturate_bits is None:
        result = Signal(len(value) + 1, name=name)
        m.d.comb += result.eq(quotient + round_up)
        return result
    limit = saturate_bits
    over = Cat(value[i] & (amount <= i - limit) for i in range(limit, len(value))).any()
    return (named(m, Mux(over, 1 << limit, quotient[:limit]), name),
            named(m, round_up & ~over, f"{name}_round_up"))


def whole_byte_stage(m: Module, value: Value, amount: Value, width: int,
                      name: str) -> tuple[Signal, Signal, Signal]:
    """The registers of a stage that shifts ``value`` by ``amount``'s whole bytes, ahead of a
    rounding shift by the rest: ``(kept, fine, guard)``.

    ``kept`` is ``value >> (8 * (amount // 8))``, its low ``width - 2`` bits, above two bits that
    stand for what the shift drops: its highest bit, and the OR of the others. Rounding ``kept``
    by ``fine = amount % 8 + 2`` (:func:`rounding_shift`, with ``guard = fine - 1``) rounds
    ``value`` exactly as rounding it by ``amount``: the guard bit is the same bit, and the bits
    below it are zero exactly when their OR is. A wide shifter of five or six levels and the
    rounding's increment are too long for one stage together: this splits them.
    """
    byte_shift = amount[3:]
    options = []
    for c in range(1 << len(byte_shift)):
        low = 8 * c
        if c == 0:
            dropped = [Const(0, 1), Const(0, 1)]
        else:
            dropped = [value[:low - 1].any(), value[low - 1] if low <= len(value) else Const(0, 1)]
        options.append(Cat(*dropped, value[low:low + width - 2]))
    kept = Signal(unsigned(width), name=f"{name}_kept", reset_less=True)
    fine = Signal(range(10), name=f"{name}_fine", reset_less=True)
    guard = Signal(range(9), name=f"{name}_guard", reset_less=True)
    m.d.sync += [kept.eq(Array(options)[byte_shift]), fine.eq(amount[:3] + 2),
                 guard.eq(amount[:3] + 1)]
    return kept, fine, guard

"""Radix-4 Booth digits of a PE's weight byte, and the partial products they select.

The deep core's PEs multiply in LUTs. Left to Yosys (its ``booth`` pass on an 8 x 5-bit
multiply), a product's partial products and their sum were one cycle of logic: from the weight
register through the Booth LUTs to the product register was the 85F 14x14's path (11.4 ns, 8.8 of
it routing). Here the weight is recoded once, when it is written (it stays for a whole tile), and
the partial products are registered before they are summed.

A weight byte ``w`` (bits ``w0..w7``) is four radix-4 digits in ``{-2, ..., 2}`` and one bit::

    zext(w[0:4]) = d0 + 4*d1 + 16*w3      d0 = w0 - 2*w1,  d1 = w1 + w2 - 2*w3
    sext(w[0:4]) = d0 + 4*d1
    sext(w[4:8]) = e0 + 4*e1              e0 = w4 - 2*w5,  e1 = w5 + w6 - 2*w7

so INT8's ``a * int8(w) = a*d0 + 4*a*d1 + 16*a*w3 + 16*(a*e0 + 4*a*e1)`` and INT4's
``a0*sext(w[0:4]) + a1*sext(w[4:8]) = a0*d0 + 4*a0*d1 + a1*e0 + 4*a1*e1``.
"""

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data

__all__ = ["BOOTH_DIGIT", "WEIGHT_DIGITS", "PARTIAL_PRODUCT_WIDTH", "weight_digits",
           "partial_product"]

#: A digit as the partial product's generator wants it: ``|d| == 1``, ``|d| == 2``, negative.
BOOTH_DIGIT = data.StructLayout({"one": 1, "two": 1, "neg": 1})

#: A weight byte, recoded (module docstring): 13 bits instead of 8.
WEIGHT_DIGITS = data.StructLayout({"d0": BOOTH_DIGIT, "d1": BOOTH_DIGIT, "w3": 1,
                                   "e0": BOOTH_DIGIT, "e1": BOOTH_DIGIT})

#: ``a * d`` for a signed 8-bit ``a`` and ``|d| <= 2``, in ones' complement when ``d < 0``.
PARTIAL_PRODUCT_WIDTH = 9


def _digit(m: Module, digit: data.View, low: Value, mid: Value, high: Value):
    """``digit`` := ``low + mid - 2 * high``, the radix-4 digit of bits ``y[2i-1..2i+1]``."""
    m.d.comb += [digit.one.eq(low ^ mid),
                 digit.two.eq((high & ~mid & ~low) | (~high & mid & low)),
                 digit.neg.eq(high)]   # 111 gives -0: ~0 and its increment, exactly 0


def weight_digits(m: Module, w: Value, name: str) -> data.View:
    """The recoded weight byte ``w`` (a comb signal named ``name``)."""
    digits = Signal(WEIGHT_DIGITS, name=name)
    _digit(m, digits.d0, 0, w[0], w[1])
    _digit(m, digits.d1, w[1], w[2], w[3])
    _digit(m, digits.e0, 0, w[4], w[5])
    _digit(m, digits.e1, w[5], w[6], w[7])
    m.d.comb += digits.w3.eq(w[3])
    return digits


def partial_product(m: Module, a: Value, digit: data.View, name: str) -> tuple[Signal, Value]:
    """``(p, neg)`` with ``p + neg == a * d``: ``p`` is ``a * |d|``, inverted when ``d < 0`` (the
    increment that completes the negation is left to the sum, as a bit where an operand has a
    zero)."""
    magnitude = Mux(digit.two, a.as_signed() << 1, Mux(digit.one, a.as_signed(), 0))
    product = Signal(signed(PARTIAL_PRODUCT_WIDTH), name=name)
    m.d.comb += product.eq(Mux(digit.neg, ~magnitude, magnitude))
    return product, digit.neg

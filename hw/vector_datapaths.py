"""The vector unit's arithmetic pipelines (:mod:`hw.vector_unit`): TFLite's int8 ADD of a lane
(its MEAN's output stage too) and the pooling's rounded mean of a lane's sum, built stage by
stage and counted against the ISA's cycle costs (``hw.cycles``)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned

from . import cycles
from .isa import ADD_LEFT_SHIFT

__all__ = ["add_datapath", "pool_datapath"]

_INT32_MIN = -(1 << 31)


class _Pipeline:
    """A datapath's register stages, counted level by level (:meth:`level`), so the unit
    checks them against the ISA's cycle costs."""

    def __init__(self, m: Module, prefix: str):
        self.m, self.prefix, self.levels = m, prefix, 0

    def reg(self, value: Value, name: str, shape) -> Signal:
        reg = Signal(shape, name=f"{self.prefix}_{name}")
        self.m.d.sync += reg.eq(value)
        return reg

    def level(self):
        """The registers made since the last call form one stage."""
        self.levels += 1


def _high_mul(m: Module, pipe: _Pipeline, operands: list[tuple[Value, Value, str]]):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` of each ``(x, multiplier, name)`` in
    parallel, in two stages: the product, then the nudge and C's truncating division by
    ``2**31`` (the one overflow, ``INT32_MIN * INT32_MIN``, saturates)."""
    products = []
    for x, multiplier, name in operands:
        products.append((pipe.reg(x * multiplier, f"{name}_product", signed(64)),
                         pipe.reg((x == _INT32_MIN) & (multiplier == _INT32_MIN),
                                  f"{name}_saturate", 1), name))
    pipe.level()
    highs = []
    for product, saturate, name in products:
        nudged = Signal(signed(65), name=f"{pipe.prefix}_{name}_nudged")
        m.d.comb += nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)))
        quotient = (nudged >> 31) + (nudged[-1] & nudged[:31].any())
        highs.append(pipe.reg(Mux(saturate, (1 << 31) - 1, quotient[:32].as_signed()),
                              f"{name}_high", signed(32)))
    pipe.level()
    return highs


def _divide_by_pot(pipe: _Pipeline, operands: list[tuple[Value, Value, str]]) -> list[Signal]:
    """gemmlowp's ``RoundingDivideByPOT`` of each ``(x, exponent, name)`` in parallel, ``x /
    2**exponent`` rounded half away from zero, in two stages: the shift and the remainder's
    compare with a half side by side, then the round up as an increment (a barrel shifter, a
    compare and an adder in one cycle are too long for a large part)."""
    parts = []
    for x, exponent, name in operands:
        mask = (Const(1, 33) << exponent) - 1
        threshold = (mask >> 1) + (x < 0)
        parts.append((pipe.reg(x >> exponent, f"{name}_quotient", signed(32)),
                      pipe.reg((x.as_unsigned() & mask) > threshold, f"{name}_round_up", 1),
                      name))
    pipe.level()
    return [pipe.reg((quotient + round_up)[:32].as_signed(), name, signed(32))
            for quotient, round_up, name in parts]


def add_datapath(m, stages, word_a, read_lanes, word_b, b_read, group, index, add_lanes,
                 mean, mean_total) -> Value:
    """TFLite's int8 ADD of lane ``index`` of group ``group`` (``add_lanes`` lanes) of
    ``word_a`` and of b's word, the read register's if ``b_read``, else ``word_b``
    (:data:`hw.cycles.VECTOR_ADD_STAGES` stages);
    with ``mean``, ``mean_total`` in place of the two scaled inputs' sum, through the
    output stage (the last :data:`hw.cycles.VECTOR_MEAN_STAGES`)."""
    pipe = _Pipeline(m, f"add{index}" if add_lanes > 1 else "add")
    first, second, out = stages
    inputs = []
    def byte_of(word):
        return word.word_select(group, 8 * add_lanes).word_select(index, 8)
    for byte, stage, name in ((byte_of(word_a), first, "a"),
                              (Mux(b_read, byte_of(read_lanes), byte_of(word_b)), second,
                               "b")):
        value = byte.as_signed() + stage["offset"]
        shifted = (value << ADD_LEFT_SHIFT)[:32].as_signed()   # int32, wrapping as C's
        inputs.append((pipe.reg(shifted, f"{name}_shifted", signed(32)),
                       stage["multiplier"], name))
    pipe.level()
    highs = _high_mul(m, pipe, inputs)
    scaled = _divide_by_pot(pipe, [(high, stage["shift"], f"{name}_scaled")
                                   for high, stage, name in zip(highs, (first, second), "ab")])
    pipe.level()
    total = pipe.reg(Mux(mean, mean_total, (scaled[0] + scaled[1])[:32].as_signed()),
                     "sum", signed(32))
    pipe.level()
    # MEAN's sum enters here, two cycles after its lane's (the lane-sum registers).
    assert cycles.VECTOR_ADD_STAGES - pipe.levels == cycles.VECTOR_MEAN_STAGES - 3
    (high,) = _high_mul(m, pipe, [(total, out["multiplier"], "out")])
    (result,) = _divide_by_pot(pipe, [(high, out["shift"], "result")])
    pipe.level()
    value = result + out["offset"]
    raised = Mux(value < out["lo"], out["lo"], value)
    byte = pipe.reg(Mux(raised > out["hi"], out["hi"], raised)[:8], "byte", 8)
    pipe.level()
    assert pipe.levels == cycles.VECTOR_ADD_STAGES, pipe.levels
    return byte

def pool_datapath(m, total, half, reciprocal, shift) -> Value:
    """A lane's rounded mean of its sum ``total``, ``sign(s) * ((|s| + half) * reciprocal
    >> shift)`` clamped to int8 (:data:`hw.cycles.VECTOR_POOL_STAGES` stages)."""
    pipe = _Pipeline(m, "pool")
    negative = pipe.reg(total < 0, "negative", 1)
    # |s| + half as one adder's width: both sums side by side, then the sign's select.
    magnitude = pipe.reg(Mux(total < 0, half - total, half + total).as_unsigned(),
                         "magnitude", unsigned(25))
    pipe.level()
    product = pipe.reg(magnitude * reciprocal, "product", unsigned(49))
    negative = pipe.reg(negative, "negative_2", 1)
    pipe.level()
    quotient = product >> shift
    low = Mux(quotient > 128, 128, quotient)
    high = Mux(quotient > 127, 127, quotient)
    byte = pipe.reg(Mux(negative, -low, high)[:8], "byte", 8)
    pipe.level()
    assert pipe.levels + 2 == cycles.VECTOR_POOL_STAGES, pipe.levels   # + the lane's sum
    return byte

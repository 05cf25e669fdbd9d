"""Where a load's command bytes land in an SRAM tile's word: each in its byte lane, as it arrives.

The tiles have byte enables, so a load writes every data byte straight into its lane of the word
rather than assembling the word in a shift register first (nothing reads a tile while a load
runs). Lanes that take no data byte are written with the word's first byte: the zero upper half
of an unpacked INT8 activation word (``RillParams.packed_int8_acts``), the header's part of a
``LOAD_BIASES`` entry.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Value

from .isa import QPARAM_BYTES
from .params import RillParams

__all__ = ["load_word_bytes", "load_word_lanes", "act_word_whole", "act_word_bytes"]


def load_word_bytes(params: RillParams) -> int:
    """The most data bytes one load word takes (an INT4 activation word's ``2 * rows``, or more
    for a wide array's weight word or a qparam entry)."""
    return max(params.cols, params.act_lanes, QPARAM_BYTES, 4)


def act_word_whole(params: RillParams, int4: Value) -> Value:
    """Whether an activation word takes ``2 * rows`` bytes under the current configuration
    (INT4, or packed INT8: ``RillParams.values_per_word``); else ``rows``, its upper half zero."""
    return Const(1) if params.packed_int8_acts else int4


def act_word_bytes(params: RillParams, int4: Value) -> Value:
    """``RillParams.values_per_word`` under the current configuration."""
    return Mux(act_word_whole(params, int4), params.act_lanes, params.rows)


def load_word_lanes(m: Module, params: RillParams, *, byte_in: Value, load_byte: Value,
                    int4: Value, biases: Value, header_part: Value, act_write, weight_write,
                    qparam_write) -> tuple[Value, Value, Value]:
    """Drive the tiles' write data from ``byte_in``, the word's byte ``load_byte``; return the
    byte enables of the weight, activation and qparam writes (the caller applies the one of the
    load's target while a load runs).

    ``biases`` marks a ``LOAD_BIASES``, whose entries take 4 data bytes (the bias) beside
    ``header_part``, the instruction's own multiplier, shift and zero point.
    """
    p = params
    whole = act_word_whole(p, int4)
    lane = Cat(load_byte == i for i in range(load_word_bytes(p)))
    first_byte = load_byte == 0
    m.d.comb += [
        act_write.data.eq(Cat(byte_in.replicate(p.rows),
                              (byte_in & whole.replicate(8)).replicate(p.rows))),
        weight_write.data.eq(byte_in.replicate(p.cols)),
        qparam_write.data.eq(Cat(byte_in.replicate(4),
                                 Mux(biases, header_part, byte_in.replicate(8)))),
    ]
    act_lanes = Cat(lane[:p.rows], Mux(whole, lane[p.rows:p.act_lanes],
                                       first_byte.replicate(p.rows)))
    qparam_lanes = Cat(lane[:4], Mux(biases, first_byte.replicate(8), lane[4:QPARAM_BYTES]))
    return lane[:p.cols], act_lanes, qparam_lanes

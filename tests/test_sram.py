"""The SRAM tiles' no-collision promise reaches the read ports Yosys maps (hw/sram.py)."""

from amaranth.back import rtlil
from support.params import TINY as PARAMS

from hw.link import LinkedCore
from hw.sram import apply_no_rw_check


def test_every_tile_read_port_and_nothing_else_is_marked():
    text = rtlil.convert(LinkedCore(PARAMS))
    marked, count = apply_no_rw_check(text)
    # act and weight tiles, the qparam tile's three parts, the program memory, one accumulator
    # bank per column; not the link's buffers.
    assert count == 6 + PARAMS.cols
    assert marked.count("COLLISION_X_MASK 1'1") == count
    assert text.count("COLLISION_X_MASK 1'1") == 0
    assert apply_no_rw_check(marked) == (marked, count)

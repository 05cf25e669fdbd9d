"""The ECP5 carry chains with logic in their LUTs (``hw/ecp5_carry.py``) against the arithmetic
they replace: a PE elaborated for the ULX3S (its products and contribution in ``CCU2C`` cells)
and synthesized, beside the PE the simulations run (the same sums written with ``+``), on random
activations, weights and modes in Verilator; ``CCU2C`` simulated by Yosys' own model."""

from __future__ import annotations

import re

import pytest
from amaranth import Const
from support.netlist_pair import compare_with_netlist

from boards import get_board
from flow.build import toolchain_env
from flow.netlist import primitive_models
from hw.ecp5_carry import CarryBit, lut_init
from hw.pe import ProcessingElement

pytestmark = pytest.mark.skipif(not toolchain_env().get("YOSYS"), reason="no Yosys")


def test_a_sum_whose_carry_generate_the_cell_cannot_make_is_refused():
    """``x = A``, ``y = B``: where both are 1 the carry out is 1, but the cell's generate is
    the LUT read with C and D low, ``A ^ B`` = 0."""
    inputs = (Const(0, 1),) * 4
    with pytest.raises(ValueError, match="carry generate"):
        lut_init(CarryBit(inputs, lambda a, b, c, d: a, lambda a, b, c, d: b))
    # A row gated by its multiplicand bit on each side is fine: a & b + c & d.
    assert lut_init(CarryBit(inputs, lambda a, b, c, d: a & b,
                             lambda a, b, c, d: c & d)) == 0x7888


@pytest.mark.parametrize("dsp", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["lut-pe", "dsp-pe"])   # DSP PEs only with --dsp-pes
def test_an_ecp5_pe_equals_the_simulated_pe(tmp_path, dsp):
    """The 85F's PE (its partial-sum width) for 20,000 cycles of random inputs, INT8 and INT4
    mixed cycle by cycle. The LUT-built PE's netlist holds its carry cells and a fifth of the
    LUTs of Yosys' own mapping of the same PE (105 LUT4 and 12 PFUMX); a DSP PE
    (``--dsp-pes``) multiplies in MULT18X18D and adds its contribution in a carry chain."""
    board = get_board("ulx3s-85f")
    netlist = compare_with_netlist(lambda: ProcessingElement(board.params, dsp=dsp), tmp_path,
                                   primitive_models("ecp5"), platform=board.platform(),
                                   cycles=20_000, seed=4)
    carry_cells = len(re.findall(r"^\s*CCU2C\b", netlist, re.M))
    luts = len(re.findall(r"^\s*LUT4\b", netlist, re.M))
    if dsp:
        assert len(re.findall(r"^\s*MULT18X18D\b", netlist, re.M)) == 2
        assert carry_cells >= 9, carry_cells   # the contribution
    else:
        assert carry_cells >= 4 * 5 + 9, carry_cells   # four rows' pairs, the contribution
        assert luts <= 30, luts

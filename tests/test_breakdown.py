"""``python -m hw.breakdown``: a board's cells block by block, from an unflattened synthesis."""

import subprocess
import sys

import pytest

from boards import get_board
from flow.breakdown import CELL_KINDS, _module_cells, breakdown, format_breakdown
from sim.runner import REPO_ROOT

STAT = """
=== rill.serial.device.core.array.pe_0_1 ===

        +----------Local Count, excluding submodules.
        |
      180 wires
      192   SB_LUT4
       40   SB_CARRY
       35   SB_DFFE
       17   SB_DFFESR

=== rill.serial.device.core.requant ===

        4   SB_MAC16
     1500   SB_LUT4

=== design hierarchy ===

     9999   SB_LUT4
"""


def test_stat_parsing_stops_at_the_hierarchy_summary():
    cells = _module_cells(STAT)
    assert set(cells) == {"rill.serial.device.core.array.pe_0_1", "rill.serial.device.core.requant"}
    assert cells["rill.serial.device.core.array.pe_0_1"]["SB_DFFE"] == 35
    assert cells["rill.serial.device.core.requant"] == {"SB_MAC16": 4, "SB_LUT4": 1500}


@pytest.mark.board
@pytest.mark.slow
def test_icebreaker_breakdown(tmp_path):
    board = get_board("icebreaker").with_array(2, 3)
    family, blocks = breakdown(board, tmp_path)
    assert family == "ice40"
    assert blocks["core.array.pe_*"]["count"] == 6
    # The iCEBreaker's serial requantizer multiplies by shift and add: its DSPs go to PEs.
    assert blocks["core.requant"]["DSP"] == 0 and blocks["core.requant"]["LUT"] > 100
    assert blocks["core.array.pe_*"]["DSP"] >= 1
    assert any(name.startswith("link.") for name in blocks)
    for counts in blocks.values():
        assert set(CELL_KINDS[family]) <= set(counts)
    table = format_breakdown(family, blocks)
    assert "core.array.pe_* (x6)" in table and table.splitlines()[-1].startswith("total")


def test_cli_refuses_an_unknown_board():
    run = subprocess.run([sys.executable, "-m", "hw.breakdown", "--board", "nonesuch"],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 2 and "no board named 'nonesuch'" in run.stderr

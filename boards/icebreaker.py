"""1BitSquared iCEBreaker: iCE40UP5K, 12 MHz oscillator, FT2232H UART (no flow control).

The UP5K has 5,280 LUT4, 30 EBR of 4 Kb and 8 DSPs. A 4x4 array (16 INT8 / 32 INT4 MACs per
cycle) leaves room for the sequencer, the requantizer and the link; the SRAM depths are chosen to
fit the EBRs (each memory takes ``ceil(width / 16)`` EBRs at 256 words, half that width per EBR
at 512). 36 MHz is 12 clocks per bit at 3 Mbaud, which the FT2232H makes exactly (12 MHz / 4).
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from hw.params import RillParams

from .board import Board
from .clocking import Ice40Pll

BOARD = Board(
    name="icebreaker",
    platform=ICEBreakerPlatform,
    params=RillParams(rows=4, cols=4, act_depth=256, weight_depth=512, acc_depth=256,
                      qparam_depth=64),
    clock_hz=36e6,
    baud=3_000_000,
    clock=lambda f: Ice40Pll("clk12", f),
    summary="1BitSquared iCEBreaker (iCE40UP5K-SG48), FT2232H UART",
)

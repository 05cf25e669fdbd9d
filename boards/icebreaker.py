"""1BitSquared iCEBreaker: iCE40UP5K, 12 MHz oscillator, FT2232H UART (no flow control).

The UP5K has 5,280 logic cells (a LUT4, a carry and a flip-flop each), 30 EBR of 4 Kb, 4 SPRAM of
256 Kb and 8 DSPs. The default is the largest array that fits: 2x2 (4 INT8 / 8 INT4 MACs per
cycle) at 21 MHz, which fills nearly all of the logic cells (the README has the figures). It takes
the serial requantizer (one output per 136 cycles; a byte on the wire takes 70 at 3 Mbaud and
21 MHz), leaves the accumulator reads unregistered (a flip-flop costs a logic cell here), joins
link and core without register slices and gives the spare DSPs to three PEs. The target, 4x4 at
30 MHz or more, does not fit (``--rows 4 --cols 4``); ``python -m hw.breakdown --board
icebreaker`` shows where the cells go, and ``docs/timing-closure.md`` what it would take.

The SRAM depths are chosen for the EBRs: each memory takes ``ceil(width / 16)`` EBRs at 256 words,
half that width per EBR at 512. 21 MHz is 7 clocks per bit at 3 Mbaud, which the FT2232H makes
exactly (12 MHz / 4); the PLL makes it from 12 MHz exactly (x56 / 32).
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from hw.params import RillParams

from .board import Board
from .clocking import Ice40Pll

BOARD = Board(
    name="icebreaker",
    platform=ICEBreakerPlatform,
    params=RillParams(rows=2, cols=2, act_depth=256, weight_depth=512, acc_depth=256,
                      qparam_depth=64, serial_requant=True, deep_pipeline=False,
                      store_to_acts=False, program_depth=0, conv_addressing=False,
                      packed_int8_acts=False, vector_unit=False, clamp=False),
    clock_hz=21e6,
    baud=3_000_000,
    clock=lambda f: Ice40Pll("clk12", f),
    summary="1BitSquared iCEBreaker (iCE40UP5K-SG48), FT2232H UART",
    # One full frame of commands and 1 KiB of responses in flight: EBRs are scarce here; the
    # host learns the size from the link and paces itself to it.
    link_buffer=1024,
    # Of the 8 SB_MAC16, the range checks take 2 (the serial requantizer needs none).
    dsp_pes=3,
)

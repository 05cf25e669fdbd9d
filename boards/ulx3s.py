"""Radiona ULX3S: ECP5 (12F, 25F, 45F or 85F), 25 MHz oscillator, FT231X UART (<= 3 Mbaud).

The array's PEs are built from LUTs (``hw.pe.nibble_product``; the open ECP5 flow has no 9x9 DSP
mode, so two 8x5 multipliers per PE would take two whole MULT18X18D each). 105 MHz is 35 clocks
per bit at 3 Mbaud and a PLL setting with no error (25 MHz / 5 * 21).
"""

from amaranth_boards.ulx3s import (
    ULX3S_12F_Platform,
    ULX3S_25F_Platform,
    ULX3S_45F_Platform,
    ULX3S_85F_Platform,
)

from hw.link.protocol import CMD_BUFFER_BYTES
from hw.params import RillParams

from .board import Board
from .clocking import Ecp5Pll


def _ulx3s(part: str, platform: type, rows: int, cols: int, link_buffer: int = CMD_BUFFER_BYTES,
           placer: str = "heap", **depths) -> Board:
    return Board(
        name=f"ulx3s-{part}",
        platform=platform,
        params=RillParams(rows=rows, cols=cols, **depths),
        clock_hz=105e6,
        baud=3_000_000,
        clock=lambda f: Ecp5Pll("clk25", f),
        summary=f"Radiona ULX3S (LFE5U-{part.upper()}), FT231X UART",
        link_buffer=link_buffer,
        placer=placer,
    )


# The largest arrays that fit each part with room for placement (python -m hw.build measures
# them; the README has the figures): 16x16 on the 85F (about 80% of its LUTs; at its Fmax more
# GOPS than a 14x14 at the 14x14's), 8x8 on the 45F, 6x6 on the 12F and the 25F (nextpnr gives
# both 24,288 LUTs).
ULX3S_12F = _ulx3s("12f", ULX3S_12F_Platform, 6, 6, act_depth=512, weight_depth=512,
                   acc_depth=512, qparam_depth=256)
ULX3S_25F = _ulx3s("25f", ULX3S_25F_Platform, 6, 6, act_depth=1024, weight_depth=1024,
                   acc_depth=1024, qparam_depth=256)
ULX3S_45F = _ulx3s("45f", ULX3S_45F_Platform, 8, 8, act_depth=1024, weight_depth=1024,
                   acc_depth=1024, qparam_depth=512)
# The 85F's 208 block RAMs hold a model: 264 KiB of weights (132 block RAMs, the tile stacked
# as 16,384 + 512 words: hw/stacked_tile.py; MLPerf Tiny's autoencoder needs 264k int8 weights,
# 16,640 words with its tiles' padding), 80 KiB of activations (40: ResNet-8's first residual
# block keeps two 32x32 maps and a row live, 2,112 words: sw/map_placement.py), 512 accumulator
# rows (16 each), 2,048 requantization entries (the autoencoder has 1,672 output channels), 512
# program instructions and 2 KiB link buffers; 206 in all. Two store lanes: DS-CNN's layers
# store twice as fast as with one. Four (their entries in four banks of 512, each in three block
# RAMs: hw/qparams.py) fit the block RAMs but not the router: with them router2's overused
# wires turned upwards again after 10 to 25 iterations, with one ADD lane or two. Two ADD
# lanes beside two store lanes routed once and, after a small change, no more: one ADD lane.
# nextpnr's static placer: after its heap placer router2 does not converge on this full a
# design.
ULX3S_85F = _ulx3s("85f", ULX3S_85F_Platform, 16, 16, act_depth=2560, weight_depth=16896,
                   acc_depth=512, qparam_depth=2048, program_depth=512, store_lanes=2,
                   link_buffer=2048, placer="static")

"""Where an on-chip stretch's maps lie and how its convs run in bands (sw/map_placement.py): a
conv's output over its dying input exactly as far shifted as its bands need, no further."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from hw.params import RillParams
from sw.map_placement import ConvShape, MapForm, MapPlacer, conv_bands

#: The ULX3S-85F's core as far as placement goes: 32 lanes a word, 512 accumulator rows.
PARAMS = RillParams(rows=16, cols=16, act_depth=2560, acc_depth=512)
MAP = MapForm(16, 32, 32)   # ResNet-8's first block: 1,024 words, one channel block


def _conv(source=MAP, out=MAP, kernel=3, stride=1, pad=1, n_tiles=1) -> ConvShape:
    layer = SimpleNamespace(n_tiles=n_tiles, name="conv")   # what band_rows reads of a layer
    return ConvShape(source, out, kernel, stride, pad, layer)


def test_bands_hold_what_the_accumulators_hold_in_either_order():
    layer = SimpleNamespace(n_tiles=1, name="conv")
    assert conv_bands(PARAMS, layer, 32, 32) == [(0, 16), (16, 32)]
    assert conv_bands(PARAMS, layer, 32, 32, descending=True) == [(16, 32), (0, 16)]
    assert conv_bands(replace(PARAMS, acc_depth=1024), layer, 32, 32) == [(0, 32)]
    three_tiles = SimpleNamespace(n_tiles=3, name="conv")
    assert conv_bands(replace(PARAMS, acc_depth=64), three_tiles, 7, 7) == [
        (0, 3), (3, 6), (6, 7)]


@pytest.mark.parametrize("delta, descending, fits", [
    (0, False, False), (-31, False, False), (-32, False, True), (-64, False, True),
    (0, True, False), (31, True, False), (32, True, True)])
def test_a_3x3_convs_output_shifts_a_row_from_its_input(delta, descending, fits):
    """Two bands of 16 rows: the second reads input row 15, so the first band's 16 output rows
    may go no lower than a row (32 words) before the input; bottom up, a row after."""
    assert _conv().shift_fits(PARAMS, delta, descending) is fits


def test_with_one_band_every_read_comes_before_any_write():
    one_band = replace(PARAMS, acc_depth=1024)
    assert _conv().shift_fits(one_band, 0, False)
    # a strided conv reading several channel blocks, stored in several: still in place
    wide = _conv(MapForm(64, 16, 16), MapForm(128, 8, 8), stride=2, n_tiles=8)
    assert wide.shift_fits(PARAMS, 0, False)


def test_a_blocked_map_in_bands_checks_every_block():
    """48 channels in two blocks of 32 lanes, 16x16, three tiles a row of 16 pixels: bands of
    10 rows. Band 0's second block lands on input rows the next band reads in place."""
    shape = _conv(MapForm(48, 16, 16), MapForm(48, 16, 16), n_tiles=3)
    assert conv_bands(PARAMS, shape.layer, 16, 16) == [(0, 10), (10, 16)]
    assert not shape.shift_fits(PARAMS, 0, False)
    assert not shape.shift_fits(PARAMS, -16, False)
    assert shape.shift_fits(PARAMS, -256 - 16, False)   # a block and a row below


def test_a_residual_block_fits_two_maps_and_a_row():
    """ResNet-8's first block as the graph chains place it: the image, the stem conv's map over
    it (bands bottom up, a row higher), the branch's first conv in fresh words, its second over
    the first's (a row higher again), the sum over the block's input."""
    placer = MapPlacer(PARAMS)
    assert placer.place("image", MapForm(3, 32, 32))
    assert placer.place_conv_over("x", _conv(source=MapForm(3, 32, 32)), "image")
    placer.release("image")
    assert placer.place("y1", MAP)
    assert placer.place_conv_over("y2", _conv(), "y1")
    placer.release("y1")
    assert placer.place_over("sum", MAP, "x")
    assert placer.addresses == {"image": 0, "x": 32, "y1": 1056, "y2": 1088, "sum": 32}
    assert placer.descending == {"x", "y2"}
    assert max(at + words for at, words in placer.taken.values()) == 2112


def test_no_room_for_the_shift_means_no_place():
    """With the SRAM ending where the shifted output would, the conv does not go over its
    input; a fresh place is the caller's next try."""
    placer = MapPlacer(replace(PARAMS, act_depth=2048))
    placer.place("x", MAP)
    placer.place("y1", MAP)
    assert not placer.place_conv_over("y2", _conv(), "y1")
    assert "y2" not in placer.addresses

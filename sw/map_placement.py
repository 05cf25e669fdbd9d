"""Where the maps of an on-chip stretch lie in the activation SRAM, and how its convs run in
bands.

A map is a block of words (channel block ``g`` of pixel ``p`` at word ``g * pixels + p``) placed
by liveness: freed after its last reader, a new one first fit. A conv whose output rows outnumber
the accumulators runs in bands of output rows, a MATMUL and its STORE each; a STORE starts after
its MATMUL has read every row it needs, so a band's output may overwrite input rows no later
band reads. That lets a map take the place of an input that dies where it is made:

- an ADD's output takes its input's words (the vector unit reads a word before it writes it);
- a conv's output takes its input's words shifted by ``delta``, the first shift (a row of output
  pixels at a time) at which no band's STORE reaches rows a later band still reads, its bands run
  top down (shifts down) or bottom up (shifts up), whichever fits first. With one band every
  read precedes every write and the shift is 0.

A residual block then needs two maps of room and a row or two, not three maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hw.params import RillParams

from .compiler import CompiledLinear
from .conv_device import band_rows

__all__ = ["MapForm", "MapPlacer", "conv_bands"]


@dataclass(frozen=True)
class MapForm:
    """A tensor as the device holds it: a map of ``channels`` over ``h x w`` pixels (a row is a
    1x1 map)."""
    channels: int
    h: int
    w: int

    def blocks(self, lanes: int) -> int:
        return -(-self.channels // lanes)

    def words(self, lanes: int) -> int:
        return self.blocks(lanes) * self.h * self.w


def conv_bands(params: RillParams, layer: CompiledLinear, oh: int, ow: int,
               descending: bool = False) -> list[tuple[int, int]]:
    """A conv's bands of output rows ``[first, end)``, in the order they run: as many rows a
    band as the accumulators hold (:func:`sw.conv_device.band_rows`)."""
    rows = band_rows(params, layer, oh, ow)
    bands = [(first, min(first + rows, oh)) for first in range(0, oh, rows)]
    return bands[::-1] if descending else bands


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(a0 < b1 and b0 < a1 for a0, a1 in a for b0, b1 in b)


@dataclass(frozen=True)
class ConvShape:
    """What decides where a conv's output may lie over its input: the two maps, the kernel's
    rows, stride and top padding, and its bands."""
    source: MapForm
    out: MapForm
    kernel_h: int
    stride: int
    pad_top: int
    layer: CompiledLinear = field(compare=False)

    def _reads(self, lanes: int, first: int, end: int) -> list[tuple[int, int]]:
        """The input words a band's MATMUL reads, from the input's first word."""
        src = self.source
        lo = max(0, first * self.stride - self.pad_top)
        hi = min(src.h, (end - 1) * self.stride - self.pad_top + self.kernel_h)
        pixels = src.h * src.w
        return [(g * pixels + lo * src.w, g * pixels + hi * src.w)
                for g in range(src.blocks(lanes)) if lo < hi]

    def _writes(self, lanes: int, first: int, end: int, delta: int) -> list[tuple[int, int]]:
        """The words a band's STORE writes, from the input's first word."""
        out, pixels = self.out, self.out.h * self.out.w
        return [(delta + g * pixels + first * out.w, delta + g * pixels + end * out.w)
                for g in range(out.blocks(lanes))]

    def shift_fits(self, params: RillParams, delta: int, descending: bool) -> bool:
        """Whether the output ``delta`` words from the input's start leaves every band the input
        rows it reads."""
        lanes = params.act_lanes
        bands = conv_bands(params, self.layer, self.out.h, self.out.w, descending)
        return not any(
            _overlap(self._writes(lanes, *band, delta), self._reads(lanes, *later))
            for k, band in enumerate(bands) for later in bands[k + 1:])


class MapPlacer:
    """Blocks of the activation SRAM handed to named maps."""

    def __init__(self, params: RillParams):
        self.params, self.lanes, self.depth = params, params.act_lanes, params.act_depth
        self.taken: dict[str, tuple[int, int]] = {}   # name -> (address, words)
        self.addresses: dict[str, int] = {}
        self.descending: set[str] = set()

    def _free(self, at: int, words: int, besides: str | None = None) -> bool:
        return 0 <= at and at + words <= self.depth and not any(
            at < address + size and address < at + words
            for name, (address, size) in self.taken.items() if name != besides)

    def _take(self, name: str, at: int, words: int):
        self.taken[name] = (at, words)
        self.addresses[name] = at

    def place(self, name: str, form: MapForm) -> bool:
        """First fit; False where no block of the SRAM is free for it."""
        words, at = form.words(self.lanes), 0
        for address, size in sorted(self.taken.values()):
            if at + words <= address:
                break
            at = max(at, address + size)
        if at + words > self.depth:
            return False
        self._take(name, at, words)
        return True

    def place_over(self, name: str, form: MapForm, dying: str) -> bool:
        """An elementwise output over ``dying``'s words, where they are free of other maps."""
        at, words = self.taken[dying][0], form.words(self.lanes)
        if not self._free(at, words, besides=dying):
            return False
        self._take(name, at, words)
        return True

    def place_conv_over(self, name: str, conv: ConvShape, dying: str) -> bool:
        """A conv's output over its dying input, shifted as little as its bands allow (see the
        module docstring); its bands' order recorded in :attr:`descending`."""
        base, in_words = self.taken[dying]
        words, step = conv.out.words(self.lanes), conv.out.w
        for descending, sign in ((False, -1), (True, 1)):
            for delta in range(0, sign * (in_words + words + step), sign * step):
                if not self._free(base + delta, words, besides=dying):
                    break   # further only moves it past the SRAM's end or into another map
                if conv.shift_fits(self.params, delta, descending):
                    self._take(name, base + delta, words)
                    if descending:
                        self.descending.add(name)
                    return True
        return False

    def release(self, name: str):
        self.taken.pop(name, None)

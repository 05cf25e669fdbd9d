"""A deep SRAM tile built of two memories stacked in its address space, so that it maps to fewer
ECP5 block RAMs.

Yosys maps a memory into one kind of block RAM. For the 85F's deep weight tile it picks the
1024 x 18 DP16KD, and a depth of ``1024 * k + 512`` then leaves half of the last row of blocks
empty; 512 x 36 PDPW16KD hold those 512 words in half as many blocks. So the weight tile, deeper
than 1024 words and not a multiple of 1024, is built as two memories, the multiple of 1024 below
and the rest above: the ULX3S-85F's 16,896-word weight tile takes 128 + 4 block RAMs instead of
136. The activation tile's words are twice as wide, so Yosys maps it to 512 x 36 blocks already,
with no waste to win back (and stacking it met an internal error of Yosys' ``abc9`` pass,
``ABC_OPS_REINTEGRATE``, on the 85F's core).
The cost is a multiplexer on the read data, selected by a flip-flop that follows the read
address as the block RAMs' output registers do.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ShapeLike, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from .sram import sram_tile

__all__ = ["StackedTile", "tile_parts", "sram_tile_with_ports"]

_ROW = 1024   # words of a DP16KD row of blocks (1024 x 18)


def tile_parts(depth: int) -> tuple[int, ...]:
    """The depths of the memories a tile of ``depth`` words is built from (see above)."""
    low = depth // _ROW * _ROW
    return (low, depth - low) if low and depth != low else (depth,)


class StackedTile(wiring.Component):
    """One write and one read port over ``depth`` words of ``shape``, like
    :func:`hw.sram.sram_tile`'s memory's, the words from ``tile_parts(depth)[0]`` up in a second
    memory. Reads are synchronous; a read's data holds while its ``en`` is low."""

    def __init__(self, shape: ShapeLike, depth: int, granularity: int = 1):
        self._shape, self._parts, self._granularity = shape, tile_parts(depth), granularity
        assert len(self._parts) == 2, "a tile of a multiple of 1024 words is one memory"
        addr_width = max(1, (depth - 1).bit_length())
        super().__init__({
            # A memory port's signature, as the memory sees it: the address comes in.
            "read": Out(memory.ReadPort.Signature(addr_width=addr_width, shape=shape)),
            "write": Out(memory.WritePort.Signature(addr_width=addr_width, shape=shape,
                                                    granularity=granularity)),
        })

    def elaborate(self, platform):
        m = Module()
        low, _ = self._parts
        mems = [sram_tile(self._shape, depth) for depth in self._parts]
        m.submodules.low, m.submodules.high = mems
        # ``low`` is a multiple of 1024 and the upper part under 1024 words deep, so an address's
        # low bits are its word's address in either part.
        write_high, read_high = self.write.addr >= low, Signal()
        data = []
        for upper, mem in enumerate(mems):
            write = mem.write_port(granularity=self._granularity)
            read = mem.read_port()
            m.d.comb += [write.addr.eq(self.write.addr), write.data.eq(self.write.data),
                         write.en.eq(Mux(write_high == upper, self.write.en, 0)),
                         read.addr.eq(self.read.addr), read.en.eq(self.read.en)]
            data.append(read.data)
        m.d.comb += self.read.data.eq(Mux(read_high, data[1], data[0]))
        with m.If(self.read.en):
            m.d.sync += read_high.eq(self.read.addr >= low)
        return m


def sram_tile_with_ports(shape: ShapeLike, depth: int, granularity: int = 1, *,
                         stacked: bool = True):
    """``(tile, read port, write port)``: a :class:`StackedTile` where ``stacked`` and the depth
    asks for one, else a :func:`hw.sram.sram_tile` memory (the elaboratable to add is
    ``tile``)."""
    if stacked and len(tile_parts(depth)) == 2:
        tile = StackedTile(shape, depth, granularity)
        return tile, tile.read, tile.write
    tile = sram_tile(shape, depth)
    return tile, tile.read_port(), tile.write_port(granularity=granularity)

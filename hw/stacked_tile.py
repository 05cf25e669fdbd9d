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

A lower part 16,384 words deep (the 85F's) is built one memory per bit (:class:`BitSlicedTile`),
so that each maps to one DP16KD in its 16,384 x 1 mode. As a single memory Yosys builds it of
1024 x 18 blocks, 16 rows of 8, and a 16:1 multiplexer per bit gathers the read data: 2,048 wires
from all of the part's block RAM rows into the array, the congestion that left the 85F unroutable.
Bit-sliced, each block drives one bit of the word straight to its column of the array, and each
write-data bit goes to one block.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, ShapeLike, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from .sram import sram_tile

__all__ = ["StackedTile", "BitSlicedTile", "tile_parts", "sram_tile_with_ports"]

_ROW = 1024   # words of a DP16KD row of blocks (1024 x 18)
_BIT_BLOCK = 16384   # words of a DP16KD in its one-bit mode


def _port_signatures(shape: ShapeLike, depth: int, granularity: int) -> dict:
    addr_width = max(1, (depth - 1).bit_length())
    # A memory port's signature, as the memory sees it: the address comes in.
    return {"read": Out(memory.ReadPort.Signature(addr_width=addr_width, shape=shape)),
            "write": Out(memory.WritePort.Signature(addr_width=addr_width, shape=shape,
                                                    granularity=granularity))}


class BitSlicedTile(wiring.Component):
    """One write and one read port over ``depth`` words of ``shape``, like
    :func:`hw.sram.sram_tile`'s memory's, built of one one-bit memory per bit of a word (see
    above). Each bit's write enable is its write-enable lane's (the element's, for an array
    layout)."""

    def __init__(self, shape: ShapeLike, depth: int, granularity: int = 1):
        self._shape, self._depth = shape, depth
        super().__init__(_port_signatures(shape, depth, granularity))

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        lane_bits = width // len(self.write.en)
        write_data, read_data = self.write.data.as_value(), Signal(width)
        for bit in range(width):
            mem = sram_tile(unsigned(1), self._depth)
            m.submodules[f"bit{bit}"] = mem
            write, read = mem.write_port(), mem.read_port()
            m.d.comb += [write.addr.eq(self.write.addr), write.data.eq(write_data[bit]),
                         write.en.eq(self.write.en[bit // lane_bits]),
                         read.addr.eq(self.read.addr), read.en.eq(self.read.en),
                         read_data[bit].eq(read.data)]
        m.d.comb += self.read.data.eq(read_data)
        return m


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
        super().__init__(_port_signatures(shape, depth, granularity))

    def elaborate(self, platform):
        m = Module()
        low, _ = self._parts
        if low % _BIT_BLOCK == 0:
            m.submodules.low = low_tile = BitSlicedTile(self._shape, low, self._granularity)
            ports = [(low_tile.write, low_tile.read)]
        else:
            m.submodules.low = low_mem = sram_tile(self._shape, low)
            ports = [(low_mem.write_port(granularity=self._granularity), low_mem.read_port())]
        m.submodules.high = high_mem = sram_tile(self._shape, self._parts[1])
        ports.append((high_mem.write_port(granularity=self._granularity), high_mem.read_port()))
        # ``low`` is a multiple of 1024 and the upper part under 1024 words deep, so an address's
        # low bits are its word's address in either part.
        write_high, read_high = self.write.addr >= low, Signal()
        data = []
        for upper, (write, read) in enumerate(ports):
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

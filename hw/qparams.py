"""The requantization parameter tile: one entry per output channel, read in three staggered parts.

The requantizer needs an entry's bias and shift with the accumulator, its multiplier a few cycles
later (when its product starts) and its zero point later still (when it is added); each unit says
when (``multiplier_delay``, ``zero_point_delay``). Reading each
part when it is needed, from its own block RAM at a delayed address, costs an address-wide delay
line instead of carrying 48 bits of multiplier and zero point down the pipeline: on the UP5K that
is ~150 logic cells, and the three memories fill the same 6 block RAMs (40 + 32 + 16 bits wide)
as one 96-bit memory would.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out

from .isa import QPARAM_BYTES
from .params import RillParams
from .requant_serial import requantizer_class
from .sram import sram_tile

__all__ = ["QPARAM_EARLY", "QparamTile"]

#: The part of an entry read with the accumulator.
QPARAM_EARLY = data.StructLayout({"bias": signed(32), "shift": unsigned(8)})


class QparamTile(wiring.Component):
    """``qparam_depth`` requantization entries, written whole and read in three parts.

    Members
    -------
    write : ``Out(memory.WritePort.Signature(..., granularity=8))``
        An entry, or some of its bytes (``en`` has one bit per byte), as
        :data:`~hw.isa.QPARAM_FORMAT` lays it out: bias i32, multiplier i32, shift u8, a pad
        byte, zero point i16; little-endian, bit ``8 i`` is byte ``i``.
    read : ``Out(memory.ReadPort.Signature(..., shape=QPARAM_EARLY))``
        Bias and shift of the entry at ``addr``, one cycle later (``en`` is ignored: the tile
        reads every cycle).
    multiplier : ``Out(signed(32))``, zero_point : ``Out(signed(16))``
        The same entry's multiplier ``multiplier_delay`` cycles after its ``read.data``, and its
        zero point ``zero_point_delay`` cycles after: what the requantizer ``params`` asks for
        (:func:`hw.requant_serial.requantizer_class`) takes.
    """

    def __init__(self, params: RillParams):
        self._params = params
        width = params.qparam_addr_width
        super().__init__({
            "write": Out(memory.WritePort.Signature(addr_width=width, granularity=8,
                                                    shape=unsigned(8 * QPARAM_BYTES))),
            "read": Out(memory.ReadPort.Signature(addr_width=width, shape=QPARAM_EARLY)),
            "multiplier": Out(signed(32)),
            "zero_point": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._params.qparam_depth
        unit = requantizer_class(self._params)
        # Each part: its memory and the entry's bytes it holds.
        early = (sram_tile(unsigned(40), depth), (0, 1, 2, 3, 8))      # bias, shift
        late_multiplier = (sram_tile(unsigned(32), depth), (4, 5, 6, 7))
        late_zero_point = (sram_tile(unsigned(16), depth), (10, 11))
        for name, (mem, lanes) in (("early", early), ("multiplier", late_multiplier),
                                   ("zero_point", late_zero_point)):
            m.submodules[name] = mem
            port = mem.write_port(granularity=8)
            m.d.comb += [port.addr.eq(self.write.addr),
                         port.en.eq(Cat(self.write.en[lane] for lane in lanes)),
                         port.data.eq(Cat(self.write.data.word_select(lane, 8) for lane in lanes))]

        # addresses[d] is the read address of d cycles ago.
        addresses = [self.read.addr]
        for d in range(1, unit.zero_point_delay + 1):
            delayed = Signal.like(self.read.addr, name=f"addr_{d}")
            m.d.sync += delayed.eq(addresses[-1])
            addresses.append(delayed)
        # The late parts come through a register, read a cycle earlier: the block RAM's
        # clock-to-out then ends there instead of starting the requantizer's stages, which have
        # no time left for it. The serial requantizer samples both into
        # registers of its own, so it takes them straight from the memories.
        registered = not self._params.serial_requant
        for (mem, _), delay, out in ((early, 0, self.read.data),
                                     (late_multiplier, unit.multiplier_delay, self.multiplier),
                                     (late_zero_point, unit.zero_point_delay, self.zero_point)):
            port = mem.read_port()
            if delay and registered:
                m.d.comb += port.addr.eq(addresses[delay - 1])
                m.d.sync += out.eq(port.data)
            else:
                m.d.comb += [port.addr.eq(addresses[delay]), out.eq(port.data)]
        return m

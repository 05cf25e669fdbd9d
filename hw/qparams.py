"""The requantization parameter tile: one entry per output channel, read in three staggered parts.

The requantizer needs an entry's bias and shift with the accumulator, its multiplier a few cycles
later (when its product starts) and its zero point later still (when it is added); each unit says
when (``multiplier_delay``, ``zero_point_delay``). Reading each
part when it is needed, from its own block RAM at a delayed address, costs an address-wide delay
line instead of carrying 48 bits of multiplier and zero point down the pipeline: on the UP5K that
is ~150 logic cells, and the three memories fill the same 6 block RAMs (40 + 32 + 16 bits wide)
as one 96-bit memory would.

Block RAMs 36 bits wide hold 512 words (ECP5's DP16KD; deeper, 18 bits): in banks that shallow
a bias alone fills one block RAM where bias and shift take two, so the shift moves in with the
zero point (24 bits, one block RAM), read with the bias, its zero point delayed in registers:
four banks of 512 entries fill 12 block RAMs instead of 16, for ~700 flip-flops.

With ``store_lanes`` requantizers (``RillParams.store_lanes``, a ``STORE``'s ``WIDE`` columns)
the entries are banked by lane: entry ``q`` in bank ``q % lanes`` at ``q // lanes``, every bank
read at the same address. A wide store starts at a multiple of the lanes, so lane ``i`` reads
bank ``i``; a narrow one reads lane 0 from the bank its entry is in.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out

from .isa import QPARAM_BYTES
from .params import RillParams
from .pipeline import delayed
from .requant_serial import requantizer_class
from .sram import sram_tile

__all__ = ["QPARAM_EARLY", "QparamTile"]

#: The depth to which a block RAM is 36 bits wide (ECP5's DP16KD as 512 x 36).
_WIDE_BLOCK_DEPTH = 512

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
    lanes : ``Out(...).array(store_lanes - 1)``
        With store lanes, the entries ``addr + i`` (``i`` from 1) of an ``addr`` that is a
        multiple of them: ``early``, ``multiplier`` and ``zero_point`` each when lane 0's are.
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
            **({"lanes": Out(data.StructLayout({
                "early": QPARAM_EARLY, "multiplier": signed(32), "zero_point": signed(16)}))
                .array(params.store_lanes - 1)} if params.store_lanes > 1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.store_lanes
        bank_bits = lanes.bit_length() - 1
        depth = p.qparam_depth // lanes
        unit = requantizer_class(p)
        # Each part: its memory's width (one per bank) and the entry's bytes it holds.
        # Only banked tiles split: on a part with one bank (the iCE40s' 16-bit-wide block RAMs,
        # the smaller ECP5s' deeper tiles) it saves no block RAM and its registers cost cells.
        split = lanes > 1 and depth <= _WIDE_BLOCK_DEPTH
        parts = ({"bias": (32, (0, 1, 2, 3)), "multiplier": (32, (4, 5, 6, 7)),
                  "shift_zero_point": (24, (8, 10, 11))} if split else
                 {"early": (40, (0, 1, 2, 3, 8)),      # bias, shift
                  "multiplier": (32, (4, 5, 6, 7)), "zero_point": (16, (10, 11))})
        # No collision check (hw.sram.check_no_collision): the store engine's entry reads run free.
        banks = {name: [sram_tile(unsigned(width), depth) for _ in range(lanes)]
                 for name, (width, _) in parts.items()}
        for name, (_, bytes_) in parts.items():
            for bank, mem in enumerate(banks[name]):
                m.submodules[f"{name}{bank}" if lanes > 1 else name] = mem
                port = mem.write_port(granularity=8)
                here = (self.write.addr[:bank_bits] == bank) if lanes > 1 else 1
                m.d.comb += [
                    port.addr.eq(self.write.addr[bank_bits:]),
                    port.en.eq(Cat(self.write.en[b] & here for b in bytes_)),
                    port.data.eq(Cat(self.write.data.word_select(b, 8) for b in bytes_))]

        # addresses[d] is the read address of d cycles ago.
        addresses = [self.read.addr]
        for d in range(1, unit.zero_point_delay + 1):
            address = Signal.like(self.read.addr, name=f"addr_{d}")
            m.d.sync += address.eq(addresses[-1])
            addresses.append(address)

        def read(name: str, delay: int, late: bool) -> list[Value]:
            """Each lane's data of part ``name`` for the entry read ``delay`` cycles ago, read a
            cycle earlier through a register if ``late``."""
            datas = []
            for mem in banks[name]:
                port = mem.read_port()
                m.d.comb += port.addr.eq(addresses[delay - 1 if late else delay][bank_bits:])
                datas.append(port.data)
            # Lane 0: the bank of the entry whose data this is (read a cycle before it).
            lane0 = Array(datas)[addresses[max(delay, 1)][:bank_bits]] if lanes > 1 else datas[0]
            values = [lane0] + datas[1:]
            if not late:
                return values
            registered_values = [Signal.like(value, name=f"{name}_q{i}")
                                 for i, value in enumerate(values)]
            m.d.sync += [reg.eq(value) for reg, value in zip(registered_values, values)]
            return registered_values

        # The late parts come through a register, read a cycle earlier: the block RAM's
        # clock-to-out then ends there instead of starting the requantizer's stages, which have
        # no time left for it. The serial requantizer samples both into
        # registers of its own, so it takes them straight from the memories.
        registered = not p.serial_requant
        outs = {name: [out] + [getattr(self.lanes[i - 1], name) for i in range(1, lanes)]
                for name, out in (("early", self.read.data), ("multiplier", self.multiplier),
                                  ("zero_point", self.zero_point))}
        delays = {"early": 0, "multiplier": unit.multiplier_delay,
                  "zero_point": unit.zero_point_delay}
        if split:
            biases, shift_zps = read("bias", 0, False), read("shift_zero_point", 0, False)
            values = {"early": [Cat(bias, shift_zp[:8]) for bias, shift_zp in zip(biases,
                                                                                   shift_zps)],
                      "multiplier": read("multiplier", delays["multiplier"], registered),
                      "zero_point": [delayed(m, shift_zp[8:], delays["zero_point"], f"zp{i}")
                                     for i, shift_zp in enumerate(shift_zps)]}
        else:
            values = {name: read(name, delay, bool(delay) and registered)
                      for name, delay in delays.items()}
        for name, targets in outs.items():
            m.d.comb += [target.eq(value) for target, value in zip(targets, values[name])]
        return m


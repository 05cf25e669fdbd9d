"""The command buffer: a byte FIFO whose writes become readable only when committed."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CommitFifo"]


class CommitFifo(wiring.Component):
    """Byte FIFO with a tentative write side: a frame's payload goes in as it arrives, and only
    ``commit`` (its CRC and sequence number were good) lets the reader see it; ``rollback``
    forgets it. The core therefore never sees a byte of a frame that turns out to be bad.

    ``amaranth.lib.fifo`` has no notion of a tentative write, so this one keeps three pointers
    (read, committed, tentative) over an ``amaranth.lib.memory`` block.

    Parameters
    ----------
    depth : int
        Bytes; a power of two.

    Members
    -------
    w : ``In(stream.Signature(8))``
        Tentative writes; ``ready`` is low when the memory is full.
    commit, rollback : ``In(1)``
        Make every tentative byte readable / drop them. Not in the same cycle as a write.
    r : ``Out(stream.Signature(8))``
        Committed bytes.
    free : ``Out(range(depth + 1))``
        Bytes not holding committed data (what the link offers the host as credit).
    empty : ``Out(1)``
        Nothing committed is waiting, in the memory or in the output register.
    """

    def __init__(self, depth: int):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, not {depth}")
        self.depth = depth
        super().__init__({
            "w": In(stream.Signature(8)),
            "commit": In(1),
            "rollback": In(1),
            "r": Out(stream.Signature(8)),
            "free": Out(range(depth + 1)),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        bits = depth.bit_length()      # one more than the address: full and empty differ
        mem = memory.Memory(shape=8, depth=depth, init=[])
        m.submodules.mem = mem
        wp = mem.write_port()
        rp = mem.read_port()

        rd = Signal(bits)          # next byte to load into the output register
        committed = Signal(bits)
        tentative = Signal(bits)

        m.d.comb += [
            self.w.ready.eq(self._has_room((tentative - rd)[:bits])),
            wp.addr.eq(tentative),
            wp.data.eq(self.w.payload),
            wp.en.eq(self.w.valid & self.w.ready),
            self.free.eq(depth - (committed - rd)[:bits]),
            self.empty.eq(~self.r.valid & (committed == rd)),
        ]
        with m.If(wp.en):
            m.d.sync += tentative.eq(tentative + 1)
        with m.If(self.commit):
            m.d.sync += committed.eq(tentative)
        with m.Elif(self.rollback):
            m.d.sync += tentative.eq(committed)

        # Output register fed straight from the read port (its data holds while ``en`` is low).
        load = ~self.r.valid | self.r.ready
        m.d.comb += [rp.addr.eq(rd), rp.en.eq(load), self.r.payload.eq(rp.data)]
        with m.If(load):
            m.d.sync += self.r.valid.eq(committed != rd)
            with m.If(committed != rd):
                m.d.sync += rd.eq(rd + 1)
        return m

    def _has_room(self, used):
        """Whether a byte fits beside ``used`` bytes written and not yet read out of memory
        (a seam the formal proofs break on purpose, sim/proofs.py)."""
        return used != self.depth

"""CRC-32 as zlib computes it, one byte per cycle."""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import CRC_RESIDUE

__all__ = ["Crc32", "POLYNOMIAL"]

#: The reflected IEEE 802.3 polynomial zlib uses.
POLYNOMIAL = 0xEDB88320
_INIT = 0xFFFFFFFF


class Crc32(wiring.Component):
    """Byte-wise CRC-32, bit-compatible with ``zlib.crc32``.

    The eight shift-and-xor steps of the reflected CRC are unrolled into one cycle (an xor network
    of at most a few inputs per bit), so it keeps up with a byte stream at one byte per cycle.

    Members
    -------
    data : ``In(stream.Signature(8, always_ready=True))``
        Bytes to fold in: every cycle with ``valid`` takes one.
    clear : ``In(1)``
        Start over (takes priority over ``data``).
    value : ``Out(32)``
        ``zlib.crc32`` of the bytes taken since the last ``clear``.
    residue_ok : ``Out(1)``
        Those bytes end with their own CRC-32, little-endian: a frame checks without knowing
        where its payload ends.
    """

    data: In(stream.Signature(8, always_ready=True))
    clear: In(1)
    value: Out(32)
    residue_ok: Out(1)

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=_INIT)
        nxt = state ^ self.data.payload
        for _ in range(8):
            nxt = nxt[1:] ^ Mux(nxt[0], Const(POLYNOMIAL, 32), 0)
        # The residue compare is taken on the next state, into a register beside it (always
        # equal to ``state == residue``), so that no chain runs from the 32-bit compare through
        # the frame's verdict to the command buffer's pointers.
        residue = CRC_RESIDUE ^ 0xFFFFFFFF
        residue_ok = Signal(init=_INIT == residue)
        with m.If(self.clear):
            m.d.sync += [state.eq(_INIT), residue_ok.eq(_INIT == residue)]
        with m.Elif(self.data.valid):
            m.d.sync += [state.eq(nxt), residue_ok.eq(nxt == residue)]
        m.d.comb += [
            self.value.eq(~state),
            self.residue_ok.eq(residue_ok),
        ]
        return m

"""COBS framing in gateware: a decoder that resynchronizes on every 0x00, and an encoder.

Consistent Overhead Byte Stuffing removes every 0x00 from a frame (at most one extra byte per 254),
so 0x00 can delimit frames: a receiver that lost its place waits for the next 0x00 and is in step
again. Both blocks agree byte for byte with the ``cobs`` package (``cobs.cobs.encode``/``decode``)
followed by a 0x00 delimiter.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import COBS_BLOCK

__all__ = ["FrameByte", "DecodedByte", "CobsDecoder", "CobsEncoder"]

#: One byte of an unencoded frame; ``last`` marks its final byte.
FrameByte = data.StructLayout({"data": 8, "last": 1})
#: What the decoder emits: a decoded byte, or (``end``) the end of a frame, with ``error`` when
#: the frame's COBS structure was broken (a code byte promised bytes the delimiter cut off).
DecodedByte = data.StructLayout({"data": 8, "end": 1, "error": 1})


class CobsDecoder(wiring.Component):
    """Encoded bytes with 0x00 delimiters in; decoded bytes and end-of-frame markers out.

    Every input byte yields at most one output token, so the decoder takes a byte in every cycle
    its output register is free. Empty frames (consecutive delimiters) yield nothing; a frame cut
    short yields its bytes and an ``end`` with ``error``: the receiver's CRC check would catch it
    anyway, the flag makes the reason visible.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Encoded bytes.
    o : ``Out(stream.Signature(DecodedByte))``
        Decoded bytes and frame ends.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(DecodedByte))

    def elaborate(self, platform):
        m = Module()
        left = Signal(8)        # data bytes still to come in the current code block
        zero_owed = Signal()    # the block just finished implies a 0x00 if another block follows
        in_frame = Signal()
        byte = self.i.payload

        take = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            with m.If(byte == 0):
                m.d.sync += self._hunt(left, zero_owed, in_frame)
                with m.If(in_frame):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(0),
                                 self.o.payload.end.eq(1), self.o.payload.error.eq(left != 0)]
            with m.Elif(left == 0):
                m.d.sync += [left.eq(byte - 1), zero_owed.eq(byte != 0xFF), in_frame.eq(1)]
                with m.If(zero_owed):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(0),
                                 self.o.payload.end.eq(0), self.o.payload.error.eq(0)]
            with m.Else():
                m.d.sync += [left.eq(left - 1), self.o.valid.eq(1), self.o.payload.data.eq(byte),
                             self.o.payload.end.eq(0), self.o.payload.error.eq(0)]
        return m

    @staticmethod
    def _hunt(left, zero_owed, in_frame) -> list:
        """On a delimiter: forget the frame, wait for a code byte (a seam the formal proofs
        break on purpose, sim/proofs.py)."""
        return [left.eq(0), zero_owed.eq(0), in_frame.eq(0)]


class CobsEncoder(wiring.Component):
    """Frame bytes in (``last`` on the final one); COBS-encoded bytes and a 0x00 delimiter out.

    A code byte gives the length of the block behind it, so a block is collected (in a 254-byte
    memory) before it is sent. The encoder alternates between collecting a block and sending it,
    a byte per cycle each: about two cycles per byte, far above any UART's rate.

    Members
    -------
    i : ``In(stream.Signature(FrameByte))``
        Unencoded frame bytes. A frame has at least one byte.
    o : ``Out(stream.Signature(8))``
        The encoded frame followed by 0x00.
    """

    i: In(stream.Signature(FrameByte))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        buf = memory.Memory(shape=8, depth=COBS_BLOCK, init=[])
        m.submodules.buf = buf
        wr = buf.write_port()
        rd = buf.read_port()

        count = Signal(range(COBS_BLOCK + 1))   # bytes collected in the current block
        code = Signal(8)                        # code byte of the block being sent
        pos = Signal(8)                         # next block byte to present: 0 = code
        final = Signal()                        # the block being sent ends the frame
        trailing_one = Signal()                 # ... and is followed by an empty block (0x01)

        # Output register; a byte from the block memory is presented straight from the read
        # port, whose data holds while ``rd.en`` is low.
        from_mem = Signal()
        byte = Signal(8)
        load = self._output_free()
        m.d.comb += [
            self.o.payload.eq(Mux(from_mem, rd.data, byte)),
            rd.en.eq(load),
            rd.addr.eq(pos - 1),
            wr.addr.eq(count),
            wr.data.eq(self.i.payload.data),
        ]
        with m.If(load):
            m.d.sync += self.o.valid.eq(0)

        def present(value=None):
            m.d.sync += self.o.valid.eq(1)
            if value is None:
                m.d.sync += from_mem.eq(1)
            else:
                m.d.sync += [from_mem.eq(0), byte.eq(value)]

        with m.FSM():
            with m.State("COLLECT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    data_byte, last = self.i.payload.data, self.i.payload.last
                    zero = data_byte == 0
                    full = count == COBS_BLOCK - 1
                    m.d.comb += wr.en.eq(~zero)
                    m.d.sync += [final.eq(last), trailing_one.eq(last & zero), pos.eq(0)]
                    with m.If(zero):
                        m.d.sync += [code.eq(count + 1), count.eq(0)]
                        m.next = "SEND"
                    with m.Elif(full | last):
                        m.d.sync += [code.eq(count + 2), count.eq(0)]
                        m.next = "SEND"
                    with m.Else():
                        m.d.sync += count.eq(count + 1)
            with m.State("SEND"):
                with m.If(load):
                    with m.If(pos == 0):
                        present(code)
                        m.d.sync += pos.eq(1)
                    with m.Elif(pos < code):
                        present()
                        m.d.sync += pos.eq(pos + 1)
                    with m.Elif(trailing_one):
                        present(0x01)
                        m.next = "DELIMIT"
                    with m.Elif(final):
                        present(0x00)
                        m.next = "COLLECT"
                    with m.Else():
                        m.next = "COLLECT"
            with m.State("DELIMIT"):
                with m.If(load):
                    present(0x00)
                    m.next = "COLLECT"
        return m

    def _output_free(self):
        """Whether the output register may take the next byte: empty, or its byte taken now
        (a seam the formal proofs break on purpose, sim/proofs.py)."""
        return ~self.o.valid | self.o.ready

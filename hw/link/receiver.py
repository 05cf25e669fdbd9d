"""The receiving half of the link controller: header, CRC and sequence checks of host frames."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cobs import DecodedByte
from .crc import Crc32
from .protocol import (
    CRC_BYTES,
    DUPLICATE_WINDOW,
    HOST_HEADER_BYTES,
    MAX_HOST_FRAME,
    HostKind,
    LinkStatus,
)

__all__ = ["FrameEvent", "LinkReceiver"]

#: What the receiver tells the transmitter about each frame it finished.
FrameEvent = data.StructLayout({
    "status": LinkStatus,
    "seq": 8,
    "tag": 8,
    "rack": 16,
    "trusted": 1,   # CRC and layout good: ``tag``, ``rack``, ``resend`` and ``sync`` may be used
    "resend": 1,
    "sync": 1,
    "quiet": 1,     # a STREAM frame: no reply when it is taken (OK)
})


class LinkReceiver(wiring.Component):
    """Checks each decoded host frame and lets a DATA frame's payload through only when whole.

    Header bytes go to registers; the bytes after the header go towards the command buffer
    through a :data:`~.protocol.CRC_BYTES`-byte delay line, so a frame's CRC (its last four bytes)
    never enters it. They are written tentatively, and only if the header says DATA (or STREAM)
    with the expected ``seq``; at the frame's end the receiver commits them (CRC good, all fits)
    or rolls them back, advances the expected ``seq`` on a commit, and reports the outcome as one
    :data:`FrameEvent`. It never stalls its input: a UART cannot be paused.

    Members
    -------
    i : ``In(stream.Signature(DecodedByte))``
        From the COBS decoder.
    cmd : ``Out(stream.Signature(8))``
        Tentative payload bytes, to :class:`~.buffer.CommitFifo`. A byte it does not take marks
        the frame NO_SPACE.
    commit, rollback : ``Out(1)``
        To the command buffer.
    event : ``Out(stream.Signature(FrameEvent, always_ready=True))``
        One per frame end.
    next_seq : ``Out(8)``
        The DATA ``seq`` the device executes next (every seq before it is acknowledged).
    """

    i: In(stream.Signature(DecodedByte))
    cmd: Out(stream.Signature(8))
    commit: Out(1)
    rollback: Out(1)
    event: Out(stream.Signature(FrameEvent, always_ready=True))
    next_seq: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = Crc32()

        length = Signal(range(MAX_HOST_FRAME + 2))   # saturates one past the longest frame
        header = Signal(8 * HOST_HEADER_BYTES)
        kind, seq, tag, rack = (header[0:8], header[8:16], header[16:24], header[24:40])
        delay = Signal(8 * CRC_BYTES)
        overflow = Signal()
        expected = self.next_seq

        token = self.i.payload
        byte_in = self.i.valid & ~token.end
        end_in = self.i.valid & token.end
        m.d.comb += [
            self.i.ready.eq(1),
            crc.data.valid.eq(byte_in),
            crc.data.payload.eq(token.data),
        ]

        with m.If(byte_in):
            with m.If(length != MAX_HOST_FRAME + 1):
                m.d.sync += length.eq(length + 1)
            for k in range(HOST_HEADER_BYTES):
                with m.If(length == k):
                    m.d.sync += header[8 * k:8 * (k + 1)].eq(token.data)
            with m.If(length >= HOST_HEADER_BYTES):
                m.d.sync += delay.eq(Cat(delay[8:], token.data))

        # A byte leaves the delay line when CRC_BYTES more have followed it; the header is
        # complete by then.
        carries_commands = (kind == HostKind.DATA.value) | (kind == HostKind.STREAM.value)
        executing = carries_commands & (seq == expected)
        m.d.comb += [
            self.cmd.payload.eq(delay[:8]),
            self.cmd.valid.eq(byte_in & executing & ~overflow
                              & (length >= HOST_HEADER_BYTES + CRC_BYTES)
                              & (length <= MAX_HOST_FRAME)),
        ]
        with m.If(self.cmd.valid & ~self.cmd.ready):
            m.d.sync += overflow.eq(1)

        # -- the frame's end ---------------------------------------------------------------------
        known_kind = ((kind == HostKind.DATA.value) | (kind == HostKind.POLL.value)
                      | (kind == HostKind.RESEND.value) | (kind == HostKind.SYNC.value)
                      | (kind == HostKind.STREAM.value))
        malformed = (token.error | (length < HOST_HEADER_BYTES + CRC_BYTES)
                     | (length > MAX_HOST_FRAME))
        behind = Signal(8)
        m.d.comb += behind.eq(expected - seq)
        status = Signal(LinkStatus)
        with m.If(malformed):
            m.d.comb += status.eq(LinkStatus.BAD_FRAME)
        with m.Elif(~crc.residue_ok):
            m.d.comb += status.eq(LinkStatus.BAD_CRC)
        with m.Elif(~known_kind):
            m.d.comb += status.eq(LinkStatus.BAD_FRAME)
        with m.Elif(~carries_commands):
            m.d.comb += status.eq(LinkStatus.OK)
        with m.Elif(behind == 0):
            m.d.comb += status.eq(LinkStatus.OK)
        with m.Elif(behind <= DUPLICATE_WINDOW):
            m.d.comb += status.eq(LinkStatus.DUPLICATE)
        with m.Else():
            m.d.comb += status.eq(LinkStatus.OUT_OF_ORDER)
        trusted = self._trusted(malformed, crc.residue_ok, known_kind)
        final_status = Signal(LinkStatus)
        m.d.comb += final_status.eq(status)
        with m.If(executing & (status == LinkStatus.OK) & overflow):
            m.d.comb += final_status.eq(LinkStatus.NO_SPACE)
        commit = trusted & executing & ~overflow

        m.d.comb += [
            self.event.valid.eq(end_in),
            self.event.payload.status.eq(final_status),
            self.event.payload.seq.eq(seq),
            self.event.payload.tag.eq(tag),
            self.event.payload.rack.eq(rack),
            self.event.payload.trusted.eq(trusted),
            self.event.payload.resend.eq(kind == HostKind.RESEND.value),
            self.event.payload.sync.eq(kind == HostKind.SYNC.value),
            self.event.payload.quiet.eq(kind == HostKind.STREAM.value),
            self.commit.eq(end_in & commit),
            self.rollback.eq(end_in & ~commit),
            crc.clear.eq(end_in),
        ]
        with m.If(end_in):
            m.d.sync += [length.eq(0), overflow.eq(0), header.eq(0)]
            with m.If(commit):
                m.d.sync += expected.eq(expected + 1)
        return m

    @staticmethod
    def _trusted(malformed, crc_ok, known_kind):
        """Whether a frame's bytes may be believed (a seam the formal proofs break on purpose,
        sim/proofs.py)."""
        return ~malformed & crc_ok & known_kind

"""The sending half of the link controller: replies, response frames and the response buffer."""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .cobs import FrameByte
from .crc import Crc32
from .protocol import (
    CRC_BYTES,
    DEVICE_HEADER_BYTES,
    LINE_ERROR_BITS,
    MAX_RESPONSE_PAYLOAD,
    OFFSET_MODULUS,
    QUIET_CYCLES,
    REFUSED_STATUSES,
    REJECTED_FRAME_BITS,
    DeviceFlags,
    DeviceKind,
    LinkStatus,
    credit_news_threshold,
)
from .receiver import FrameEvent

__all__ = ["DeviceHeader", "LinkTransmitter"]


#: The device frame header as the gateware holds it (``DEVICE_HEADER_FORMAT``, little-endian).
DeviceHeader = data.StructLayout({"kind": 8, "status": 8, "seq": 8, "tag": 8, "next_seq": 8,
                                  "flags": 8, "credit": 16, "roff": 16})
assert DeviceHeader.size == 8 * DEVICE_HEADER_BYTES


class _Source(enum.Enum, shape=2):
    HEADER = 0
    BUFFER = 1
    CRC = 2


class LinkTransmitter(wiring.Component):
    """Keeps the core's responses until the host acknowledges them and sends device frames.

    Every response byte goes into a ring (``rsp_depth`` bytes) at stream offset ``wr`` and stays
    until the host's ``rack`` passes it, so any of it can be sent again; the core waits while the
    ring is full. ``sent`` is the offset of the next byte to send; a RESEND moves it back to
    ``rack``. A frame goes out when a reply is owed (a host frame ended), when a full payload is
    waiting or the core has been quiet for :data:`~.protocol.QUIET_CYCLES` with some waiting, or
    when the credit the host does not know of reaches :func:`~.protocol.credit_news_threshold`
    (the host may be waiting for it). A STREAM frame taken in sequence is owed no reply: that
    news, or any other frame, acknowledges it. Replies owed while a frame is being sent are
    merged into one, which answers the latest host frame; an error status is kept over a later
    OK so a NAK is not lost.

    Parameters
    ----------
    rsp_depth : int
        Response ring bytes, a power of two up to 2**15.
    cmd_depth : int
        Command buffer bytes (the largest credit).

    Members
    -------
    event : ``In(stream.Signature(FrameEvent, always_ready=True))``
        Frame outcomes from :class:`~.receiver.LinkReceiver`.
    rsp : ``In(stream.Signature(8))``
        The core's response bytes.
    next_seq : ``In(8)``, credit : ``In(range(cmd_depth + 1))``, core_idle : ``In(1)``
        State reported in every frame.
    cmd_taken : ``In(1)``
        A command byte went into the buffer (tentatively): the host's room shrinks by one.
    line_errors : ``In(LINE_ERROR_BITS[1])``
        The PHY's count of line errors (wrapping), reported in every frame's flags with the
        count of rejected host frames (:data:`~.protocol.REJECTED_FRAME_BITS`).
    o : ``Out(stream.Signature(FrameByte))``
        Device frames, CRC appended, before COBS.
    idle : ``Out(1)``
        Nothing owed, nothing unsent, no frame on the way out: with the core idle too, the device
        will stay silent until the host sends something (a simulation may stop the clock then).
    """

    def __init__(self, *, rsp_depth: int, cmd_depth: int):
        if rsp_depth < 2 or rsp_depth & (rsp_depth - 1) or rsp_depth > OFFSET_MODULUS // 2:
            raise ValueError(f"rsp_depth must be a power of two up to {OFFSET_MODULUS // 2}, "
                             f"not {rsp_depth}")
        self.rsp_depth, self.cmd_depth = rsp_depth, cmd_depth
        super().__init__({
            "event": In(stream.Signature(FrameEvent, always_ready=True)),
            "rsp": In(stream.Signature(8)),
            "next_seq": In(8),
            "credit": In(range(cmd_depth + 1)),
            "core_idle": In(1),
            "cmd_taken": In(1),
            "line_errors": In(LINE_ERROR_BITS[1]),
            "o": Out(stream.Signature(FrameByte)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ring = memory.Memory(shape=8, depth=self.rsp_depth, init=[])
        m.submodules.ring = ring
        wp = ring.write_port()
        rp = ring.read_port()
        m.submodules.crc = crc = Crc32()

        wr, sent, acked = Signal(16), Signal(16), Signal(16)

        quiet = self._responses_in(m, wp, wr, acked)
        owed, owed_status, owed_seq, last_tag, ev_valid = self._outcomes(m, wr, sent, acked)
        rejected = Signal(REJECTED_FRAME_BITS[1])
        refused = reduce(operator.or_, (self.event.payload.status == status
                                        for status in REFUSED_STATUSES))
        with m.If(self.event.valid & refused):
            m.d.sync += rejected.eq(rejected + 1)

        # -- when to send ------------------------------------------------------------------
        unsent = Signal(16)
        m.d.comb += unsent.eq(wr - sent)
        full_payload = unsent >= MAX_RESPONSE_PAYLOAD
        data_ready = (unsent != 0) & (full_payload | (quiet == 0))
        # The credit from a register: the command buffer's free count is a subtraction of its
        # pointers, which must not feed the compares below and the frame start in one cycle. A
        # cycle late is safe: between commits it only grows (the core reads), so the late value
        # is the smaller; a commit comes with an event, and no frame starts in the two cycles
        # from an event (``event.valid``, then ``ev_valid``), by when the register has caught up.
        credit = Signal.like(self.credit, name="credit_q")
        m.d.sync += credit.eq(self.credit)
        # The room the host believes it has: the credit last reported, less what came since.
        host_room = Signal(range(self.cmd_depth + 1), init=self.cmd_depth)
        credit_news = credit >= host_room + credit_news_threshold(self.cmd_depth)
        # Bytes of the host frame still arriving: not in the credit yet, but in the host's sums.
        arriving = Signal(range(self.cmd_depth + 1))
        with m.If(self.event.valid):
            m.d.sync += arriving.eq(0)
        with m.Elif(self.cmd_taken & (arriving != self.cmd_depth)):
            m.d.sync += arriving.eq(arriving + 1)
        with m.If(self.cmd_taken & (host_room != 0)):
            m.d.sync += host_room.eq(host_room - 1)   # a frame's start below overrides this
        # A frame starts a cycle after it is decided (``starting``), with the payload size
        # decided then too: the decision's subtraction and compares would otherwise feed the
        # clock enables of every register the start loads. A cycle late is safe: only a start
        # or an event moves ``sent``, and neither can come between the two cycles (an event in
        # the start's cycle holds the start back, to be decided again); ``wr`` only grows, so
        # the payload size decided is still there to send.
        busy = Signal()
        starting, starting_full = Signal(name="starting"), Signal(name="starting_full")
        starting_take = Signal(range(MAX_RESPONSE_PAYLOAD + 1))
        m.d.sync += [
            starting.eq(~busy & ~starting & ~self.event.valid & ~ev_valid
                        & (owed | data_ready | credit_news)),
            starting_full.eq(full_payload),
            starting_take.eq(Mux(full_payload, MAX_RESPONSE_PAYLOAD, unsent)),
        ]
        start = starting & ~self.event.valid
        m.d.comb += self.idle.eq(~busy & ~starting & ~owed & (unsent == 0) & ~credit_news
                                 & ~self.o.valid)

        # -- the frame being sent ---------------------------------------------------------
        crc_waited = Signal()   # the cycle before the CRC has passed (see crc_byte below)
        header = Signal(DeviceHeader)
        roff = Signal(16)
        take = Signal(range(MAX_RESPONSE_PAYLOAD + 1))
        pos = Signal(range(DEVICE_HEADER_BYTES + MAX_RESPONSE_PAYLOAD + CRC_BYTES + 1))
        total = DEVICE_HEADER_BYTES + take + CRC_BYTES

        with m.If(start):
            m.d.sync += [
                busy.eq(1), pos.eq(0), take.eq(starting_take), roff.eq(sent), crc_waited.eq(0),
                sent.eq(sent + starting_take), owed.eq(0),
                host_room.eq(Mux(credit > arriving, credit - arriving, 0)),
                header.kind.eq(Mux(owed, DeviceKind.REPLY.value, DeviceKind.RESPONSE.value)),
                header.status.eq(Mux(owed, owed_status.as_value(), LinkStatus.OK.value)),
                header.seq.eq(owed_seq),
                header.tag.eq(last_tag),
                header.next_seq.eq(self.next_seq),
                # Idle only when this frame empties the ring: then nothing more is coming. The
                # payload's size was decided a cycle ago; a byte the ring took since is not in
                # it, though the core, having handed it over, may already look idle.
                header.flags.eq(
                    Mux(self.core_idle & ~starting_full & (unsent == starting_take),
                        DeviceFlags.IDLE.value, 0)
                    | (self.line_errors << LINE_ERROR_BITS[0])
                    | (rejected << REJECTED_FRAME_BITS[0])),
                header.credit.eq(Mux(credit > 0xFFFF, 0xFFFF, credit)),
                header.roff.eq(sent),
            ]

        self._send_bytes(m, rp, crc, start=start, busy=busy, pos=pos, take=take, total=total,
                         header=header, crc_waited=crc_waited, roff=roff)
        return m

    def _responses_in(self, m, wp, wr, acked):
        """The core's response bytes into the ring; the count of quiet cycles since the last."""
        # -- responses in --------------------------------------------------------------------
        quiet = Signal(range(QUIET_CYCLES + 1))
        # Ready from a register, a cycle behind: room for two bytes last cycle is room for one
        # now, as the ring takes one byte per cycle. (Combinational, the subtraction and the
        # compare would lead into the core's stall logic.)
        room_for_two = Signal()
        m.d.sync += room_for_two.eq(self._room_for_two((wr - acked)[:16]))
        m.d.comb += [
            self.rsp.ready.eq(room_for_two),
            wp.addr.eq(wr), wp.data.eq(self.rsp.payload),
            wp.en.eq(self.rsp.valid & self.rsp.ready),
        ]
        with m.If(wp.en):
            m.d.sync += [wr.eq(wr + 1), quiet.eq(QUIET_CYCLES)]
        with m.Elif(quiet != 0):
            m.d.sync += quiet.eq(quiet - 1)

        return quiet

    def _room_for_two(self, used):
        """Whether a ring holding ``used`` unacknowledged bytes has room for two more."""
        return used < self.rsp_depth - 1

    def _outcomes(self, m, wr, sent, acked):
        """Host frames' outcomes: what the next frame owes the host (a reply's status and
        sequence number), the last tag, and the ring's acknowledged and sent pointers."""
        owed = Signal()
        owed_status = Signal(LinkStatus)
        owed_seq = Signal(8)
        last_tag = Signal(8)
        # The outcome is taken a cycle late, from registers holding the event and the ring's
        # distances from ``acked`` at its arrival, so that 16-bit subtractions and the compares
        # of their results do not share a cycle. Events are a frame apart; ``wr`` may move
        # on by a byte meanwhile, which only makes ``rack_ok`` stricter about a byte no frame
        # can yet acknowledge.
        ev = Signal.like(self.event.payload)
        ev_valid = Signal()
        ahead = Signal(16)       # rack - acked
        written = Signal(16)     # wr - acked
        in_flight = Signal(16)   # sent - acked
        m.d.sync += [ev_valid.eq(self.event.valid), ev.eq(self.event.payload),
                     ahead.eq(self.event.payload.rack - acked), written.eq(wr - acked),
                     in_flight.eq(sent - acked)]

        def is_error(status):
            return (status != LinkStatus.OK) & (status != LinkStatus.DUPLICATE)

        # A STREAM frame taken in order is acknowledged by whatever frame goes out next.
        unanswered = ev.quiet & ev.trusted & (ev.status == LinkStatus.OK)
        with m.If(ev_valid & ~unanswered):
            m.d.sync += [owed.eq(1), owed_seq.eq(ev.seq)]
            with m.If(~owed | ~is_error(owed_status)):
                m.d.sync += owed_status.eq(ev.status)
        with m.If(ev_valid):
            with m.If(ev.trusted):
                m.d.sync += last_tag.eq(ev.tag)
                rack_ok = ahead <= written
                new_acked = Mux(rack_ok, ev.rack, acked)
                with m.If(ev.sync):
                    m.d.sync += [acked.eq(wr), sent.eq(wr)]
                with m.Else():
                    m.d.sync += acked.eq(new_acked)
                    with m.If(ev.resend):
                        m.d.sync += sent.eq(new_acked)
                    with m.Elif(rack_ok & (ahead > in_flight)):
                        m.d.sync += sent.eq(ev.rack)

        return owed, owed_status, owed_seq, last_tag, ev_valid

    def _send_bytes(self, m, rp, crc, *, start, busy, pos, take, total, header, crc_waited,
                    roff):
        """The frame's bytes, one per cycle the output takes one: the header, the payload from
        the ring, then the CRC."""
        # Output register; buffer bytes come straight from the read port.
        source = Signal(_Source)
        header_byte = Signal(8)
        crc_index = Signal(2)
        load = ~self.o.valid | self.o.ready
        # The CRC takes each byte a cycle after it leaves, from a register: the block RAM's
        # clock-to-out then ends there instead of starting the CRC's logic. So the CRC's first
        # byte waits a cycle (crc_waited) for the last byte's update.
        crc_byte = Signal(8)
        crc_take = Signal()
        m.d.sync += [crc_byte.eq(self.o.payload.data),
                     crc_take.eq(self.o.valid & self.o.ready & (source != _Source.CRC))]
        m.d.comb += [
            rp.en.eq(load),
            rp.addr.eq(roff + pos - DEVICE_HEADER_BYTES),
            crc.clear.eq(start),
            crc.data.valid.eq(crc_take),
            crc.data.payload.eq(crc_byte),
        ]
        with m.Switch(source):
            with m.Case(_Source.HEADER):
                m.d.comb += self.o.payload.data.eq(header_byte)
            with m.Case(_Source.BUFFER):
                m.d.comb += self.o.payload.data.eq(rp.data)
            with m.Case(_Source.CRC):
                m.d.comb += self.o.payload.data.eq(crc.value.word_select(crc_index, 8))

        with m.If(load):
            m.d.sync += self.o.valid.eq(0)
            with m.If(busy):
                with m.If((pos == DEVICE_HEADER_BYTES + take) & ~crc_waited):
                    m.d.sync += crc_waited.eq(1)   # a cycle with nothing to send
                with m.Elif(pos < total):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(pos == total - 1),
                                 pos.eq(pos + 1)]
                    with m.If(pos < DEVICE_HEADER_BYTES):
                        m.d.sync += [source.eq(_Source.HEADER),
                                     header_byte.eq(header.as_value().word_select(pos, 8))]
                    with m.Elif(pos < DEVICE_HEADER_BYTES + take):
                        m.d.sync += source.eq(_Source.BUFFER)
                    with m.Else():
                        m.d.sync += [source.eq(_Source.CRC),
                                     crc_index.eq(pos - DEVICE_HEADER_BYTES - take)]
                with m.Else():
                    m.d.sync += busy.eq(0)

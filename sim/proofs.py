"""The formal proofs' harnesses (run by :func:`sim.formal.prove`; tests/test_formal.py).

Each ``*_proof`` function returns a harness around one link block, and takes the block's class
so a test can show the proof failing on a deliberately broken variant.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Module, Mux, Signal

from hw.link.buffer import CommitFifo
from hw.link.cobs import CobsDecoder, CobsEncoder
from hw.link.crc import Crc32
from hw.link.protocol import CRC_BYTES, DEVICE_HEADER_BYTES, HOST_HEADER_BYTES, LinkStatus
from hw.link.receiver import LinkReceiver
from hw.link.transmitter import DeviceHeader, LinkTransmitter
from hw.uart import MIN_DIVISOR, UartRx

from .formal import free

__all__ = ["cobs_decoder_proof", "cobs_encoder_proof", "commit_fifo_proof",
           "receiver_proof", "response_ring_proof", "uart_receiver_proof", "stream_holds"]


def stream_holds(m: Module, stream, name: str, *, check=Assert):
    """Assert the stream rule on ``stream`` (as seen by its sink): once ``valid`` is up without
    ``ready``, ``valid`` and the payload hold in the next cycle. With ``check=Assume``, assume it
    of a source the solver drives."""
    stalled = Signal(name=f"{name}_stalled")
    held = Signal.like(stream.payload, name=f"{name}_held")
    m.d.sync += [stalled.eq(stream.valid & ~stream.ready), held.eq(stream.payload)]
    with m.If(stalled):
        m.d.comb += check(stream.valid & (stream.payload == held))


def commit_fifo_proof(depth: int = 4, fifo_class=CommitFifo) -> Module:
    """The command buffer hands out every committed byte exactly once, in order, and nothing
    else, whatever the writer, the commits and rollbacks, and the reader do.

    A model counts positions in the byte stream: ``written`` (tentative), ``committed`` and
    ``read``. The solver picks a position ``k``: the byte last written there (rewritten after a
    rollback) must be what the reader gets at ``k``; the reader may take a byte only while the
    model holds a committed unread one (no underflow, nothing twice); and the reader's stream
    holds its byte until taken.
    """
    m = Module()
    dut = m.submodules.dut = fifo_class(depth)
    w_valid, w_data = free(m, 1, "w_valid"), free(m, 8, "w_data")
    commit, rollback, r_ready = free(m, 1, "commit"), free(m, 1, "rollback"), free(m, 1, "r_ready")
    k = free(m, 6, "k")
    m.d.comb += [dut.w.valid.eq(w_valid), dut.w.payload.eq(w_data), dut.commit.eq(commit),
                 dut.rollback.eq(rollback), dut.r.ready.eq(r_ready)]
    wrote = dut.w.valid & dut.w.ready
    took = dut.r.valid & dut.r.ready
    # The contract: commit and rollback never in a write's cycle; k one position for the trace.
    k_seen = Signal(6)
    m.d.sync += k_seen.eq(k)
    started = Signal()
    m.d.sync += started.eq(1)
    m.d.comb += Assume(~((commit | rollback) & wrote) & (~started | (k == k_seen)))

    written, committed, read = Signal(6), Signal(6), Signal(6)   # no wrap within a proof
    k_data, k_written = Signal(8), Signal()
    with m.If(wrote):
        m.d.sync += written.eq(written + 1)
        with m.If(written == k):
            m.d.sync += [k_data.eq(w_data), k_written.eq(1)]
    with m.If(commit):
        m.d.sync += committed.eq(written)
    with m.Elif(rollback):
        m.d.sync += written.eq(committed)
    with m.If(took):
        m.d.sync += read.eq(read + 1)
        m.d.comb += Assert(read != committed)                    # a committed byte is there
        with m.If(read == k):
            m.d.comb += Assert(k_written & (dut.r.payload == k_data))   # and it is the right one
    stream_holds(m, dut.r, "r")
    return m


def cobs_decoder_proof(decoder_class=CobsDecoder) -> Module:
    """The COBS decoder keeps its output until taken, and after every delimiter behaves as a
    decoder fresh from reset: whatever came before (noise, a frame cut short), the next frame
    decodes as it would alone.

    A second decoder starts from reset and receives the first one's input from the cycle after
    the first takes a 0x00; with the sink always ready, from the cycle after that the two emit
    the same tokens.
    """
    m = Module()
    a = m.submodules.a = decoder_class()
    fresh = m.submodules.fresh = decoder_class()
    valid, byte, ready = free(m, 1, "valid"), free(m, 8, "byte"), free(m, 1, "ready")
    m.d.comb += [a.i.valid.eq(valid), a.i.payload.eq(byte), a.o.ready.eq(ready)]
    stream_holds(m, a.i, "i", check=Assume)
    stream_holds(m, a.o, "o")
    synced, compared = Signal(), Signal()
    with m.If(a.i.valid & a.i.ready & (byte == 0)):
        m.d.sync += synced.eq(1)
    m.d.sync += compared.eq(synced)
    m.d.comb += [fresh.i.valid.eq(valid & synced), fresh.i.payload.eq(byte),
                 fresh.o.ready.eq(1)]
    with m.If(synced):
        m.d.comb += Assume(ready)
    with m.If(compared):
        m.d.comb += Assert((a.o.valid == fresh.o.valid)
                           & (~a.o.valid | (a.o.payload.as_value() == fresh.o.payload.as_value())))
    return m


def cobs_encoder_proof(encoder_class=CobsEncoder) -> Module:
    """The COBS encoder keeps each output byte until taken and never emits a 0x00 inside a frame:
    a 0x00 leaves it only as the delimiter after a frame's ``last`` byte."""
    m = Module()
    enc = m.submodules.enc = encoder_class()
    valid, data, last, ready = (free(m, 1, "valid"), free(m, 8, "data"), free(m, 1, "last"),
                                free(m, 1, "ready"))
    m.d.comb += [enc.i.valid.eq(valid), enc.i.payload.data.eq(data),
                 enc.i.payload.last.eq(last), enc.o.ready.eq(ready)]
    stream_holds(m, enc.i, "i", check=Assume)
    stream_holds(m, enc.o, "o")
    frames_in, frames_out = Signal(4), Signal(4)   # frames ended on each side
    with m.If(enc.i.valid & enc.i.ready & last):
        m.d.sync += frames_in.eq(frames_in + 1)
    with m.If(enc.o.valid & enc.o.ready & (enc.o.payload == 0)):
        m.d.sync += frames_out.eq(frames_out + 1)
        m.d.comb += Assert(frames_out != frames_in)   # a delimiter only after a frame's end
    return m


def receiver_proof(receiver_class=LinkReceiver) -> Module:
    """The link receiver commits a frame's commands only when the frame is whole and checks:
    its COBS structure intact, at least a header and a CRC long, and its CRC-32 good. Every
    frame end commits or rolls back."""
    m = Module()
    rx = m.submodules.rx = receiver_class()
    valid, data, end, error = (free(m, 1, "valid"), free(m, 8, "data"), free(m, 1, "end"),
                               free(m, 1, "error"))
    m.d.comb += [rx.i.valid.eq(valid), rx.i.payload.data.eq(data), rx.i.payload.end.eq(end),
                 rx.i.payload.error.eq(error), rx.cmd.ready.eq(free(m, 1, "cmd_ready"))]
    # The frame's CRC by a second Crc32 (checked against zlib.crc32 in tests/test_link_blocks.py):
    # the proof is about what the receiver decides from it.
    crc = m.submodules.crc = Crc32()
    length = Signal(6)
    byte_in = valid & ~end
    m.d.comb += [crc.data.valid.eq(byte_in), crc.data.payload.eq(data), crc.clear.eq(valid & end)]
    with m.If(byte_in):
        m.d.sync += length.eq(Mux(length == 63, 63, length + 1))
    with m.If(valid & end):
        m.d.sync += length.eq(0)
    with m.If(rx.commit):
        m.d.comb += Assert(valid & end & ~error & crc.residue_ok
                           & (length >= HOST_HEADER_BYTES + CRC_BYTES))
    with m.If(valid & end):
        m.d.comb += Assert(rx.commit | rx.rollback)   # every frame end settles the buffer
    return m


def response_ring_proof(transmitter_class=LinkTransmitter, rsp_depth: int = 4) -> Module:
    """The response ring sends, at every stream offset, the byte the core wrote there and
    nothing else, whatever the host acknowledges, asks again for or resynchronizes, and however
    the core and the UART pace their streams: no byte is overwritten before the host has
    acknowledged it (overflow), none is sent before the core wrote it (underflow), and the frame
    stream holds each byte until the UART takes it.

    The harness reads the device frames as the host does: ``roff`` from the header, then payload
    bytes at ``roff``, ``roff + 1``... A byte is payload once four more bytes of its frame follow
    (the CRC is a frame's last four). The solver picks a stream offset ``k``; the byte the core
    wrote there is the one every frame must carry at ``k`` until the host lets it go (its
    ``rack`` passes ``k``, or it resynchronizes); a frame already on its way then may carry the
    byte that took its place, which the host, past ``k``, ignores.
    """
    m = Module()
    tx = m.submodules.tx = transmitter_class(rsp_depth=rsp_depth, cmd_depth=4)
    event = tx.event.payload
    m.d.comb += [
        tx.event.valid.eq(free(m, 1, "event_valid")),
        event.status.eq(Mux(free(m, 1, "event_error"), LinkStatus.BAD_CRC, LinkStatus.OK)),
        event.seq.eq(free(m, 8, "event_seq")), event.tag.eq(free(m, 8, "event_tag")),
        event.rack.eq(free(m, 16, "event_rack")), event.trusted.eq(free(m, 1, "trusted")),
        event.resend.eq(free(m, 1, "resend")), event.sync.eq(free(m, 1, "sync")),
        event.quiet.eq(free(m, 1, "quiet")),
        tx.rsp.valid.eq(free(m, 1, "rsp_valid")), tx.rsp.payload.eq(free(m, 8, "rsp_byte")),
        tx.next_seq.eq(free(m, 8, "next_seq")), tx.credit.eq(free(m, 3, "credit")),
        tx.core_idle.eq(free(m, 1, "core_idle")), tx.cmd_taken.eq(free(m, 1, "cmd_taken")),
        tx.o.ready.eq(free(m, 1, "o_ready")),
    ]
    stream_holds(m, tx.rsp, "rsp", check=Assume)
    stream_holds(m, tx.o, "o")
    # The receiver's contract: a frame end at most every fourth cycle (a host frame is at least
    # a header and a CRC long, each byte many clocks on a UART), and credit within the buffer.
    since_event = Signal(2)
    with m.If(tx.event.valid):
        m.d.sync += since_event.eq(3)
    with m.Elif(since_event != 0):
        m.d.sync += since_event.eq(since_event - 1)
    m.d.comb += Assume(~tx.event.valid | (since_event == 0))
    m.d.comb += Assume(tx.credit <= 4)

    k = free(m, 16, "k")
    k_seen, started = Signal(16), Signal()
    m.d.sync += [k_seen.eq(k), started.eq(1)]
    m.d.comb += Assume(~started | (k == k_seen))
    m.d.comb += Assume(k < 0x100)   # offsets do not wrap within the proof's depth
    written = Signal(16)
    k_data, k_written = Signal(8), Signal()
    with m.If(tx.rsp.valid & tx.rsp.ready):
        m.d.sync += written.eq(written + 1)
        with m.If(written == k):
            m.d.sync += [k_data.eq(tx.rsp.payload), k_written.eq(1)]
    # Once the host has acknowledged past k, or resynchronized, it takes no byte at k any more:
    # from then on a frame may carry anything there.
    k_released = Signal()
    with m.If(tx.event.valid & event.trusted
              & (event.sync | ((event.rack > k) & (event.rack <= written)))):
        m.d.sync += k_released.eq(1)

    # The host's view of the frame stream.
    pos = Signal(8)                   # of the next byte in its frame (saturating)
    roff = Signal(16)
    recent = [Signal(8, name=f"recent{i}") for i in range(CRC_BYTES)]   # recent[0]: latest
    took = tx.o.valid & tx.o.ready
    byte = tx.o.payload.data
    roff_at = DeviceHeader["roff"].offset // 8
    with m.If(took):
        m.d.sync += [pos.eq(Mux(tx.o.payload.last, 0, Mux(pos == 255, 255, pos + 1))),
                     recent[0].eq(byte), *(r.eq(p) for r, p in zip(recent[1:], recent))]
        with m.If(pos == roff_at):
            m.d.sync += roff[:8].eq(byte)
        with m.If(pos == roff_at + 1):
            m.d.sync += roff[8:].eq(byte)
        # The byte CRC_BYTES back is payload: at stream offset roff + its place in the payload.
        with m.If((pos >= DEVICE_HEADER_BYTES + CRC_BYTES) & (pos != 255)
                  & ((roff + pos - DEVICE_HEADER_BYTES - CRC_BYTES)[:16] == k)):
            m.d.comb += Assert(k_released | (k_written & (recent[-1] == k_data)))
    return m


def uart_receiver_proof(receiver_class=UartRx) -> Module:
    """The UART receiver keeps a received byte on its stream until it is taken, whatever the
    line does: a byte completing meanwhile is dropped (an overrun), not put in its place. At
    the smallest divisor, so that two frames fit the proof's depth."""
    m = Module()
    rx = m.submodules.rx = receiver_class(MIN_DIVISOR)
    m.d.comb += [rx.line.eq(free(m, 1, "line")), rx.data.ready.eq(free(m, 1, "ready"))]
    stream_holds(m, rx.data, "data")
    return m

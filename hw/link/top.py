"""The link in front of a core: byte streams to a PHY on one side, the core's streams on the
other."""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..core import RillCore
from ..params import RillParams
from .buffer import CommitFifo
from .cobs import CobsDecoder, CobsEncoder
from .protocol import CMD_BUFFER_BYTES, LINE_ERROR_BITS, RSP_BUFFER_BYTES
from .receiver import LinkReceiver
from .transmitter import LinkTransmitter

__all__ = ["Link", "LinkedCore"]


class Link(wiring.Component):
    """COBS decoder, receiver, command buffer, transmitter and COBS encoder.

    ``rx`` never applies backpressure for long (a UART cannot wait): the receive path takes a
    byte per cycle, always. ``tx`` takes backpressure from the PHY.

    Parameters
    ----------
    cmd_buffer, rsp_buffer : int
        Command and response buffer bytes (powers of two). The command buffer bounds the credit,
        so the bytes in flight from the host; the response buffer bounds the response bytes in
        flight to it.
    output_register : bool
        A registered FIFO between the transmitter and the COBS encoder (fast parts:
        ``RillParams.deep_pipeline``).

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host (the PHY).
    tx : ``Out(stream.Signature(8))``
        Bytes to the host.
    cmd : ``Out(stream.Signature(8))``
        Command bytes for the core: only from whole, checked, in-sequence DATA frames.
    rsp : ``In(stream.Signature(8))``
        The core's response bytes.
    core_waiting : ``In(1)``
        The core waits for a command byte and holds no response byte (or any between): with
        the command buffer empty, it will do nothing more until commands come.
    line_errors : ``In(3)``
        The PHY's line errors (a wrapping count), reported to the host in every frame.
    idle : ``Out(1)``
        The core waits for commands the buffer does not hold and the link has nothing to send.
        A co-simulation may stop the clock while this holds and no byte arrives.
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    cmd: Out(stream.Signature(8))
    rsp: In(stream.Signature(8))
    core_waiting: In(1)
    line_errors: In(LINE_ERROR_BITS[1])
    idle: Out(1)

    def __init__(self, *, cmd_buffer: int = CMD_BUFFER_BYTES, rsp_buffer: int = RSP_BUFFER_BYTES,
                 output_register: bool = False):
        self.cmd_buffer, self.rsp_buffer = cmd_buffer, rsp_buffer
        self.output_register = output_register
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = decoder = CobsDecoder()
        m.submodules.receiver = receiver = LinkReceiver()
        m.submodules.cmd_buffer = commit_fifo = CommitFifo(self.cmd_buffer)
        m.submodules.transmitter = transmitter = LinkTransmitter(
            rsp_depth=self.rsp_buffer, cmd_depth=self.cmd_buffer)
        m.submodules.encoder = encoder = CobsEncoder()

        wiring.connect(m, wiring.flipped(self.rx), decoder.i)
        wiring.connect(m, decoder.o, receiver.i)
        wiring.connect(m, receiver.cmd, commit_fifo.w)
        wiring.connect(m, commit_fifo.r, wiring.flipped(self.cmd))
        wiring.connect(m, receiver.event, transmitter.event)
        wiring.connect(m, wiring.flipped(self.rsp), transmitter.rsp)
        wiring.connect(m, encoder.o, wiring.flipped(self.tx))
        in_between = 0
        if self.output_register:
            # The transmitter's bytes come straight from the response ring's block RAM: through
            # a registered FIFO, its clock-to-out ends in a flip-flop instead of starting the
            # COBS encoder's logic. Three entries keep a byte per cycle flowing.
            m.submodules.tx_slice = tx_slice = fifo.SyncFIFOBuffered(
                width=len(transmitter.o.payload.as_value()), depth=3)
            m.d.comb += [
                tx_slice.w_data.eq(transmitter.o.payload), tx_slice.w_en.eq(transmitter.o.valid),
                transmitter.o.ready.eq(tx_slice.w_rdy),
                encoder.i.payload.eq(tx_slice.r_data), encoder.i.valid.eq(tx_slice.r_rdy),
                tx_slice.r_en.eq(encoder.i.ready),
            ]
            in_between = tx_slice.level != 0
        else:
            wiring.connect(m, transmitter.o, encoder.i)
        core_idle = commit_fifo.empty & self.core_waiting & ~self.rsp.valid
        m.d.comb += [
            commit_fifo.commit.eq(receiver.commit),
            commit_fifo.rollback.eq(receiver.rollback),
            transmitter.next_seq.eq(receiver.next_seq),
            transmitter.credit.eq(commit_fifo.free),
            transmitter.cmd_taken.eq(receiver.cmd.valid & receiver.cmd.ready),
            transmitter.line_errors.eq(self.line_errors),
            # The core asks for a byte the buffer does not have and has nothing to say.
            transmitter.core_idle.eq(core_idle),
            self.idle.eq(core_idle & transmitter.idle & ~in_between),
        ]
        return m


class LinkedCore(wiring.Component):
    """A :class:`~hw.core.RillCore` behind a :class:`Link`: what a board puts behind its UART and
    the simulation behind a socket. A host assumes the response ring is as large as the command
    buffer (it learns that size from the credit); give it ``ack_every`` when they differ.
    ``dsp_pes`` goes to the core (:class:`~hw.core.RillCore`).

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host.
    tx : ``Out(stream.Signature(8))``
        Bytes to the host.
    line_errors : ``In(3)``
        See :class:`Link`.
    idle : ``Out(1)``
        See :class:`Link`.
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    line_errors: In(LINE_ERROR_BITS[1])
    idle: Out(1)

    def __init__(self, params: RillParams = RillParams(), *, cmd_buffer: int = CMD_BUFFER_BYTES,
                 rsp_buffer: int = RSP_BUFFER_BYTES, dsp_pes: int = 0):
        self.params = params
        self.cmd_buffer, self.rsp_buffer = cmd_buffer, rsp_buffer
        self.dsp_pes = dsp_pes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = Link(cmd_buffer=self.cmd_buffer, rsp_buffer=self.rsp_buffer,
                                        output_register=self.params.deep_pipeline)
        m.submodules.core = core = RillCore(self.params, dsp_pes=self.dsp_pes)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        m.d.comb += [self.idle.eq(link.idle), link.line_errors.eq(self.line_errors)]
        if not self.params.deep_pipeline:
            # The small part's clock is slow enough for link and core to meet head on, and its
            # logic cells are all spoken for (the two slices below cost ~140 of them).
            wiring.connect(m, link.cmd, core.cmd)
            wiring.connect(m, core.rsp, link.rsp)
            m.d.comb += link.core_waiting.eq(core.waiting & ~core.rsp.valid)
            return m
        # Registered handshakes both ways between link and core: on a big part the two sit far
        # apart, and the core's stall logic fans out across the whole array, so no net may
        # run from one to the other in a cycle. A FIFO of 4 keeps a byte per cycle flowing.
        m.submodules.cmd_slice = cmd_slice = fifo.SyncFIFOBuffered(width=8, depth=4)
        m.submodules.rsp_slice = rsp_slice = fifo.SyncFIFOBuffered(width=8, depth=4)
        wiring.connect(m, link.cmd, cmd_slice.w_stream)
        wiring.connect(m, cmd_slice.r_stream, core.cmd)
        wiring.connect(m, core.rsp, rsp_slice.w_stream)
        wiring.connect(m, rsp_slice.r_stream, link.rsp)
        m.d.comb += link.core_waiting.eq(core.waiting & ~cmd_slice.r_rdy
                                         & (cmd_slice.r_level == 0)
                                         & ~core.rsp.valid & (rsp_slice.r_level == 0))
        return m

"""The link in front of a core: byte streams to a PHY on one side, the core's streams on the
other."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..core import RillCore
from ..params import RillParams
from .buffer import CommitFifo
from .cobs import CobsDecoder, CobsEncoder
from .protocol import CMD_BUFFER_BYTES, RSP_BUFFER_BYTES
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
    idle : ``Out(1)``
        The core waits for commands the buffer does not hold and the link has nothing to send.
        A co-simulation may stop the clock while this holds and no byte arrives.
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    cmd: Out(stream.Signature(8))
    rsp: In(stream.Signature(8))
    idle: Out(1)

    def __init__(self, *, cmd_buffer: int = CMD_BUFFER_BYTES, rsp_buffer: int = RSP_BUFFER_BYTES):
        self.cmd_buffer, self.rsp_buffer = cmd_buffer, rsp_buffer
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = decoder = CobsDecoder()
        m.submodules.receiver = receiver = LinkReceiver()
        m.submodules.cmd_buffer = fifo = CommitFifo(self.cmd_buffer)
        m.submodules.transmitter = transmitter = LinkTransmitter(
            rsp_depth=self.rsp_buffer, cmd_depth=self.cmd_buffer)
        m.submodules.encoder = encoder = CobsEncoder()

        wiring.connect(m, wiring.flipped(self.rx), decoder.i)
        wiring.connect(m, decoder.o, receiver.i)
        wiring.connect(m, receiver.cmd, fifo.w)
        wiring.connect(m, fifo.r, wiring.flipped(self.cmd))
        wiring.connect(m, receiver.event, transmitter.event)
        wiring.connect(m, wiring.flipped(self.rsp), transmitter.rsp)
        wiring.connect(m, transmitter.o, encoder.i)
        wiring.connect(m, encoder.o, wiring.flipped(self.tx))
        core_idle = fifo.empty & self.cmd.ready & ~self.rsp.valid
        m.d.comb += [
            fifo.commit.eq(receiver.commit),
            fifo.rollback.eq(receiver.rollback),
            transmitter.next_seq.eq(receiver.next_seq),
            transmitter.credit.eq(fifo.free),
            transmitter.cmd_taken.eq(receiver.cmd.valid & receiver.cmd.ready),
            # The core asks for a byte the buffer does not have and has nothing to say.
            transmitter.core_idle.eq(core_idle),
            self.idle.eq(core_idle & transmitter.idle),
        ]
        return m


class LinkedCore(wiring.Component):
    """A :class:`~hw.core.RillCore` behind a :class:`Link`: what a board puts behind its UART and
    the simulation behind a socket.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host.
    tx : ``Out(stream.Signature(8))``
        Bytes to the host.
    idle : ``Out(1)``
        See :class:`Link`.
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    idle: Out(1)

    def __init__(self, params: RillParams = RillParams(), *, cmd_buffer: int = CMD_BUFFER_BYTES,
                 rsp_buffer: int = RSP_BUFFER_BYTES):
        self.params = params
        self.cmd_buffer, self.rsp_buffer = cmd_buffer, rsp_buffer
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = Link(cmd_buffer=self.cmd_buffer, rsp_buffer=self.rsp_buffer)
        m.submodules.core = core = RillCore(self.params)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.cmd, core.cmd)
        wiring.connect(m, core.rsp, link.rsp)
        m.d.comb += self.idle.eq(link.idle)
        return m

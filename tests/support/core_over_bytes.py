"""The core behind plain byte streams, for board-level tests without the link layer."""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.core import RillCore
from hw.params import RillParams

__all__ = ["CoreOverBytes"]


class CoreOverBytes(wiring.Component):
    """:class:`~hw.core.RillCore` behind plain byte streams, with no framing.

    The stand-in for the link layer: a command byte the core cannot take yet waits in a FIFO
    (the UART cannot push back). A host must pace itself so that the FIFO never overflows.

    Members
    -------
    rx : ``In(stream.Signature(8))``
    tx : ``Out(stream.Signature(8))``
    """

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))

    fifo_depth = 64

    def __init__(self, params: RillParams):
        self.params = params
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = RillCore(self.params)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        m.d.comb += [rx_fifo.w_data.eq(self.rx.payload), rx_fifo.w_en.eq(self.rx.valid),
                     self.rx.ready.eq(rx_fifo.w_rdy)]
        m.d.comb += [core.cmd.payload.eq(rx_fifo.r_data), core.cmd.valid.eq(rx_fifo.r_rdy),
                     rx_fifo.r_en.eq(core.cmd.ready)]
        wiring.connect(m, core.rsp, wiring.flipped(self.tx))
        return m

"""The board-agnostic Rill core: one command byte stream in, one response byte stream out."""

from amaranth.hdl import EnableInserter, Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulator import AccumulatorBanks, acc_tag_layout
from .array import SystolicArray
from .params import RillParams
from .qparams import QparamTile
from .requant import RequantRequest, RequantUnit
from .requant_serial import SerialRequantUnit
from .sequencer import Sequencer
from .sram import sram_tile

__all__ = ["RillCore"]

class RillCore(wiring.Component):
    """Sequencer, SRAM tiles, systolic array, accumulators and requantization.

    Every block but the sequencer runs under the sequencer's ``advance`` enable, so the whole
    core freezes together when a stream stalls and the cycle count of a program never depends on
    the link.

    Members
    -------
    cmd : ``In(stream.Signature(8))``
        Command bytes.
    rsp : ``Out(stream.Signature(8))``
        Response bytes.
    """

    cmd: In(stream.Signature(8))
    rsp: Out(stream.Signature(8))

    def __init__(self, params: RillParams = RillParams()):
        self.params = params
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        seq = m.submodules.sequencer = Sequencer(p, RequantRequest)
        frozen = EnableInserter(seq.advance)

        act_mem = sram_tile(data.ArrayLayout(signed(8), p.act_lanes), p.act_depth)
        weight_mem = sram_tile(data.ArrayLayout(unsigned(8), p.cols), p.weight_depth)
        for name, mem, write, read in (("act", act_mem, seq.act_write, seq.act_read),
                                       ("weight", weight_mem, seq.weight_write, seq.weight_read)):
            wiring.connect(m, write, mem.write_port(granularity=1))
            wiring.connect(m, read, mem.read_port())
            m.submodules[f"{name}_sram"] = frozen(mem)
        qparams = QparamTile(p)
        m.submodules.qparam_sram = frozen(qparams)
        wiring.connect(m, seq.qparam_write, qparams.write)
        wiring.connect(m, seq.qparam_read, qparams.read)

        array = SystolicArray(p, acc_tag_layout(p))
        acc = AccumulatorBanks(p)
        requant = SerialRequantUnit() if p.serial_requant else RequantUnit()
        m.submodules.array = frozen(array)
        m.submodules.accumulators = frozen(acc)
        m.submodules.requant = frozen(requant)

        m.d.comb += [
            array.int4.eq(seq.int4),
            array.acts.valid.eq(seq.array_acts.valid),
            array.acts.payload.eq(seq.array_acts.payload),
            array.weights.valid.eq(seq.array_weights.valid),
            array.weights.payload.eq(seq.array_weights.payload),
            requant.rounding.eq(seq.rounding),
            requant.relu.eq(seq.relu),
            requant.out_type.eq(seq.out_type),
            requant.raw.eq(seq.raw),
        ]
        for c in range(p.cols):
            m.d.comb += [acc.sums[c].valid.eq(array.sums[c].valid),
                         acc.sums[c].payload.eq(array.sums[c].payload),
                         acc.upcoming[c].valid.eq(array.upcoming[c].valid),
                         acc.upcoming[c].payload.eq(array.upcoming[c].payload)]
        wiring.connect(m, seq.acc_read, acc.read)
        wiring.connect(m, seq.requant_in, requant.i)
        m.d.comb += [requant.multiplier.eq(qparams.multiplier),
                     requant.zero_point.eq(qparams.zero_point)]
        wiring.connect(m, requant.o, seq.requant_out)
        wiring.connect(m, wiring.flipped(self.cmd), seq.cmd)
        wiring.connect(m, seq.rsp, wiring.flipped(self.rsp))
        return m

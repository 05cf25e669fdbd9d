"""The board-agnostic Rill core: one command byte stream in, one response byte stream out."""

from amaranth.hdl import EnableInserter, Module, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulator import AccumulatorBanks, acc_tag_layout
from .array import SystolicArray
from .enable import enable_delayed, enable_lead, response_fifo_depth
from .isa import HEADER_BYTES
from .params import RillParams
from .qparams import QparamTile
from .requant import RequantRequest
from .requant_serial import requantizer_class
from .sequencer import Sequencer
from .sram import check_no_collision, sram_tile
from .stacked_tile import sram_tile_with_ports

__all__ = ["RillCore"]

#: Blocks that run under their own copy of the core's enable register (the sequencer has one too;
#: the array keeps copies of its own). The SRAM tiles do not stop with the sequencer while it
#: waits for a command byte: that stop comes from logic (``advance``), which must not reach the
#: tiles' clock enables across the die. A row read before such a wait goes to the array in the
#: next cycle instead (hw/sequencer.py).
_ENABLED_BLOCKS = ("requant", "act_sram", "weight_sram", "qparam_sram")


class RillCore(wiring.Component):
    """Sequencer, SRAM tiles, systolic array, accumulators and requantization.

    The whole core freezes together when a response byte could not leave, so the cycle count of a
    program never depends on the link. That enable is a register, one copy per block (and per
    array row and PE), decided a few cycles ahead from the level of a small response FIFO the
    core owns (:mod:`hw.enable`: a combinational enable cannot reach every register of a large
    array in a cycle). While the sequencer waits for a command byte only the sequencer
    stops (:attr:`~hw.sequencer.Sequencer.advance`); the array may drain meanwhile, which only
    makes the ISA's drain bound more conservative.

    ``dsp_pes`` PEs, the first row by row, multiply with ``*`` for the DSP blocks; the rest with
    adders (:class:`~hw.array.SystolicArray`). It changes no result and no cycle.

    Members
    -------
    cmd : ``In(stream.Signature(8))``
        Command bytes.
    rsp : ``Out(stream.Signature(8))``
        Response bytes.
    waiting : ``Out(1)``
        The sequencer waits for a command byte: ``cmd.ready``, but on the deep core from an
        enable copy of its own, placed by whoever uses it (the link). The sequencer's copy
        drives all of its logic's clock enables, so it sits by the sequencer; the link's
        transmitter is placed elsewhere and needs a copy beside it. Not while the sequencer's
        output register holds a byte on its way to the response FIFO: a response's last byte
        is there in the first cycle of the next fetch, and a link that took "waiting" with
        nothing in the FIFO for "done" would report the core idle a byte early.
    """

    cmd: In(stream.Signature(8))
    rsp: Out(stream.Signature(8))
    waiting: Out(1)

    def __init__(self, params: RillParams = RillParams(), *, dsp_pes: int = 0):
        self.params = params
        self.dsp_pes = dsp_pes
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        seq = m.submodules.sequencer = Sequencer(p, RequantRequest)

        # -- the enable, decided enable_lead cycles ahead (hw/enable.py) ----------------------
        out = m.submodules.rsp_fifo = fifo.SyncFIFO(width=8, depth=response_fifo_depth(p))
        m.d.comb += [out.w_data.eq(seq.rsp.payload), out.w_en.eq(seq.rsp.valid),
                     seq.rsp.ready.eq(out.w_rdy),
                     self.rsp.payload.eq(out.r_data), self.rsp.valid.eq(out.r_rdy),
                     out.r_en.eq(self.rsp.ready)]
        lead = enable_lead(p)
        if p.deep_pipeline:
            decision = out.level <= out.depth - 1 - lead
        else:   # exactly "not (a byte waits and the FIFO is full)", for the next cycle
            level_next = (out.w_level + (out.w_en & out.w_rdy) - (out.r_en & out.r_rdy))
            decision = ~(seq.rsp_valid_next & (level_next == out.depth))
        # A chain of registers per block, kept apart in synthesis (flow/build.py), each driving
        # fewer enables than one would; the array builds its own tree.
        enables = {name: enable_delayed(m, decision, lead, f"enable_{name}",
                                        reset_less=p.deep_pipeline)
                   for name in ("sequencer", *_ENABLED_BLOCKS)}
        m.d.comb += seq.enable.eq(enables["sequencer"])
        if p.deep_pipeline:
            view = enable_delayed(m, decision, lead, "enable_waiting", reset_less=True)
            m.d.comb += self.waiting.eq(seq.wants_command & view & ~seq.rsp.valid)
        else:   # a flip-flop more on the full iCE40 for no gain at its clock
            m.d.comb += self.waiting.eq(seq.cmd.ready & ~seq.rsp.valid)

        def frozen(name, block):
            return EnableInserter(enables[name])(block)

        def write(name, request, port, enable=None):
            """The sequencer's write requests into a tile's port: on the deep core through
            registers, so the logic that decides a load's byte lanes ends in flip-flops and not
            in block RAM pins. A write lands a cycle later, long before anything reads the tile
            (a load and the instructions reading what it wrote are apart by a header at least)."""
            if not p.deep_pipeline:
                wiring.connect(m, request, port)
                return
            stage = Module()
            stage.d.sync += [port.addr.eq(request.addr), port.data.eq(request.data),
                             port.en.eq(request.en)]
            m.submodules[f"{name}_write"] = frozen(enable or name, stage)

        for name, lanes, depth, request, reader, used in (
                ("act", data.ArrayLayout(signed(8), p.act_lanes), p.act_depth, seq.act_write,
                 seq.act_read, seq.act_read_used),
                ("weight", data.ArrayLayout(unsigned(8), p.cols), p.weight_depth,
                 seq.weight_write, seq.weight_read, seq.weight_read_used)):
            # Only the weight tile is stacked: see hw/stacked_tile.py.
            tile, read_port, write_port = sram_tile_with_ports(lanes, depth,
                                                               stacked=name == "weight")
            write(f"{name}_sram", request, write_port)
            wiring.connect(m, reader, read_port)
            m.submodules[f"{name}_sram"] = frozen(f"{name}_sram", tile)
            check_no_collision(m, read_port, [write_port], used)
        # Read every cycle (hw/sequencer.py), so under no enable and with no collision check.
        if p.program_depth:
            program_mem = sram_tile(unsigned(8 * HEADER_BYTES), p.program_depth)
            write("program_sram", seq.program_write, program_mem.write_port(granularity=8),
                  enable="qparam_sram")
            wiring.connect(m, seq.program_read, program_mem.read_port())
            m.submodules.program_sram = program_mem
        qparams = QparamTile(p)
        m.submodules.qparam_sram = frozen("qparam_sram", qparams)
        write("qparam_sram", seq.qparam_write, qparams.write)
        wiring.connect(m, seq.qparam_read, qparams.read)

        array = SystolicArray(p, acc_tag_layout(p), dsp_pes=self.dsp_pes)
        acc = AccumulatorBanks(p)
        requant = requantizer_class(p)()
        m.submodules.array = array
        m.d.comb += array.enable_ahead.eq(decision)
        # The banks make their own copies of the enable, the last stage of the chain.
        m.submodules.accumulators = acc
        m.d.comb += acc.enable_ahead.eq(enable_delayed(m, decision, lead - 1,
                                                       "enable_accumulators",
                                                       reset_less=p.deep_pipeline))
        m.submodules.requant = frozen("requant", requant)

        m.d.comb += [
            array.int4.eq(seq.int4),
            array.acts.valid.eq(seq.array_acts.valid),
            array.acts.payload.eq(seq.array_acts.payload),
            array.weights.valid.eq(seq.array_weights.valid),
            array.weights.payload.eq(seq.array_weights.payload),
        ]
        # The other store lanes' requantizers, each with its bank of qparam entries.
        lanes = [requant]
        for i in range(p.store_lanes - 1):
            unit = requantizer_class(p)()
            m.submodules[f"requant_lane{i + 1}"] = frozen("requant", unit)
            wiring.connect(m, seq.lane_requests[i], unit.i)
            wiring.connect(m, unit.o, seq.lane_outputs[i])
            lane = qparams.lanes[i]
            m.d.comb += [seq.lane_qparams[i].eq(lane.early), unit.multiplier.eq(lane.multiplier),
                         unit.zero_point.eq(lane.zero_point)]
            lanes.append(unit)
        for unit in lanes:
            m.d.comb += [unit.rounding.eq(seq.rounding), unit.relu.eq(seq.relu),
                         unit.out_type.eq(seq.out_type), unit.raw.eq(seq.raw)]
            if p.clamp:   # else the clamp's inputs stay 0 and its muxes fold away
                m.d.comb += [unit.clamp.eq(seq.clamp), unit.clamp_lo.eq(seq.clamp_lo),
                             unit.clamp_hi.eq(seq.clamp_hi)]
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
        return m

"""The sequencer: fetches and decodes instructions, drives loads, the array and stores, in lockstep.

A cycle in which the sequencer needs a command byte that has not arrived, or holds a response byte
that cannot leave, is not a working cycle (:attr:`Sequencer.advance` is 0; the latter freezes the
whole core). The working cycles of each instruction are the exact function ``hw.cycles.cycle_cost``:
the schedule is static and the compiler predicts it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import cycles, isa
from .accumulator import acc_tag_layout
from .checks import InstructionChecks
from .isa import HEADER_BYTES, QPARAM_BYTES, RESPONSE_HEADER_BYTES, Opcode, OutType, Rounding
from .params import RillParams
from .qparams import QPARAM_EARLY
from .sequencer_loads import LoadStates
from .sequencer_matmul import MatmulStates
from .sequencer_vector import VectorStates
from .store_engine import StoreEngine

__all__ = ["Sequencer"]

_COUNTER_WIDTH = 32
_LOADS = isa.LOAD_OPCODES
#: What RESPOND goes on to once the response has left.
_AFTER_RESPOND = {"FETCH": 0, "DISCARD": 1, "STORE": 2, "VECTOR": 3}


class Sequencer(wiring.Component):
    """Instruction fetch, decode and the per-instruction engines.

    Members
    -------
    cmd : ``In(stream.Signature(8))``
        Command bytes (instruction headers and load data).
    rsp : ``Out(stream.Signature(8))``
        Response bytes.
    enable : ``In(1)``, rsp_valid_next : ``Out(1)``
        The core's enable, a register (:mod:`hw.enable`: 0 when the response path may have no
        room), and the next cycle's ``rsp.valid``, from which the shallow core decides it.
    wants_command : ``Out(1)``
        The sequencer's state takes command bytes (``cmd.ready`` is this and ``enable``).
    advance : ``Out(1)``
        The sequencer's own enable: ``enable``, and 0 while it waits for a command byte (then the
        rest of the core, SRAM tiles included, runs on; what the sequencer issues to it is
        qualified with ``advance``).
    int4, rounding, relu, out_type, raw : ``Out``
        Configuration for the array and the requant unit.
    act_write, weight_write, qparam_write, act_read, weight_read, qparam_read : memory ports
        SRAM tile ports (flipped port signatures: the sequencer drives address, enable and data).
        The write ports have byte enables: a load writes each byte as it arrives.
    program_write, program_read : memory ports
        The program memory's (``RillParams.program_depth`` headers; absent when 0). A running
        program's headers are fetched from it a byte a cycle, as from the link.
    act_read_used, weight_read_used : ``Out(1)``
        The data the activation (weight) read port reads in this cycle will be used: the SRAM
        tiles' collision check in simulation (:mod:`hw.sram`), no hardware.
    array_acts, array_weights : ``Out(stream.Signature(...))``
        Activation rows and weight rows into the systolic array.
    acc_read : flipped ``memory.ReadPort.Signature``
        Accumulator row read for STORE.
    requant_in : ``Out(stream.Signature(RequantRequest))``, requant_out : ``In(...)``
        The requantization pipeline.
    """

    def __init__(self, params: RillParams, requant_request_layout):
        self._params = p = params
        tag = acc_tag_layout(p)
        act_shape = data.ArrayLayout(signed(8), p.act_lanes)
        weight_shape = data.ArrayLayout(unsigned(8), p.cols)
        super().__init__({
            "cmd": In(stream.Signature(8)),
            "rsp": Out(stream.Signature(8)),
            "enable": In(1),
            "rsp_valid_next": Out(1),
            "wants_command": Out(1),
            "advance": Out(1),
            "act_read_used": Out(1), "weight_read_used": Out(1),
            "int4": Out(1), "rounding": Out(Rounding), "relu": Out(1), "out_type": Out(OutType),
            "raw": Out(1),
            **({"clamp": Out(1), "clamp_lo": Out(signed(9)), "clamp_hi": Out(signed(9))}
               if p.clamp else {}),
            "act_write": In(memory.WritePort.Signature(
                addr_width=p.act_addr_width, shape=act_shape, granularity=1)),
            "weight_write": In(memory.WritePort.Signature(
                addr_width=p.weight_addr_width, shape=weight_shape, granularity=1)),
            "qparam_write": In(memory.WritePort.Signature(
                addr_width=p.qparam_addr_width, shape=unsigned(8 * QPARAM_BYTES), granularity=8)),
            "act_read": In(memory.ReadPort.Signature(
                addr_width=p.act_addr_width, shape=act_shape)),
            "weight_read": In(memory.ReadPort.Signature(
                addr_width=p.weight_addr_width, shape=weight_shape)),
            "qparam_read": In(memory.ReadPort.Signature(
                addr_width=p.qparam_addr_width, shape=QPARAM_EARLY)),
            "array_acts": Out(stream.Signature(data.StructLayout({
                "lanes": act_shape, "buf": 1, "tag": tag}), always_ready=True)),
            "array_weights": Out(stream.Signature(data.StructLayout({
                "row": range(p.rows), "buf": 1, "data": weight_shape}), always_ready=True)),
            "acc_read": In(memory.ReadPort.Signature(
                addr_width=p.acc_addr_width, shape=data.ArrayLayout(32, p.cols))),
            "requant_in": Out(stream.Signature(requant_request_layout, always_ready=True)),
            "requant_out": In(stream.Signature(8, always_ready=True)),
            # The other store lanes' requantizers (hw/store_engine.py).
            **({"lane_requests": Out(stream.Signature(requant_request_layout, always_ready=True))
                .array(p.store_lanes - 1),
                "lane_outputs": In(stream.Signature(8, always_ready=True))
                .array(p.store_lanes - 1),
                "lane_qparams": In(QPARAM_EARLY).array(p.store_lanes - 1)}
               if p.store_lanes > 1 else {}),
            **({"program_write": In(memory.WritePort.Signature(
                    addr_width=p.program_addr_width, shape=unsigned(8 * HEADER_BYTES),
                    granularity=8)),
                "program_read": In(memory.ReadPort.Signature(
                    addr_width=p.program_addr_width, shape=unsigned(8 * HEADER_BYTES)))}
               if p.program_depth else {}),
        })

    def elaborate(self, platform):
        return _SequencerLogic(self, self._params).build()


class _SequencerLogic(LoadStates, MatmulStates, VectorStates):
    """The sequencer's logic, built in parts: the handshakes, the engines, the response path and
    the state machine, one method per state. The attributes are the registers the parts share."""

    def __init__(self, seq: Sequencer, params: RillParams):
        self.seq, self.p = seq, params
        self.m = Module()

    def build(self) -> Module:
        m, seq = self.m, self.seq
        self._handshakes()
        self._state()
        self._load_engine()
        self._matmul_engine()
        store = self._store_engine()
        self._vector_engine()
        self._output_register()
        self._checks()
        self._store_writes()
        self._vector_ports()
        self._counters()
        vector_reads = (self.vector_running & self.vector.read_en & self.vector.read_used
                        & seq.enable
                        if self.p.vector_unit else 0)
        m.d.comb += [seq.act_read_used.eq((self.issue_act & self.advance) | vector_reads),
                     seq.weight_read_used.eq(self.issue_weight & self.advance)]
        with m.FSM(name="sequencer"):
            with m.State("FETCH"):
                self._fetch()
            # States taking no command byte step on enable (= advance there): no cmd.valid in them.
            with m.State("CHECK"):   # one cycle (cycles.CHECK_CYCLES) for the checks' status
                # The header is all in; a MATMUL reads its first weight row in DECODE, a RUN
                # its first header.
                self.loops.load_header(m, self.matmul_fields)
                if self.p.program_depth:
                    run = self.is_op[Opcode.RUN] & ~self.running
                    m.d.comb += self.run_checking.eq(run)
                    with m.If(seq.enable & run):
                        m.d.sync += [self.pc.eq(self.field(Opcode.RUN, "addr")),
                                     self.run_first.eq(1)]
                with m.If(seq.enable):
                    m.next = "DECODE"
            with m.State("DECODE"):
                self._decode()
            with m.State("RESPOND"):
                self._respond()
            with m.State("LOAD"):
                self._load()
            with m.State("DISCARD"):
                self._discard()
            with m.State("MATMUL"):
                self._matmul()
            with m.State("STORE"):
                m.d.comb += store.run.eq(1)
                with m.If(seq.enable & store.last):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.comb += store.flush.eq(1)
                with m.If(seq.enable & store.flushed):
                    m.next = "FETCH"
            if self.p.vector_unit:
                with m.State("VECTOR"):
                    self._vector_state()
        return m

    def field(self, op: Opcode, name: str):
        """Operand ``name`` of an ``op`` header, from the operand shift register."""
        offset, size = isa.field_offsets(op)[name]
        return self.operands[8 * offset:8 * (offset + size)]

    def _handshakes(self):
        """Stall and advance: a cycle waiting for a command byte is not a working cycle."""
        m, seq = self.m, self.seq
        self.wants_input = Signal(name="wants_input")
        self.out_valid = Signal(name="out_valid")
        self.out_byte = Signal(8, name="out_byte")
        self.advance = advance = seq.advance
        m.d.comb += [
            advance.eq(seq.enable & ~(self.wants_input & ~seq.cmd.valid)),
            seq.cmd.ready.eq(self.wants_input & seq.enable),
            seq.wants_command.eq(self.wants_input),
            seq.rsp.valid.eq(self.out_valid),
            seq.rsp.payload.eq(self.out_byte),
        ]
        # Header bytes come from the link, or from the program memory while a RUN fetches;
        # load data always from the link.
        self.link_byte = seq.cmd.payload
        self.byte_in = seq.cmd.payload
        self.running = Signal(name="running")   # a RUN's headers are being fetched
        if self.p.program_depth:
            self.program_byte = Signal(8, name="program_byte")
            self.fetching = Signal(name="fetching")
            self.byte_in = Mux(self.fetching & self.running, self.program_byte, seq.cmd.payload)

    def _state(self):
        """The fetched header, the configuration, the counters and the MATMUL drain."""
        m, p, seq = self.m, self.p, self.seq
        self.opcode = opcode = Signal(8, name="opcode")
        # One-hot opcode flags, registered: decode tests bits, not byte compares, in front of the
        # FSM's next-state and clock-enable logic.
        self.is_op = is_op = {op: Signal(name=f"is_{op.name.lower()}") for op in Opcode}
        m.d.sync += [is_op[op].eq(opcode == op) for op in Opcode]
        self.operands = Signal(8 * (HEADER_BYTES - 1), name="operands")
        self.fetch_count = Signal(range(HEADER_BYTES), name="fetch_count")
        self.idle = Signal(name="idle")

        self.counters = {name: Signal(_COUNTER_WIDTH, name=f"count_{name}")
                         for name in isa.COUNTER_NAMES}

        self.int4 = Signal(name="int4")
        self.rounding = Signal(Rounding, name="rounding")
        self.relu = Signal(name="relu")
        self.out_type = Signal(OutType, name="out_type")
        self.raw = Signal(name="raw")
        # The STORE being run writes the activation SRAM: no response bytes while it runs.
        self.to_acts = Signal(name="to_acts")
        m.d.comb += [seq.int4.eq(self.int4), seq.rounding.eq(self.rounding),
                     seq.relu.eq(self.relu), seq.out_type.eq(self.out_type),
                     seq.raw.eq(self.raw)]
        if self.p.clamp:
            self.clamp = Signal(name="clamp")
            self.clamp_bounds = [Signal(signed(9), name=f"clamp_{end}") for end in ("lo", "hi")]
            m.d.comb += [seq.clamp.eq(self.clamp), seq.clamp_lo.eq(self.clamp_bounds[0]),
                         seq.clamp_hi.eq(self.clamp_bounds[1])]

        # drain != 0 as a register of its own, like the opcode test decode waits on.
        self.drain = drain = Signal(range(cycles.matmul_drain_cycles(p) + 1), name="drain")
        self.draining = draining = Signal(name="draining")
        waits_for_quiet = Signal(name="waits_for_quiet")
        with m.If(self.advance & draining):
            m.d.sync += [drain.eq(drain - 1), draining.eq(drain != 1)]
        m.d.sync += waits_for_quiet.eq(Cat(is_op[op] for op in Opcode
                                           if cycles.waits_for_quiet(op)).any())
        self.decode_wait = draining & waits_for_quiet

        self.pc = Signal(p.program_addr_width, name="pc")
        self.run_left = Signal(16, name="run_left")
        self.program_tag = Signal(16, name="program_tag")
        if p.program_depth:
            # The program memory reads ahead, so that its block RAM's output ends in a register
            # and not in the header's decode and checks: while a RUN runs it reads the header
            # after ``pc`` and ``program_header`` takes it as ``pc`` moves on; a RUN's CHECK
            # cycle reads its first header, which ``program_header`` takes a cycle later.
            self.program_header = Signal(8 * HEADER_BYTES, name="program_header")
            self.run_checking = Signal(name="run_checking")
            self.run_first = Signal(name="run_first")
            m.d.comb += [seq.program_read.addr.eq(Mux(self.run_checking,
                                                      self.field(Opcode.RUN, "addr"),
                                                      self.pc + 1)),
                         seq.program_read.en.eq(1)]
            m.d.sync += self.run_first.eq(0)
            with m.If(self.run_first):
                m.d.sync += self.program_header.eq(seq.program_read.data)

        self.matmul_fields = {name: self.field(Opcode.MATMUL, name)
                              for name, _ in isa.FIELDS[Opcode.MATMUL]}

        # -- responses: a byte shift register in front of the output register -----------------
        resp_bytes = RESPONSE_HEADER_BYTES + max(4 * len(isa.COUNTER_NAMES), isa.INFO_BYTES)
        self.resp_shift = Signal(8 * resp_bytes, name="resp_shift")
        self.resp_left = Signal(range(resp_bytes + 1), name="resp_left")
        self.after_respond = Signal(range(len(_AFTER_RESPOND)), name="after_respond")

    def _store_engine(self) -> StoreEngine:
        """The STORE engine, on the STORE header's fields and the accumulator, qparam and
        requantizer ports."""
        m, seq = self.m, self.seq
        store = StoreEngine(self.p, seq.requant_in.payload.shape())
        m.submodules.store = self.store = store
        m.d.comb += [store.enable.eq(seq.enable), store.advance.eq(self.advance),
                     store.raw.eq(self.raw)]
        m.d.comb += [store.header[name].eq(self.field(Opcode.STORE, name))
                     for name, _ in isa.FIELDS[Opcode.STORE]]
        wiring.connect(m, store.acc_read, wiring.flipped(seq.acc_read))
        wiring.connect(m, store.qparam_read, wiring.flipped(seq.qparam_read))
        wiring.connect(m, store.requant_in, wiring.flipped(seq.requant_in))
        for i in range(self.p.store_lanes - 1):
            wiring.connect(m, store.lane_requests[i], wiring.flipped(seq.lane_requests[i]))
            m.d.comb += store.lane_qparams[i].eq(seq.lane_qparams[i])
        return store

    def _output_register(self):
        """The response byte: from the shift register while responding, else the requantizer's."""
        m, seq, advance = self.m, self.seq, self.advance
        self.responding = responding = Signal(name="responding")
        m.d.comb += seq.rsp_valid_next.eq(
            Mux(advance, (responding | seq.requant_out.valid | self.vector_send) & ~self.to_acts,
                self.out_valid & ~(seq.rsp.valid & seq.rsp.ready)))
        m.d.sync += self.out_valid.eq(seq.rsp_valid_next)
        with m.If(advance):
            m.d.sync += self.out_byte.eq(Mux(responding, self.resp_shift[:8],
                                             Mux(self.vector_send, self.vector_send_byte,
                                                 seq.requant_out.payload)))

    def _store_writes(self):
        """A ``STORE TO_ACTS`` writes each requantized value into its activation SRAM lane
        instead of sending it (and sends no response header, in the same cycles)."""
        m, p, seq = self.m, self.p, self.seq
        store, requant_out = self.store, seq.requant_out
        m.d.comb += store.values.eq(self.checks.store_values)
        if not p.store_to_acts:
            return
        outputs = [requant_out] + [seq.lane_outputs[i] for i in range(p.store_lanes - 1)]
        writes = self.to_acts & requant_out.valid
        m.d.comb += [store.written.eq(writes & self.advance),
                     store.written_lanes.eq(Cat(out.valid for out in outputs))]
        with m.If(writes):   # lane k takes requantizer k % store_lanes (wide), else lane 0's
            m.d.comb += [seq.act_write.addr.eq(store.act_addr),
                         seq.act_write.data.eq(Cat(
                             Mux(store.wide, outputs[k % p.store_lanes].payload,
                                 requant_out.payload) for k in range(p.act_lanes))),
                         seq.act_write.en.eq(Mux(self.advance, store.act_lanes, 0))]

    def _checks(self):
        """Decode's checks (their range checks computed during the header's last fetch)."""
        m = self.m
        m.submodules.checks = self.checks = checks = InstructionChecks(self.p)
        m.d.comb += [checks.opcode.eq(self.opcode), checks.operands.eq(self.operands),
                     checks.next_byte.eq(self.byte_in), checks.out_type.eq(self.out_type),
                     checks.in_program.eq(self.running), checks.int4.eq(self.int4)]
        if self.p.conv_addressing:
            walk = self.loops.conv_walk
            m.d.comb += [checks.conv_k_tiles.eq(walk.k_tiles), checks.conv_words.eq(walk.words),
                         checks.conv_kernel.eq(walk.kernel), checks.conv_chunks.eq(walk.chunks),
                         checks.conv_plane.eq(walk.plane), checks.conv_out_w.eq(walk.out_w)]
        self.status = checks.status
        self.header = Cat(self.status, self.opcode, self.counters["instructions"][:16])

    def _counters(self):
        """Free-running: they count stalls too."""
        m, advance, counters = self.m, self.advance, self.counters
        m.d.sync += counters["cycles"].eq(counters["cycles"] + advance)
        with m.If(~advance & ~self.idle):
            m.d.sync += counters["stalls"].eq(counters["stalls"] + 1)
        with m.If(advance & self.issue_act):
            m.d.sync += counters["busy"].eq(counters["busy"] + 1)

    def _respond_then(self, payload=None, then="FETCH"):
        """Send a response (its header, then ``payload``), then go to state ``then``."""
        value, length = self.header, RESPONSE_HEADER_BYTES
        if payload is not None:
            value = Cat(self.header, payload)
            length += len(payload) // 8
        self.m.d.sync += [self.resp_shift.eq(value), self.resp_left.eq(length),
                          self.after_respond.eq(_AFTER_RESPOND[then]), self.to_acts.eq(0)]
        self.m.next = "RESPOND"

    def _fetch(self):
        m, advance, fetch_count = self.m, self.advance, self.fetch_count
        m.d.comb += [self.wants_input.eq(~self.running),
                     self.idle.eq((fetch_count == 0) & ~self.seq.cmd.valid & ~self.running)]
        if self.p.program_depth:
            self._program_fetch()
        with m.If(advance):
            m.d.sync += fetch_count.eq(fetch_count + 1)
            with m.If(fetch_count == 0):
                m.d.sync += self.opcode.eq(self.byte_in)
            with m.Else():
                m.d.sync += self.operands.eq(Cat(self.operands[8:], self.byte_in))
            with m.If(fetch_count == HEADER_BYTES - 3):
                m.d.comb += self.checks.latch_early.eq(1)
            with m.If(fetch_count == HEADER_BYTES - 2):
                m.d.comb += self.checks.latch_products.eq(1)
            with m.If(fetch_count == HEADER_BYTES - 1):
                m.d.sync += fetch_count.eq(0)
                m.d.comb += self.checks.latch.eq(1)
                m.next = "CHECK"

    def _program_fetch(self):
        """FETCH while a RUN runs: the header at ``pc`` a byte a cycle from
        ``program_header`` (``pc`` moves at a header's last byte, and the header after it,
        which the program memory has read since ``pc`` last moved, goes into
        ``program_header``); after the RUN's last header, back to the link."""
        m, seq = self.m, self.seq
        m.d.comb += [self.fetching.eq(1),
                     self.program_byte.eq(self.program_header.word_select(self.fetch_count, 8))]
        with m.If(self.advance & self.running & (self.fetch_count == HEADER_BYTES - 1)):
            m.d.sync += [self.pc.eq(self.pc + 1), self.run_left.eq(self.run_left - 1),
                         self.program_header.eq(seq.program_read.data)]
            with m.If(self.run_left == 1):
                m.d.sync += self.running.eq(0)

    def _decode(self):
        # A MATMUL reads row 0 of its first weight tile now (its address from CHECK), a cycle
        # ahead of activations.
        m, seq, is_op, counters = self.m, self.seq, self.is_op, self.counters
        with m.If(seq.enable & ~self.decode_wait):
            m.d.sync += counters["instructions"].eq(counters["instructions"] + 1)
            with m.If(~self.checks.ok):
                with m.If((self.status == isa.Status.OUT_OF_RANGE)
                          & Cat(is_op[op] for op in _LOADS).any()):
                    self._start_load(Opcode.LOAD_WEIGHTS, refused=True)
                    self._respond_then(then="DISCARD")
                with m.Else():
                    self._respond_then()
            with m.Else():
                self._execute()

    def _execute(self):
        """Decode of an instruction that passed its checks."""
        m, p, is_op, counters = self.m, self.p, self.is_op, self.counters
        with m.If(is_op[Opcode.CONFIG]):
            m.d.sync += [self.int4.eq(self.field(Opcode.CONFIG, "precision")),
                         self.rounding.eq(self.field(Opcode.CONFIG, "rounding")),
                         self.relu.eq(self.field(Opcode.CONFIG, "relu") == isa.RELU_ZERO_POINT),
                         self.out_type.eq(self.field(Opcode.CONFIG, "out_type"))]
            if p.clamp:
                # The bounds as values of the output type: unsigned bytes for UINT8.
                unsigned = self.field(Opcode.CONFIG, "out_type") == OutType.UINT8.value
                m.d.sync += self.clamp.eq(self.field(Opcode.CONFIG, "relu") == isa.RELU_CLAMP)
                for bound, name in zip(self.clamp_bounds, ("clamp_lo", "clamp_hi")):
                    byte = self.field(Opcode.CONFIG, name)[:8]
                    m.d.sync += bound.eq(Mux(unsigned, byte, byte.as_signed()))
            m.next = "FETCH"
        for op in _LOADS:
            with m.If(is_op[op]):
                self._start_load(op)
                m.next = "LOAD"
        with m.If(is_op[Opcode.MATMUL]):
            self.loops.start(m, self.matmul_fields, self.checks.tiles)
            # Row 0 of the first weight tile is read in this cycle.
            m.d.comb += [self.issue_weight.eq(1), self.weight_row.eq(0),
                         self.weight_buf_now.eq(self.loops.tile_buf)]
            m.next = "MATMUL"
        with m.If(is_op[Opcode.STORE]):
            m.d.comb += self.store.start.eq(1)
            m.d.sync += self.raw.eq(self.field(Opcode.STORE, "flags")[0])
            self._respond_then(then="STORE")
            if p.store_to_acts:   # after _respond_then, which clears it
                to_acts = self.field(Opcode.STORE, "flags") & isa.StoreFlags.TO_ACTS.value
                m.d.sync += self.to_acts.eq(to_acts.any())
        with m.If(is_op[Opcode.READ_COUNTERS]):
            snapshot = [(counters["cycles"] - HEADER_BYTES - cycles.CHECK_CYCLES)[:_COUNTER_WIDTH],
                        counters["busy"], counters["stalls"], counters["instructions"]]
            self._respond_then(Cat(*snapshot))
        with m.If(is_op[Opcode.SYNC]):
            self._respond_then(self.field(Opcode.SYNC, "tag"))
        with m.If(is_op[Opcode.INFO]):
            info = p.to_info_bytes(isa.ISA_VERSION)
            self._respond_then(Cat(Const(int.from_bytes(info, "little"), 8 * len(info)),
                                   self.program_tag))
        self._vector_decode()
        if p.conv_addressing:
            with m.If(is_op[Opcode.CONV_GEOMETRY]):
                self.loops.conv_walk.set_geometry(m, {
                    name: self.field(Opcode.CONV_GEOMETRY, name)
                    for name, _ in isa.FIELDS[Opcode.CONV_GEOMETRY]})
                m.next = "FETCH"
        if p.program_depth:
            with m.If(is_op[Opcode.LOAD_PROGRAM]):
                m.d.sync += self.program_tag.eq(self.field(Opcode.LOAD_PROGRAM, "tag"))
            with m.If(is_op[Opcode.RUN]):
                m.d.sync += [self.running.eq(1),
                             self.run_left.eq(self.field(Opcode.RUN, "count"))]
                m.next = "FETCH"

    def _respond(self):
        m = self.m
        m.d.comb += self.responding.eq(1)
        with m.If(self.seq.enable):
            m.d.sync += [self.resp_shift.eq(self.resp_shift >> 8),
                         self.resp_left.eq(self.resp_left - 1)]
            with m.If(self.resp_left == 1):
                with m.Switch(self.after_respond):
                    for state, code in _AFTER_RESPOND.items():
                        if state == "VECTOR" and not self.p.vector_unit:
                            continue
                        with m.Case(code):
                            m.next = state
                            if state == "VECTOR":
                                self._vector_after_respond()

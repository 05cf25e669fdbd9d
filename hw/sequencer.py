"""The sequencer: fetches and decodes instructions, drives loads, the array and stores, in lockstep.

A cycle in which the sequencer needs a command byte that has not arrived, or holds a response byte
that cannot leave, is not a working cycle (:attr:`Sequencer.advance` is 0; the latter freezes the
whole core). The working cycles of each instruction are the exact function ``hw.isa.cycle_cost``:
the schedule is static and the compiler predicts it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import isa
from .accumulator import acc_tag_layout
from .checks import InstructionChecks
from .column_select import column_select
from .isa import HEADER_BYTES, QPARAM_BYTES, RESPONSE_HEADER_BYTES, Opcode, OutType, Rounding
from .load_lanes import load_word_bytes, load_word_lanes
from .matmul_loops import MatmulLoops
from .params import RillParams
from .qparams import QPARAM_EARLY

__all__ = ["Sequencer"]

_COUNTER_WIDTH = 32
_LOADS = isa.LOAD_OPCODES


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
            "int4": Out(1), "rounding": Out(Rounding), "relu": Out(1), "out_type": Out(OutType),
            "raw": Out(1),
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
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params

        # -- stall / advance ----------------------------------------------------------------
        wants_input = Signal()
        out_valid = Signal()
        out_byte = Signal(8)
        advance = self.advance
        m.d.comb += [
            advance.eq(self.enable & ~(wants_input & ~self.cmd.valid)),
            self.cmd.ready.eq(wants_input & self.enable),
            self.wants_command.eq(wants_input),
            self.rsp.valid.eq(out_valid),
            self.rsp.payload.eq(out_byte),
        ]
        byte_in = self.cmd.payload

        # -- state ------------------------------------------------------------------------
        opcode = Signal(8)
        # One-hot opcode flags, registered: decode tests bits, not byte compares, in front of the
        # FSM's next-state and clock-enable logic.
        is_op = {op: Signal(name=f"is_{op.name.lower()}") for op in Opcode}
        m.d.sync += [is_op[op].eq(opcode == op) for op in Opcode]
        operands = Signal(8 * (HEADER_BYTES - 1))
        fetch_count = Signal(range(HEADER_BYTES))
        idle = Signal()

        counters = {name: Signal(_COUNTER_WIDTH, name=f"count_{name}")
                    for name in isa.COUNTER_NAMES}

        int4 = Signal()
        rounding = Signal(Rounding)
        relu = Signal()
        out_type = Signal(OutType)
        raw = Signal()
        m.d.comb += [self.int4.eq(int4), self.rounding.eq(rounding), self.relu.eq(relu),
                     self.out_type.eq(out_type), self.raw.eq(raw)]

        # drain != 0 as a register of its own, like the opcode test decode waits on.
        drain = Signal(range(isa.matmul_drain_cycles(p) + 1))
        draining, waits_for_quiet = Signal(name="draining"), Signal(name="waits_for_quiet")
        with m.If(advance & draining):
            m.d.sync += [drain.eq(drain - 1), draining.eq(drain != 1)]
        m.d.sync += waits_for_quiet.eq(Cat(is_op[op] for op in Opcode
                                           if isa.waits_for_quiet(op)).any())

        def field(op, name):
            offset, size = isa.field_offsets(op)[name]
            return operands[8 * offset:8 * (offset + size)]

        matmul_fields = {name: field(Opcode.MATMUL, name) for name, _ in isa.FIELDS[Opcode.MATMUL]}

        # -- responses: a byte shift register in front of the output register -----------------
        resp_bytes = RESPONSE_HEADER_BYTES + 16
        resp_shift = Signal(8 * resp_bytes)
        resp_left = Signal(range(resp_bytes + 1))

        # -- load engine --------------------------------------------------------------------
        decoded_word_len = Mux(is_op[Opcode.LOAD_ACTS], Mux(int4, p.act_lanes, p.rows),
                               Mux(is_op[Opcode.LOAD_WEIGHTS], p.cols,
                                   Mux(is_op[Opcode.LOAD_QPARAMS], QPARAM_BYTES, 4)))
        load_target = Signal(Opcode, init=Opcode.LOAD_WEIGHTS)
        load_addr = Signal(p.load_addr_width)
        # Any count: a load refused for its range still drains its data, word by word.
        load_words_left = Signal(8 * dict(isa.FIELDS[Opcode.LOAD_WEIGHTS])["count"])
        load_byte = Signal(range(load_word_bytes(p)))
        load_word_len = Signal(range(load_word_bytes(p) + 1))
        word_done = (load_byte == load_word_len - 1)
        header_part = Cat(field(Opcode.LOAD_BIASES, "multiplier"),
                          field(Opcode.LOAD_BIASES, "shift"), Const(0, 8),
                          field(Opcode.LOAD_BIASES, "zero_point"))
        weight_lanes, act_lanes, qparam_lanes = load_word_lanes(
            m, p, byte_in=byte_in, load_byte=load_byte, int4=int4,
            biases=load_target == Opcode.LOAD_BIASES, header_part=header_part,
            act_write=self.act_write, weight_write=self.weight_write,
            qparam_write=self.qparam_write)
        m.d.comb += [self.act_write.addr.eq(load_addr), self.weight_write.addr.eq(load_addr),
                     self.qparam_write.addr.eq(load_addr)]

        # -- matmul engine -------------------------------------------------------------------
        loops = MatmulLoops(p)
        issue_act, issue_weight = Signal(name="issue_act"), Signal(name="issue_weight")
        weight_row = Signal(range(p.rows))
        weight_buf_now = Signal()
        m.d.comb += weight_buf_now.eq(loops.weight_buf)

        # Registers aligning row metadata with the SRAM read data (one cycle of read latency).
        act_valid_q, act_buf_q, wt_valid_q, wt_buf_q = (
            Signal(name=n) for n in ("act_valid_q", "act_buf_q", "wt_valid_q", "wt_buf_q"))
        act_tag_q = Signal(self.array_acts.payload.tag.shape())
        wt_row_q = Signal(range(p.rows))
        # The valids step in every cycle of the core: the tiles run under its enable, not under
        # advance, so a row read just before the sequencer waits for a byte goes on at once.
        with m.If(self.enable):
            m.d.sync += [act_valid_q.eq(issue_act & advance), wt_valid_q.eq(issue_weight & advance)]
        with m.If(advance):
            m.d.sync += [wt_row_q.eq(weight_row), wt_buf_q.eq(weight_buf_now),
                         act_buf_q.eq(loops.tile_buf),
                         act_tag_q.addr.eq(loops.acc_base + loops.act.index),
                         act_tag_q.accumulate.eq(loops.accumulate | (loops.k_tiles.index != 0))]
        m.d.comb += [
            self.array_acts.valid.eq(act_valid_q),
            self.array_acts.payload.lanes.eq(self.act_read.data),
            self.array_acts.payload.buf.eq(act_buf_q),
            self.array_acts.payload.tag.eq(act_tag_q),
            self.array_weights.valid.eq(wt_valid_q),
            self.array_weights.payload.row.eq(wt_row_q),
            self.array_weights.payload.buf.eq(wt_buf_q),
            self.array_weights.payload.data.eq(self.weight_read.data),
            self.act_read.addr.eq(loops.act.address),
            self.weight_read.addr.eq(loops.weight.address),
        ]

        # -- store engine -------------------------------------------------------------------
        st_m = Signal(p.store_m_width)   # *_last: bounds less one, so the wraps subtract nothing
        st_m_last = Signal(p.store_m_width)
        st_tile_last = Signal(8)
        st_col_last = Signal(range(p.cols))
        st_q_addr = Signal(p.qparam_addr_width)
        st_mi = Signal(p.store_m_width)
        st_nt = Signal(8)
        st_c = Signal(range(p.cols))
        st_b = Signal(2)
        st_row = Signal(p.acc_addr_width)        # acc_addr + nt * m + mi
        st_row_base = Signal(p.acc_addr_width)   # acc_addr + mi
        st_q = Signal(p.qparam_addr_width)
        st_flush = Signal(range(isa.store_flush_cycles(p) + 1))
        st_issue = Signal()
        # A serial requantizer takes one request per interval: STORE issues on pace == 0.
        interval = isa.requant_interval(p)
        st_pace = Signal(range(interval))
        # A request leaves when its row's accumulators arrive, acc_read_latency cycles after the
        # read, and its column is selected (store_select_latency); its qparam entry is read (one
        # cycle) to arrive with them.
        arrive = isa.acc_read_latency(p)
        leave = arrive + isa.store_select_latency(p)
        issued, entry = [Cat(st_issue, st_b, st_c)], [st_q]
        for stage in range(1, leave + 1):   # the entry read takes the last
            lines = (issued, entry) if stage < leave else (issued,)
            for line, name in zip(lines, ("issued", "entry")):
                line.append(Signal(len(line[0]), name=f"st_{name}_{stage}"))
                with m.If(advance):
                    m.d.sync += line[-1].eq(line[-2])
        st_valid_q, st_b_q = issued[-1][0], issued[-1][1:3]
        selected = column_select(m, self.acc_read.data, p.cols, issued[arrive][3:],
                                 issued[leave][3:], advance, registered=leave > arrive)
        qparam = self.qparam_read.data
        m.d.comb += [
            self.acc_read.addr.eq(st_row),
            self.acc_read.en.eq(1),
            self.qparam_read.addr.eq(entry[-1]),
            self.requant_in.valid.eq(st_valid_q & advance),
            self.requant_in.payload.acc.eq(selected),
            self.requant_in.payload.bias.eq(qparam.bias),
            self.requant_in.payload.shift.eq(qparam.shift),
            self.requant_in.payload.byte_index.eq(st_b_q),
        ]

        # -- output register ------------------------------------------------------------------
        responding = Signal()
        m.d.comb += self.rsp_valid_next.eq(
            Mux(advance, responding | self.requant_out.valid,
                out_valid & ~(self.rsp.valid & self.rsp.ready)))
        m.d.sync += out_valid.eq(self.rsp_valid_next)
        with m.If(advance):
            m.d.sync += out_byte.eq(Mux(responding, resp_shift[:8], self.requant_out.payload))

        # -- decode's checks (their range checks computed during the header's last fetch) ------
        m.submodules.checks = checks = InstructionChecks(p)
        m.d.comb += [checks.opcode.eq(opcode), checks.operands.eq(operands),
                     checks.next_byte.eq(byte_in)]
        status = checks.status
        decode_wait = draining & waits_for_quiet

        header = Cat(status, opcode, counters["instructions"][:16])

        _after = {"FETCH": 0, "DISCARD": 1, "STORE": 2}
        after_respond = Signal(range(len(_after)))

        def respond_then(payload=None, then="FETCH"):
            value, length = header, RESPONSE_HEADER_BYTES
            if payload is not None:
                value = Cat(header, payload)
                length += len(payload) // 8
            m.d.sync += [resp_shift.eq(value), resp_left.eq(length),
                         after_respond.eq(_after[then])]
            m.next = "RESPOND"

        # -- counters (free-running: they count stalls too) -------------------------------
        m.d.sync += counters["cycles"].eq(counters["cycles"] + advance)
        with m.If(~advance & ~idle):
            m.d.sync += counters["stalls"].eq(counters["stalls"] + 1)
        with m.If(advance & issue_act):
            m.d.sync += counters["busy"].eq(counters["busy"] + 1)

        # -- the machine ----------------------------------------------------------------------
        with m.FSM(name="sequencer"):
            with m.State("FETCH"):
                m.d.comb += [wants_input.eq(1), idle.eq((fetch_count == 0) & ~self.cmd.valid)]
                with m.If(advance):
                    m.d.sync += fetch_count.eq(fetch_count + 1)
                    with m.If(fetch_count == 0):
                        m.d.sync += opcode.eq(byte_in)
                    with m.Else():
                        m.d.sync += operands.eq(Cat(operands[8:], byte_in))
                    with m.If(fetch_count == HEADER_BYTES - 2):
                        m.d.comb += checks.latch_products.eq(1)
                    with m.If(fetch_count == HEADER_BYTES - 1):
                        m.d.sync += fetch_count.eq(0)
                        m.d.comb += checks.latch.eq(1)
                        m.next = "CHECK"

            # States taking no command byte step on enable (= advance there): no cmd.valid in them.
            with m.State("CHECK"):   # one cycle (isa.CHECK_CYCLES) for the checks' status
                # The header is all in; a MATMUL reads its first weight row in DECODE.
                loops.load_header(m, matmul_fields)
                with m.If(self.enable):
                    m.next = "DECODE"

            with m.State("DECODE"):
                # A MATMUL reads row 0 of its first weight tile now (its address from CHECK), a
                # cycle ahead of activations.
                with m.If(self.enable & ~decode_wait):
                    m.d.sync += counters["instructions"].eq(counters["instructions"] + 1)
                    with m.If(~checks.ok):
                        with m.If((status == isa.Status.OUT_OF_RANGE)
                                  & Cat(is_op[op] for op in _LOADS).any()):
                            m.d.sync += [load_words_left.eq(field(Opcode.LOAD_WEIGHTS, "count")),
                                         load_byte.eq(0), load_word_len.eq(decoded_word_len)]
                            respond_then(then="DISCARD")
                        with m.Else():
                            respond_then()
                    with m.Else():
                        with m.If(is_op[Opcode.CONFIG]):
                            m.d.sync += [
                                int4.eq(field(Opcode.CONFIG, "precision")),
                                rounding.eq(field(Opcode.CONFIG, "rounding")),
                                relu.eq(field(Opcode.CONFIG, "relu")),
                                out_type.eq(field(Opcode.CONFIG, "out_type")),
                            ]
                            m.next = "FETCH"
                        for op in _LOADS:
                            with m.If(is_op[op]):
                                m.d.sync += [load_target.eq(op),
                                             load_addr.eq(field(op, "addr")),
                                             load_words_left.eq(field(op, "count")),
                                             load_byte.eq(0),
                                             load_word_len.eq(decoded_word_len)]
                                m.next = "LOAD"
                        with m.If(is_op[Opcode.MATMUL]):
                            loops.start(m, matmul_fields, checks.tiles)
                            # Row 0 of the first weight tile is read in this cycle.
                            m.d.comb += [issue_weight.eq(1), weight_row.eq(0),
                                         weight_buf_now.eq(loops.tile_buf)]
                            m.next = "MATMUL"
                        with m.If(is_op[Opcode.STORE]):
                            f = {name: field(Opcode.STORE, name)
                                 for name, _ in isa.FIELDS[Opcode.STORE]}
                            m.d.sync += [
                                st_m.eq(f["m"]), st_m_last.eq(f["m"] - 1),
                                st_tile_last.eq(f["n_tiles"] - 1),
                                st_col_last.eq(f["last_cols"] - 1), st_q_addr.eq(f["q_addr"]),
                                st_mi.eq(0), st_nt.eq(0), st_c.eq(0), st_b.eq(0),
                                st_row.eq(f["acc_addr"]), st_row_base.eq(f["acc_addr"]),
                                st_q.eq(f["q_addr"]), raw.eq(f["flags"][0]),
                            ]
                            respond_then(then="STORE")
                        with m.If(is_op[Opcode.READ_COUNTERS]):
                            snapshot = [(counters["cycles"] - HEADER_BYTES
                                         - isa.CHECK_CYCLES)[:_COUNTER_WIDTH],
                                        counters["busy"], counters["stalls"],
                                        counters["instructions"]]
                            respond_then(Cat(*snapshot))
                        with m.If(is_op[Opcode.SYNC]):
                            respond_then(field(Opcode.SYNC, "tag"))
                        with m.If(is_op[Opcode.INFO]):
                            info = p.to_info_bytes(isa.ISA_VERSION)
                            respond_then(Const(int.from_bytes(info, "little"), 8 * len(info)))

            with m.State("RESPOND"):
                m.d.comb += responding.eq(1)
                with m.If(self.enable):
                    m.d.sync += [resp_shift.eq(resp_shift >> 8), resp_left.eq(resp_left - 1)]
                    with m.If(resp_left == 1):
                        with m.Switch(after_respond):
                            with m.Case(_after["FETCH"]):
                                m.next = "FETCH"
                            with m.Case(_after["DISCARD"]):
                                m.next = "DISCARD"
                            with m.Case(_after["STORE"]):
                                m.next = "STORE"

            with m.State("LOAD"):
                m.d.comb += wants_input.eq(1)
                with m.If(advance):
                    with m.Switch(load_target):
                        with m.Case(Opcode.LOAD_WEIGHTS):
                            m.d.comb += self.weight_write.en.eq(weight_lanes)
                        with m.Case(Opcode.LOAD_ACTS):
                            m.d.comb += self.act_write.en.eq(act_lanes)
                        with m.Case(Opcode.LOAD_QPARAMS, Opcode.LOAD_BIASES):
                            m.d.comb += self.qparam_write.en.eq(qparam_lanes)
                    m.d.sync += load_byte.eq(load_byte + 1)
                    with m.If(word_done):
                        m.d.sync += [load_byte.eq(0), load_addr.eq(load_addr + 1),
                                     load_words_left.eq(load_words_left - 1)]
                        with m.If(load_words_left == 1):
                            m.next = "FETCH"

            with m.State("DISCARD"):
                # Data of a load that failed its bounds check: consumed, never written.
                m.d.comb += wants_input.eq(1)
                with m.If(advance):
                    m.d.sync += load_byte.eq(load_byte + 1)
                    with m.If(word_done):
                        m.d.sync += [load_byte.eq(0), load_words_left.eq(load_words_left - 1)]
                        with m.If(load_words_left == 1):
                            m.next = "FETCH"

            with m.State("MATMUL"):
                m.d.comb += [issue_act.eq(loops.act_row_valid),
                             issue_weight.eq(loops.weight_row_valid),
                             weight_row.eq(loops.weight.index)]
                with m.If(self.enable):
                    loops.step(m)
                    with m.If(loops.finishing):
                        assert isa.matmul_drain_cycles(p) > 0
                        m.d.sync += [drain.eq(isa.matmul_drain_cycles(p)), draining.eq(1)]
                        m.next = "FETCH"

            with m.State("STORE"):
                m.d.comb += st_issue.eq(st_pace == 0)
                bytes_per_value = Mux(raw, 3, 0)
                last_tile = st_nt == st_tile_last
                last_col = st_c == Mux(last_tile, st_col_last, p.cols - 1)
                if interval > 1:
                    with m.If(self.enable):
                        m.d.sync += st_pace.eq(Mux(st_pace == 0, interval - 1, st_pace - 1))
                with m.If(self.enable & st_issue):
                    m.d.sync += st_b.eq(st_b + 1)
                    with m.If(st_b == bytes_per_value):
                        m.d.sync += [st_b.eq(0), st_c.eq(st_c + 1), st_q.eq(st_q + 1)]
                        with m.If(last_col):
                            m.d.sync += [st_c.eq(0), st_nt.eq(st_nt + 1),
                                         st_row.eq(st_row + st_m)]
                            with m.If(last_tile):
                                m.d.sync += [st_nt.eq(0), st_mi.eq(st_mi + 1),
                                             st_row.eq(st_row_base + 1),
                                             st_row_base.eq(st_row_base + 1),
                                             st_q.eq(st_q_addr)]
                                with m.If(st_mi == st_m_last):
                                    m.d.sync += st_flush.eq(isa.store_flush_cycles(p))
                                    m.next = "FLUSH"

            with m.State("FLUSH"):
                with m.If(self.enable):
                    m.d.sync += [st_pace.eq(0), st_flush.eq(st_flush - 1)]
                    with m.If(st_flush == 1):
                        m.next = "FETCH"

        return m

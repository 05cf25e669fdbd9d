"""The STORE engine: which accumulator row, column and byte the sequencer requantizes in each
cycle, and the requests it sends the requantizer.

A STORE walks its output tile by tile: for each of the ``m`` rows, each of the ``n_tiles`` tiles'
columns (the last tile has ``last_cols``), and in raw mode each of the value's four bytes; a
``WIDE`` one ``store_lanes`` columns at a time, one request per requantizer. Its working cycles
are ``hw.cycles.store_cycles``; the sequencer's STORE and FLUSH states run it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import cycles, isa
from .column_select import column_select
from .isa import Opcode
from .params import RillParams
from .qparams import QPARAM_EARLY

__all__ = ["StoreEngine", "store_header_layout"]


def store_header_layout() -> data.StructLayout:
    """A STORE header's operand fields (``hw.isa.FIELDS``), as a struct."""
    return data.StructLayout({name: 8 * size for name, size in isa.FIELDS[Opcode.STORE]})


class StoreEngine(wiring.Component):
    """The STORE engine's loops and the request pipeline behind them. The sequencer decides when
    it starts, runs and flushes.

    A request leaves when its row's accumulators arrive, ``acc_read_latency`` working cycles
    after the read, and its column is selected (``store_select_latency``); its qparam entry is
    read (one cycle) to arrive with them. A serial requantizer takes one request per
    ``requant_interval``: the engine issues when its pace counter is 0.

    Members
    -------
    header : ``In(store_header_layout())``
        The STORE's operand fields, taken when ``start`` is 1.
    start : ``In(1)``
        Load the loops from ``header`` (the sequencer's DECODE of a STORE).
    run : ``In(1)``, flush : ``In(1)``
        The sequencer is in its STORE state (issuing), or in FLUSH (waiting for the last
        request's byte).
    last : ``Out(1)``
        This cycle issues the STORE's last request; with ``enable`` the sequencer goes to FLUSH.
    flushed : ``Out(1)``
        The flush's last cycle; with ``enable`` the sequencer goes back to FETCH.
    enable, advance, raw : ``In(1)``
        The sequencer's enable and advance (:class:`~hw.sequencer.Sequencer`) and the STORE's raw
        flag (four bytes per value).
    acc_read, qparam_read : flipped ``memory.ReadPort.Signature``
        The accumulator row read and the qparam entry read.
    requant_in : ``Out(stream.Signature(requant_request_layout, always_ready=True))``
        Requests to the requantizer (lane 0).
    lane_requests : ``Out(...).array(store_lanes - 1)``
        A ``WIDE`` STORE's requests to the other lanes' requantizers, beside lane 0's.
    lane_qparams : ``In(...).array(store_lanes - 1)``
        Their bias and shift (``hw.qparams.QparamTile.lanes``).
    values : ``In(...)``
        The STORE's values per row (``hw.checks.InstructionChecks.store_values``), taken with
        ``start``.
    written : ``In(1)``
        A requantized value of a ``STORE TO_ACTS`` goes into the activation SRAM in this cycle
        (with ``WIDE``, lane 0's and those of the lanes in ``written_lanes``).
    written_lanes : ``In(store_lanes)``
        Which lanes' requantizers give a value this cycle.
    wide : ``Out(1)``
        The STORE is ``WIDE`` (set with ``start``).
    act_addr : ``Out(act_addr_width)``, act_lanes : ``Out(act_lanes)``
        Where it goes: the word, and the byte-lane enables, one-hot or, ``WIDE``, lane ``k``
        taking requantizer ``k % store_lanes`` (``hw.isa.StoreFlags.TO_ACTS`` gives the
        layout). Values leave the requantizers in the order they were issued, so a walk of its
        own, stepped by ``written``, places them without carrying addresses through the
        requantizers' pipelines.
    """

    def __init__(self, params: RillParams, requant_request_layout):
        self._params = p = params
        super().__init__({
            "header": In(store_header_layout()),
            "start": In(1), "run": In(1), "flush": In(1),
            "last": Out(1), "flushed": Out(1),
            "enable": In(1), "advance": In(1), "raw": In(1),
            "acc_read": In(memory.ReadPort.Signature(
                addr_width=p.acc_addr_width, shape=data.ArrayLayout(32, p.cols))),
            "qparam_read": In(memory.ReadPort.Signature(
                addr_width=p.qparam_addr_width, shape=QPARAM_EARLY)),
            "requant_in": Out(stream.Signature(requant_request_layout, always_ready=True)),
            "values": In(16 + p.cols.bit_length()),
            "written": In(1),
            "written_lanes": In(p.store_lanes),
            "wide": Out(1),
            "act_addr": Out(p.act_addr_width),
            "act_lanes": Out(p.act_lanes),
            **({"lane_requests": Out(stream.Signature(requant_request_layout, always_ready=True))
                .array(p.store_lanes - 1),
                "lane_qparams": In(QPARAM_EARLY).array(p.store_lanes - 1)}
               if p.store_lanes > 1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        advance = self.advance
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
        st_flush = Signal(range(cycles.store_flush_cycles(p) + 1))
        st_issue = Signal()
        interval = cycles.requant_interval(p)
        st_pace = Signal(range(interval))

        # -- the request pipeline: issued (valid, byte, column), then the qparam entry ----------
        arrive = cycles.acc_read_latency(p)
        leave = arrive + cycles.store_select_latency(p)
        lanes = p.store_lanes
        st_wide = self.wide
        col_bound = Signal(range(p.cols), name="st_col_bound")   # the row's last column here
        # Lanes 1.. of a wide issue: columns st_c + i (st_c a multiple of the lanes) to the last.
        lane_valid = Cat(st_wide & ((st_c | i) <= col_bound) for i in range(1, lanes))
        issued, entry = [Cat(st_issue, st_b, st_c, lane_valid)], [st_q]
        for stage in range(1, leave + 1):   # the entry read takes the last
            lines = (issued, entry) if stage < leave else (issued,)
            for line, name in zip(lines, ("issued", "entry")):
                line.append(Signal(len(line[0]), name=f"st_{name}_{stage}"))
                with m.If(advance):
                    m.d.sync += line[-1].eq(line[-2])
        st_valid_q, st_b_q = issued[-1][0], issued[-1][1:3]
        column = slice(3, 3 + len(st_c))
        selected = column_select(m, self.acc_read.data, p.cols, issued[arrive][column],
                                 issued[leave][column], advance, registered=leave > arrive)
        qparam = self.qparam_read.data
        # Lane i (from 1) works only in WIDE stores, whose first column is a multiple of the
        # lanes: it selects among columns i, i + lanes, ... by the column's upper bits, a
        # (cols / lanes)-way select where lane 0's is cols-way.
        lane_bits = lanes.bit_length() - 1
        for i in range(1, lanes):
            request, early = self.lane_requests[i - 1], self.lane_qparams[i - 1]
            own = [self.acc_read.data[c] for c in range(i, p.cols, lanes)]
            m.d.comb += [
                request.valid.eq(st_valid_q & issued[-1][column.stop + i - 1] & advance),
                request.payload.acc.eq(column_select(
                    m, own, len(own),
                    issued[arrive][column][lane_bits:], issued[leave][column][lane_bits:],
                    advance, registered=leave > arrive, name=f"lane{i}_group")),
                request.payload.bias.eq(early.bias),
                request.payload.shift.eq(early.shift),
            ]
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

        # -- start: the bounds, less one, and the first element --------------------------------
        f = self.header
        with m.If(self.start):
            m.d.sync += [
                st_m.eq(f.m), st_m_last.eq(f.m - 1),
                st_tile_last.eq(f.n_tiles - 1),
                st_col_last.eq(f.last_cols - 1), st_q_addr.eq(f.q_addr),
                st_mi.eq(0), st_nt.eq(0), st_c.eq(0), st_b.eq(0),
                st_row.eq(f.acc_addr), st_row_base.eq(f.acc_addr),
                st_q.eq(f.q_addr),
            ]
            if lanes > 1:
                m.d.sync += st_wide.eq((f.flags & isa.StoreFlags.WIDE.value).any())

        # -- run: byte, column, tile, row ------------------------------------------------------
        bytes_per_value = Mux(self.raw, 3, 0)
        last_tile = st_nt == st_tile_last
        m.d.comb += col_bound.eq(Mux(last_tile, st_col_last, p.cols - 1))
        last_col = Mux(st_wide, (st_c | (lanes - 1)) >= col_bound, st_c == col_bound)
        step = Mux(st_wide, lanes, 1)
        last_byte = st_b == bytes_per_value
        m.d.comb += self.last.eq(st_issue & last_byte & last_col & last_tile
                                 & (st_mi == st_m_last))
        with m.If(self.run):
            m.d.comb += st_issue.eq(st_pace == 0)
            if interval > 1:
                with m.If(self.enable):
                    m.d.sync += st_pace.eq(Mux(st_pace == 0, interval - 1, st_pace - 1))
            with m.If(self.enable & st_issue):
                m.d.sync += st_b.eq(st_b + 1)
                with m.If(last_byte):
                    m.d.sync += [st_b.eq(0), st_c.eq(st_c + step), st_q.eq(st_q + step)]
                    with m.If(last_col):
                        m.d.sync += [st_c.eq(0), st_nt.eq(st_nt + 1),
                                     st_row.eq(st_row + st_m)]
                        with m.If(last_tile):
                            m.d.sync += [st_nt.eq(0), st_mi.eq(st_mi + 1),
                                         st_row.eq(st_row_base + 1),
                                         st_row_base.eq(st_row_base + 1),
                                         st_q.eq(st_q_addr)]
                            with m.If(st_mi == st_m_last):
                                m.d.sync += st_flush.eq(cycles.store_flush_cycles(p))

        # -- flush: the last request's accumulator read, select and requantization -------------
        m.d.comb += self.flushed.eq(st_flush == 1)
        with m.If(self.flush & self.enable):
            m.d.sync += [st_pace.eq(0), st_flush.eq(st_flush - 1)]
        if p.store_to_acts:
            self._activation_walk(m, st_m)
        return m

    def _activation_walk(self, m: Module, st_m: Signal):
        """Where each value of a ``STORE TO_ACTS`` lands: lane by lane through a word of the next
        layer's activations (``values_per_word``), then ``m`` words on to the row's next word; a
        row's end goes back to the row's first word, a word further."""
        p, f = self._params, self.header
        lanes, wide = p.store_lanes, self.wide
        word = Signal(p.act_addr_width, name="st_act_word")
        row_word = Signal(p.act_addr_width, name="st_act_row_word")
        lane = Signal(range(p.act_lanes), name="st_act_lane")
        lane_last = Signal(range(p.act_lanes), name="st_act_lane_last")
        left = Signal(len(self.values), name="st_act_left")
        values_last = Signal(len(self.values), name="st_act_values_last")
        # A wide write's lanes: lane k from requantizer k % lanes, in the group ``lane`` starts.
        m.d.comb += [self.act_addr.eq(word),
                     self.act_lanes.eq(Cat(
                         Mux(wide, (lane == k - k % lanes) & self.written_lanes[k % lanes],
                             lane == k) for k in range(p.act_lanes)))]
        step = Mux(wide, lanes, 1)
        with m.If(self.start):
            int4 = (f.flags & isa.StoreFlags.ACTS_INT4.value).any()
            group = Mux((f.flags & isa.StoreFlags.WIDE.value).any(), lanes, 1)
            m.d.sync += [word.eq(f.act_addr), row_word.eq(f.act_addr), lane.eq(0),
                         lane_last.eq(Mux(int4, p.values_per_word(True),
                                          p.values_per_word(False)) - group),
                         left.eq(self.values - 1), values_last.eq(self.values - 1)]
        with m.Elif(self.written):
            m.d.sync += [left.eq(left - step), lane.eq(lane + step)]
            with m.If(Mux(wide, left < lanes, left == 0)):   # the row's last value(s)
                m.d.sync += [left.eq(values_last), lane.eq(0), row_word.eq(row_word + 1),
                             word.eq(row_word + 1)]
            with m.Elif(lane == lane_last):
                m.d.sync += [lane.eq(0), word.eq(word + st_m)]

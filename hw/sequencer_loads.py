"""The sequencer's loads: a ``LOAD_*`` instruction's word and byte counters, the tiles' write
ports, and the LOAD and DISCARD states (a load refused for its range drains its data unwritten).

A part of :class:`hw.sequencer._SequencerLogic`, kept apart for size: its methods work on the
registers the sequencer's other parts share (``self.m``, ``self.seq``, ``self.is_op``, ...).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal

from . import isa
from .isa import HEADER_BYTES, QPARAM_BYTES, Opcode
from .load_lanes import act_word_bytes, load_word_bytes, load_word_lanes

__all__ = ["LoadStates"]


class LoadStates:
    """The load engine and its states, mixed into the sequencer's logic."""

    def _load_engine(self):
        """The load's word and byte counters and the tiles' write ports."""
        m, p, seq, is_op = self.m, self.p, self.seq, self.is_op
        assert QPARAM_BYTES == HEADER_BYTES   # LOAD_QPARAMS' and LOAD_PROGRAM's words
        lanes = self.field(Opcode.LOAD_ACTS, "lanes")
        self.decoded_word_len = Mux(
            is_op[Opcode.LOAD_ACTS], Mux(lanes.any(), lanes, act_word_bytes(p, self.int4)),
            Mux(is_op[Opcode.LOAD_WEIGHTS], p.cols,
                Mux(is_op[Opcode.LOAD_QPARAMS] | is_op[Opcode.LOAD_PROGRAM], QPARAM_BYTES, 4)))
        self.load_target = Signal(Opcode, init=Opcode.LOAD_WEIGHTS, name="load_target")
        self.load_addr = Signal(p.load_addr_width, name="load_addr")
        # Any count: a load refused for its range still drains its data, word by word.
        self.load_words_left = Signal(8 * dict(isa.FIELDS[Opcode.LOAD_WEIGHTS])["count"],
                                      name="load_words_left")
        self.load_byte = Signal(range(load_word_bytes(p)), name="load_byte")
        self.load_word_len = Signal(range(load_word_bytes(p) + 1), name="load_word_len")
        self.word_done = (self.load_byte == self.load_word_len - 1)
        header_part = Cat(self.field(Opcode.LOAD_BIASES, "multiplier"),
                          self.field(Opcode.LOAD_BIASES, "shift"), Const(0, 8),
                          self.field(Opcode.LOAD_BIASES, "zero_point"))
        self.lanes = load_word_lanes(
            m, p, byte_in=self.link_byte, load_byte=self.load_byte, int4=self.int4,
            biases=self.load_target == Opcode.LOAD_BIASES, header_part=header_part,
            act_write=seq.act_write, weight_write=seq.weight_write,
            qparam_write=seq.qparam_write)
        m.d.comb += [seq.act_write.addr.eq(self.load_addr),
                     seq.weight_write.addr.eq(self.load_addr),
                     seq.qparam_write.addr.eq(self.load_addr)]
        if p.program_depth:
            m.d.comb += [seq.program_write.addr.eq(self.load_addr),
                         seq.program_write.data.eq(self.link_byte.replicate(HEADER_BYTES))]

    def _start_load(self, op, refused=False):
        """A load's counters, from its header; a load ``refused`` for its range writes nothing."""
        self.m.d.sync += [self.load_words_left.eq(self.field(op, "count")),
                          self.load_byte.eq(0), self.load_word_len.eq(self.decoded_word_len)]
        if not refused:
            self.m.d.sync += [self.load_target.eq(op), self.load_addr.eq(self.field(op, "addr"))]

    def _load(self):
        m, seq = self.m, self.seq
        weight_lanes, act_lanes, qparam_lanes = self.lanes
        m.d.comb += self.wants_input.eq(1)
        with m.If(self.advance):
            with m.Switch(self.load_target):
                with m.Case(Opcode.LOAD_WEIGHTS):
                    m.d.comb += seq.weight_write.en.eq(weight_lanes)
                with m.Case(Opcode.LOAD_ACTS):
                    m.d.comb += seq.act_write.en.eq(act_lanes)
                with m.Case(Opcode.LOAD_QPARAMS, Opcode.LOAD_BIASES):
                    m.d.comb += seq.qparam_write.en.eq(qparam_lanes)
                if self.p.program_depth:
                    with m.Case(Opcode.LOAD_PROGRAM):   # its lanes are a qparam entry's
                        m.d.comb += seq.program_write.en.eq(qparam_lanes)
            self._next_load_byte(m, write=True)

    def _discard(self):
        # Data of a load that failed its bounds check: consumed, never written.
        m = self.m
        m.d.comb += self.wants_input.eq(1)
        with m.If(self.advance):
            self._next_load_byte(m, write=False)

    def _next_load_byte(self, m, *, write):
        m.d.sync += self.load_byte.eq(self.load_byte + 1)
        with m.If(self.word_done):
            m.d.sync += [self.load_byte.eq(0), self.load_words_left.eq(self.load_words_left - 1)]
            if write:
                m.d.sync += self.load_addr.eq(self.load_addr + 1)
            with m.If(self.load_words_left == 1):
                m.next = "FETCH"

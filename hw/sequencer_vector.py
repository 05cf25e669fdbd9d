"""The sequencer's vector instructions: the vector unit (:mod:`hw.vector_unit`) on the
activation SRAM's ports while it runs, its decode, and the VECTOR state.

A part of :class:`hw.sequencer._SequencerLogic`, kept apart for size: its methods work on the
registers the sequencer's other parts share (``self.m``, ``self.seq``, ``self.is_op``, ...).
"""

from __future__ import annotations

from amaranth.hdl import Const, EnableInserter, Mux, Signal

from .isa import Opcode
from .vector_unit import VectorOp, VectorUnit

__all__ = ["VectorStates"]


class VectorStates:
    """The vector unit and its state, mixed into the sequencer's logic."""

    def _vector_engine(self):
        """The unit, stepping under the core's enable, and its bytes for the response."""
        m, p, seq = self.m, self.p, self.seq
        self.vector_running = Signal(name="vector_running")
        self.vector_send, self.vector_send_byte = Const(0), Const(0, 8)
        if not p.vector_unit:
            return
        self.vector = unit = VectorUnit(p)
        m.submodules.vector = EnableInserter(seq.enable)(unit)
        m.d.comb += [unit.operands.eq(self.operands), unit.read_data.eq(seq.act_read.data)]
        if p.conv_addressing:   # the map POOL walks
            m.d.comb += self.loops.conv_walk.pool_geometry(unit.geometry)
        self.vector_send, self.vector_send_byte = unit.send_valid, unit.send_byte

    def _vector_ports(self):
        """The activation SRAM's ports handed to the unit in the VECTOR state (after the other
        engines' assignments, which these override)."""
        m, p, seq = self.m, self.p, self.seq
        if not p.vector_unit:
            return
        unit = self.vector
        with m.If(self.vector_running):
            m.d.comb += [seq.act_read.addr.eq(unit.read_addr), seq.act_read.en.eq(unit.read_en)]
            with m.If(unit.write_valid):
                m.d.comb += [seq.act_write.addr.eq(unit.write_addr),
                             seq.act_write.data.eq(unit.write_data),
                             seq.act_write.en.eq(Mux(self.advance, unit.write_lanes, 0))]

    def _vector_decode(self):
        """Decode of a vector instruction that passed its checks. ``READ_ACTS`` sends its
        response header first; the unit starts as the header's last byte leaves
        (:meth:`_vector_after_respond`)."""
        if not self.p.vector_unit:
            return
        m, is_op, unit = self.m, self.is_op, self.vector
        with m.If(is_op[Opcode.VECTOR_CONFIG]):
            m.d.comb += unit.configure.eq(1)
            m.next = "FETCH"
        pool = ((Opcode.POOL, VectorOp.POOL),) if self.p.conv_addressing else ()
        for op, code in ((Opcode.ADD, VectorOp.ADD), (Opcode.AVGPOOL, VectorOp.AVGPOOL),
                         (Opcode.MEAN, VectorOp.MEAN), *pool):
            with m.If(is_op[op]):
                m.d.comb += [unit.start.eq(1), unit.op.eq(code)]
                m.next = "VECTOR"
        with m.If(is_op[Opcode.READ_ACTS]):
            self._respond_then(then="VECTOR")

    def _vector_after_respond(self):
        """In RESPOND's last cycle (enabled) on to VECTOR: a ``READ_ACTS`` starts."""
        self.m.d.comb += [self.vector.start.eq(1), self.vector.op.eq(VectorOp.READ_ACTS)]

    def _vector_state(self):
        m = self.m
        m.d.comb += self.vector_running.eq(1)
        with m.If(self.seq.enable & self.vector.done):
            m.next = "FETCH"

"""The sequencer's MATMUL: the loops' rows into the array, the registers aligning each row's
metadata with the SRAM read data, and the MATMUL state.

A part of :class:`hw.sequencer._SequencerLogic`, kept apart for size: its methods work on the
registers the sequencer's other parts share (``self.m``, ``self.seq``, ``self.is_op``, ...).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal

from . import cycles
from .matmul_loops import MatmulLoops

__all__ = ["MatmulStates"]


class MatmulStates:
    """The MATMUL engine and its state, mixed into the sequencer's logic."""

    def _matmul_engine(self):
        """The MATMUL loops and the registers aligning their rows' metadata with the SRAM read
        data (one cycle of read latency)."""
        m, p, seq, advance = self.m, self.p, self.seq, self.advance
        self.loops = loops = MatmulLoops(p)
        self.issue_act = issue_act = Signal(name="issue_act")
        self.issue_weight = issue_weight = Signal(name="issue_weight")
        self.weight_row = weight_row = Signal(range(p.rows), name="weight_row")
        self.weight_buf_now = weight_buf_now = Signal(name="weight_buf_now")
        m.d.comb += weight_buf_now.eq(loops.weight_buf)

        act_valid_q, act_buf_q, wt_valid_q, wt_buf_q = (
            Signal(name=n) for n in ("act_valid_q", "act_buf_q", "wt_valid_q", "wt_buf_q"))
        act_tag_q = Signal(seq.array_acts.payload.tag.shape(), name="act_tag_q")
        # A conv MATMUL's row outside the feature map: the zero point goes in, not the word.
        pad_q = Signal(name="pad_q")
        lanes = seq.act_read.data.as_value()
        if p.packed_int8_acts:
            # Packed INT8: an odd K tile's values are the word's high half; INT8 reads the low
            # lanes, so the high half moves down (INT4 reads all lanes, in place).
            half_q = Signal(name="half_q")
            m.d.comb += loops.halves.eq(~self.int4)
            with m.If(advance):
                m.d.sync += half_q.eq(loops.half)
            low, high = lanes[:8 * p.rows], lanes[8 * p.rows:]
            lanes = Cat(Mux(half_q, high, low), high)
        walk = loops.conv_walk
        if walk is not None:
            walk.elaborate_into(m)
            with m.If(advance):
                m.d.sync += pad_q.eq(loops.conv & ~walk.inside)
            lanes = Mux(pad_q, walk.zero_point.as_unsigned().replicate(p.act_lanes), lanes)
        wt_row_q = Signal(range(p.rows), name="wt_row_q")
        weight_data = seq.weight_read.data
        if p.conv_addressing:
            # A depthwise tile's word is its diagonal: row r keeps byte r, the others are zero.
            wt_diagonal_q = Signal(name="wt_diagonal_q")
            with m.If(advance):
                m.d.sync += wt_diagonal_q.eq(loops.diagonal)
            weight_data = Cat(*(Mux(wt_diagonal_q & (wt_row_q != c), 0, weight_data[c])
                                for c in range(p.cols)))
        # The valids step in every cycle of the core: the tiles run under its enable, not under
        # advance, so a row read just before the sequencer waits for a byte goes on at once.
        with m.If(seq.enable):
            m.d.sync += [act_valid_q.eq(issue_act & advance), wt_valid_q.eq(issue_weight & advance)]
        with m.If(advance):
            m.d.sync += [wt_row_q.eq(weight_row), wt_buf_q.eq(weight_buf_now),
                         act_buf_q.eq(loops.tile_buf),
                         act_tag_q.addr.eq(loops.acc_base + loops.act.index),
                         act_tag_q.accumulate.eq(loops.accumulate | (loops.k_tiles.index != 0))]
        m.d.comb += [
            seq.array_acts.valid.eq(act_valid_q),
            seq.array_acts.payload.lanes.eq(lanes),
            seq.array_acts.payload.buf.eq(act_buf_q),
            seq.array_acts.payload.tag.eq(act_tag_q),
            seq.array_weights.valid.eq(wt_valid_q),
            seq.array_weights.payload.row.eq(wt_row_q),
            seq.array_weights.payload.buf.eq(wt_buf_q),
            seq.array_weights.payload.data.eq(weight_data),
            seq.act_read.addr.eq(loops.act.address),
            seq.weight_read.addr.eq(loops.weight.address),
        ]

    def _matmul(self):
        m, p, loops = self.m, self.p, self.loops
        m.d.comb += [self.issue_act.eq(loops.act_row_valid),
                     self.issue_weight.eq(loops.weight_row_valid),
                     self.weight_row.eq(loops.weight.index)]
        with m.If(self.seq.enable):
            loops.step(m)
            with m.If(loops.finishing):
                assert cycles.matmul_drain_cycles(p) > 0
                m.d.sync += [self.drain.eq(cycles.matmul_drain_cycles(p)), self.draining.eq(1)]
                m.next = "FETCH"

"""The weight-stationary systolic array: skewed activation rows in, a sum stream per column out."""

from __future__ import annotations

import itertools

from amaranth.hdl import EnableInserter, Module, Mux, ShapeLike, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cycles import acc_read_latency
from .enable import enable_copy, enable_delayed, enable_lead
from .params import RillParams
from .pe import PE_ACT_LAYOUT, ProcessingElement, product_stages

__all__ = ["SystolicArray"]

#: Columns whose weight-write registers share an enable copy on the deep core.
_WEIGHT_GROUP = 4


def input_stages(params: RillParams) -> int:
    """Registers every input stream passes before the skew and the PEs.

    The first: the streams come straight from block RAM read ports, whose clock-to-out (5.8 ns
    on the ECP5) leaves no time for logic after them; it is one register, so it sits by the
    block RAMs. On the deep core two more: per row (the skew; the weights per group of columns),
    then per PE (the weights), so that no register drives the weight enables of a whole row of
    PEs spread across the die and no block RAM output feeds registers across it. The ISA's drain
    bound covers all three (``hw.cycles.MATMUL_DRAIN_EXTRA``).
    """
    return 3 if params.deep_pipeline else 1


def sum_latency(params: RillParams) -> int:
    """Cycles from an activation row on :attr:`SystolicArray.acts` to its column-0 sum."""
    return input_stages(params) + product_stages(params) + params.rows


class SystolicArray(wiring.Component):
    """A ``rows`` x ``cols`` grid of :class:`~hw.pe.ProcessingElement`, input skew, shadow weights.

    Timing contract (clock cycles; the sequencer's schedule and the ISA's cycle costs rely on it):

    - Both input streams pass :func:`input_stages` registers first (``i = input_stages(params)``).
    - An activation row presented (``valid``) on :attr:`acts` in cycle ``t`` meets ``PE[r][c]`` in
      cycle ``t + i + r + c``: row ``r``'s pair passes ``r`` skew registers before column 0, then
      moves one PE right per cycle, carrying the row's ``buf`` bit with it.
    - ``PE[r][c]`` therefore uses weight buffer ``buf`` as it stands in cycle ``t + i + r + c``. A
      weight write for array row ``r`` presented on :attr:`weights` in cycle ``w`` takes effect
      from cycle ``w + i + 1``, so every column of that row sees it iff ``w <= t + r - 1`` (and
      the buffer is not rewritten before ``t + r + c``). This lets the next tile's weights be
      written one row per cycle, trailing the activation wavefront (see
      :func:`hw.cycles.matmul_tile_cycles`).
    - Column ``c``'s sum for that row is on ``sums[c]`` (``valid = 1``, the row's ``tag``) in cycle
      ``t + i + p + rows + c`` (``p = hw.pe.product_stages(params)``, each PE's pipeline), straight
      from the bottom PE's register; bubbles (``valid = 0``) give ``valid = 0`` there. There is
      no deskew: column ``c`` lags column 0 by ``c`` cycles. :func:`sum_latency` is
      ``i + p + rows``.

    ``valid`` and ``tag`` do not pass through the PEs; one shift register of ``rows + cols - 1``
    stages carries them and is tapped at depth ``rows + c`` for column ``c``.

    The array freezes when the core's enable is low, from registered copies of
    :attr:`enable_ahead` (it must not be wrapped in an ``EnableInserter`` itself); the timing
    above counts working cycles.

    Parameters
    ----------
    params : RillParams
        Array shape and partial-sum width.
    tag_shape : shape-castable
        Opaque value carried beside each activation row and returned with its column sums.
    dsp_pes : int
        How many PEs, the first row by row, multiply with ``*`` for the DSP blocks
        (:class:`~hw.pe.ProcessingElement` ``dsp``); the rest build their multipliers from
        adders.

    Members
    -------
    int4 : ``In(1)``
        Precision mode; must not change while rows are in flight.
    enable_ahead : ``In(1, init=1)``
        The core's enable :func:`hw.enable.enable_lead` cycles ahead: 0 freezes every register
        of the array then.
    acts : ``In(stream.Signature({lanes, buf, tag}, always_ready=True))``
        One activation row per cycle. ``lanes`` is ``2 * rows`` int8 values; array row ``r`` takes
        ``(lanes[r], 0)`` in INT8 mode and ``(lanes[2r], lanes[2r+1])`` in INT4 mode. ``buf``
        names the weight buffer the row is computed against.
    weights : ``In(stream.Signature({row, buf, data}, always_ready=True))``
        Broadcast write of one array row of one weight buffer: ``PE[row][c].weights[buf]`` takes
        ``data[c]`` for every ``c`` at the end of the cycle.
    sums : ``Out(stream.Signature({psum, tag}, always_ready=True)).array(cols)``
        Column ``c``'s partial sums (``signed(params.psum_width)``), one per activation row.
    upcoming : ``Out(stream.Signature(tag_shape, always_ready=True)).array(cols)``
        What ``sums[c]`` will carry :func:`hw.cycles.acc_read_latency` cycles later, ``valid`` and
        ``tag``, without the sum: the accumulator reads the row a sum goes to that far ahead, so
        the sum needs no register to wait for the read.
    """

    def __init__(self, params: RillParams, tag_shape: ShapeLike, *, dsp_pes: int = 0):
        self._params = params
        self._tag_shape = tag_shape
        self._dsp_pes = dsp_pes
        act_layout = data.StructLayout({
            "lanes": data.ArrayLayout(signed(8), params.act_lanes), "buf": 1, "tag": tag_shape})
        weight_layout = data.StructLayout({
            "row": range(params.rows), "buf": 1,
            "data": data.ArrayLayout(unsigned(8), params.cols)})
        sum_layout = data.StructLayout({"psum": signed(params.psum_width), "tag": tag_shape})
        super().__init__({
            "int4": In(1),
            "enable_ahead": In(1, init=1),
            "acts": In(stream.Signature(act_layout, always_ready=True)),
            "weights": In(stream.Signature(weight_layout, always_ready=True)),
            "sums": Out(stream.Signature(sum_layout, always_ready=True)).array(params.cols),
            "upcoming": Out(stream.Signature(tag_shape, always_ready=True)).array(params.cols),
        })

    def elaborate(self, platform):
        # The array freezes under its own registered copies of the core's enable, one for its
        # own registers and one per PE, rather than under one register driving the clock enable
        # of every flip-flop in the array (with the PEs' pipeline registers, a net too large to
        # route in a cycle). They are fed through a tree: shared registers, then one per row,
        # then one per PE (hw/enable.py), so no register drives more than a row's worth.
        top = Module()
        m = Module()
        p = self._params
        lead = enable_lead(p)
        reset_less = p.deep_pipeline
        trunk = enable_delayed(top, self.enable_ahead, max(lead - 2, 0), "enable_trunk",
                               reset_less=reset_less)
        branches = ([enable_copy(top, trunk, f"enable_row_{r}", reset_less=reset_less)
                     for r in range(p.rows + 1)] if lead >= 2 else [trunk] * (p.rows + 1))
        enable_own = enable_copy(top, branches[p.rows], "enable_own", reset_less=reset_less)
        top.submodules.pipeline = EnableInserter(enable_own)(m)
        # Each row's skew under an enable copy of its own on the deep core (the weight inputs
        # below under theirs): under enable_own, the input registers would give that one copy
        # thousands of clock enables across the die.
        row_inputs = []
        for r in range(p.rows):
            if lead >= 2:
                row_inputs.append(Module())
                enable = enable_copy(top, branches[r], f"enable_inputs_{r}", reset_less=reset_less)
                top.submodules[f"row_inputs_{r}"] = EnableInserter(enable)(row_inputs[-1])
            else:
                row_inputs.append(m)

        # Both input streams through input_stages registers: delaying both alike keeps every
        # relation between them. Here the first; on the deep core the others per row and per PE.
        deep_inputs = input_stages(p) == 3
        assert input_stages(p) in (1, 3) and (not deep_inputs or lead >= 2)
        acts_valid = Signal()
        # Data registers here and in the skew have no reset (the valids do): with the PEs', they
        # would be most of the reset net, which then spans the die.
        acts = Signal.like(self.acts.payload, name="acts_in", reset_less=True)
        m.d.sync += [acts_valid.eq(self.acts.valid), acts.eq(self.acts.payload)]
        pe_writes = self._weight_writes(top, m, branches, deep_inputs)

        pes = [[ProcessingElement(p, dsp=r * p.cols + c < self._dsp_pes) for c in range(p.cols)]
               for r in range(p.rows)]
        for r in range(p.rows):
            for c in range(p.cols):
                enable = enable_copy(top, branches[r], f"enable_pe_{r}_{c}",
                                     reset_less=reset_less)
                top.submodules[f"pe_{r}_{c}"] = EnableInserter(enable)(pes[r][c])

        self._skew(m, row_inputs, pes, acts)

        for r, c in itertools.product(range(p.rows), range(p.cols)):
            pe = pes[r][c]
            m.d.comb += [
                pe.w_we.eq(pe_writes[r][c][0]),
                pe.w_buf.eq(pe_writes[r][c][1]),
                pe.w_data.eq(pe_writes[r][c][2]),
                pe.psum_in.eq(pes[r - 1][c].psum_out if r > 0 else 0),
            ]
            if c > 0:
                m.d.comb += pe.act_in.eq(pes[r][c - 1].act_out)

        taps, first_sum = self._meta_line(m, acts_valid, acts)

        ahead = acc_read_latency(p)
        assert first_sum >= ahead, "upcoming is a tap of the meta line"
        for c in range(p.cols):
            m.d.comb += [
                self.sums[c].valid.eq(taps[first_sum + c].valid),
                self.sums[c].payload.tag.eq(taps[first_sum + c].tag),
                self.sums[c].payload.psum.eq(pes[p.rows - 1][c].psum_out),
                self.upcoming[c].valid.eq(taps[first_sum + c - ahead].valid),
                self.upcoming[c].payload.eq(taps[first_sum + c - ahead].tag),
            ]
        return top

    def _weight_writes(self, top, m, branches, deep_inputs):
        """Each PE's weight write, ``(enable, buffer, byte)``, through the input registers."""
        p = self._params
        reset_less = p.deep_pipeline
        # The weight write's registers. The shallow core has one, feeding every PE. The deep core
        # has one by the block RAMs, then one per array row and group of columns, each group
        # under an enable copy of its own, then each PE a copy next to it: so that no register
        # broadcasts to every PE's weight enables across the die, and no enable copy drives a
        # whole row's registers.
        pe_writes = [[None] * p.cols for _ in range(p.rows)]   # per PE: (enable, buffer, byte)
        if deep_inputs:
            payload = Signal.like(self.weights.payload, name="weights_in", reset_less=True)
            weights_valid = Signal(name="weights_valid")
            m.d.sync += [payload.eq(self.weights.payload), weights_valid.eq(self.weights.valid)]
            for r, first in itertools.product(range(p.rows), range(0, p.cols, _WEIGHT_GROUP)):
                group, g = Module(), first // _WEIGHT_GROUP
                enable = enable_copy(top, branches[r], f"enable_weights_{r}_{g}",
                                     reset_less=reset_less)
                top.submodules[f"weight_inputs_{r}_{g}"] = EnableInserter(enable)(group)
                # The row's own enable, decided before its register.
                valid = Signal(name=f"weights_valid_{r}_{g}")
                buf = Signal(name=f"weights_buf_{r}_{g}", reset_less=True)
                group.d.sync += [valid.eq(weights_valid & (payload.row == r)),
                                 buf.eq(payload.buf)]
                for c in range(first, min(first + _WEIGHT_GROUP, p.cols)):
                    byte = Signal(8, name=f"weights_in_{r}_{c}", reset_less=True)
                    # No reset even on the PE's write enable: it copies a register that has
                    # one, so a reset of two cycles or more clears it, and the reset net need
                    # not reach every PE across the die.
                    copies = (Signal(name=f"w_we_{r}_{c}", reset_less=True),
                              Signal(name=f"w_buf_{r}_{c}", reset_less=True),
                              Signal(8, name=f"w_data_{r}_{c}", reset_less=True))
                    group.d.sync += [byte.eq(payload.data[c]),
                                     *(copy.eq(value)
                                       for copy, value in zip(copies, (valid, buf, byte)))]
                    pe_writes[r][c] = copies
        else:
            copy = Signal.like(self.weights.payload, name="weights_in_0", reset_less=True)
            valid = Signal(name="weights_valid_0")
            m.d.sync += [copy.eq(self.weights.payload), valid.eq(self.weights.valid)]
            for r, c in itertools.product(range(p.rows), range(p.cols)):
                pe_writes[r][c] = (valid & (copy.row == r), copy.buf, copy.data[c])

        return pe_writes

    def _skew(self, m, row_inputs, pes, acts):
        """Each row's activation operands into its first PE, delayed by the row's number."""
        p = self._params
        lanes = acts.lanes
        # Input skew: row r's operands are selected here (int4 is static while rows are in
        # flight) and delayed r cycles, so the array's diagonal wavefront needs no per-row valid.
        for r in range(p.rows):
            entry = Signal(PE_ACT_LAYOUT, name=f"skew_{r}_in")
            m.d.comb += [
                entry.lo_a.eq(Mux(self.int4, lanes[2 * r], lanes[r])),
                entry.hi_a.eq(Mux(self.int4, lanes[2 * r + 1], lanes[r])),
                entry.buf.eq(acts.buf),
                entry.int4.eq(self.int4),
            ]
            for stage in range(input_stages(p) - 1):   # the deep core's, as the weights'
                delayed = Signal(PE_ACT_LAYOUT, name=f"skew_{r}_pre{stage}", reset_less=True)
                row_inputs[r].d.sync += delayed.eq(entry)
                entry = delayed
            for stage in range(1, r + 1):
                delayed = Signal(PE_ACT_LAYOUT, name=f"skew_{r}_{stage}", reset_less=True)
                row_inputs[r].d.sync += delayed.eq(entry)
                entry = delayed
            m.d.comb += pes[r][0].act_in.eq(entry)


    def _meta_line(self, m, acts_valid, acts):
        """The valid and tag delay line: ``(taps, first_sum)``, tap ``d`` holding what was
        presented ``d`` cycles ago, and the tap of column 0's first sum."""
        p = self._params
        # valid + tag delay line: stage d holds what was presented d cycles ago.
        meta_layout = data.StructLayout({"valid": 1, "tag": self._tag_shape})
        meta = Signal(meta_layout, name="meta_0")
        m.d.comb += [meta.valid.eq(acts_valid), meta.tag.eq(acts.tag)]
        taps = [meta]
        # The meta line starts after the first input register.
        first_sum = input_stages(p) - 1 + product_stages(p) + p.rows
        for d in range(1, first_sum + p.cols):
            stage = Signal(meta_layout, name=f"meta_{d}")
            # The valid has a reset, the tag none on the deep core (a shorter reset net; on the
            # full iCE40 the reset-less tags cost 4 cells more).
            valid = Signal(name=f"meta_valid_{d}")
            tag = Signal(self._tag_shape, name=f"meta_tag_{d}", reset_less=p.deep_pipeline)
            m.d.sync += [valid.eq(taps[-1].valid), tag.eq(taps[-1].tag)]
            m.d.comb += [stage.valid.eq(valid), stage.tag.eq(tag)]
            taps.append(stage)

        return taps, first_sum

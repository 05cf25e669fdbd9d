"""The vector unit: TFLite's int8 ADD, global average pooling, MEAN and windowed max and
average pooling over activation words, and ``READ_ACTS``, beside the array on the activation
SRAM.

Instructions run one at a time, so while the unit works nothing else reads or writes the
activation SRAM: it takes the read port and the write port's byte lanes without arbitration
(the sequencer muxes them to it in its VECTOR state). It reads whole words (``2 * rows`` lanes)
and works a lane a cycle through one datapath per operation (ADD ``RillParams.add_lanes`` lanes
a cycle, through as many), a result written into its byte lane as it leaves; a word's reads
come before any write that could land on it (``hw.isa``'s OVERLAP rule), and a read port that
holds its word (``en`` low) while the lanes go by, or reads the next input words (ADD), reads
nothing a write could collide with: the outputs trail the inputs (``POOL``'s lie apart from
them). ``POOL`` walks the map ``CONV_GEOMETRY`` describes (``hw.pool_walk``, over the conv
walk's registers, an input here), a window's pixels a read each, and keeps every lane's maximum
or sum as it arrives; a window's maxima or averages leave a lane a cycle through AVGPOOL's
datapath (maxima times 1).

Every register steps under the core's enable (the sequencer wraps the unit in an
``EnableInserter``), so cycle costs hold as ``hw.cycles.cycle_cost`` gives them.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import cycles, isa
from .column_select import column_select
from .isa import HEADER_BYTES, VECTOR_SLOTS, Opcode
from .params import RillParams
from .pipeline import delayed
from .pool_walk import PoolWalk, pool_geometry_layout
from .vector_datapaths import add_datapath, pool_datapath

__all__ = ["VectorUnit", "VectorOp"]


class VectorOp:
    """What ``start`` starts (the unit's ``op`` input)."""
    ADD, AVGPOOL, READ_ACTS, MEAN, POOL = 0, 1, 2, 3, 4


def _next_word(m: Module, pointers, left: Signal, flush: Signal, stages: int, again: str):
    """After a word's (a block's) last lane: the pointers on a word, then the next word from
    state ``again``, or, after the last, the datapath's ``stages`` of flush."""
    m.d.sync += [pointer.eq(pointer + 1) for pointer in pointers] + [left.eq(left - 1)]
    with m.If(left == 0):
        m.d.sync += flush.eq(stages)
        m.next = "FLUSH"
    with m.Else():
        m.next = again


class VectorUnit(wiring.Component):
    """The vector unit.

    Members
    -------
    operands : ``In(8 * (HEADER_BYTES - 1))``
        The instruction header's operand bytes (the sequencer's register).
    configure : ``In(1)``
        Decode of a ``VECTOR_CONFIG``: its stage into its slot's registers.
    start : ``In(1)``, op : ``In(3)``
        Decode of the :class:`VectorOp` ``op`` (its header in ``operands``).
    geometry : ``In(pool_geometry_layout(params))``
        The conv walk's geometry, which ``POOL`` walks.
    done : ``Out(1)``
        The instruction's last cycle (the sequencer's VECTOR state ends with it).
    read_addr : ``Out(act_addr_width)``, read_en : ``Out(1)``, read_data : ``In(...)``
        The activation SRAM's read port while the unit runs.
    read_used : ``Out(1)``
        The read's data will be used (the simulation's collision check, ``hw.sram``): a POOL
        window's pixel outside the map reads whatever its wrapped address holds, unused, maybe
        a word an output is being written into.
    write_valid : ``Out(1)``, write_addr : ``Out(act_addr_width)``, write_lanes :
    ``Out(act_lanes)``, write_data : ``Out(8 * act_lanes)``
        Results into byte lanes of a word.
    send_valid : ``Out(1)``, send_byte : ``Out(8)``
        ``READ_ACTS``'s bytes, for the response.
    """

    def __init__(self, params: RillParams):
        self._params = p = params
        super().__init__({
            "operands": In(8 * (HEADER_BYTES - 1)),
            "configure": In(1),
            "start": In(1), "op": In(3),
            "geometry": In(pool_geometry_layout(p)),
            "done": Out(1),
            "read_addr": Out(p.act_addr_width), "read_en": Out(1), "read_used": Out(1),
            "read_data": In(data.ArrayLayout(signed(8), p.act_lanes)),
            "write_valid": Out(1), "write_addr": Out(p.act_addr_width),
            "write_lanes": Out(p.act_lanes), "write_data": Out(8 * p.act_lanes),
            "send_valid": Out(1), "send_byte": Out(8),
        })

    def field(self, op: Opcode, name: str) -> Value:
        offset, size = isa.field_offsets(op)[name]
        return self.operands[8 * offset:8 * (offset + size)]

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.act_lanes
        aw = p.act_addr_width
        # ADD's datapaths side by side: a group of add_lanes lanes a cycle.
        group_bits = p.add_lanes.bit_length() - 1

        # -- the stages VECTOR_CONFIG sets ---------------------------------------------------
        stages = [{"multiplier": Signal(signed(32), name=f"slot{i}_multiplier"),
                   "shift": Signal(5, name=f"slot{i}_shift"),
                   "offset": Signal(signed(16), name=f"slot{i}_offset"),
                   "lo": Signal(signed(8), name=f"slot{i}_lo"),
                   "hi": Signal(signed(8), name=f"slot{i}_hi")} for i in range(VECTOR_SLOTS)]
        with m.If(self.configure):
            with m.Switch(self.field(Opcode.VECTOR_CONFIG, "slot")):
                for i, stage in enumerate(stages):
                    with m.Case(i):
                        m.d.sync += [reg.eq(self.field(Opcode.VECTOR_CONFIG, name))
                                     for name, reg in stage.items()]

        # -- the walk: pointers and counters -------------------------------------------------
        ptr_a = Signal(aw, name="ptr_a")        # ADD: a; AVGPOOL and READ_ACTS: the input
        ptr_b = Signal(aw, name="ptr_b")
        ptr_out = Signal(aw, name="ptr_out")
        left = Signal(16, name="left")          # words (groups) after this one
        pixels_last = Signal(16, name="pixels_last")
        pixel = Signal(16, name="pixel")
        lane = Signal(range(lanes), name="lane")
        add_last_lane = Signal(range(lanes), name="add_last_lane")   # ADD's lanes - 1
        group = lane[group_bits:]      # ADD's lane group (its lane steps by add_lanes)
        flush = Signal(range(cycles.VECTOR_ADD_STAGES + 1), name="flush")
        half = Signal(15, name="pool_half")
        reciprocal = Signal(24, name="pool_reciprocal")
        shift = Signal(8, name="pool_shift")
        word_a = Signal(8 * lanes, name="word_a")
        # ADD of words of ADD_OVERLAP_GROUPS groups or more reads the next word's a and b during
        # a word's lanes: b's word leaves the read register for word_b, the next a waits in
        # next_a (hw.cycles.add_cycles).
        word_b = Signal(8 * lanes, name="word_b")
        next_a = Signal(8 * lanes, name="next_a")
        add_overlap = Signal(name="add_overlap")
        # The read-ahead's address and enable for the next cycle of ADD_LANES, set a cycle
        # early: the lane's group, a pointer select and an increment in front of the
        # activation SRAM's address pins made the 85F's critical path (18 of its 21 ns routing
        # across the die, the logic between lane register and pins in it).
        ahead_addr = Signal(aw, name="add_ahead_addr")
        ahead_en = Signal(name="add_ahead_en")
        sums = [Signal(signed(24), name=f"sum{i}") for i in range(lanes)]
        sum_valid = Signal(name="sum_valid")    # the read data is a word of the block
        sum_first = Signal(name="sum_first")    # ... its first
        issue_add, issue_pool = Signal(name="issue_add"), Signal(name="issue_pool")
        # MEAN: AVGPOOL's walk and sums, each lane's sum plus the block's input offsets into
        # ADD's datapath at its sum register.
        mean, issue_mean = Signal(name="mean"), Signal(name="issue_mean")
        mean_bias = Signal(signed(32), name="mean_bias")   # pixels x stage 0's offset
        # POOL: the window walk; a pixel outside the map counts for nothing.
        walk = PoolWalk(p, self.geometry)
        pool_max = Signal(name="pool_max")    # POOL's maxima (else sums)
        issue_window = Signal(name="issue_window")
        last_lane = lane == lanes - 1
        # The read data through a register of its own: the activation SRAM's block RAMs have no
        # output register, so their clock-to-out and bank multiplexer end here, not in the
        # lane selects and adders behind (a word reaches it two cycles after its read; the
        # block RAMs hold it while read_en is low).
        read_lanes = Signal(8 * lanes, name="read_q")
        m.d.sync += read_lanes.eq(self.read_data.as_value())
        m.d.comb += [self.read_addr.eq(ptr_a), self.read_en.eq(1), self.read_used.eq(1)]
        sum_pending = Signal(name="sum_pending")   # the read data register's word is next
        sum_pending_first = Signal(name="sum_pending_first")
        sum_pending_inside = Signal(name="sum_pending_inside")
        sum_inside = Signal(name="sum_inside")   # ... a pixel inside the map
        m.d.sync += [sum_pending.eq(0), sum_pending_first.eq(0), sum_pending_inside.eq(0),
                     sum_valid.eq(sum_pending), sum_first.eq(sum_pending_first),
                     sum_inside.eq(sum_pending_inside)]

        with m.FSM(name="vector"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += pool_max.eq((self.op == VectorOp.POOL)
                                            & (self.field(Opcode.POOL, "average") == 0))
                    with m.Switch(self.op):
                        with m.Case(VectorOp.ADD):
                            m.d.sync += [ptr_a.eq(self.field(Opcode.ADD, "a_addr")),
                                         ptr_b.eq(self.field(Opcode.ADD, "b_addr")),
                                         ptr_out.eq(self.field(Opcode.ADD, "out_addr")),
                                         left.eq(self.field(Opcode.ADD, "words") - 1),
                                         add_last_lane.eq(self.field(Opcode.ADD, "lanes") - 1),
                                         add_overlap.eq(
                                             (self.field(Opcode.ADD, "lanes") - 1) >> group_bits
                                             >= cycles.ADD_OVERLAP_GROUPS - 1),
                                         mean.eq(0)]
                            m.next = "ADD_READ_A"
                        with m.Case(VectorOp.AVGPOOL, VectorOp.MEAN):   # MEAN: AVGPOOL's fields
                            pixels = self.field(Opcode.AVGPOOL, "pixels")
                            m.d.sync += mean.eq(self.op == VectorOp.MEAN)
                            m.d.sync += [ptr_a.eq(self.field(Opcode.AVGPOOL, "act_addr")),
                                         ptr_out.eq(self.field(Opcode.AVGPOOL, "out_addr")),
                                         left.eq(self.field(Opcode.AVGPOOL, "groups") - 1),
                                         pixels_last.eq(pixels - 1), pixel.eq(0),
                                         half.eq(pixels >> 1),
                                         reciprocal.eq(self.field(Opcode.AVGPOOL, "reciprocal")),
                                         shift.eq(self.field(Opcode.AVGPOOL, "shift"))]
                            m.next = "POOL_READ"
                        with m.Case(VectorOp.POOL):
                            walk.start(m, ptr_a, self.field(Opcode.POOL, "act_addr"),
                                       self.field(Opcode.POOL, "groups"),
                                       self.field(Opcode.POOL, "out_h"))
                            # Maxima through AVGPOOL's datapath as they are: times 1.
                            average = self.field(Opcode.POOL, "average")[0]
                            m.d.sync += [ptr_out.eq(self.field(Opcode.POOL, "out_addr")),
                                         half.eq(Mux(average, self.geometry.kernel >> 1, 0)),
                                         reciprocal.eq(Mux(average, self.field(
                                             Opcode.POOL, "reciprocal"), 1)),
                                         shift.eq(Mux(average,
                                                      self.field(Opcode.POOL, "shift"), 0)),
                                         mean.eq(0)]
                            m.next = "WINDOW_READ"
                        with m.Case(VectorOp.READ_ACTS):
                            m.d.sync += [ptr_a.eq(self.field(Opcode.READ_ACTS, "addr")),
                                         left.eq(self.field(Opcode.READ_ACTS, "count") - 1)]
                            m.next = "SEND_READ"
            # ADD: a word of each input, then its lanes (the read port holding b's word).
            with m.State("ADD_READ_A"):
                m.next = "ADD_READ_B"
            with m.State("ADD_READ_B"):
                m.d.comb += self.read_addr.eq(ptr_b)
                m.next = "ADD_WORD_A"
            with m.State("ADD_WORD_A"):
                m.d.comb += self.read_en.eq(0)
                m.d.sync += [word_a.eq(read_lanes), lane.eq(0),
                             ahead_addr.eq(ptr_a + 1), ahead_en.eq(add_overlap & (left != 0))]
                m.next = "ADD_LANES"
            with m.State("ADD_LANES"):
                # Reads ahead in the first two groups: the next word of a, then of b.
                prefetch = add_overlap & (left != 0)
                m.d.comb += [self.read_en.eq(ahead_en), issue_add.eq(1),
                             self.read_addr.eq(ahead_addr)]
                m.d.sync += [lane.eq(lane + p.add_lanes), ahead_addr.eq(ptr_b + 1),
                             ahead_en.eq(prefetch & (group == 0))]
                with m.If(group == 1):
                    m.d.sync += word_b.eq(read_lanes)
                with m.If(group == 2):
                    m.d.sync += next_a.eq(read_lanes)
                with m.If(group == add_last_lane[group_bits:]):
                    with m.If(prefetch):   # the next word's group 0: a's word after it
                        m.d.sync += [word_a.eq(next_a), lane.eq(0), left.eq(left - 1),
                                     *(pointer.eq(pointer + 1)
                                       for pointer in (ptr_a, ptr_b, ptr_out)),
                                     ahead_addr.eq(ptr_a + 2), ahead_en.eq(left != 1)]
                    with m.Else():
                        _next_word(m, (ptr_a, ptr_b, ptr_out), left, flush,
                                   cycles.VECTOR_ADD_STAGES, "ADD_READ_A")
            # AVGPOOL: a block's words summed as they arrive, then its lanes divided.
            with m.State("POOL_READ"):
                m.d.sync += [ptr_a.eq(ptr_a + 1), pixel.eq(pixel + 1),
                             sum_pending.eq(1), sum_pending_first.eq(pixel == 0),
                             sum_pending_inside.eq(1),
                             mean_bias.eq(Mux(pixel == 0, 0, mean_bias) + stages[0]["offset"])]
                with m.If(pixel == pixels_last):
                    m.next = "POOL_LAST"
            with m.State("POOL_LAST"):   # the block's last word reaches the read register
                m.d.comb += self.read_en.eq(0)
                m.next = "POOL_SUMMED"
            with m.State("POOL_SUMMED"):   # ... and its sums
                m.d.comb += self.read_en.eq(0)
                m.d.sync += [lane.eq(0), pixel.eq(0)]
                m.next = "POOL_LANES"
            with m.State("POOL_LANES"):
                m.d.comb += [self.read_en.eq(0), issue_pool.eq(~mean), issue_mean.eq(mean)]
                m.d.sync += lane.eq(lane + 1)
                with m.If(last_lane):
                    _next_word(m, (ptr_out,), left, flush,
                               Mux(mean, cycles.VECTOR_MEAN_STAGES, cycles.VECTOR_POOL_STAGES),
                               "POOL_READ")
            # POOL: a window's pixels read, one a cycle, then its output.
            with m.State("WINDOW_READ"):
                m.d.comb += self.read_used.eq(walk.inside)
                m.d.sync += [sum_pending.eq(1), sum_pending_first.eq(walk.first),
                             sum_pending_inside.eq(walk.inside)]
                walk.step(m, ptr_a)
                with m.If(walk.window_end):
                    m.next = "WINDOW_LAST"
            with m.State("WINDOW_LAST"):   # the window's last pixel reaches the read register
                m.d.comb += self.read_en.eq(0)
                m.next = "WINDOW_SUMMED"
            with m.State("WINDOW_SUMMED"):   # ... and the lanes' maxima or sums
                m.d.comb += self.read_en.eq(0)
                m.d.sync += lane.eq(0)
                m.next = "WINDOW_OUT"
            with m.State("WINDOW_OUT"):   # a lane a cycle
                m.d.comb += [self.read_en.eq(0), issue_window.eq(1)]
                m.d.sync += lane.eq(lane + 1)
                with m.If(last_lane):
                    m.d.sync += ptr_out.eq(ptr_out + 1)
                    with m.If(walk.final):
                        m.d.sync += flush.eq(cycles.VECTOR_WINDOW_STAGES)
                        m.next = "FLUSH"
                    with m.Else():
                        m.next = "WINDOW_READ"
            # READ_ACTS: a word, then its lanes to the response.
            with m.State("SEND_READ"):
                m.next = "SEND_WORD"
            with m.State("SEND_WORD"):
                m.d.comb += self.read_en.eq(0)
                m.d.sync += lane.eq(0)
                m.next = "SEND_LANES"
            with m.State("SEND_LANES"):
                m.d.comb += [self.read_en.eq(0), self.send_valid.eq(1),
                             self.send_byte.eq(read_lanes.word_select(lane, 8))]
                m.d.sync += lane.eq(lane + 1)
                with m.If(last_lane):
                    m.d.sync += [ptr_a.eq(ptr_a + 1), left.eq(left - 1)]
                    with m.If(left == 0):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "SEND_READ"
            with m.State("FLUSH"):
                m.d.comb += self.read_en.eq(0)
                m.d.sync += flush.eq(flush - 1)
                with m.If(flush == 1):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

        # -- the pooling's sums (POOL's maxima): the read register holds a block's word two
        # cycles after its read; a pixel outside the map adds 0, or is -128 to the maximum. A
        # maximum is a sum register's low byte (its high bits hold what the adder gives them):
        # a byte's compare and select a lane, not a 24-bit one.
        with m.If(sum_valid):
            for i, total in enumerate(sums):
                value = read_lanes.word_select(i, 8).as_signed()
                taken = Mux(sum_inside, value, Mux(pool_max, -128, 0))
                largest = total[:8].as_signed()
                added = total + taken
                low = Mux(pool_max, Mux(taken > largest, taken, largest)[:8], added[:8])
                m.d.sync += total.eq(Mux(sum_first, taken, Cat(low, added[8:24])))
        # The lane's sum in two register stages, as STORE selects a column: a sum of each group
        # of four lanes by the lane's low bits, then the group. One 32-way select of 24-bit
        # words, with the lane bits' fanout, and the adder behind it (the pooling's magnitude,
        # MEAN's offsets) do not fit a cycle on a large part.
        lane_sum = Signal(signed(24), name="lane_sum")
        selected = column_select(m, sums, lanes, lane, delayed(m, lane, 1, "lane_late"), 1,
                                 registered=True, name="lane_group")
        m.d.sync += lane_sum.eq(Mux(pool_max, selected[:8].as_signed(), selected))
        # MEAN's offsets beside it: the next block's first read restarts mean_bias while its
        # last lane's sum is still being selected.
        lane_bias = delayed(m, mean_bias, 2, "lane_bias")
        # b: the read register in a word's first two groups, then word_b.
        b_read = group < 2
        add_outs = [add_datapath(m, stages, word_a, read_lanes, word_b, b_read, group, i,
                                       p.add_lanes,
                                       mean if i == 0 else 0,
                                       (lane_sum + lane_bias)[:32].as_signed())
                    for i in range(p.add_lanes)]
        pool_out = pool_datapath(m, lane_sum, half, reciprocal, shift)
        # POOL's outputs clamped to the fused activation's range (stage 2's).
        lo, hi = stages[2]["lo"], stages[2]["hi"]
        raised = Mux(pool_out.as_signed() < lo, lo, pool_out.as_signed())
        window_byte = Signal(8, name="window_byte")
        m.d.sync += window_byte.eq(Mux(raised > hi, hi, raised)[:8])

        # -- writes: the destination travels beside each datapath: whether it writes, the word,
        # the lane (ADD: the group, and which of its lanes are below the instruction's last) -----
        add_mask = Cat(Cat(Const(i, group_bits), group) <= add_last_lane
                       for i in range(p.add_lanes))
        for (valid, where, word, depth, name) in (
                (issue_add, Cat(group, add_mask), Cat(add_outs).replicate(lanes // p.add_lanes),
                 cycles.VECTOR_ADD_STAGES, "add"),
                (issue_pool, lane, pool_out.replicate(lanes), cycles.VECTOR_POOL_STAGES,
                 "pool"),
                (issue_mean, lane, add_outs[0].replicate(lanes), cycles.VECTOR_MEAN_STAGES,
                 "mean"),
                (issue_window, lane, window_byte.replicate(lanes),
                 cycles.VECTOR_WINDOW_STAGES, "window")):
            dest = delayed(m, Cat(valid, ptr_out, where), depth, f"{name}_dest")
            where = dest[1 + aw:]
            if name == "add":
                at, mask = where[:len(group)], where[len(group):]
                write_lanes = mask << (at << group_bits)
            else:
                write_lanes = Const(1, 1) << where
            with m.If(dest[0]):
                m.d.comb += [self.write_valid.eq(1), self.write_addr.eq(dest[1:1 + aw]),
                             self.write_lanes.eq(write_lanes[:lanes]),
                             self.write_data.eq(word)]
        return m

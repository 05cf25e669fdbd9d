"""The checks an instruction header passes before the sequencer executes it.

Decode refuses, with a status, unknown opcodes, mode values that do not exist, zero lengths and
anything that would touch memory past the end of a tile. The range checks multiply fields: the
products are taken as the header's second-to-last byte comes in, the sums and compares in its last
fetch cycle, the status from those and the other checks in the cycle after
(``hw.cycles.CHECK_CYCLES``), each registered, so decode itself only tests registered bits and small
fields. The accumulator rows' product runs a cycle later (its factors registered first), and so
does MATMUL's weight rows' (``k_tiles * n_tiles``, then times ``rows``); their compares join the
status's cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import isa
from .isa import HEADER_BYTES, Opcode, OutType, Precision, Rounding, Status
from .load_lanes import act_word_bytes
from .params import RillParams

__all__ = ["InstructionChecks"]

_LOADS = isa.LOAD_OPCODES


def _past(base: Value, length: Value, depth: int) -> Value:
    """``base + length > depth``, for unsigned fields and a length that is negative only when
    decode refuses the instruction for its length anyway.

    Either operand at or above ``2**w > depth`` is past the end on its own, so the sum needs only
    ``w`` bits of each: on a small part that is half the width of the 16-bit fields and their
    products.
    """
    w = depth.bit_length()
    return base[w:].any() | length[w:].any() | (base[:w] + length[:w] > depth)


def _times(value: Value, factor: int) -> Value:
    """``value * factor`` for a constant ``factor``, as shifts and adds (no multiplier)."""
    terms = [value << bit for bit in range(factor.bit_length()) if factor >> bit & 1]
    return sum(terms[1:], terms[0])


def _ceil_div(value: Value, divisor: int) -> Value:
    """``ceil(value / divisor)`` for an unsigned ``value`` and a constant ``divisor``: a shift
    for a power of two, else a multiply by the rounded-up reciprocal, exact for every value of
    ``len(value) + 1`` bits when the reciprocal carries ``width + bits(divisor)`` fraction bits."""
    x = value + (divisor - 1)
    if divisor & (divisor - 1) == 0:
        return x >> (divisor.bit_length() - 1)
    fraction = len(value) + 1 + divisor.bit_length()
    return _times(x, -(-(1 << fraction) // divisor)) >> fraction


def _depthwise_without_conv(flags: Value) -> Value:
    f = isa.MatmulFlags
    return (flags & f.DEPTHWISE.value).any() & ~(flags & f.CONV.value).any()


class InstructionChecks(wiring.Component):
    """Status of the header in the sequencer's registers, and the product MATMUL's execution needs.

    Members
    -------
    opcode : ``In(8)``, operands : ``In(8 * (HEADER_BYTES - 1))``
        The sequencer's header registers (operand byte ``i`` at bits ``8 i``), filled one byte a
        cycle by shifting in at the top.
    next_byte : ``In(8)``
        The header byte being taken (the sequencer's command input).
    latch_early : ``In(1)``
        Asserted in the cycle the header's third-to-last byte is taken.
    latch_products : ``In(1)``
        Asserted in the cycle the header's second-to-last byte is taken (``next_byte``): every
        byte before it is in ``operands``, two bytes higher than at decode.
    latch : ``In(1)``
        Asserted in the cycle the header's last byte is taken: everything but that byte is in
        ``operands``, one byte higher than at decode.
    status : ``Out(Status)``
        :data:`~hw.cycles.CHECK_CYCLES` cycles after ``latch`` (a register, and so from the decode
        cycle on): ``OK`` or why the instruction is refused.
    ok : ``Out(1)``
        ``status == OK``, a register of its own: decode's enables start from it, not a compare.
    out_type : ``In(OutType)``
        The configured output type (a UINT8 output cannot go to the activation SRAM).
    in_program : ``In(1)``
        The header comes from the program memory (``RUN`` and ``LOAD_PROGRAM`` are refused).
    int4 : ``In(1)``
        The configured precision (a narrow ``LOAD_ACTS`` fits in its word).
    conv_k_tiles, conv_words : ``In(24)``
        The convolution geometry's K tiles and feature-map words (``hw.conv_walk.ConvWalk``):
        a conv MATMUL's ``k_tiles`` must match, and its map must lie inside the SRAM.
    conv_kernel : ``In(16)``, conv_chunks : ``In(8)``
        The geometry's kernel offsets and channel chunks: a depthwise MATMUL's ``k_tiles`` and
        ``n_tiles``.
    conv_plane : ``In(16)``, conv_out_w : ``In(8)``
        The geometry's input pixels and output row: a ``POOL``'s words in and out.
    tiles : ``Out(16)``
        ``MATMUL``'s ``k_tiles * n_tiles``.
    store_values : ``Out(...)``
        ``STORE``'s values per row, ``(n_tiles - 1) * cols + last_cols``.
    """

    def __init__(self, params: RillParams):
        self._params = params
        super().__init__({
            "opcode": In(8),
            "operands": In(8 * (HEADER_BYTES - 1)),
            "next_byte": In(8),
            "latch_early": In(1),
            "latch_products": In(1),
            "latch": In(1),
            "out_type": In(OutType),
            "in_program": In(1),
            "int4": In(1),
            "conv_k_tiles": In(24),
            "conv_words": In(24),
            "conv_kernel": In(16),
            "conv_chunks": In(8),
            "conv_plane": In(16),
            "conv_out_w": In(8),
            "status": Out(Status),
            "ok": Out(1),
            "tiles": Out(16),
            "store_values": Out(16 + params.cols.bit_length()),
        })

    def elaborate(self, platform):
        m = Module()
        store = self.opcode == Opcode.STORE
        out_of_range, acc_over, weight_over, mm_kn = self._range_checks(m)
        acts_over = self._store_to_acts_check(m, store) if self._params.store_to_acts else 0
        overlap = self._vector_overlap(m) if self._params.vector_unit else 0
        with m.If(self.latch):
            m.d.sync += self.tiles.eq(mm_kn)

        # -- the status: its parts taken in the last fetch cycle, combined in the next ---------
        # (cycles.CHECK_CYCLES): DECODE starts from a register, not from the checks' logic in
        # front of the sequencer's decode, and the range checks' adds and compares do not share
        # a cycle with the priority among the checks.
        status = Signal(Status)   # every check but the range checks, in priority order
        first_status = Signal(Status)
        range_bad, overlap_bad = Signal(), Signal()
        with m.If(self.latch):
            m.d.sync += [first_status.eq(status), range_bad.eq(out_of_range),
                         overlap_bad.eq(overlap)]
        # Out of range comes last: any other refusal takes precedence. MATMUL and STORE (the
        # only opcodes with accumulator rows) are OK so far only if their flags and shapes are.
        matmul = self.opcode == Opcode.MATMUL
        acc_checked = matmul | store
        refused_for_range = (first_status == Status.OK) & (
            range_bad | (acc_checked & acc_over) | (matmul & weight_over) | acts_over)
        refused_for_overlap = (first_status == Status.OK) & overlap_bad
        m.d.sync += [self.status.eq(Mux(refused_for_range, Status.OUT_OF_RANGE,
                                        Mux(refused_for_overlap, Status.OVERLAP, first_status))),
                     self.ok.eq((first_status == Status.OK) & ~refused_for_range
                                & ~refused_for_overlap)]

        self._field_checks(m, status)
        return m

    def _header_field(self, op, name, to_come):
        """A field where it sits while the header's last ``to_come`` bytes are still to come, the
        first of them on ``next_byte`` (the operand register fills from the top)."""
        header = Cat(self.operands, self.next_byte)
        offset, size = isa.field_offsets(op)[name]
        assert offset + size <= HEADER_BYTES - to_come, (op, name, "not in yet")
        return header[8 * (offset + to_come):8 * (offset + to_come + size)]

    def _early_field(self, op, name):
        """The range checks, in the header's last fetch cycle, registered: DECODE then starts
        from registers, not from multiply-add-compare chains."""
        return self._header_field(op, name, 1)

    def _product_field(self, op, name):
        """The products' factors, registered a cycle earlier still, so that a multiplier, an
        adder and a compare never share a cycle; from the operand register only: a path from
        the byte coming in (the fetch's byte select) through a multiplier does not fit a cycle
        on a large part."""
        offset, size = isa.field_offsets(op)[name]
        assert offset + size <= HEADER_BYTES - 3, (op, name, "the byte coming in")
        return self._header_field(op, name, 2)

    def _range_checks(self, m):
        """Whether the instruction touches memory past a tile's end: ``(out_of_range, acc_over,
        weight_over, mm_kn)``, the first for the header's last fetch cycle, the other checks for
        the status's cycle, and MATMUL's ``k_tiles * n_tiles``."""
        p = self._params
        header_field, early_field = self._header_field, self._early_field
        product_field = self._product_field

        def load_depth(op):
            return {Opcode.LOAD_WEIGHTS: p.weight_depth, Opcode.LOAD_ACTS: p.act_depth,
                    Opcode.LOAD_QPARAMS: p.qparam_depth, Opcode.LOAD_BIASES: p.qparam_depth,
                    Opcode.LOAD_PROGRAM: max(1, p.program_depth)}[op]

        # MATMUL's weight rows (k_tiles * n_tiles * rows) a cycle later on the deep core, so the
        # multiplier and the adds of times rows do not share a cycle. The shallow core keeps
        # them in one (a separate compare costs the full iCE40 cells it does not have).
        late_weight = p.deep_pipeline
        mm_kn = Signal(16)         # k_tiles * n_tiles
        mm_kn_rows = Signal(16 + p.rows.bit_length())
        mm_km = Signal(24)         # activation words: k_tiles (or half that, rounded up) * m
        # The accumulator rows an instruction touches, n_tiles * m of MATMUL or STORE (one
        # multiplier serves both), take a cycle more: the factors registered first, the product
        # in the last fetch cycle, the check with the status: no path runs from the command
        # byte through a multiplier, which placement may put far from the sequencer.
        acc_n, acc_m = Signal(8, name="acc_n"), Signal(16, name="acc_m")
        # MATMUL's accumulator fields are where STORE has them (hw.isa.FIELDS): one field each.
        assert all(isa.field_offsets(Opcode.MATMUL)[name] == isa.field_offsets(Opcode.STORE)[name]
                   for name in ("acc_addr", "m", "n_tiles"))
        acc_rows, acc_base = Signal(24, name="acc_rows"), Signal(16, name="acc_base")
        st_q_count = self.store_values   # STORE's qparam entries

        def weight_words(kn: Value, kn_rows: Value) -> Value:
            """MATMUL's weight words: ``kn_rows``, or, depthwise, ``kn`` (a word a tile)."""
            if not p.conv_addressing:
                return kn_rows
            return Mux((header_field(Opcode.MATMUL, "flags", 1)
                        & isa.MatmulFlags.DEPTHWISE.value).any(), kn, kn_rows)
        with m.If(self.latch_early):
            m.d.sync += st_q_count.eq(
                _times(self._header_field(Opcode.STORE, "n_tiles", 3) - 1, p.cols)
                + self._header_field(Opcode.STORE, "last_cols", 3))
        with m.If(self.latch_products):
            k_tiles = product_field(Opcode.MATMUL, "k_tiles")
            n_tiles = product_field(Opcode.MATMUL, "n_tiles")
            kn = k_tiles * n_tiles
            # Packed INT8 activations: two K tiles a word.
            k_words = Mux(self.int4, k_tiles, (k_tiles + 1) >> 1) if p.packed_int8_acts \
                else k_tiles
            m.d.sync += [
                mm_kn.eq(kn),
                # On the shallow core (the full iCE40) in this cycle, its compare in the next
                # (where the DEPTHWISE flag is in).
                *([] if late_weight else [mm_kn_rows.eq(_times(kn, p.rows))]),
                mm_km.eq(k_words * product_field(Opcode.MATMUL, "m")),
                acc_n.eq(n_tiles),
                acc_m.eq(product_field(Opcode.MATMUL, "m")),
            ]

        mm = {name: early_field(Opcode.MATMUL, name) for name in ("act_addr", "weight_addr",
                                                                  "acc_addr")}
        st = {name: early_field(Opcode.STORE, name) for name in ("q_addr",)}
        with m.If(self.latch):
            m.d.sync += [acc_rows.eq(acc_n * acc_m),
                         acc_base.eq(mm["acc_addr"]),
                         # A cycle after its product too: the 8x8 multiplier and the adds of
                         # times rows in separate cycles.
                         *([mm_kn_rows.eq(weight_words(mm_kn, _times(mm_kn, p.rows)))]
                           if late_weight else [])]
        # In the status's cycle; the header is all in the operand register by then.
        acc_over = _past(acc_base, acc_rows, p.acc_depth)
        weight_over = _past(header_field(Opcode.MATMUL, "weight_addr", 0), mm_kn_rows,
                            p.weight_depth) if late_weight else 0
        if p.vector_unit:   # AVGPOOL's and POOL's words, a cycle ahead like the other products
            self.pool_words = Signal(24, name="pool_words")
            self.pool_out_words = Signal(24, name="pool_out_words")
            out_plane = Signal(16, name="pool_out_plane")   # POOL's out_h * out_w
            with m.If(self.latch_early):
                m.d.sync += out_plane.eq(self._header_field(Opcode.POOL, "out_h", 3)
                                         * self.conv_out_w)
            with m.If(self.latch_products):
                # POOL's groups and AVGPOOL's are one field; its input pixels the geometry's.
                assert (isa.field_offsets(Opcode.POOL)["groups"]
                        == isa.field_offsets(Opcode.AVGPOOL)["groups"])
                groups = product_field(Opcode.AVGPOOL, "groups")
                m.d.sync += [self.pool_words.eq(groups * Mux(
                                 self.opcode == Opcode.POOL, self.conv_plane,
                                 product_field(Opcode.AVGPOOL, "pixels"))),
                             self.pool_out_words.eq(groups * out_plane)]
        out_of_range = Signal()
        m.d.comb += out_of_range.eq(0)
        with m.Switch(self.opcode):
            for op in _LOADS:
                with m.Case(op):
                    m.d.comb += out_of_range.eq(
                        _past(early_field(op, "addr"), early_field(op, "count"), load_depth(op)))
            with m.Case(Opcode.MATMUL):
                conv = (early_field(Opcode.MATMUL, "flags") & isa.MatmulFlags.CONV.value).any()
                act_words = Mux(conv, self.conv_words, mm_km) if p.conv_addressing else mm_km
                m.d.comb += out_of_range.eq(
                    _past(mm["act_addr"], act_words, p.act_depth)
                    | (0 if late_weight else _past(mm["weight_addr"],
                                                   weight_words(mm_kn, mm_kn_rows),
                                                   p.weight_depth)))
            with m.Case(Opcode.STORE):
                m.d.comb += out_of_range.eq(
                    _past(st["q_addr"], st_q_count, p.qparam_depth))
            with m.Case(Opcode.RUN):
                m.d.comb += out_of_range.eq(
                    _past(early_field(Opcode.RUN, "addr"), early_field(Opcode.RUN, "count"),
                          max(1, p.program_depth)))
            if p.vector_unit:
                self._vector_ranges(m, out_of_range)
        return out_of_range, acc_over, weight_over, mm_kn

    def _vector_ranges(self, m, out_of_range):
        """The vector instructions' words past the activation SRAM's end (cases of the range
        checks' switch)."""
        depth, early = self._params.act_depth, self._early_field
        add_words = early(Opcode.ADD, "words")
        with m.Case(Opcode.ADD):
            m.d.comb += out_of_range.eq(Cat(_past(early(Opcode.ADD, name), add_words, depth)
                                            for name in ("a_addr", "b_addr", "out_addr")).any())
        with m.Case(Opcode.AVGPOOL, Opcode.MEAN):   # MEAN's fields are AVGPOOL's first
            m.d.comb += out_of_range.eq(
                _past(early(Opcode.AVGPOOL, "act_addr"), self.pool_words, depth)
                | _past(early(Opcode.AVGPOOL, "out_addr"), early(Opcode.AVGPOOL, "groups"),
                        depth))
        with m.Case(Opcode.POOL):
            m.d.comb += out_of_range.eq(
                _past(early(Opcode.POOL, "act_addr"), self.pool_words, depth)
                | _past(early(Opcode.POOL, "out_addr"), self.pool_out_words, depth))
        with m.Case(Opcode.READ_ACTS):
            m.d.comb += out_of_range.eq(_past(early(Opcode.READ_ACTS, "addr"),
                                              early(Opcode.READ_ACTS, "count"), depth))

    def _vector_overlap(self, m) -> Value:
        """An ADD's or AVGPOOL's output starting inside an input (past its first word), or a
        POOL's sharing a word with its input, for the header's last fetch cycle
        (``hw.isa.Status.OVERLAP``)."""
        early = self._early_field

        def inside(base, length, out):
            return (base < out) & (out < base + length)
        overlap = Signal(name="overlap")
        with m.Switch(self.opcode):
            with m.Case(Opcode.ADD):
                out, words = early(Opcode.ADD, "out_addr"), early(Opcode.ADD, "words")
                m.d.comb += overlap.eq(inside(early(Opcode.ADD, "a_addr"), words, out)
                                       | inside(early(Opcode.ADD, "b_addr"), words, out))
            with m.Case(Opcode.AVGPOOL, Opcode.MEAN):
                m.d.comb += overlap.eq(inside(early(Opcode.AVGPOOL, "act_addr"),
                                              self.pool_words,
                                              early(Opcode.AVGPOOL, "out_addr")))
            with m.Case(Opcode.POOL):
                act, out = early(Opcode.POOL, "act_addr"), early(Opcode.POOL, "out_addr")
                m.d.comb += overlap.eq((out < act + self.pool_words)
                                       & (act < out + self.pool_out_words))
        return overlap

    def _store_mode_bad(self, fields: dict[str, Value]) -> Value:
        """STORE flags that exist but do not go together: the INT4 layout or WIDE without
        TO_ACTS; TO_ACTS with RAW or with a UINT8 output; WIDE from a ``q_addr`` that is not a
        multiple of the store lanes."""
        f, flags, p = isa.StoreFlags, fields["flags"], self._params
        if not p.store_to_acts:   # the flags below are unknown ones here
            return Const(0)
        to_acts = (flags & f.TO_ACTS.value).any()
        wide = (flags & f.WIDE.value).any() if p.store_lanes > 1 else 0
        misaligned = (fields["q_addr"][:p.store_lanes.bit_length() - 1] != 0) \
            if p.store_lanes > 1 else 0
        return ((((flags & f.ACTS_INT4.value).any() | wide) & ~to_acts)
                | (wide & misaligned)
                | (to_acts & ((flags & f.RAW.value).any() | (self.out_type == OutType.UINT8))))

    def _matmul_shape_bad(self, f: dict[str, Value]) -> Value:
        """An empty MATMUL, or a conv MATMUL whose tiles are not its geometry's: ``k_tiles``
        its K tiles, or, depthwise, its kernel offsets, with ``n_tiles`` its chunks."""
        empty = (f["m"] == 0) | (f["k_tiles"] == 0) | (f["n_tiles"] == 0)
        if not self._params.conv_addressing:
            return empty
        conv = (f["flags"] & isa.MatmulFlags.CONV.value).any()
        depthwise = (f["flags"] & isa.MatmulFlags.DEPTHWISE.value).any()
        walked = Mux(depthwise,
                     (f["k_tiles"] != self.conv_kernel) | (f["n_tiles"] != self.conv_chunks),
                     f["k_tiles"] != self.conv_k_tiles)
        return empty | (conv & walked)

    def _store_to_acts_check(self, m, store) -> Value:
        """Whether a ``STORE TO_ACTS`` writes past the activation SRAM, for the status's cycle:
        its words, ``ceil(values / values_per_word) * m``, one step a fetch cycle (the values
        at ``latch_early``, the words a row, then the product)."""
        p = self._params
        flags = isa.StoreFlags
        chunks = Signal(len(self.store_values), name="acts_chunks")
        words = Signal(len(chunks) + 16, name="acts_words")
        m_field = Signal(16, name="acts_m")
        with m.If(self.latch_products):
            int4 = (self._header_field(Opcode.STORE, "flags", 2) & flags.ACTS_INT4.value).any()
            m.d.sync += [chunks.eq(Mux(int4,
                                       _ceil_div(self.store_values, p.values_per_word(True)),
                                       _ceil_div(self.store_values, p.values_per_word(False)))),
                         m_field.eq(self._header_field(Opcode.STORE, "m", 2))]
        with m.If(self.latch):
            m.d.sync += words.eq(chunks * m_field)
        to_acts = self._header_field(Opcode.STORE, "flags", 0) & flags.TO_ACTS.value
        return store & to_acts.any() & _past(self._header_field(Opcode.STORE, "act_addr", 0),
                                             words, p.act_depth)

    def _field_checks(self, m, status):
        """Every check but the range checks, in priority order, into ``status``: unknown opcodes,
        mode values that do not exist, unknown flags, zero lengths."""
        p, early_field = self._params, self._early_field
        with m.Switch(self.opcode):
            with m.Case(Opcode.CONFIG):
                mode = {name: early_field(Opcode.CONFIG, name) for name in
                        ("precision", "rounding", "relu", "out_type")}
                modes_ok = ((mode["precision"] <= max(x.value for x in Precision))
                            & (mode["rounding"] <= max(x.value for x in Rounding))
                            & (mode["relu"] <= (isa.RELU_CLAMP if p.clamp
                                                else isa.RELU_ZERO_POINT))
                            & (mode["out_type"] <= max(x.value for x in OutType)))
                m.d.comb += status.eq(Mux(modes_ok, Status.OK, Status.BAD_MODE))
            # Without a program memory, LOAD_PROGRAM and RUN are unknown opcodes (the default).
            programs = (Opcode.LOAD_PROGRAM, Opcode.RUN) if p.program_depth else ()
            for op in (*(op for op in _LOADS if op != Opcode.LOAD_PROGRAM), *programs):
                with m.Case(op):
                    count = early_field(op, "count")
                    in_program = self.in_program if op in programs else Const(0)
                    wide = 0
                    if op == Opcode.LOAD_ACTS:
                        wide = early_field(op, "lanes") > act_word_bytes(p, self.int4)
                    with m.If(in_program):
                        m.d.comb += status.eq(Status.IN_PROGRAM)
                    with m.Elif((count == 0) | wide):
                        m.d.comb += status.eq(Status.BAD_LENGTH)
            # MATMUL and STORE: unknown flags, then empty shapes, then the range check.
            conv_flags = (isa.MatmulFlags.CONV.value | isa.MatmulFlags.DEPTHWISE.value
                          if p.conv_addressing else 0)
            shapes = {
                Opcode.MATMUL: (isa.MatmulFlags.ACCUMULATE.value | conv_flags,
                                self._matmul_shape_bad),
                Opcode.STORE: (isa.StoreFlags.RAW.value | (
                    isa.StoreFlags.TO_ACTS.value | isa.StoreFlags.ACTS_INT4.value
                    if p.store_to_acts else 0)
                    | (isa.StoreFlags.WIDE.value if p.store_lanes > 1 else 0),
                               lambda f: (f["m"] == 0) | (f["n_tiles"] == 0)
                               | (f["last_cols"] == 0) | (f["last_cols"] > p.cols)),
            }
            for op, (known_flags, empty) in shapes.items():
                with m.Case(op):
                    f = {name: early_field(op, name) for name, _ in isa.FIELDS[op]}
                    mode_bad = (self._store_mode_bad(f) if op == Opcode.STORE
                                else _depthwise_without_conv(f["flags"]) if p.conv_addressing
                                else Const(0))   # DEPTHWISE is an unknown flag there
                    with m.If(((f["flags"] & (0xFF ^ known_flags)) != 0) | mode_bad):
                        m.d.comb += status.eq(Status.BAD_MODE)
                    with m.Elif(empty(f)):
                        m.d.comb += status.eq(Status.BAD_LENGTH)
            if p.conv_addressing:
                with m.Case(Opcode.CONV_GEOMETRY):
                    empty = Cat(early_field(Opcode.CONV_GEOMETRY, name) == 0
                                for name in isa.ConvGeometry.NONZERO)
                    with m.If(empty.any()):
                        m.d.comb += status.eq(Status.BAD_LENGTH)
            if p.vector_unit:
                self._vector_fields(m, status)
            with m.Case(Opcode.READ_COUNTERS, Opcode.SYNC, Opcode.INFO):
                pass
            with m.Default():
                m.d.comb += status.eq(Status.UNKNOWN_OPCODE)

    def _vector_fields(self, m, status):
        """The vector instructions' modes and lengths (cases of the field checks' switch);
        ``POOL`` needs the conv walk's geometry (``RillParams.conv_addressing``)."""
        early = self._early_field
        if self._params.conv_addressing:
            with m.Case(Opcode.POOL):
                with m.If(early(Opcode.POOL, "average") > 1):
                    m.d.comb += status.eq(Status.BAD_MODE)
                with m.Elif((early(Opcode.POOL, "groups") == 0)
                            | (early(Opcode.POOL, "out_h") == 0)):
                    m.d.comb += status.eq(Status.BAD_LENGTH)
        with m.Case(Opcode.VECTOR_CONFIG):
            with m.If((early(Opcode.VECTOR_CONFIG, "slot") >= isa.VECTOR_SLOTS)
                      | (early(Opcode.VECTOR_CONFIG, "shift") > isa.VectorStage.MAX_SHIFT)):
                m.d.comb += status.eq(Status.BAD_MODE)
        for op, lengths in ((Opcode.ADD, ("words", "lanes")),
                            (Opcode.AVGPOOL, ("groups", "pixels")),
                            (Opcode.MEAN, ("groups", "pixels")), (Opcode.READ_ACTS, ("count",))):
            with m.Case(op):
                past_word = (early(op, "lanes") > self._params.act_lanes if op == Opcode.ADD
                             else 0)
                with m.If(Cat(early(op, name) == 0 for name in lengths).any() | past_word):
                    m.d.comb += status.eq(Status.BAD_LENGTH)

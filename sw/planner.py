"""Planning a quantized layer call: how it is cut into tiles, groups and chunks, and in what order.

Tiling and loop order
---------------------
``N`` is split into groups of ``cols``-wide tiles, ``K`` into groups of K tiles (a MATMUL's
``k_tiles``), ``M`` into chunks of rows (a MATMUL's ``m``)::

    for each N group:
        load its qparams (all of them once, up front, when qparam SRAM holds all N)
        load the group's weights if they all fit in weight SRAM        # weight-stationary
        for each pass (one chunk, or as many chunks as the accumulators hold):
            for each K group:
                load this K group's weights if they did not all fit
                for each chunk of the pass:
                    load its activations (unless all of A is resident)
                    MATMUL, ACCUMULATE for every K group after the first
            STORE each chunk of the pass (requantized, or RAW int32)

Weights are sent once per layer whenever one N group's weights fit in weight SRAM; activations are
sent once per N group (once in all when A fits in activation SRAM). The planner tries a handful of
group and chunk sizes; of those within :data:`OVERLAP_WIRE_SLACK` of the fewest wire bytes it
keeps the one a full-duplex link finishes soonest (outputs of early chunks travel back while
later rows travel in; see :meth:`TilePlanner._link_bytes`), then the fewest wire bytes, then
the fewest cycles.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

from hw import cycles, isa
from hw.link.protocol import RSP_BUFFER_BYTES

from .program import qparam_wire_bytes

__all__ = ["TilePlan", "TilePlanner", "OVERLAP_WIRE_SLACK"]

_U16 = 0xFFFF
#: How much more than the fewest wire bytes the planner spends to overlap outputs with inputs.
OVERLAP_WIRE_SLACK = 0.03


class TilePlan(NamedTuple):
    """How one layer call of ``m`` rows is cut up (see the module docstring)."""
    m: int
    n_groups: tuple[tuple[int, int], ...]   # (first N tile, tiles)
    k_groups: tuple[tuple[int, int], ...]   # (first K tile, tiles)
    chunks: tuple[tuple[int, int], ...]     # (first row, rows)
    chunks_per_pass: int                    # chunks sharing the accumulators when weights stream
    acts_resident: bool                     # all of A loaded once, up front


def _balanced(total: int, cap: int) -> tuple[tuple[int, int], ...]:
    """``total`` split into ``ceil(total / cap)`` near-equal ``(start, size)`` pieces."""
    pieces = -(-total // cap)
    base, extra = divmod(total, pieces)
    out, at = [], 0
    for i in range(pieces):
        size = base + (i < extra)
        out.append((at, size))
        at += size
    return tuple(out)


def _tapered(total: int, cap: int, end: int) -> tuple[tuple[int, int], ...]:
    """As :func:`_balanced`, but the first and the last piece are ``end`` long: on a link, the
    first outputs leave sooner and fewer wait for the last inputs, at the cost of the pieces
    between being fewer and larger."""
    if cap <= end or total <= 2 * end:
        return _balanced(total, cap)
    middle = tuple((start + end, size) for start, size in _balanced(total - 2 * end, cap))
    return ((0, end),) + middle + ((total - end, end),)


class TilePlanner:
    """The planning half of :class:`sw.compiler.CompiledLinear`: it reads the layer's shape
    (``params``, ``k``, ``n``, ``kc``, ``k_tiles``, ``n_tiles``, ``raw``, ``qparams``) and keeps
    its plans in ``_plans``."""

    def plan(self, m: int) -> TilePlan:
        if m not in self._plans:
            costs = {plan: self._cost(plan) for plan in self._candidates(m)}
            fewest = min(wire for wire, _ in costs.values())
            # Overlap may cost instruction headers, never more than OVERLAP_WIRE_SLACK of wire.
            affordable = [plan for plan, (wire, _) in costs.items()
                          if wire <= fewest * (1 + OVERLAP_WIRE_SLACK)]
            self._plans[m] = min(affordable, key=lambda plan: (self._link_bytes(plan),
                                                               *costs[plan]))
        return self._plans[m]

    def _candidates(self, m: int):
        p, kt_all, nt_all = self.params, self.k_tiles, self.n_tiles
        weight_cap, act_cap = min(p.weight_depth, _U16), min(p.act_depth, _U16)
        ng_cap = min(255, nt_all, p.acc_depth, weight_cap // p.rows)
        if self.n > p.qparam_depth:
            ng_cap = min(ng_cap, p.qparam_depth // p.cols)
        # The widest groups; the widest whose weights stay resident; and a geometric ladder
        # between, where re-sending weights per pass trades against re-sending activations.
        ng_options = {ng_cap, weight_cap // (kt_all * p.rows)} | {1 << i for i in range(8)}
        edge = max(p.rows, p.cols)
        for ng, taper in itertools.product(sorted(x for x in ng_options if 1 <= x <= ng_cap),
                                           (False, True)):
            n_groups = (_tapered(nt_all, ng, 1) if taper else _balanced(nt_all, ng))
            ng = max(size for _, size in n_groups)
            kg_cap = min(255, kt_all, weight_cap // (ng * p.rows), act_cap)
            kg_options = {kg_cap} | {act_cap // (edge << i) for i in range(6)}
            for kg in sorted(x for x in kg_options if 1 <= x <= kg_cap):
                k_groups = _balanced(kt_all, kg)
                kg = max(size for _, size in k_groups)
                resident = kt_all * ng * p.rows <= weight_cap
                all_words = m * sum(self._row_words(kt) for _, kt in k_groups)
                for acts_resident in {False, all_words <= act_cap}:
                    mc_cap = min(_U16, p.acc_depth // ng, m)
                    if not acts_resident:
                        mc_cap = min(mc_cap, act_cap // self._row_words(kg))
                    # Smaller chunks (still filling the array) let outputs stream back while
                    # later rows stream in; _link_bytes weighs that against their headers.
                    for mc, taper in itertools.product(
                            {mc_cap} | {mc_cap >> i for i in range(1, 9) if mc_cap >> i >= edge},
                            (False, True)):
                        chunks = _tapered(m, mc, edge) if taper else _balanced(m, mc)
                        mc = max(size for _, size in chunks)
                        per_pass = 1 if resident else max(1, (p.acc_depth // ng) // mc)
                        yield TilePlan(m, n_groups, k_groups, chunks, per_pass, acts_resident)

    def _row_words(self, k_tiles: int) -> int:
        """Activation words one row of ``k_tiles`` K tiles takes."""
        return self.params.act_words(self.int4, k_tiles)

    def _act_bytes(self, rows: int, k_tiles: int) -> int:
        """Wire bytes of ``rows`` rows of a K group (``CompiledLinear._act_words``: whole
        words, or narrow ones where the layer's K is below a word)."""
        if self.k < self.per_word:
            return rows * k_tiles * self.kc
        return rows * self._row_words(k_tiles) * self.per_word

    def _all_act_bytes(self, plan: TilePlan) -> int:
        """Wire bytes of all of A, chunk by chunk and K group by K group (each chunk's bytes
        are its rows times one row's)."""
        return plan.m * sum(self._act_bytes(1, kt) for _, kt in plan.k_groups)

    def _steps(self, plan: TilePlan):
        """The layer's instructions as ``(kind, args)``; data is resolved only when emitting."""
        p, cols = self.params, self.params.cols
        q_all = self.n <= p.qparam_depth
        yield "config", ()
        if q_all:
            yield "qparams", (0, self.n)
        act_addr = {}
        if plan.acts_resident:
            at = 0
            for c in range(len(plan.chunks)):
                for h, (_, kt) in enumerate(plan.k_groups):
                    act_addr[c, h] = at
                    at += self._row_words(kt) * plan.chunks[c][1]
            yield "acts_all", (self._all_act_bytes(plan),)
        mc = max(rows for _, rows in plan.chunks)
        for t0, nt in plan.n_groups:
            col0 = t0 * cols
            width = min(self.n, (t0 + nt) * cols) - col0
            if not q_all:
                yield "qparams", (col0, width)
            resident = self.k_tiles * nt * p.rows <= min(p.weight_depth, _U16)
            w_addr, at = [], 0
            for _, kt in plan.k_groups:
                w_addr.append(at if resident else 0)
                at += kt * nt * p.rows
            if resident:
                yield "weights", (t0, nt, 0, len(plan.k_groups))
            per_pass = 1 if resident else plan.chunks_per_pass
            for first in range(0, len(plan.chunks), per_pass):
                chunk_ids = range(first, min(first + per_pass, len(plan.chunks)))
                for h, (_, kt) in enumerate(plan.k_groups):
                    if not resident:
                        yield "weights", (t0, nt, h, h + 1)
                    for i, c in enumerate(chunk_ids):
                        rows = plan.chunks[c][1]
                        if not plan.acts_resident:
                            yield "acts", (c, h)
                        yield "matmul", (act_addr.get((c, h), 0), w_addr[h], i * nt * mc, rows,
                                         kt, nt, h > 0)
                for i, c in enumerate(chunk_ids):
                    row0, rows = plan.chunks[c]
                    yield "store", (i * nt * mc, rows, width, col0 if q_all else 0, row0, col0)

    def _cost(self, plan: TilePlan) -> tuple[int, int]:
        """(wire bytes, working cycles without quiet waits) of a plan, counted in closed form.

        Mirrors :meth:`_steps` group by group; ``tests/test_compiler.py`` checks it against the
        emitted programs.
        """
        p, hdr = self.params, isa.HEADER_BYTES
        m, kt_all, chunks = plan.m, self.k_tiles, len(plan.chunks)
        h = len(plan.k_groups)
        out_width = 4 if self.raw else 1
        edge = max(p.rows, p.cols)
        tile_cycles = sum(max(rows, edge) for _, rows in plan.chunks)
        q_all = self.n <= p.qparam_depth
        instructions = 1 + q_all + plan.acts_resident
        act_bytes = self._all_act_bytes(plan)
        data = plan.acts_resident * act_bytes
        if q_all:
            data += qparam_wire_bytes(self.n, *self.qparams[1:])
        matmul_cycles = 0
        for t0, nt in plan.n_groups:
            width = min(self.n, (t0 + nt) * p.cols) - t0 * p.cols
            if not q_all:
                group = slice(t0 * p.cols, t0 * p.cols + width)
                data += qparam_wire_bytes(width, *(q[group] for q in self.qparams[1:]))
            tile_words = kt_all * nt * p.rows
            if tile_words <= min(p.weight_depth, _U16):
                instructions += 1
                data += tile_words * p.cols
            else:
                passes = -(-chunks // plan.chunks_per_pass)
                instructions += passes * h
                data += passes * tile_words * p.cols
            if not plan.acts_resident:
                instructions += chunks * h
                data += act_bytes
            instructions += chunks * h + chunks + (not q_all)
            data += chunks * isa.RESPONSE_HEADER_BYTES + m * width * out_width
            matmul_cycles += nt * kt_all * tile_cycles
        wire = instructions * hdr + data
        # A serial requantizer spends its interval on every output byte (hw.cycles.store_cycles).
        requant_waits = (cycles.requant_interval(p) - 1) * m * self.n * out_width
        return wire, wire + instructions + matmul_cycles + requant_waits

    def _link_bytes(self, plan: TilePlan) -> int:
        """How long a full-duplex link is busy with a plan, in byte times (framing aside).

        Commands go in one after the other; a STORE's outputs can go out once its instruction is
        in, after the outputs before them. Cut M or N finer and more outputs travel while later
        inputs do, at the price of more instruction headers. A STORE with more outputs than a
        quarter of the device's response ring (the rest holds bytes still travelling or not yet
        acknowledged) may stall the core, and with it the inputs: the excess counts on top.
        """
        p, hdr = self.params, isa.HEADER_BYTES
        out_width = 4 if self.raw else 1
        t_in = t_out = stalls = 0
        for kind, args in self._steps(plan):
            t_in += hdr
            if kind == "store":
                size = isa.RESPONSE_HEADER_BYTES + args[1] * args[2] * out_width
                t_out = max(t_out, t_in) + size
                stalls += max(0, size - RSP_BUFFER_BYTES // 4)
            elif kind == "qparams":
                col0, width = args
                t_in += qparam_wire_bytes(width, *(q[col0:col0 + width]
                                                   for q in self.qparams[1:]))
            elif kind == "acts_all":
                t_in += args[0]
            elif kind == "acts":
                c, h = args
                t_in += self._act_bytes(plan.chunks[c][1], plan.k_groups[h][1])
            elif kind == "weights":
                _, nt, h0, h1 = args
                t_in += sum(kt for _, kt in plan.k_groups[h0:h1]) * nt * p.rows * p.cols
        return max(t_in, t_out) + stalls

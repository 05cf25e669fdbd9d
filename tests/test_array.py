"""The systolic array against the tile oracle (``sw.tile_math``), cycle-exact.

Tiles are streamed exactly as the sequencer streams them: tile ``j`` starts in cycle
``T_j = T_{j-1} + matmul_tile_cycles(m)``, uses weight buffer ``j % 2``, and its weight row ``r`` is
written in cycle ``T_j + r - 1`` (trailing the activation wavefront, into the buffer the previous
tile is not using). Every column sum must equal the oracle and appear in exactly cycle
``t + sum_latency(params) + c``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.array import SystolicArray, sum_latency
from hw.cycles import matmul_tile_cycles
from hw.enable import enable_lead
from hw.params import RillParams
from sw.tile_math import tile_psums

TAG = data.StructLayout({"tile": 8, "row": 8})
SHAPES = [(2, 2), (4, 4), (8, 8), (3, 5), (5, 3)]
#: Activation values worth hitting on purpose: the int8 extremes and the sign boundary.
EDGE_ACTS = np.array([-128, 127, -1, 0, 1], dtype=np.int64)


@dataclass
class Schedule:
    """Cycle-by-cycle inputs and the sums they must produce. Cycles count working cycles."""
    params: RillParams
    acts: dict = field(default_factory=dict)       # cycle -> (lanes, buf, tile, row)
    weights: dict = field(default_factory=dict)    # cycle -> (row, buf, bytes[cols])
    expected: dict = field(default_factory=dict)   # tile -> (psums[m, cols], cycles[m, cols])

    def write_weight(self, cycle: int, row: int, buf: int, words: np.ndarray):
        assert cycle not in self.weights, f"two weight writes in cycle {cycle}"
        self.weights[cycle] = (row, buf, words)

    def issue(self, cycle: int, lanes: np.ndarray, buf: int, tile: int, row: int):
        assert cycle not in self.acts, f"two activation rows in cycle {cycle}"
        self.acts[cycle] = (lanes, buf, tile, row)

    def expect(self, tile: int, first_cycle: int, psums: np.ndarray):
        """``psums[i, c]`` from the row issued in ``first_cycle + i``, out in
        ``+ sum_latency(params) + c``."""
        m, cols = psums.shape
        cycles = (first_cycle + sum_latency(self.params)
                  + np.add.outer(np.arange(m), np.arange(cols)))
        self.expected[tile] = (psums, cycles)

    @property
    def length(self) -> int:
        last_in = max([*self.acts, *self.weights])
        return last_in + sum_latency(self.params) + self.params.cols + 2


def random_acts(rng: np.random.Generator, m: int, lanes: int) -> np.ndarray:
    acts = rng.integers(-128, 128, (m, lanes))
    mask = rng.random((m, lanes)) < 0.2
    acts[mask] = rng.choice(EDGE_ACTS, mask.sum())
    return acts


def back_to_back(params: RillParams, int4: bool, ms: list[int], rng: np.random.Generator,
                 t0: int = 3, weight_bytes: np.ndarray | None = None) -> Schedule:
    """Tiles with ``ms[j]`` activation rows each, streamed with no gap between them."""
    sched = Schedule(params)
    start = t0
    for tile, m in enumerate(ms):
        buf = tile % 2
        if weight_bytes is None:
            words = rng.integers(0, 256, (params.rows, params.cols))
        else:
            words = weight_bytes[tile]
        acts = random_acts(rng, m, params.act_lanes)
        for r in range(params.rows):
            sched.write_weight(start + r - 1, r, buf, words[r])
        for i in range(m):
            sched.issue(start + i, acts[i], buf, tile, i)
        sched.expect(tile, start, tile_psums(params, acts, words, int4))
        start += matmul_tile_cycles(params, m)
    return sched


def simulate(params: RillParams, int4: bool, sched: Schedule, stalls: set[int] = frozenset(),
             seed: int = 0, dsp_pes: int = 0) -> list[tuple[int, int, int, int, int]]:
    """Run a schedule; returns ``(cycle, column, tile, row, psum)`` for every valid column sum.

    With ``stalls`` (real cycle numbers from ``enable_lead``: the enable registers start high),
    the core's enable is low in those cycles, set that far ahead on ``enable_ahead`` as the core
    does:
    a stall cycle freezes the array, and its inputs in that cycle are random garbage. The first
    ``dsp_pes`` PEs multiply with ``*``, the rest with adders.
    """
    dut = top = SystolicArray(params, TAG, dsp_pes=dsp_pes)
    lead = enable_lead(params)
    assert not stalls or min(stalls) >= lead
    working = []   # real cycle -> working cycle number, or None for a stall
    work = 0
    while work < sched.length:
        if len(working) in stalls:
            working.append(None)
        else:
            working.append(work)
            work += 1
    rng = np.random.default_rng(seed)
    outputs = []

    def garbage_acts():
        return {"lanes": rng.integers(-128, 128, params.act_lanes).tolist(),
                "buf": int(rng.integers(2)),
                "tag": {"tile": int(rng.integers(256)), "row": int(rng.integers(256))}}

    async def producer(ctx):
        ctx.set(dut.int4, int4)
        for cycle, work in enumerate(working):
            ahead = cycle + lead
            ctx.set(dut.enable_ahead, ahead >= len(working) or working[ahead] is not None)
            if work is None:
                ctx.set(dut.acts.valid, int(rng.integers(2)))
                ctx.set(dut.acts.payload, garbage_acts())
                ctx.set(dut.weights.valid, int(rng.integers(2)))
                ctx.set(dut.weights.payload, {"row": int(rng.integers(params.rows)),
                                              "buf": int(rng.integers(2)),
                                              "data": rng.integers(256, size=params.cols).tolist()})
                await ctx.tick()
                continue
            if work in sched.acts:
                lanes, buf, tile, row = sched.acts[work]
                ctx.set(dut.acts.valid, 1)
                ctx.set(dut.acts.payload, {"lanes": lanes.tolist(), "buf": buf,
                                           "tag": {"tile": tile, "row": row}})
            else:   # a bubble: valid = 0 over random lanes, which must not leak into any sum
                ctx.set(dut.acts.valid, 0)
                ctx.set(dut.acts.payload, garbage_acts())
            if work in sched.weights:
                row, buf, words = sched.weights[work]
                ctx.set(dut.weights.valid, 1)
                ctx.set(dut.weights.payload, {"row": row, "buf": buf, "data": words.tolist()})
            else:
                ctx.set(dut.weights.valid, 0)
            await ctx.tick()

    async def monitor(ctx):
        for work in working:
            if work is not None:
                for c in range(params.cols):
                    if ctx.get(dut.sums[c].valid):
                        out = ctx.get(dut.sums[c].payload)
                        outputs.append((work, c, out.tag.tile, out.tag.row, out.psum))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    return outputs


def check(sched: Schedule, outputs):
    """Every expected sum exactly once, in its cycle; nothing else."""
    got = {tile: (np.full(psums.shape, -1 << 40), np.full(psums.shape, -1))
           for tile, (psums, _) in sched.expected.items()}
    for cycle, c, tile, row, psum in outputs:
        assert tile in got and row < got[tile][0].shape[0], f"stray sum {tile, row, c} @ {cycle}"
        assert got[tile][1][row, c] == -1, f"sum {tile, row, c} came out twice"
        got[tile][0][row, c] = psum
        got[tile][1][row, c] = cycle
    for tile, (psums, cycles) in sched.expected.items():
        assert np.array_equal(got[tile][0], psums), f"tile {tile} sums"
        assert np.array_equal(got[tile][1], cycles), f"tile {tile} timing"


def tile_m_values(params: RillParams) -> list[int]:
    """m = 1, m < rows, m exactly filling a tile slot, and m longer than the slot."""
    full = max(params.rows, params.cols)
    return sorted({1, max(1, params.rows - 1), full, full + 3})


@pytest.mark.parametrize("int4", [False, True], ids=["int8", "int4"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{c}" for r, c in SHAPES])
def test_back_to_back_tiles_match_oracle(shape, int4):
    params = RillParams(rows=shape[0], cols=shape[1])
    rng = np.random.default_rng([*shape, int4])
    ms = [m for m in tile_m_values(params) for _ in range(3)]
    sched = back_to_back(params, int4, ms, rng)
    # Once m fills the slot the array takes a row every cycle: no bubbles between tiles.
    full = [t for t, m in enumerate(ms) if m >= max(params.rows, params.cols)]
    first = min(c for c, a in sched.acts.items() if a[2] == full[0])
    last = max(c for c, a in sched.acts.items() if a[2] == full[-1])
    assert all(c in sched.acts for c in range(first, last + 1))
    check(sched, simulate(params, int4, sched))


@pytest.mark.parametrize("dsp_pes", [0, 2], ids=["adders", "half-dsp"])
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "shallow"])
@pytest.mark.parametrize("int4", [False, True], ids=["int8", "int4"])
def test_every_weight_byte(int4, deep, dsp_pes):
    """All 256 weight bytes, each met by the int8 extremes, in 64 back-to-back 2x2 tiles, with
    the PEs' pipelines of either depth (``RillParams.deep_pipeline``), every PE's multipliers
    built from adders or the top row's with ``*`` (the DSP PEs of a small part)."""
    params = RillParams(rows=2, cols=2, deep_pipeline=deep)
    rng = np.random.default_rng(256 + int4)
    weight_bytes = rng.permutation(256).reshape(64, params.rows, params.cols)
    sched = back_to_back(params, int4, [3] * 64, rng, weight_bytes=weight_bytes)
    check(sched, simulate(params, int4, sched, dsp_pes=dsp_pes))


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "shallow"])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5)], ids=["4x4", "3x5"])
def test_frozen_cycles_change_nothing(shape, deep):
    """Stall cycles (the core's enable low, with garbage on the inputs) are invisible, with the
    enable decided a cycle ahead (shallow) or through the deep core's register tree."""
    params = RillParams(rows=shape[0], cols=shape[1], deep_pipeline=deep)
    rng = np.random.default_rng([*shape, 7])
    sched = back_to_back(params, True, [1, 2, 6, 6, 6, 9, 9], rng)
    lead = enable_lead(params)
    stalls = {int(c) for c in np.flatnonzero(rng.random(sched.length) < 0.3) if c >= lead}
    check(sched, simulate(params, True, sched, stalls=stalls))


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "shallow"])
@pytest.mark.parametrize("int4", [False, True], ids=["int8", "int4"])
def test_weight_write_deadline_is_tight(int4, deep):
    """A write to row r in cycle w reaches column c of a row issued in t iff w <= t + r + c - 1.

    So ``w = t + r - 1`` is the last cycle that updates the whole row (the sequencer's schedule),
    and ``w = t + r`` is too late: column 0 still computes with the old weight while the others
    already use the new one.
    """
    params = RillParams(rows=3, cols=5, deep_pipeline=deep)
    rng = np.random.default_rng(99 + int4)
    sched = Schedule(params)
    base = 1
    trial = 0
    for r in range(params.rows):
        for late in (-1, 0, 1, params.cols - 1):   # w = t + r + late
            buf = trial % 2
            old = rng.integers(0, 256, (params.rows, params.cols))
            new = old.copy()
            new[r] ^= 0x08                 # changes the weight met by a0 by +-8 in either mode
            acts = random_acts(rng, 1, params.act_lanes)
            acts[0, 2 * r if int4 else r] = rng.choice([-128, -3, 5, 127])   # a0 != 0
            for row in range(params.rows):
                sched.write_weight(base + row, row, buf, old[row])
            t = base + params.rows + 1
            sched.issue(t, acts[0], buf, trial, 0)
            sched.write_weight(t + r + late, r, buf, new[r])
            before = tile_psums(params, acts, old, int4)
            after = tile_psums(params, acts, new, int4)
            assert np.all(before != after)   # the trial can tell which weight each column used
            sees_new = np.arange(params.cols) >= late + 1
            sched.expect(trial, t, np.where(sees_new, after, before))
            base = t + params.rows + params.cols
            trial += 1
    check(sched, simulate(params, int4, sched))

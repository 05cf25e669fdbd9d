"""Exact cycle costs of the Rill instruction set (:mod:`hw.isa`): what every instruction takes,
and the pipeline depths the gateware promises them.

The core runs in lockstep under one clock enable: a cycle in which it waits for an input byte or for
the host to take an output byte is a *stall* and freezes everything (array included). Every other
cycle of an instruction is a *working* cycle, and the number of working cycles of every
instruction is the exact function given by :func:`cycle_cost`. The ``cycles`` counter counts
working cycles, so a compiler can predict it exactly; stalls are counted apart. The golden model
and the compiler's prediction step instructions through one :class:`CycleClock`.
"""

from __future__ import annotations

from .isa import (
    COUNTER_NAMES,
    HEADER_BYTES,
    INFO_BYTES,
    LOAD_OPCODES,
    QPARAM_BYTES,
    RESPONSE_HEADER_BYTES,
    Config,
    ConvGeometry,
    Opcode,
    Status,
    StoreFlags,
)
from .params import RillParams

__all__ = [
    "CHECK_CYCLES", "REQUANT_STAGES", "SERIAL_REQUANT_CYCLES", "MATMUL_DRAIN_EXTRA",
    "VECTOR_ADD_STAGES", "VECTOR_POOL_STAGES", "VECTOR_MEAN_STAGES", "ADD_OVERLAP_GROUPS",
    "add_cycles",
    "load_word_bytes", "matmul_tile_cycles", "store_payload_bytes", "store_issues",
    "store_act_words",
    "requant_interval", "requant_latency", "acc_read_latency", "store_select_latency",
    "store_flush_cycles", "store_cycles", "waits_for_quiet", "matmul_drain_cycles",
    "cycle_cost", "CycleClock",
]

#: Working cycles between an instruction header's last byte and its decode: the decode checks'
#: status settles (hw/checks.py).
CHECK_CYCLES = 1
#: Register stages of the requantization pipeline (hw/requant.py builds exactly this many).
REQUANT_STAGES = 14
#: Cycles per output of the serial requantizer (``RillParams.serial_requant``), which is also
#: its latency: hw/requant_serial.py builds exactly this schedule.
SERIAL_REQUANT_CYCLES = 136
#: Working cycles after a MATMUL retires until its last accumulator write has landed:
#: ``rows + cols + MATMUL_DRAIN_EXTRA`` (SRAM read, skew, array, accumulator write). The
#: accumulators write a sum in the cycle it arrives (a cycle later on the deep core); the array's
#: input and PE pipeline registers (``hw.array.sum_latency``) delay it by two to six. A STORE,
#: the one reader, sends its 4-byte response header before its first read and reads a row's
#: columns one per cycle, so on a short array the bound is not even needed; on a tall one it is
#: (``tests/test_core_rtl.py::test_store_of_the_last_row_right_after_matmul``: on a 16x2 deep
#: core it fails with the bound 1 cycle shorter: there is no slack, so a further input or
#: pipeline stage on the deep core must raise this).
MATMUL_DRAIN_EXTRA = 1
#: Register stages from an ADD lane's issue, and an AVGPOOL lane's, to its activation SRAM write
#: (hw/vector_unit.py builds exactly these): AVGPOOL's are the lane's sum selected (two: its
#: group of four lanes, then the group), its magnitude rounded, the product, the shifted and
#: clamped byte.
VECTOR_ADD_STAGES = 11
VECTOR_POOL_STAGES = 5
#: A POOL window's lane's stages from its issue to its write: AVGPOOL's (maxima times 1) and
#: the fused activation's clamp.
VECTOR_WINDOW_STAGES = VECTOR_POOL_STAGES + 1
#: A MEAN lane's stages: its sum selected (two), then into ADD's datapath at the sum register,
#: then ADD's output stage.
VECTOR_MEAN_STAGES = 8
#: An ADD whose words take this many lane groups or more reads the next word's inputs during a
#: word's lanes (its first two groups), so only its first word waits for its reads.
ADD_OVERLAP_GROUPS = 4


#: The geometry after reset (``hw.isa.ConvGeometry``'s defaults).
_DEFAULT_GEOMETRY = ConvGeometry()


def load_word_bytes(params: RillParams, opcode: Opcode, config: Config,
                    fields: dict[str, int] | None = None) -> int:
    """Bytes per word of a ``LOAD_*`` instruction (its ``fields``) under the current
    configuration."""
    if opcode == Opcode.LOAD_WEIGHTS:
        return params.cols
    if opcode == Opcode.LOAD_ACTS:
        return (fields or {}).get("lanes") or params.values_per_word(config.int4)
    if opcode == Opcode.LOAD_QPARAMS:
        return QPARAM_BYTES
    if opcode == Opcode.LOAD_BIASES:
        return 4
    if opcode == Opcode.LOAD_PROGRAM:
        return HEADER_BYTES
    raise ValueError(f"{opcode} is not a load")


def matmul_tile_cycles(params: RillParams, m: int) -> int:
    """Cycles between the starts of consecutive weight tiles.

    A tile streams ``m`` activation rows; the next tile's weights are written into the shadow
    buffer one array row per cycle, trailing the activation wavefront, so a tile must also last at
    least ``rows`` cycles (one weight row per cycle) and ``cols`` cycles (the previous-but-one tile
    must have left the last column before its buffer is overwritten).
    """
    return max(m, params.rows, params.cols)


def store_payload_bytes(m: int, n_tiles: int, last_cols: int, cols: int, raw: bool) -> int:
    n = (n_tiles - 1) * cols + last_cols
    return m * n * (4 if raw else 1)


def store_issues(params: RillParams, fields: dict[str, int]) -> int:
    """Requests a STORE with header ``fields`` issues: a byte each (four a raw value), or,
    ``WIDE``, ``store_lanes`` columns of a row each (the last of a tile's row maybe fewer)."""
    flags = fields["flags"]
    if flags & StoreFlags.WIDE.value:
        lanes = params.store_lanes
        per_row = (fields["n_tiles"] - 1) * (params.cols // lanes) \
            + -(-fields["last_cols"] // lanes)
        return fields["m"] * per_row
    return store_payload_bytes(fields["m"], fields["n_tiles"], fields["last_cols"], params.cols,
                               bool(flags & StoreFlags.RAW.value))


def store_act_words(params: RillParams, m: int, n: int, int4: bool) -> int:
    """Activation words a ``STORE TO_ACTS`` of ``m`` rows of ``n`` values fills: ``m`` for each
    word's worth (``values_per_word``) of the next layer's K."""
    return -(-n // params.values_per_word(int4)) * m


def requant_interval(params: RillParams) -> int:
    """Working cycles between a STORE's requantization requests (1: back to back)."""
    return SERIAL_REQUANT_CYCLES if params.serial_requant else 1


def requant_latency(params: RillParams) -> int:
    """Working cycles from a requantization request to its output byte."""
    return SERIAL_REQUANT_CYCLES if params.serial_requant else REQUANT_STAGES


def acc_read_latency(params: RillParams) -> int:
    """Working cycles from an accumulator row's read address to its data (hw/accumulator.py)."""
    return 2 if params.deep_pipeline else 1


def store_select_latency(params: RillParams) -> int:
    """Working cycles STORE's column select adds after the accumulators' data
    (hw/column_select.py)."""
    return 1 if params.deep_pipeline else 0


def store_flush_cycles(params: RillParams) -> int:
    """Working cycles a STORE spends after issuing its last element: the accumulator read, the
    column select, then the requantizer's latency."""
    return acc_read_latency(params) + store_select_latency(params) + requant_latency(params)


def store_cycles(params: RillParams, issues: int) -> int:
    """Working cycles of a STORE's ``issues`` requests (:func:`store_issues`, at least one),
    from its first request to its last byte: one per :func:`requant_interval`, then the flush."""
    return 1 + (issues - 1) * requant_interval(params) + store_flush_cycles(params)


def add_cycles(params: RillParams, words: int, lanes: int) -> int:
    """An ADD's cycles after its decode: a word's two reads and the read register's cycle, its
    lanes ``add_lanes`` a cycle, then the datapath's stages to the last write. Words of
    :data:`ADD_OVERLAP_GROUPS` groups or more read the next word during their lanes."""
    groups = -(-lanes // params.add_lanes)
    if groups >= ADD_OVERLAP_GROUPS:
        return 3 + words * groups + VECTOR_ADD_STAGES
    return words * (3 + groups) + VECTOR_ADD_STAGES


def pool_cycles(params: RillParams, geometry: ConvGeometry, fields: dict[str, int]) -> int:
    """A POOL's cycles after its decode: per window its pixels' reads (one a cycle, inside the
    map or not), the last one's two cycles to the sums, then its output a lane a cycle; then
    the last lane's stages."""
    window = geometry.kernel + 2 + params.act_lanes
    return (fields["groups"] * fields["out_h"] * geometry.out_w * window
            + VECTOR_WINDOW_STAGES)


def waits_for_quiet(opcode: Opcode) -> bool:
    """Instructions that wait, in their decode cycle, for a previous MATMUL to finish draining.

    STORE reads the accumulators, CONFIG may change the precision under PEs still computing, SYNC
    promises that everything before it is done. Loads and MATMUL overlap the drain safely: the
    drain only reads the array's own pipeline and writes accumulators in order.
    """
    return opcode in (Opcode.CONFIG, Opcode.STORE, Opcode.SYNC)


def matmul_drain_cycles(params: RillParams) -> int:
    return params.rows + params.cols + MATMUL_DRAIN_EXTRA


def cycle_cost(params: RillParams, config: Config, opcode: int, fields: dict[str, int] | None,
               status: Status, quiet_wait: int = 0,
               geometry: ConvGeometry = _DEFAULT_GEOMETRY) -> int:
    """Working cycles of one instruction: header fetch, the checks, one decode cycle, its work.

    ``quiet_wait`` is the number of cycles spent in decode waiting for a MATMUL's drain (only for
    :func:`waits_for_quiet` opcodes; the golden model tracks it); ``geometry`` the last
    ``CONV_GEOMETRY``'s (``POOL`` walks it).
    """
    fetch_decode = HEADER_BYTES + CHECK_CYCLES + 1 + quiet_wait
    respond = RESPONSE_HEADER_BYTES
    if status != Status.OK:
        drained = 0
        if status == Status.OUT_OF_RANGE and Opcode(opcode) in LOAD_OPCODES:
            drained = fields["count"] * load_word_bytes(params, Opcode(opcode), config, fields)
        return fetch_decode + respond + drained
    opcode = Opcode(opcode)
    if opcode in (Opcode.CONFIG, Opcode.RUN, Opcode.CONV_GEOMETRY, Opcode.VECTOR_CONFIG):
        return fetch_decode
    if opcode in LOAD_OPCODES:
        return fetch_decode + fields["count"] * load_word_bytes(params, opcode, config, fields)
    if opcode == Opcode.MATMUL:
        tiles = fields["k_tiles"] * fields["n_tiles"]
        return fetch_decode + tiles * matmul_tile_cycles(params, fields["m"])
    if opcode == Opcode.STORE:
        return fetch_decode + respond + store_cycles(params, store_issues(params, fields))
    if opcode == Opcode.READ_COUNTERS:
        return fetch_decode + respond + 4 * len(COUNTER_NAMES)
    if opcode == Opcode.SYNC:
        return fetch_decode + respond + 2
    if opcode == Opcode.INFO:
        return fetch_decode + respond + INFO_BYTES
    # The vector unit, a lane a cycle, after a word's (a block's) reads and the read
    # register's cycle; to the last write.
    lanes = params.act_lanes
    if opcode == Opcode.ADD:
        return fetch_decode + add_cycles(params, fields["words"], fields["lanes"])
    if opcode in (Opcode.AVGPOOL, Opcode.MEAN):
        return (fetch_decode + fields["groups"] * (fields["pixels"] + 2 + lanes)
                + (VECTOR_POOL_STAGES if opcode == Opcode.AVGPOOL else VECTOR_MEAN_STAGES))
    if opcode == Opcode.POOL:
        return fetch_decode + pool_cycles(params, geometry, fields)
    if opcode == Opcode.READ_ACTS:
        return fetch_decode + respond + fields["count"] * (2 + lanes)
    raise AssertionError(opcode)


class CycleClock:
    """Working-cycle accounting for a stream of instructions, drain overlap included.

    The golden model and the compiler's prediction both run instructions through one of these,
    so the rule for when an instruction waits for a MATMUL's drain exists once.
    """

    def __init__(self, params: RillParams):
        self.params = params
        self.cycles = 0
        self.drain = 0   # working cycles until the last MATMUL's accumulator writes have landed
        self.geometry = ConvGeometry()   # the last CONV_GEOMETRY's, which POOL walks

    def step(self, config: Config, opcode: int, fields: dict[str, int] | None,
             status: Status) -> int:
        """Account one instruction; returns its cost in working cycles."""
        quiet_wait = 0
        if opcode in _OPCODE_VALUES and waits_for_quiet(Opcode(opcode)):
            quiet_wait = max(0, self.drain - HEADER_BYTES - CHECK_CYCLES)
        cost = cycle_cost(self.params, config, opcode, fields, status, quiet_wait, self.geometry)
        self.cycles += cost
        if status == Status.OK and opcode == Opcode.CONV_GEOMETRY.value:
            self.geometry = ConvGeometry.from_fields(fields)
        self.drain = max(0, self.drain - cost)
        if status == Status.OK and opcode == Opcode.MATMUL.value:
            self.drain = matmul_drain_cycles(self.params)
        return cost


_OPCODE_VALUES = {op.value for op in Opcode}

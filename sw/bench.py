"""``python -m sw bench``: measured array utilization and wire traffic for on-chip GEMMs.

Each workload is one program: load everything, read the counters, one MATMUL, read the counters,
STORE, read the counters. The counter deltas are the device's own cycle counts; the prediction
comes from the ISA's cycle costs. Utilization is MACs / (MATMUL cycles x peak MACs per cycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from hw import cycles, isa
from hw.isa import Opcode, Precision
from hw.params import RillParams

from .program import Program, compulsory_bytes, pack_act_words, pack_weight_tiles

__all__ = ["Workload", "BenchRow", "default_workloads", "bench_programs", "measure", "format_table",
           "plot", "write_json", "counter_read_cost", "counter_cycles"]

Executor = Callable[[list[tuple[str, bytes, int]]], list[bytes]]


@dataclass(frozen=True)
class Workload:
    m: int
    k: int
    n: int
    precision: Precision
    series: str = "size"   # "size": growing GEMMs; "small-m": few activation rows

    @property
    def name(self) -> str:
        return f"{self.precision.name.lower()} {self.m}x{self.k}x{self.n}"


@dataclass
class BenchRow:
    workload: str
    series: str
    macs: int
    matmul_cycles: int
    predicted_matmul_cycles: int
    utilization: float            # MACs / (MATMUL cycles x peak)
    utilization_with_drain: float  # the array's pipeline drain counted too
    program_cycles: int
    predicted_program_cycles: int
    wire_bytes: int
    compulsory_bytes: int
    #: end to end: the bound the whole program could reach, max(compute, link) cycles, over the
    #: cycles it took. The link here is the core's own byte streams (one byte per cycle each
    #: way, no framing), where the sequential core's loads cannot hide behind compute; the
    #: framed, UART-paced measurement is :mod:`sw.bench_stream`.
    roofline_cycles: int
    end_to_end_efficiency: float


def default_workloads(params: RillParams) -> list[Workload]:
    """Square GEMMs from one array tile up to what the SRAM tiles hold, both precisions."""
    out = []
    for precision in (Precision.INT8, Precision.INT4):
        kc = params.k_per_tile(precision == Precision.INT4)
        for scale in (1, 2, 4, 8):
            m, k, n = scale * params.rows, scale * kc, scale * params.cols
            if _fits(params, m, k, n, precision):
                out.append(Workload(m, k, n, precision))
        for m, k, n in ((32, 32, 32), (64, 64, 64)):
            if _fits(params, m, k, n, precision) and Workload(m, k, n, precision) not in out:
                out.append(Workload(m, k, n, precision))
    # The small-M curve: a tile lasts max(m, rows, cols) cycles, so short tiles idle the array.
    k, n = 8 * params.rows, 8 * params.cols
    for m in (1, 2, 4, params.rows // 2, params.rows, 2 * params.rows):
        w = Workload(m, k, n, Precision.INT8, "small-m")
        if m >= 1 and _fits(params, m, k, n, Precision.INT8) and w not in out:
            out.append(w)
    return out


def _fits(params, m, k, n, precision) -> bool:
    kc = params.k_per_tile(precision == Precision.INT4)
    k_tiles, n_tiles = -(-k // kc), -(-n // params.cols)
    return (params.act_words(precision == Precision.INT4, k_tiles) * m <= params.act_depth
            and k_tiles * n_tiles * params.rows
            <= params.weight_depth and n_tiles * m <= params.acc_depth
            and n <= params.qparam_depth)


def timed_gemm_program(params: RillParams, acts: np.ndarray, weights: np.ndarray,
                       config: isa.Config, qparams) -> tuple[Program, int]:
    """An on-chip GEMM with the counters read around its MATMUL; returns it and the MATMUL's
    predicted working cycles."""
    int4 = config.int4
    m, k = acts.shape
    n = weights.shape[1]
    prog = Program(params)
    prog.read_counters()
    prog.configure(config)
    prog.load_qparams(0, *qparams)
    prog.load_weights(0, pack_weight_tiles(params, weights, int4))
    prog.load_acts(0, pack_act_words(params, acts, int4))
    prog.read_counters()
    before_matmul = prog.predicted_cycles
    kc = params.k_per_tile(int4)
    prog.matmul(0, 0, 0, m, -(-k // kc), -(-n // params.cols))
    prog.read_counters()
    predicted_matmul = prog.predicted_cycles - before_matmul - counter_read_cost(prog.params)
    prog.store(0, m, n, 0)
    prog.read_counters()
    return prog, predicted_matmul


def bench_programs(params: RillParams, workloads: list[Workload], seed: int = 0):
    """One program per workload, with random operands (the values do not change the timing)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in workloads:
        int4 = w.precision == Precision.INT4
        acts = rng.integers(-128, 128, (w.m, w.k))
        weights = rng.integers(-8, 8, (w.k, w.n)) if int4 else rng.integers(-128, 128, (w.k, w.n))
        qparams = ([0] * w.n, [1 << 23] * w.n, [40] * w.n, [0] * w.n)
        prog, predicted_matmul = timed_gemm_program(params, acts, weights,
                                                    isa.Config(precision=w.precision), qparams)
        out.append((w, prog, predicted_matmul))
    return out


def counter_read_cost(params: RillParams) -> int:
    """Working cycles of a READ_COUNTERS (not in the cycles value it reads)."""
    return cycles.cycle_cost(params, isa.Config(), Opcode.READ_COUNTERS.value, {}, isa.Status.OK)


def counter_cycles(response: bytes) -> list[int]:
    """The ``cycles`` value of every READ_COUNTERS response in a response stream."""
    values, at = [], 0
    while at < len(response):
        status, opcode = response[at], response[at + 1]
        at += isa.RESPONSE_HEADER_BYTES
        if status != 0:
            raise RuntimeError(f"device reported status {status} for opcode {opcode}")
        if opcode == Opcode.READ_COUNTERS.value:
            values.append(int.from_bytes(response[at:at + 4], "little"))
            at += 16
        else:
            raise RuntimeError(f"expected only READ_COUNTERS responses, got opcode {opcode}")
    return values


def split_timed_response(prog: Program, response: bytes, m: int, n: int):
    """``(MATMUL cycles, program cycles, STORE payload)`` from the response of
    :func:`timed_gemm_program`: counters x 3, store (header + m*n bytes), counters.

    Program cycles run from the first counter read to the last, both excluded.
    """
    store_len = isa.RESPONSE_HEADER_BYTES + m * n
    counters_len = isa.RESPONSE_HEADER_BYTES + 16
    start, before, after = counter_cycles(response[:3 * counters_len])
    (end,) = counter_cycles(response[3 * counters_len + store_len:])
    store = response[3 * counters_len:3 * counters_len + store_len]
    read = counter_read_cost(prog.params)
    return after - before - read, end - start - read, store[isa.RESPONSE_HEADER_BYTES:]


def measure(params: RillParams, workloads: list[Workload], execute: Executor) -> list[BenchRow]:
    runs = bench_programs(params, workloads)
    responses = execute([(w.name, prog.to_bytes(), prog.response_bytes) for w, prog, _ in runs])
    rows = []
    for (w, prog, predicted_matmul), response in zip(runs, responses, strict=True):
        matmul, program_cycles, _ = split_timed_response(prog, response, w.m, w.n)
        peak = params.peak_macs_per_cycle(w.precision == Precision.INT4)
        macs = w.m * w.k * w.n
        link_cycles = max(len(prog.to_bytes()), len(response))
        roofline = max(link_cycles, -(-macs // params.peak_macs_per_cycle(
            w.precision == Precision.INT4)))
        rows.append(BenchRow(
            workload=w.name, series=w.series, macs=macs, matmul_cycles=matmul,
            predicted_matmul_cycles=predicted_matmul,
            utilization=macs / (matmul * peak),
            utilization_with_drain=macs / ((matmul + cycles.matmul_drain_cycles(params)) * peak),
            program_cycles=program_cycles,
            predicted_program_cycles=prog.predicted_cycles - 2 * counter_read_cost(prog.params),
            wire_bytes=len(prog.to_bytes()) + len(response),
            compulsory_bytes=compulsory_bytes(w.m, w.k, w.n, w.precision == Precision.INT4),
            roofline_cycles=roofline, end_to_end_efficiency=roofline / program_cycles))
    return rows


def format_table(params: RillParams, rows: list[BenchRow]) -> str:
    head = (f"{'workload':<20}{'MACs':>10}{'cycles':>9}{'predicted':>11}{'util':>8}"
            f"{'util+drain':>12}{'stream B':>10}{'compulsory B':>14}{'e2e 1B/cyc':>12}")
    lines = [f"Rill {params.rows}x{params.cols}: peak {params.peak_macs_int8} INT8 / "
             f"{params.peak_macs_int4} INT4 MACs per cycle", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.workload:<20}{r.macs:>10}{r.matmul_cycles:>9}"
                     f"{r.predicted_matmul_cycles:>11}{r.utilization:>8.1%}"
                     f"{r.utilization_with_drain:>12.1%}{r.wire_bytes:>10}{r.compulsory_bytes:>14}"
                     f"{r.end_to_end_efficiency:>12.0%}")
    return "\n".join(lines)


def write_json(path, params: RillParams, rows: list[BenchRow], stream_rows=(),
               simulator: dict | None = None, models=(), tflite=()):
    """The bench as JSON; ``simulator``: a simulated device's speed (cycles per second);
    ``models``: :class:`sw.bench_models.ModelRow` s; ``tflite``:
    :class:`sw.bench_tflite.TfliteRow` s."""
    with open(path, "w") as f:
        json.dump({"params": asdict(params), "rows": [asdict(r) for r in rows],
                   "stream": [asdict(r) for r in stream_rows], "simulator": simulator,
                   "models": [asdict(r) for r in models],
                   "tflite": [asdict(r) for r in tflite]}, f, indent=1)


def plot(path, params: RillParams, rows: list[BenchRow]):
    """Utilization against GEMM size, one line per precision (PNG or anything matplotlib writes)."""
    import matplotlib
    matplotlib.use("Agg")   # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for precision in ("int8", "int4"):
        cubes = [r for r in rows if r.workload.startswith(precision) and r.series == "size"]
        cubes.sort(key=lambda r: r.macs)
        ax.plot([r.macs for r in cubes], [100 * r.utilization for r in cubes], "o-",
                label=f"{precision.upper()} MATMUL")
        ax.plot([r.macs for r in cubes], [100 * r.utilization_with_drain for r in cubes], "x--",
                label=f"{precision.upper()} incl. drain")
    small = [r for r in rows if r.series == "small-m"]
    ax.plot([r.macs for r in small], [100 * r.utilization for r in small], "s:",
            label="INT8 M=1..16, K=N=64")
    ax.set_xscale("log")
    ax.set_xlabel("MACs per GEMM")
    ax.set_ylabel("array utilization (%)")
    ax.set_ylim(0, 105)
    ax.axhline(95, color="grey", linewidth=0.5)
    ax.set_title(f"Rill {params.rows}x{params.cols}: measured utilization of on-chip GEMMs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

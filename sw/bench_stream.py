"""End-to-end throughput of a layer streamed through the link, as a board runs inference.

Each workload is one quantized layer call compiled by :mod:`sw.compiler`, whose schedule streams:
weights and biases go in once, then rows in chunks, so that while one chunk's outputs travel back
the next chunk's rows travel in. It runs on the core and link RTL with the wire paced like a UART
(see :mod:`sim.paced`), and is compared with these bounds:

- compute: MACs / peak MACs per cycle;
- link, full duplex: the busier direction's wire bytes (framing and acknowledgements included)
  times the cycles a byte takes;
- link, serialized: both directions' wire bytes one after the other.

``e2e`` = max(compute, link) / measured cycles for each link bound; ``wire / compulsory`` = wire
bytes both ways over :func:`~sw.program.compulsory_bytes` (weights with their biases, activations
and outputs, each once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hw.isa import Precision
from hw.params import RillParams

from .bench import counter_cycles, counter_read_cost
from .compiler import QuantizedLinear, compile_linear
from .program import Program, compulsory_bytes

__all__ = ["StreamRow", "StreamWorkload", "stream_workloads", "streaming_program",
           "measure_streaming", "format_streaming", "UART_CYCLES_PER_BYTE"]

#: A 3 Mbaud UART (an FT2232H or FT231X) at a 36 MHz core clock: 10 bits x 12 cycles. (The
#: iCEBreaker runs at 21 MHz today, 70 cycles per byte; the bench core is the 8x8 default.)
UART_CYCLES_PER_BYTE = 120

#: ``run(params, [(name, program)], cycles_per_byte) -> [per-job stats dicts]``
PacedRunner = Callable[[RillParams, list[tuple[str, Program]], int], list[dict]]


@dataclass(frozen=True)
class StreamWorkload:
    m: int            # activation rows of the layer call
    k: int
    n: int
    precision: Precision

    @property
    def name(self) -> str:
        return f"{self.precision.name.lower()} {self.m}x{self.k}x{self.n}"


@dataclass
class StreamRow:
    workload: str
    macs: int
    cycles: int                  # first byte sent to last response byte received
    device_cycles: int           # the core's own cycle counter (working cycles)
    predicted_device_cycles: int
    compute_cycles: int          # MACs / peak
    link_cycles: int             # busier direction's wire bytes x cycles per byte
    serial_link_cycles: int      # both directions' wire bytes x cycles per byte
    wire_bytes_sent: int
    wire_bytes_received: int
    compulsory_bytes: int
    retransmissions: int
    end_to_end_efficiency: float          # against max(compute, link full duplex)
    serial_end_to_end_efficiency: float   # against max(compute, link serialized)
    wire_ratio: float


def stream_workloads(params: RillParams) -> list[StreamWorkload]:
    """A 64x64x64 GEMM, and 64x64 layers (INT8; INT4 with K = 128) over 512 activation rows
    (the weights going in alone and the last outputs coming out alone weigh less the more rows
    stream)."""
    return [StreamWorkload(64, 64, 64, Precision.INT8),
            StreamWorkload(512, 64, 64, Precision.INT8),
            StreamWorkload(512, 128, 64, Precision.INT4)]


def streaming_program(params: RillParams, w: StreamWorkload,
                      rng: np.random.Generator) -> Program:
    """The compiled layer call: random weights, biases and activations."""
    int4 = w.precision == Precision.INT4
    lo, hi = (-8, 8) if int4 else (-128, 128)
    layer = QuantizedLinear(rng.integers(lo, hi, (w.k, w.n)), a_scale=np.float32(0.05),
                            w_scale=np.float32(0.01), y_scale=np.float32(4.0), y_zp=3,
                            bias=rng.integers(-5000, 5000, w.n), precision=w.precision,
                            name=w.name)
    x = rng.integers(-128, 128, (w.m, w.k)).astype(np.int8)
    return compile_linear(params, layer).program(x).program


def measure_streaming(params: RillParams, run: PacedRunner,
                      cycles_per_byte: int = UART_CYCLES_PER_BYTE, seed: int = 0,
                      workloads: list[StreamWorkload] | None = None) -> list[StreamRow]:
    """Each layer runs as its own exchange between two counter reads (exchanges of their own,
    so that the layer's time and wire bytes are the layer's alone)."""
    rng = np.random.default_rng(seed)
    workloads = workloads or stream_workloads(params)
    read = Program(params)
    read.read_counters()
    layers = [streaming_program(params, w, rng) for w in workloads]
    jobs = []
    for w, layer in zip(workloads, layers, strict=True):
        jobs += [(f"{w.name}: counters before", read), (w.name, layer),
                 (f"{w.name}: counters after", read)]
    results = run(params, jobs, cycles_per_byte)
    rows = []
    read_cost = counter_read_cost(params)
    for i, (w, layer) in enumerate(zip(workloads, layers, strict=True)):
        before, stats, after = results[3 * i:3 * i + 3]
        (first,), (last,) = (counter_cycles(bytes.fromhex(r["response"]))
                             for r in (before, after))
        # The prediction of the same instructions in one stream (the drain overlaps the read).
        timed = Program(params)
        timed.read_counters()
        timed.extend(layer)
        timed.read_counters()
        int4 = w.precision == Precision.INT4
        macs = w.m * w.k * w.n
        compute = -(-macs // params.peak_macs_per_cycle(int4))
        link = max(stats["wire_bytes_sent"], stats["wire_bytes_received"]) * cycles_per_byte
        compulsory = compulsory_bytes(w.m, w.k, w.n, int4)
        wire = stats["wire_bytes_sent"] + stats["wire_bytes_received"]
        serial = wire * cycles_per_byte
        rows.append(StreamRow(
            workload=w.name, macs=macs, cycles=stats["cycles"],
            device_cycles=last - first - read_cost,
            predicted_device_cycles=timed.predicted_cycles - 2 * read_cost,
            compute_cycles=compute, link_cycles=link, serial_link_cycles=serial,
            wire_bytes_sent=stats["wire_bytes_sent"],
            wire_bytes_received=stats["wire_bytes_received"], compulsory_bytes=compulsory,
            retransmissions=stats["retransmissions"],
            end_to_end_efficiency=max(compute, link) / stats["cycles"],
            serial_end_to_end_efficiency=max(compute, serial) / stats["cycles"],
            wire_ratio=wire / compulsory))
    return rows


def format_streaming(rows: list[StreamRow], cycles_per_byte: int) -> str:
    head = (f"{'layer (M x K x N)':<24}{'cycles':>10}{'compute':>9}{'link fd':>10}{'e2e':>6}"
            f"{'link ser':>10}{'e2e':>6}{'wire B':>9}{'compulsory B':>14}{'ratio':>7}"
            f"{'device cyc':>12}{'predicted':>11}")
    lines = [f"End to end over a link of {cycles_per_byte} cycles per byte each way "
             f"(core + link RTL):", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.workload:<24}{r.cycles:>10}{r.compute_cycles:>9}{r.link_cycles:>10}"
                     f"{r.end_to_end_efficiency:>6.0%}{r.serial_link_cycles:>10}"
                     f"{r.serial_end_to_end_efficiency:>6.0%}"
                     f"{r.wire_bytes_sent + r.wire_bytes_received:>9}{r.compulsory_bytes:>14}"
                     f"{r.wire_ratio:>7.3f}{r.device_cycles:>12}{r.predicted_device_cycles:>11}")
    return "\n".join(lines)

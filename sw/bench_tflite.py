"""``python -m sw bench --tflite``: the MLPerf Tiny architectures (int8 TFLite, made by
``scripts/tflite_models/make_models.py`` into ``tests/assets/tflite``), one inference at a time
with the weights resident, against the published anchors of other FPGA designs.

Per model: its MACs and the share the device does, the device's working cycles for the second
of two calls (the compiler's prediction beside them), the array's utilization over those
cycles, the share of them the vector unit works (ADD, pooling, MEAN), and that time at each board
default's clock. The device cycles count the device's part only: loading the input and the maps
the host hands back, the layers, the vector unit's operators and storing the outputs; not the
host's operators nor the link's pace. Beside them, the call's bytes on the wire each way (link
frames included) and one inference end to end on each board's serial link: its bytes in, the
device's time, its bytes out, one after the other (the host's own operators not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw import cycles, isa

from .bench import counter_read_cost
from .bench_models import LinkPace
from .device_base import Device
from .resident import streamed_layers

__all__ = ["TfliteRow", "ASSETS", "ANCHORS", "bench_tflite", "format_tflite", "vector_cycles"]

ASSETS = Path(__file__).resolve().parent.parent / "tests" / "assets" / "tflite"
MODELS = ("ds_cnn", "resnet8", "mobilenet_v1_025", "autoencoder")
#: Published latencies of other FPGA designs on the same architectures (ms per inference).
ANCHORS = {"resnet8": "hls4ml, Pynq-Z2 at 100 MHz: 7.64 ms (MLPerf Tiny v1.0 open)",
           "ds_cnn": "CFU Playground, Arty A7-35T at 100 MHz: 98 ms"}


@dataclass
class TfliteRow:
    model: str
    macs: int
    device_macs: int
    host_operators: list[str]
    device_cycles: int
    predicted_cycles: int
    utilization: float            #: device MACs / (cycles x peak INT8 MACs per cycle)
    vector_share: float = 0.0     #: share of the cycles in ADD, pooling and MEAN
    #: the device cycles less its inputs' loads: from the input in SRAM to the logits
    sram_to_logits_cycles: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    wire_in: int = 0              #: bytes the second call sent, link frames included
    wire_out: int = 0
    end_to_end_ms: dict[str, float] = field(default_factory=dict)
    #: bytes of requantization entries each call sends besides its input (layers whose
    #: entries stream: :mod:`sw.resident`)
    streamed_bytes: int = 0


def measure_tflite(device: Device, name: str, paces: list[LinkPace]) -> TfliteRow:
    from .tflite_import import TfliteModel
    model = TfliteModel.load(ASSETS / f"{name}.tflite")
    feeds = {model.input_names[0]: np.load(ASSETS / f"{name}_inputs.npy")[:1]}
    model.run(device, feeds, resident=True)
    stats = device.host.stats
    sent, received = stats.wire_bytes_sent, stats.wire_bytes_received
    before = device.read_counters()["cycles"]
    model.run(device, feeds, resident=True)
    after = stats.wire_bytes_sent, stats.wire_bytes_received   # before the counters' read
    cycles = device.read_counters()["cycles"] - before - counter_read_cost(device.params)
    on_device, macs = model.macs()
    row = TfliteRow(name, macs, on_device, model.host_operators(), cycles,
                    sum(model.predicted_cycles().values()),
                    on_device / (cycles * device.params.peak_macs_int8))
    row.vector_share = vector_cycles(device.params, model.programs) / cycles
    _, entries = streamed_layers(device.resident.allocation,
                                 [layer.compiled(device.params) for layer in model.layers])
    row.streamed_bytes = entries * isa.QPARAM_BYTES
    # A resident model's LOAD_ACTS bring its input (and, after a host operator, a device part's),
    # a byte a cycle from the link.
    row.sram_to_logits_cycles = cycles - opcode_cycles(device.params, model.programs,
                                                       (isa.Opcode.LOAD_ACTS,))
    row.latency_ms = {pace.name: round(cycles / pace.clock_hz * 1e3, 3) for pace in paces}
    row.wire_in, row.wire_out = after[0] - sent, after[1] - received
    row.end_to_end_ms = {pace.name: round((cycles + (row.wire_in + row.wire_out)
                                           * pace.cycles_per_byte) / pace.clock_hz * 1e3, 3)
                         for pace in paces}
    return row


def opcode_cycles(params, programs, opcodes: tuple[isa.Opcode, ...]) -> int:
    """Working cycles of the instructions with ``opcodes`` in ``programs`` (through a
    :class:`hw.cycles.CycleClock`, which knows the geometry each POOL walks)."""
    codes, total = {op.value for op in opcodes}, 0
    for call in programs:
        clock = cycles.CycleClock(params)
        for headers in call.program.executes:
            for header in headers:
                opcode = isa.Opcode(header[0])
                cost = clock.step(isa.Config(), opcode.value,
                                  isa.decode_fields(opcode, header[1:]), isa.Status.OK)
                total += cost if header[0] in codes else 0
    return total


def vector_cycles(params, programs) -> int:
    """Working cycles of the vector unit's ADD, pooling and MEAN instructions in
    ``programs``."""
    return opcode_cycles(params, programs, (isa.Opcode.ADD, isa.Opcode.AVGPOOL, isa.Opcode.MEAN,
                                            isa.Opcode.POOL))


def bench_tflite(device: Device, paces: list[LinkPace]) -> list[TfliteRow]:
    """A row per MLPerf Tiny model found in :data:`ASSETS` (none in an installed copy without
    the tests)."""
    return [measure_tflite(device, name, paces) for name in MODELS
            if (ASSETS / f"{name}.tflite").exists()]


def format_tflite(rows: list[TfliteRow]) -> str:
    paces = list(rows[0].latency_ms) if rows else []
    head = (f"{'model':<18}{'MACs':>12}{'on device':>11}{'device cyc':>12}{'predicted':>11}"
            f"{'array util':>12}{'vector':>8}{'from SRAM':>11}{'bytes in':>10}{'out':>9}"
            + "".join(f"{name + ' ms':>16}{'end to end':>12}" for name in paces))
    lines = ["MLPerf Tiny architectures (int8 TFLite), batch 1, weights resident, the device's "
             "part:", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<18}{r.macs:>12,}{r.device_macs / r.macs:>11.1%}"
                     f"{r.device_cycles:>12,}{r.predicted_cycles:>11,}{r.utilization:>12.1%}"
                     f"{r.vector_share:>8.1%}{r.sram_to_logits_cycles:>11,}"
                     f"{r.wire_in:>10,}{r.wire_out:>9,}"
                     + "".join(f"{r.latency_ms[p]:>16,.3f}{r.end_to_end_ms[p]:>12,.3f}"
                               for p in paces))
    for r in rows:
        if r.host_operators:
            lines.append(f"  {r.model}: on the host: {', '.join(r.host_operators)}")
        if r.streamed_bytes:
            lines.append(f"  {r.model}: each call also sends {r.streamed_bytes:,} bytes of "
                         "requantization entries the device has no room for (sw/resident.py)")
    lines.append("  (vector: share of the device cycles in the vector unit's ADD, pooling and "
                 "MEAN; from SRAM: the device cycles less its inputs' loads, input in SRAM to "
                 "logits; bytes: one call's on the wire, link frames included; end to end: its "
                 "bytes in, the device's time and its bytes out in turn, on the board's link)")
    for name, anchor in ANCHORS.items():
        if any(r.model == name for r in rows):
            lines.append(f"  anchor, {name}: {anchor}")
    return "\n".join(lines)

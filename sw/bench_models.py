"""``python -m sw bench --models``: whole quantized models, one inference call at a time.

For each model and batch size, the second of two identical calls is measured (so that whatever a
first call leaves on the device, resident weights above all, counts as it would in a stream of
inferences): the device's own working cycles, the compiler's prediction, and the bytes that
crossed the link each way against the floor a model resident on the device would need (its
quantized inputs and outputs). Each model runs streamed (every call sends every layer's weights)
and resident (:mod:`sw.resident`: the weights that fit stay on the device).

On a board the serial link paces everything: a byte each way every ``clock / baud * 10`` cycles.
Per board link the table gives the end-to-end bound ``max(device cycles, bytes in x pace, bytes
out x pace)`` of a full-duplex link, the inferences per second it allows at the board's clock, and
the share of that time the core cannot work for waiting on the link. On the ``sim`` device the
calls of models resident whole are also measured end to end on each board's paced link
(:func:`paced_cycles`):
the core and link RTL in lockstep with the host driver, a byte each way per pace, from the
call's first byte out to its last byte back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bench import counter_read_cost
from .device_base import Device
from .onnx_import import RillModel
from .registry import BOARD_LINKS_GROUP, registered

__all__ = ["LinkPace", "ModelRow", "measure_model", "bench_models", "format_models",
           "board_links"]


@dataclass(frozen=True)
class LinkPace:
    """A board's serial link as the core sees it."""

    name: str
    clock_hz: float
    baud: int

    @property
    def cycles_per_byte(self) -> int:
        """Core cycles per byte on the wire (8N1: ten bit times)."""
        return round(self.clock_hz * 10 / self.baud)


def board_links(names: list[str]) -> list[LinkPace]:
    """The :class:`LinkPace` of each named board; ``KeyError`` naming the unknown ones and the
    boards there are."""
    links = registered(BOARD_LINKS_GROUP)
    unknown = [name for name in names if name not in links]
    if unknown:
        raise KeyError(f"{' '.join(unknown)}: no such board; boards: "
                       f"{', '.join(links) or 'none installed (pip install -e .)'}")
    return [LinkPace(name, *links[name]) for name in names]


@dataclass
class ModelRow:
    model: str
    batch: int
    device_cycles: int        #: the device's working cycles for one call
    predicted_cycles: int     #: the compiler's prediction of them
    bytes_sent: int           #: framed bytes host -> device, one call
    bytes_received: int       #: framed bytes device -> host, one call
    io_bytes: int             #: quantized inputs + outputs: what a resident model must move
    links: dict[str, dict] = field(default_factory=dict)


def _quantized_bytes(feeds: dict[str, np.ndarray], outputs) -> int:
    """Bytes of the int8 tensors the device would take in and give back for one call."""
    ins = sum(np.asarray(v).size for v in feeds.values())
    outs = sum(np.asarray(v).size for v in outputs.values())
    return ins + outs


def measure_model(device: Device, name: str, model: RillModel, feeds: dict[str, np.ndarray],
                  paces: list[LinkPace], resident: bool = False) -> ModelRow:
    """One row: the second of two calls of ``model`` on ``feeds`` (see the module docstring),
    with the weights that fit resident on the device if ``resident``. ``device`` must be a linked
    device (it has ``host.stats``)."""
    model.run(device, feeds, resident=resident)
    stats = device.host.stats
    before, sent, received = device.read_counters(), stats.wire_bytes_sent, \
        stats.wire_bytes_received
    outputs = model.run(device, feeds, resident=resident)
    sent, received = stats.wire_bytes_sent - sent, stats.wire_bytes_received - received
    after = device.read_counters()
    cycles = after["cycles"] - before["cycles"] - counter_read_cost(device.params)
    batch = len(next(iter(feeds.values())))
    row = ModelRow(name + (" resident" if resident else ""), batch, cycles,
                   sum(model.predicted_cycles().values()), sent, received,
                   _quantized_bytes(feeds, outputs))
    # Paced runs only where a call sends little more than its activations: a simulated link
    # moves each of a streamed call's weight bytes in hundreds of cycles.
    whole = resident and len(device.resident.allocation.residences) == len(model.layers)
    measured = paced_cycles(device, model, feeds, paces) \
        if whole and hasattr(device, "run_paced") else {}
    for pace in paces:
        link_in, link_out = sent * pace.cycles_per_byte, received * pace.cycles_per_byte
        bound = max(cycles, link_in, link_out)
        row.links[pace.name] = {
            "cycles_per_byte": pace.cycles_per_byte, "clock_mhz": pace.clock_hz / 1e6,
            "end_to_end_cycles": bound,
            "inferences_per_second": round(batch * pace.clock_hz / bound, 2),
            "link_bound_share": round(1 - cycles / bound, 4)}
        if pace.name in measured:
            row.links[pace.name].update(
                paced_cycles=measured[pace.name],
                paced_inferences_per_second=round(batch * pace.clock_hz / measured[pace.name], 2),
                paced_link_bound_share=round(1 - cycles / measured[pace.name], 4))
    return row


def paced_cycles(device: Device, model: RillModel, feeds: dict[str, np.ndarray],
                 paces: list[LinkPace]) -> dict[str, int]:
    """``{board: cycles}`` of the second of two resident calls on each board's paced link,
    measured on ``device``'s RTL (a device with ``run_paced``: ``sim``). The calls' programs come
    from the golden model (bit-exact with the RTL); the run checks every response against it."""
    from .device import open_device
    with open_device("golden", device.params) as golden:
        model.run(golden, feeds, resident=True)
        first = list(model.programs)
        model.run(golden, feeds, resident=True)
        second = list(model.programs)
    jobs = [("load", model.model.load_program),
            *((f"first {lp.name}", lp.program) for lp in first),
            *((f"call {lp.name}", lp.program) for lp in second)]
    measured = {}
    for pace in paces:
        results = device.run_paced(device.params, jobs, pace.cycles_per_byte,
                                   paced_from=len(jobs) - len(second))
        measured[pace.name] = sum(r["cycles"] for r in results[-len(second):])
    return measured


def format_models(rows: list[ModelRow]) -> str:
    paces = list(rows[0].links) if rows else []
    head = (f"{'model':<22}{'batch':>6}{'device cyc':>12}{'predicted':>11}{'bytes in':>10}"
            f"{'bytes out':>10}{'io bytes':>10}"
            + "".join(f"{name + ' inf/s':>20}{'link-bound':>11}" for name in paces))
    lines = ["Whole models, one call (the second of two), bounds on each board's serial link:",
             head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<22}{r.batch:>6}{r.device_cycles:>12}{r.predicted_cycles:>11}"
                     f"{r.bytes_sent:>10}{r.bytes_received:>10}{r.io_bytes:>10}"
                     + "".join(f"{r.links[p]['inferences_per_second']:>20,.2f}"
                               f"{r.links[p]['link_bound_share']:>11.1%}" for p in paces))
    lines.append("(inf/s: inferences per second the full-duplex link allows at the board's clock; "
                 "link-bound: share of that time the core waits for the link)")
    paced = [(r, p) for r in rows for p in paces if "paced_cycles" in r.links[p]]
    if paced:
        lines.append("Measured end to end on the paced link (core and link RTL, lockstep):")
        for r, p in paced:
            link = r.links[p]
            lines.append(f"  {r.model:<22}batch {r.batch:>3}  {p:<12}{link['paced_cycles']:>10} "
                         f"cycles  {link['paced_inferences_per_second']:>10,.2f} inf/s  "
                         f"link-bound {link['paced_link_bound_share']:.1%}")
    return "\n".join(lines)


def bench_models(device: Device, paces: list[LinkPace], folder: Path,
                 batches=(1, 32)) -> list[ModelRow]:
    """The demo's conv model and the MLPerf-Tiny-shaped autoencoder, quantized by onnxruntime,
    at each batch size in ``batches``, streamed and with the weights that fit resident."""
    from .models import autoencoder, quantize, train_conv
    rows = []
    for float_model in (train_conv(), autoencoder()):
        model = RillModel.load(quantize(float_model, folder))
        for resident in (False, True):
            for batch in batches:
                feeds = {model.input_names[0]: float_model.test_inputs[:batch]}
                rows.append(measure_model(device, float_model.name, model, feeds, paces,
                                          resident))
    return rows

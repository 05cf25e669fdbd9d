"""Resident weights: a model's weights and requantization entries loaded into the device once.

A layer is *resident* when its whole weight matrix and its requantization entries have their own
place in the weight and requantization SRAMs, so that a call sends only its activations and
instructions and receives its outputs. :func:`allocate` places a model's layers from the top of
each SRAM down; the layers that do not fit stream their weights per call as before, compiled for
the SRAM below the resident ones (so they never overwrite them).

When every layer's weights fit but the requantization entries do not (MobileNetV1: 2,738 entries,
the 85F holds 2,048), the weights all stay and some layers' entries stream: a window at the
bottom of the qparam SRAM, as large as the largest of them, which each call loads with a
streamed layer's entries just before the layer runs (:func:`load_streamed_qparams`). The
layers streamed are the fewest entries that leave the rest room (:func:`streamed_entries`): a
call then sends them besides its activations, but every layer runs from resident weights and a
stretch of them stays on chip.

A resident layer's weights are stored as one block (all K tiles of all N tiles, the order
:meth:`sw.compiler.CompiledLinear.weight_words` gives), so its calls use one N group and one K
group whatever their number of rows: each chunk of rows is one ``LOAD_ACTS``, one ``MATMUL``
over every tile and one ``STORE`` of every column. Chunks are as long as the accumulators
(``acc_depth`` rows of ``cols`` columns for every N tile) and the activation SRAM (``row_words``
words a row) allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from hw.isa import QPARAM_BYTES
from hw.params import RillParams

from .compiler import CompiledLinear, CompileError, LayerProgram
from .planner import TilePlan, _balanced
from .program import Program, pack_act_words

__all__ = ["Residence", "Allocation", "allocate", "qparam_entries", "streamed_entries",
           "streamed_layers", "streamed_summary", "chained_qparams", "load_program",
           "load_streamed_qparams", "resident_program"]

#: MATMUL's ``k_tiles`` and ``n_tiles`` and STORE's ``n_tiles`` are one byte each.
_MAX_TILES = 255
_U16 = 0xFFFF


@dataclass(frozen=True)
class Residence:
    """Where one layer lives: its weight words, and its requantization entries (one per output
    channel) from ``qparam_base``."""

    weight_base: int
    weight_words: int
    qparam_base: int
    #: Its entries are not kept on the device: each call loads them at ``qparam_base`` (the
    #: window) before the layer runs.
    streamed_qparams: bool = False


@dataclass(frozen=True)
class Allocation:
    """A model's placement: each resident layer's :class:`Residence` by layer index, the
    params the streaming layers compile for (the SRAM below the resident layers), the runs of
    resident layers chained on chip (:func:`sw.chain.find_chains`), by first layer, and the
    layers reading a flattened or pooled feature map."""

    residences: dict[int, Residence]
    streaming_params: RillParams
    chains: dict[int, tuple[int, ...]] = field(default_factory=dict)
    #: Layers compiled to read a conv's flattened feature map (:mod:`sw.flatten`).
    fmaps: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Gemms reading a conv's map pooled on chip (:func:`sw.vector_step.pooled_inputs`).
    pools: dict[int, object] = field(default_factory=dict)
    #: Stretches of steps run on chip with residual adds (:mod:`sw.graph_chain`), by first
    #: step.
    graphs: dict[int, object] = field(default_factory=dict)


def _can_reside(params: RillParams, layer: CompiledLinear) -> bool:
    return (layer.k_tiles <= _MAX_TILES and layer.n_tiles <= _MAX_TILES
            and layer.n_tiles <= params.acc_depth and layer.row_words <= params.act_depth)


def qparam_entries(params: RillParams, channels: int) -> int:
    """Qparam entries a resident layer of ``channels`` outputs takes: to a multiple of the store
    lanes, so that every layer's first entry is one (its stores on chip go ``WIDE``)."""
    return -(-channels // params.store_lanes) * params.store_lanes


def streamed_entries(entries: list[int], depth: int) -> tuple[int, set[int]] | None:
    """``(window, streamed layers)`` for layers of ``entries`` requantization entries each and a
    qparam SRAM ``depth`` deep: the fewest entries streamed through a window of the largest
    streamed layer's size so that the others fit above it; ``(0, set())`` where all fit; None
    where no choice fits."""
    total = sum(entries)
    if total <= depth:
        return 0, set()
    best = None
    for window in sorted(set(entries)):
        need = total - (depth - window)
        streamed, sent = set(), 0
        for index in sorted((i for i, e in enumerate(entries) if e <= window),
                            key=lambda i: -entries[i]):
            if sent >= need:
                break
            streamed.add(index)
            sent += entries[index]
        if sent >= need and (best is None or sent < best[2]):
            best = (window, streamed, sent)
    return None if best is None else best[:2]


def allocate(params: RillParams, layers: list[CompiledLinear]) -> Allocation:
    """Every layer resident when they all fit, or when their weights do and some layers'
    requantization entries can stream (:func:`streamed_entries`). Otherwise layers in order
    while they fit in half of each SRAM: the other half stays for the layers that stream,
    whose calls re-send activations for every group of weights that does not fit (a smaller
    weight SRAM costs them more bytes than a small resident layer saves)."""
    weight_depth = min(params.weight_depth, _U16 + 1)
    entries = [qparam_entries(params, layer.n) for layer in layers]
    weights_fit = all(_can_reside(params, layer) for layer in layers) \
        and sum(layer.weight_word_count for layer in layers) <= weight_depth
    streaming = streamed_entries(entries, params.qparam_depth) if weights_fit else None
    if streaming is not None and streaming[1]:
        window, streamed = streaming
        weight_top, qparam_top, residences = weight_depth, params.qparam_depth, {}
        for index, layer in enumerate(layers):
            weight_top -= layer.weight_word_count
            if index in streamed:
                residences[index] = Residence(weight_top, layer.weight_word_count, 0, True)
                continue
            qparam_top -= entries[index]
            residences[index] = Residence(weight_top, layer.weight_word_count, qparam_top)
        assert qparam_top >= window
        return Allocation(residences, params)   # every layer resident: none streams weights
    everything = streaming is not None
    weight_floor = 0 if everything else max(params.rows, weight_depth // 2)
    qparam_floor = 0 if everything else max(params.cols, params.qparam_depth // 2)
    weight_top, qparam_top = weight_depth, params.qparam_depth
    residences = {}
    for index, layer in enumerate(layers):
        words = layer.weight_word_count
        if not _can_reside(params, layer) or weight_top - words < weight_floor \
                or qparam_top - entries[index] < qparam_floor:
            continue
        weight_top -= words
        qparam_top -= entries[index]
        residences[index] = Residence(weight_top, words, qparam_top)
    below = params if everything else replace(params, weight_depth=weight_top,
                                              qparam_depth=qparam_top)
    return Allocation(residences, below)


def chained_qparams(layer: CompiledLinear) -> tuple:
    """The requantization entries of a layer whose output stays on chip (:mod:`sw.chain`): a
    uint8 output's zero point moved to int8."""
    bias, multiplier, shift, zero_point = layer.qparams
    if layer.out_dtype == np.uint8:
        zero_point = np.asarray(zero_point) - 128
    return bias, multiplier, shift, zero_point


def _load_qparams(prog: Program, layer: CompiledLinear, residence: Residence, hands_on: bool):
    prog.load_qparams(residence.qparam_base,
                      *(chained_qparams(layer) if hands_on else layer.qparams))


def load_program(layer: CompiledLinear, residence: Residence, hands_on: bool = False) -> Program:
    """The one-time load of a resident layer: its weight block and, unless they stream, its
    requantization entries (for an output that stays on chip where ``hands_on``)."""
    prog = Program(layer.params)
    prog.configure(layer.config)   # LOAD_WEIGHTS' word size follows the precision
    prog.load_weights(residence.weight_base, layer.weight_words())
    if not residence.streamed_qparams:
        _load_qparams(prog, layer, residence, hands_on)
    return prog


def streamed_layers(allocation: Allocation | None, layers: list[CompiledLinear]
                    ) -> tuple[int, int]:
    """``(layers, entries)``: how many of a model's layers (compiled, in order) placed by
    ``allocation`` stream their requantization entries with each call, and those entries."""
    streamed = [] if allocation is None else [
        i for i, r in allocation.residences.items() if r.streamed_qparams]
    return len(streamed), sum(layers[i].n for i in streamed)


def streamed_summary(allocation: Allocation | None, layers: list[CompiledLinear]) -> str | None:
    """:func:`streamed_layers` in words, None where no entries stream."""
    count, entries = streamed_layers(allocation, layers)
    if not count:
        return None
    params = layers[0].params
    total = sum(qparam_entries(params, layer.n) for layer in layers)
    return (f"requantization entries streamed with each call: {count} layers' "
            f"{entries:,} ({entries * QPARAM_BYTES:,} bytes; the model has {total:,}, the "
            f"device's qparam SRAM {params.qparam_depth:,}: sw/resident.py)")


def load_streamed_qparams(prog: Program, layer: CompiledLinear, residence: Residence,
                          hands_on: bool = False):
    """Before a call runs a layer whose entries stream (see the module docstring): its entries
    (for an output that stays on chip where ``hands_on``) into the window."""
    if residence.streamed_qparams:
        _load_qparams(prog, layer, residence, hands_on)


def _plan(params: RillParams, layer: CompiledLinear, m: int) -> TilePlan:
    """The call's plan: one N and one K group; chunks of rows within the accumulators and, unless
    all of A fits in the activation SRAM at once, within it too."""
    act_cap = min(params.act_depth, _U16)
    acts_resident = m * layer.row_words <= act_cap
    rows = min(_U16, m, params.acc_depth // layer.n_tiles)
    if not acts_resident:
        rows = min(rows, act_cap // layer.row_words)
    return TilePlan(m, ((0, layer.n_tiles),), ((0, layer.k_tiles),), _balanced(m, rows), 1,
                    acts_resident)


def resident_program(layer: CompiledLinear, residence: Residence, x: np.ndarray) -> LayerProgram:
    """One call of a resident layer on activations ``x`` (M x K): activations, MATMULs and
    STOREs only.

    A MATMUL reads word ``w`` of its row ``r`` at ``act_addr + w * m + r``
    (:func:`sw.program.pack_act_words` with its own ``m``), so each chunk of rows is a block of
    its own: all blocks in one load when they fit, else each loaded before its MATMUL.
    """
    x = layer.to_device_acts(x)
    params, m = layer.params, x.shape[0]
    if m == 0:
        raise CompileError(f"{layer.name}: no activation rows")
    plan = _plan(params, layer, m)
    kt, nt = layer.k_tiles, layer.n_tiles
    blocks = [pack_act_words(params, x[row0:row0 + rows], layer.int4)
              for row0, rows in plan.chunks]
    prog, stores = Program(params), []
    prog.configure(layer.config)
    load_streamed_qparams(prog, layer, residence)
    if plan.acts_resident:
        prog.load_acts(0, np.concatenate(blocks))
    act_addr = 0
    for (row0, rows), block in zip(plan.chunks, blocks):
        if not plan.acts_resident:
            prog.load_acts(0, block)
        prog.matmul(act_addr if plan.acts_resident else 0, residence.weight_base, 0, rows, kt, nt)
        prog.store(0, rows, layer.n, residence.qparam_base, raw=layer.raw)
        stores.append((row0, rows, 0, layer.n))
        act_addr += len(block)
    # What must cross the link for a resident layer: its activations and its outputs.
    compulsory = m * layer.k + m * layer.n * layer.out_dtype.itemsize
    return LayerProgram(layer.name, prog, plan, stores, layer.out_dtype, layer.n, compulsory)

"""Which of a TFLite model's depthwise convolutions run on a core's array.

A depthwise conv runs on the array as a convolution whose filters are zero off each output
channel's own input channel. Walked depthwise (``MatmulFlags.DEPTHWISE``, where a channel chunk
is a tile wide and each channel has one output) it holds ``kernel`` weight bytes per channel:
a word per tile, its diagonal, per kernel offset. Else it is the dense conv, ``kernel * C``
bytes per channel. Either way its input map must fit the activation SRAM, where the conv walk
reads it in place (through im2col it would cross the link nine times over): a conv of its own
loads it whole, a stretch on chip places it beside the others by liveness
(:mod:`sw.map_placement`).

Which ones: those whose dense filters take at most a quarter of the weight SRAM, as before a
walk existed; then, walked, all the others if every layer's weights still fit the weight SRAM
and their requantization entries the qparam SRAM, or can stream through a window of it
(:func:`sw.resident.streamed_entries`), so that a model resident whole stays resident whole
(weights past the SRAMs would stream every call). All or none: with one left on
the host the maps around it cross the link anyway, and a conv moved to the device between host
steps only adds its maps to the link's load (MobileNetV1 on the 85F: more device MACs, slower
end to end).
"""

from __future__ import annotations

import numpy as np

from hw.params import RillParams

from .conv_device import depthwise_walkable
from .resident import qparam_entries, streamed_entries
from .tflite_reader import TfliteGraph, TfliteOperator

__all__ = ["depthwise_on_array", "array_kernel"]


def array_kernel(op: TfliteOperator, kernel: tuple[int, int]) -> tuple[int, int]:
    """The kernel a conv of ``kernel`` runs on the array with: a dilated one's taps
    ``dilation`` apart with zeros between (``(k - 1) * d + 1``; the zeros add nothing, so the
    sums are exact)."""
    dilation = op.options.get("dilation", (1, 1))
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))


def _words(params: RillParams, k: int, n: int) -> int:
    """Weight words of a K x N INT8 matrix in tiles."""
    kc = params.k_per_tile(False)
    return -(-k // kc) * -(-n // params.cols) * params.rows


def _layer_words(params: RillParams, graph: TfliteGraph, op: TfliteOperator) -> int:
    """Weight words a CONV_2D or FULLY_CONNECTED takes on the device (conv: walked, its K
    padded to whole chunks per kernel offset)."""
    filters = graph.tensors[op.inputs[1]].data
    if op.name == "FULLY_CONNECTED":
        return _words(params, filters.shape[1], filters.shape[0])
    out, kh, kw = filters.shape[:3]
    kh, kw = array_kernel(op, (kh, kw))
    channels = graph.tensors[op.inputs[0]].shape[3]   # a grouped conv's too: run ungrouped
    kc = params.k_per_tile(False)
    return _words(params, kh * kw * -(-channels // kc) * kc, out)


def _map_fits(params: RillParams, graph: TfliteGraph, op: TfliteOperator) -> bool:
    _, h, w, channels = graph.tensors[op.inputs[0]].shape
    return -(-channels // params.values_per_word(False)) * h * w <= params.act_depth


def depthwise_on_array(graph: TfliteGraph, params: RillParams) -> set[int]:
    """The indices of the DEPTHWISE_CONV_2D operators that run on ``params``' array."""
    if not params.conv_addressing:
        return set()
    depthwise = [op for op in graph.operators if op.name == "DEPTHWISE_CONV_2D"
                 and graph.tensors[op.inputs[1]].data is not None
                 and _map_fits(params, graph, op)]
    layers = [op for op in graph.operators if op.name in ("CONV_2D", "FULLY_CONNECTED")
              and graph.tensors[op.inputs[1]].data is not None
              and graph.tensors[op.inputs[1]].data.ndim in (2, 4)]
    used = sum(_layer_words(params, graph, op) for op in layers)
    entries = [qparam_entries(params, graph.tensors[op.inputs[1]].data.shape[0])
               for op in layers]
    chosen, later = set(), []
    for op in depthwise:
        _, kh, kw, outputs = graph.tensors[op.inputs[1]].data.shape
        kh, kw = array_kernel(op, (kh, kw))
        channels = graph.tensors[op.inputs[0]].shape[3]
        walked = outputs == channels and depthwise_walkable(params)
        words = kh * kw * -(-outputs // params.cols) if walked \
            else _words(params, kh * kw * channels, outputs)
        dense_bytes = channels * int(np.prod((kh, kw, outputs)))
        if dense_bytes <= params.weight_capacity(False) // 4:
            chosen.add(op.index)
            used += words
            entries.append(qparam_entries(params, outputs))
        elif walked:
            later.append((op.index, words, qparam_entries(params, outputs)))
    rest = [index for index, _, _ in later]
    if len(later) == len(depthwise) - len(chosen) \
            and used + sum(words for _, words, _ in later) <= params.weight_depth \
            and streamed_entries(entries + [needs for _, _, needs in later],
                                 params.qparam_depth) is not None:
        chosen.update(rest)
    return chosen

"""Layers chained on chip: resident layers whose outputs feed only the next layer run as one
program, each intermediate output written into the activation SRAM where the next layer's MATMUL
reads it (``STORE`` with :data:`hw.isa.StoreFlags.TO_ACTS`). A call sends the first layer's
activations and receives the last layer's outputs; nothing in between crosses the link.

The activation SRAM holds two regions, the layer's input and its output, swapped from layer to
layer: in a chain only those two tensors are live at once. Rows go through the whole chain in
chunks as long as the larger of the regions and the accumulators allow.

A uint8 tensor between two layers is kept as int8 with its zero point moved by -128 (the array
reads signed lanes; requantizing to int8 at ``zp - 128`` gives exactly the uint8 result less
128, the form the next layer's activations take anyway), so a chained layer's requantization
entries are loaded with that zero point (:func:`sw.resident.chained_qparams`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hw.isa import Config, ConvGeometry, OutType
from hw.params import RillParams

from .compiler import CompiledLinear, CompileError, LayerProgram, as_int8, scalar_int
from .conv import QuantizedConv, pack_feature_map
from .conv_device import conv_geometry, conv_matmul, output_size
from .planner import TilePlan, _balanced
from .program import Program, pack_act_words
from .resident import Residence, load_streamed_qparams

__all__ = ["find_chains", "chained_config", "chain_program"]

_U16 = 0xFFFF
_CHAINABLE_KINDS = ("matmul", "gemm")


def _region_words(params: RillParams) -> int:
    """Words in each of the two activation regions."""
    return min(params.act_depth, _U16) // 2


def _hands_on(a: CompiledLinear, b: CompiledLinear) -> bool:
    """Requantized int8/uint8 out of ``a`` at the zero point ``b`` reads."""
    return (not a.raw and a.out_dtype == b.act_dtype
            and scalar_int(a.layer.y_zp, "output zero point")
            == scalar_int(b.layer.a_zp, "activation zero point"))


def _links(params: RillParams, first, second, a: CompiledLinear, b: CompiledLinear) -> bool:
    """Whether device layer ``first`` (compiled ``a``) can hand its output to ``second`` on
    chip: the same tensor, 2-D rows in and out, requantized at the zero point the next layer
    reads, and both layers' tiles within a region and the accumulators."""
    if first.output != second.input or not _hands_on(a, b):
        return False
    if any(layer.kind not in _CHAINABLE_KINDS or layer.trans_a for layer in (first, second)):
        return False
    region = _region_words(params)
    return all(c.row_words <= region and c.n_tiles <= params.acc_depth for c in (a, b))


def find_chains(params: RillParams, steps, outputs: list[str], compiled: list[CompiledLinear],
                resident: set[int], fmaps: dict[int, tuple[int, int]] | None = None,
                addressed=lambda layer: False, pools: dict | None = None
                ) -> dict[int, tuple[int, ...]]:
    """``{first device-layer index: the chain's device-layer indices}`` for every run of two or
    more resident layers that can hand their outputs on: convs the core walks
    (``addressed(layer)``), each reading the map the one before stored, then Gemms and MatMuls
    that follow each other in ``steps``, the first reading the last conv's map flattened
    (``fmaps``, :mod:`sw.flatten`) or pooled on the vector unit (``pools``,
    :func:`sw.vector_step.pooled_inputs`); the tensors handed on neither model outputs nor read
    by other steps."""
    if not params.store_to_acts:
        return {}
    fmaps, pools = fmaps or {}, pools or {}
    readers: dict[str, int] = {}
    for step in steps:
        for name in (step.input,) if hasattr(step, "linear") else step.inputs:
            readers[name] = readers.get(name, 0) + 1

    def private(names) -> bool:
        return all(name not in outputs and readers.get(name) == 1 for name in names)

    steps_of = [step for step in steps if hasattr(step, "linear")]
    chains, current, index, previous, hosts = {}, [], -1, None, []
    for step in steps:
        if not hasattr(step, "linear"):
            hosts.append(step)
            continue
        index += 1
        linked = previous is not None and {index, index - 1} <= resident
        convs_only = all(steps_of[i].kind == "conv" for i in current)
        if linked and previous.kind == "conv" and step.kind == "conv":   # map to map
            linked = (convs_only and not hosts and previous.output == step.input
                      and addressed(previous) and addressed(step) and private([previous.output])
                      and _hands_on(compiled[index - 1], compiled[index])
                      and all(_in_regions(params, steps_of[i], compiled[i:i + 2])
                              for i in (index - 1, index)))
        elif linked and previous.kind == "conv":   # the last conv's map flattened into a Gemm
            linked = (convs_only and (index in fmaps or index in pools and addressed(previous))
                      and _hands_on(compiled[index - 1], compiled[index])
                      and private([previous.output, *(out for host in hosts
                                                      for out in host.outputs)]))
        elif linked:
            linked = not hosts and private([previous.output]) and _links(
                params, previous, step, compiled[index - 1], compiled[index])
        if not linked:
            if len(current) > 1:
                chains[current[0]] = tuple(current)
            current = [index]
        else:
            current.append(index)
        previous, hosts = step, []
    if len(current) > 1:
        chains[current[0]] = tuple(current)
    return chains


def chained_config(layer: CompiledLinear) -> Config:
    """A layer's configuration when its output stays on chip (int8 lanes: a uint8 output's
    values, and so its clamp's bounds, less 128)."""
    clamp = layer.config.clamp
    if clamp is not None and layer.config.out_type == OutType.UINT8:
        clamp = (clamp[0] - 128, clamp[1] - 128)
    return replace(layer.config, out_type=OutType.INT8, clamp=clamp)


def _rows_through(prog: Program, layers: list[CompiledLinear], residences: list[Residence], *,
                  rows: list[int], region: int, geometries: list[ConvGeometry | None],
                  pool: tuple | None = None):
    """Layer ``i`` of a chain on its ``rows[i]`` rows, reading activation region ``i % 2`` (of
    ``region`` words) and storing into the other, the last layer's outputs to the host. A layer
    with a geometry reads its region as a convolution: a conv walked over its map, or a Gemm
    over a conv's flattened map (one output pixel covering it, :mod:`sw.flatten`). ``pool``,
    ``(layer, channel blocks, pixels, step)``: that layer's map pooled in place by the
    pooling ``step`` (``AVGPOOL`` or ``MEAN``), a
    one-row matrix for the next layer."""
    for i, (layer, residence) in enumerate(zip(layers, residences)):
        final = i == len(layers) - 1
        config = layer.config if final else chained_config(layer)
        if config != prog.config:
            prog.configure(config)
        load_streamed_qparams(prog, layer, residence, hands_on=not final)
        geometry, at = geometries[i], i % 2
        if geometry is not None:
            prog.conv_geometry(geometry)
            conv_matmul(prog, layer, geometry, region * at, residence.weight_base, rows[i])
        else:
            prog.matmul(region * at, residence.weight_base, 0, rows[i], layer.k_tiles,
                        layer.n_tiles)
        if final:
            prog.store(0, rows[i], layer.n, residence.qparam_base, raw=layer.raw)
        else:
            prog.store(0, rows[i], layer.n, residence.qparam_base, to_acts=region * (1 - at),
                       acts_int4=layers[i + 1].int4)
        if pool is not None and pool[0] == i:
            layer_index, groups, pixels, step = pool
            step.pool(prog, region * (1 - at), region * (1 - at), groups, pixels)


def chain_program(layers: list[CompiledLinear], residences: list[Residence],
                  x: np.ndarray) -> LayerProgram:
    """One call of a chain of resident layers on ``x`` (M x K of the first layer)."""
    first, last = layers[0], layers[-1]
    x = first.to_device_acts(x)
    params, m = first.params, x.shape[0]
    if m == 0:
        raise CompileError(f"{first.name}: no activation rows")
    region = _region_words(params)
    rows = min(_U16, m, region // max(c.row_words for c in layers),
               params.acc_depth // max(c.n_tiles for c in layers))
    chunks = _balanced(m, rows)
    prog, stores = Program(params), []
    for row0, rows in chunks:
        prog.configure(first.config)   # the device's configuration is not known here
        prog.load_acts(0, pack_act_words(params, x[row0:row0 + rows], first.int4))
        _rows_through(prog, layers, residences, rows=[rows] * len(layers), region=region,
                      geometries=[None] * len(layers))
        stores.append((row0, rows, 0, last.n))
    plan = TilePlan(m, ((0, last.n_tiles),), ((0, first.k_tiles),), chunks, 1, False)
    compulsory = m * first.k + m * last.n * last.out_dtype.itemsize
    return LayerProgram("+".join(layer.name for layer in layers), prog, plan, stores,
                        last.out_dtype, last.n, compulsory)


def _in_regions(params: RillParams, step, layers: list[CompiledLinear]) -> bool:
    """Whether a conv's input and output maps each fit a region (:func:`_conv_plan`), where
    its input size is known at load: a chain that cannot hold them would run layer by layer
    (one whose size is known only at run time is planned then)."""
    return step.in_size is None or _conv_plan(
        [step.conv], layers, *step.in_size, _region_words(params)) is not None


def _conv_plan(convs: list[QuantizedConv], layers: list[CompiledLinear], h: int, w: int,
               region: int):
    """Each leading conv's geometry and output size on an ``h x w`` image, or None where a map
    or an image's outputs do not fit a region or the accumulators."""
    plans = []
    for i, conv in enumerate(convs):
        layer, after = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        try:
            geometry = conv_geometry(layer, conv, h, w)
        except CompileError:
            return None
        oh, ow = output_size(conv, h, w)
        out_words = -(-layer.n // (after or layer).per_word) * oh * ow
        if (geometry.words(layer.params.k_tiles_per_word(layer.int4)) > region
                or out_words > region
                or layer.n_tiles * oh * ow > min(layer.params.acc_depth, 0xFFFF)):
            return None
        plans.append((geometry, oh * ow))
        h, w = oh, ow
    return plans, (h, w)


def conv_chain_program(convs: list[QuantizedConv], layers: list[CompiledLinear],
                       residences: list[Residence], x: np.ndarray, pooled=None):
    """``(LayerProgram, reshape)`` of one call of a chain opened by convs the core walks
    (``layers[:len(convs)]``, each reading the map the one before stored), and, after the last
    conv's map flattened (or, ``pooled``, by that pooling step over its pixels on the vector
    unit), Gemms;
    ``None`` when an image's maps do not fit (the layers then run one by one). Image by image:
    the image's map in, each conv's output map to the other region, each Gemm on one row (the
    image)."""
    first, last = layers[0], layers[-1]
    params = first.params
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype != first.act_dtype:
        return None
    n, _, h, w = x.shape
    region = _region_words(params)
    planned = _conv_plan(convs, layers, h, w, region)
    if planned is None or any(c.row_words > region for c in layers[len(convs):]):
        return None
    plans, (oh, ow) = planned
    geometries = [geometry for geometry, _ in plans]
    rows = [pixels for _, pixels in plans]
    gemms = len(layers) - len(convs)
    pool = None
    if gemms and pooled is not None:   # the pooled map: a row of ceil(channels / lanes) words
        pool = (len(convs) - 1, -(-layers[len(convs) - 1].n // params.act_lanes), oh * ow,
                pooled)
        geometries += [None] * gemms
        rows += [1] * gemms
    elif gemms:
        # The first Gemm reads the last map as a convolution covering all of it: one output
        # pixel; the Gemms after it, one row (the image).
        fc = layers[len(convs)]
        geometries += [ConvGeometry(in_w=ow, in_h=oh, out_w=1, kernel_h=oh, kernel_w=ow,
                                    chunks=fc.k_tiles // (oh * ow))] + [None] * (gemms - 1)
        rows += [1] * gemms
    x = as_int8(x)
    prog, stores = Program(params), []
    for image in range(n):
        prog.configure(chained_config(first))   # the device's configuration is not known here
        prog.load_acts(0, pack_feature_map(params, x[image], first.int4))
        _rows_through(prog, layers, residences, rows=rows, region=region, geometries=geometries,
                      pool=pool)
        stores.append((image, 1, 0, last.n) if gemms
                      else (image * oh * ow, oh * ow, 0, last.n))
    out_rows = n if gemms else n * oh * ow
    plan = TilePlan(out_rows, ((0, last.n_tiles),), ((0, first.k_tiles),),
                    tuple((row0, size) for row0, size, _, _ in stores), 1, False)
    compulsory = x.size + out_rows * last.n * last.out_dtype.itemsize
    name = "+".join(layer.name for layer in layers)
    lp = LayerProgram(name, prog, plan, stores, last.out_dtype, last.n, compulsory)
    if gemms:
        return lp, (lambda y: y)
    return lp, (lambda y: np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)))

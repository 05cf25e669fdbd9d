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
entries are loaded with that zero point (:func:`chained_qparams`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hw.isa import Config, OutType
from hw.params import RillParams

from .compiler import CompiledLinear, CompileError, LayerProgram, scalar_int
from .planner import TilePlan, _balanced
from .program import Program, pack_act_words
from .resident import Residence

__all__ = ["find_chains", "chained_qparams", "chain_program"]

_U16 = 0xFFFF
_CHAINABLE_KINDS = ("matmul", "gemm")


def _region_words(params: RillParams) -> int:
    """Words in each of the two activation regions."""
    return min(params.act_depth, _U16) // 2


def _links(params: RillParams, first, second, a: CompiledLinear, b: CompiledLinear) -> bool:
    """Whether device layer ``first`` (compiled ``a``) can hand its output to ``second`` on
    chip: the same tensor, 2-D rows in and out, requantized int8/uint8 at the zero point the
    next layer reads, and both layers' tiles within a region and the accumulators."""
    if first.output != second.input or a.raw or a.out_dtype != b.act_dtype:
        return False
    if any(layer.kind not in _CHAINABLE_KINDS or layer.trans_a for layer in (first, second)):
        return False
    if scalar_int(a.layer.y_zp, "output zero point") != \
            scalar_int(b.layer.a_zp, "activation zero point"):
        return False
    region = _region_words(params)
    return all(c.k_tiles <= region and c.n_tiles <= params.acc_depth for c in (a, b))


def find_chains(params: RillParams, steps, outputs: list[str], compiled: list[CompiledLinear],
                resident: set[int]) -> dict[int, tuple[int, ...]]:
    """``{first device-layer index: the chain's device-layer indices}`` for every run of two or
    more resident layers that follow each other in ``steps`` and can hand their outputs on
    (the handed tensor neither a model output nor read by any other step)."""
    if not params.store_to_acts:
        return {}
    readers: dict[str, int] = {}
    for step in steps:
        for name in (step.input,) if hasattr(step, "linear") else step.inputs:
            readers[name] = readers.get(name, 0) + 1
    chains, current, index, previous = {}, [], -1, None
    for step in steps:
        if not hasattr(step, "linear"):   # a host step ends any chain
            previous = None
            continue
        index += 1
        linked = (previous is not None and index in resident and index - 1 in resident
                  and previous.output not in outputs and readers.get(previous.output) == 1
                  and _links(params, previous, step, compiled[index - 1], compiled[index]))
        if not linked:
            if len(current) > 1:
                chains[current[0]] = tuple(current)
            current = [index]
        else:
            current.append(index)
        previous = step
    if len(current) > 1:
        chains[current[0]] = tuple(current)
    return chains


def chained_qparams(layer: CompiledLinear) -> tuple:
    """The requantization entries of a layer whose output stays on chip (see the module
    docstring): a uint8 output's zero point moved to int8."""
    bias, multiplier, shift, zero_point = layer.qparams
    if layer.out_dtype == np.uint8:
        zero_point = np.asarray(zero_point) - 128
    return bias, multiplier, shift, zero_point


def _chained_config(layer: CompiledLinear) -> Config:
    return replace(layer.config, out_type=OutType.INT8)


def chain_program(layers: list[CompiledLinear], residences: list[Residence],
                  x: np.ndarray) -> LayerProgram:
    """One call of a chain of resident layers on ``x`` (M x K of the first layer)."""
    first, last = layers[0], layers[-1]
    x = first.to_device_acts(x)
    params, m = first.params, x.shape[0]
    if m == 0:
        raise CompileError(f"{first.name}: no activation rows")
    region = _region_words(params)
    rows = min(_U16, m, region // max(c.k_tiles for c in layers),
               params.acc_depth // max(c.n_tiles for c in layers))
    chunks = _balanced(m, rows)
    prog, stores = Program(params), []
    for row0, rows in chunks:
        prog.configure(first.config)   # the device's configuration is not known here
        prog.load_acts(0, pack_act_words(params, x[row0:row0 + rows], first.int4))
        for i, (layer, residence) in enumerate(zip(layers, residences)):
            final = i == len(layers) - 1
            config = layer.config if final else _chained_config(layer)
            if config != prog.config:
                prog.configure(config)
            prog.matmul(region * (i % 2), residence.weight_base, 0, rows, layer.k_tiles,
                        layer.n_tiles)
            if final:
                prog.store(0, rows, layer.n, residence.qparam_base, raw=layer.raw)
            else:
                prog.store(0, rows, layer.n, residence.qparam_base,
                           to_acts=region * ((i + 1) % 2), acts_int4=layers[i + 1].int4)
        stores.append((row0, rows, 0, last.n))
    plan = TilePlan(m, ((0, last.n_tiles),), ((0, first.k_tiles),), chunks, 1, False)
    compulsory = m * first.k + m * last.n * last.out_dtype.itemsize
    return LayerProgram("+".join(layer.name for layer in layers), prog, plan, stores,
                        last.out_dtype, last.n, compulsory)

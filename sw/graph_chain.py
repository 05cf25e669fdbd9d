"""Residual blocks on chip: a stretch of a model's steps — convs the core walks, the vector
unit's ADDs and pooling, Gemms on a pooled row — run as one call, every tensor between them kept
in the activation SRAM at an address of its own.

:mod:`sw.chain` runs layers in a line through two ping-pong regions; a residual block keeps
three maps live (the block's input, its branch, the sum), so here each tensor gets a block of
words by liveness. Maps lie as the array's convolutions store them (channel block ``g`` of
pixel ``p`` in word ``g * pixels + p``), which is the layout the convs walk, ``ADD`` adds word
by word and ``AVGPOOL`` and ``POOL`` pool, so nothing is re-laid. A pooled map is a one-row
matrix for a Gemm; a Gemm's stored row is another.

Where the maps lie, and how a conv too big for the accumulators runs in bands of output rows, is
:mod:`sw.map_placement`'s: a map may take the words of an input that dies where it is made, so a
residual block needs two maps of room and a row or two, not three maps.

A stretch is taken where it holds a residual ADD (linear runs are :mod:`sw.chain`'s), all its
layers are resident, every tensor it makes but the last is read only inside it, and its tensors
fit the activation SRAM together. The call runs image by image: the stretch's input map in,
its last step's output back (a STORE's, or ``READ_ACTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from hw.params import RillParams

from .chain import chained_config
from .compiler import CompiledLinear, CompileError, as_int8
from .conv import pack_feature_map, unpack_feature_map
from .conv_device import band_rows, conv_geometry, conv_matmul, output_size
from .map_placement import ConvShape, MapForm, MapPlacer, conv_bands
from .program import Program
from .resident import Residence, load_streamed_qparams
from .vector_step import REORDER_ONLY, VectorCall, VectorStep, pool_fits

__all__ = ["GraphChain", "find_graph_chains", "graph_call"]


@dataclass(frozen=True)
class GraphChain:
    """Steps ``first .. last`` of a model run as one call: ``input`` in, ``output`` out; each
    tensor's form and activation-SRAM address; ``layers``, the device-layer indices inside."""
    first: int
    last: int
    input: str
    output: str
    forms: dict = field(compare=False)
    addresses: dict = field(compare=False)
    layers: tuple[int, ...] = ()
    #: Outputs of convs whose bands run bottom up (:mod:`sw.map_placement`).
    descending: frozenset = frozenset()


def _inputs(step) -> tuple[str, ...]:
    return (step.input,) if hasattr(step, "linear") else tuple(step.inputs)


def _outputs(step) -> tuple[str, ...]:
    return (step.output,) if hasattr(step, "linear") else tuple(step.outputs)


class _Finder:
    """What a model's steps allow on chip, for a core of ``params``."""

    def __init__(self, params: RillParams, steps, outputs, compiled: list[CompiledLinear],
                 resident: set[int], addressed: Callable):
        self.params, self.steps, self.outputs = params, steps, set(outputs)
        self.compiled, self.resident, self.addressed = compiled, resident, addressed
        self.layer_of, index = {}, -1
        for i, step in enumerate(steps):
            if hasattr(step, "linear"):
                index += 1
                self.layer_of[i] = index
        self.readers: dict[str, list[int]] = {}
        for i, step in enumerate(steps):
            for name in _inputs(step):
                self.readers.setdefault(name, []).append(i)

    def _form_after(self, i: int, forms: dict[str, MapForm]) -> tuple[MapForm | None, bool]:
        """Step ``i``'s output form on chip given its inputs' ``forms`` (None: not on chip), and
        whether the output can stay on chip for a next step (a layer's requantized to int8; a
        raw or uint8 one can only end a stretch)."""
        step, p = self.steps[i], self.params
        ins = [forms.get(name) for name in _inputs(step)]
        if any(f is None for f in ins):
            return None, False
        if isinstance(step, VectorStep):
            if step.op == "add":
                return (ins[0] if ins[0] == ins[1] else None), True
            f = ins[0]
            if step.window is not None:
                ok = (step.window.in_size == (f.h, f.w)
                      and step.window.fits(p, f.channels, step.op == "avgpool"))
                return (MapForm(f.channels, *step.window.out_size) if ok else None), True
            ok = step.act_range == (-128, 127) and pool_fits(p, f.h * f.w, f.channels)
            return (MapForm(f.channels, 1, 1) if ok else None), True
        if not hasattr(step, "linear"):   # moves no byte of a row
            one = step.op in REORDER_ONLY and ins[0].h == ins[0].w == 1
            return (ins[0] if one else None), True
        index = self.layer_of[i]
        layer = self.compiled[index]
        hands_on = not layer.raw and layer.out_dtype == np.int8
        if index not in self.resident or layer.int4:
            return None, False
        f = ins[0]
        if step.kind == "gemm":
            ok = not step.trans_a and f.h == f.w == 1 and f.channels == layer.k
            return (MapForm(layer.n, 1, 1) if ok else None), hands_on
        if step.kind != "conv" or not self.addressed(step):
            return None, False
        try:
            conv_geometry(layer, step.conv, f.h, f.w)
        except CompileError:
            return None, False
        oh, ow = output_size(step.conv, f.h, f.w)
        try:
            band_rows(p, layer, oh, ow)
        except CompileError:
            return None, False
        return MapForm(layer.n, oh, ow), hands_on

    def _start(self, i: int) -> MapForm | None:
        step = self.steps[i]
        if not hasattr(step, "linear") or step.kind != "conv" or step.in_size is None:
            return None
        kh, kw = step.conv.kernel   # the conv's own K, not the device's padded one
        channels = np.asarray(step.conv.linear.weights).shape[0] // (kh * kw)
        return MapForm(channels, *step.in_size)

    def _private(self, first: int, last: int) -> bool:
        """Every tensor steps ``first .. last`` make, but the last's, read only among them."""
        for i in range(first, last):
            for name in _outputs(self.steps[i]):
                if name in self.outputs or any(not first <= r <= last
                                               for r in self.readers.get(name, [])):
                    return False
        return True

    def _allocate(self, forms: dict[str, MapForm], first: int,
                  last: int) -> MapPlacer | None:
        """The input and every tensor the steps make (the last's too, where a vector step's is
        read back) placed by liveness (:class:`sw.map_placement.MapPlacer`), each before the
        step's dead inputs are freed, over one of them where it can; None when they do not
        fit."""
        root: dict[str, str] = {}        # a reorder's output: the tensor it renames
        last_use: dict[str, int] = {}
        for i in range(first, last + 1):
            step = self.steps[i]
            for name in _inputs(step):
                last_use[root.get(name, name)] = i
            if not hasattr(step, "linear") and not isinstance(step, VectorStep):
                root[_outputs(step)[0]] = root.get(step.inputs[0], step.inputs[0])
        placer = MapPlacer(self.params)
        if not placer.place(self.steps[first].input, forms[self.steps[first].input]):
            return None
        for i in range(first, last + 1):
            step = self.steps[i]
            out = _outputs(step)[0]
            dying = [root.get(name, name) for name in _inputs(step)
                     if last_use[root.get(name, name)] == i]
            if out in root:
                placer.addresses[out] = placer.addresses[root[out]]
            elif (i < last or isinstance(step, VectorStep)) and not (
                    self._place_over(placer, i, forms, dying)
                    or placer.place(out, forms[out])):
                return None
            for name in dying:
                placer.release(name)
        return placer

    def _place_over(self, placer: MapPlacer, i: int, forms: dict[str, MapForm],
                    dying: list[str]) -> bool:
        """Step ``i``'s output over a dying input's words, where the step allows it."""
        step, out = self.steps[i], _outputs(self.steps[i])[0]
        if isinstance(step, VectorStep) and step.op == "add":
            return any(placer.place_over(out, forms[out], name) for name in dying)
        if getattr(step, "kind", None) != "conv" or step.input not in dying:
            return False
        conv = step.conv
        shape = ConvShape(forms[step.input], forms[out], conv.kernel[0], conv.strides[0],
                          conv.pads[0], self.compiled[self.layer_of[i]])
        return placer.place_conv_over(out, shape, step.input)

    def chain_from(self, first: int, residual: bool = True,
                   exclude: frozenset = frozenset()) -> GraphChain | None:
        """The longest stretch from step ``first`` that fits, holding an ADD where ``residual``
        (else two device layers or more), none of the device layers in ``exclude``."""
        form = self._start(first)
        if form is None:
            return None
        forms = {self.steps[first].input: form}
        ends = []
        for i in range(first, len(self.steps)):
            if self.layer_of.get(i) in exclude:
                break
            out, hands_on = self._form_after(i, forms)
            if out is None:
                break
            forms[_outputs(self.steps[i])[0]] = out
            step = self.steps[i]
            if hasattr(step, "linear") or isinstance(step, VectorStep):
                ends.append(i)   # a reorder on the host ends no stretch
            if not hands_on:
                break
        for last in reversed(ends):
            stretch = self.steps[first:last + 1]
            if not (any(isinstance(s, VectorStep) and s.op == "add" for s in stretch)
                    if residual else sum(hasattr(s, "linear") for s in stretch) >= 2):
                continue
            placer = self._private(first, last) and self._allocate(forms, first, last)
            if placer:
                layers = tuple(self.layer_of[i] for i in range(first, last + 1)
                               if i in self.layer_of)
                return GraphChain(first, last, self.steps[first].input,
                                  _outputs(self.steps[last])[0], dict(forms), placer.addresses,
                                  layers, frozenset(placer.descending))
        return None


def find_graph_chains(params: RillParams, steps, outputs, compiled: list[CompiledLinear],
                      resident: set[int], addressed: Callable, residual: bool = True,
                      exclude: frozenset = frozenset()) -> dict[int, GraphChain]:
    """``{first step index: chain}`` for every stretch of ``steps`` run on chip as one call
    (see the module docstring); none without the vector unit. ``residual``: only stretches
    holding an ADD; else linear ones of two layers or more (those :mod:`sw.chain` cannot hold
    in its two regions), none of the device layers in ``exclude``."""
    if not (params.vector_unit and params.store_to_acts and params.conv_addressing):
        return {}
    finder = _Finder(params, steps, outputs, compiled, resident, addressed)
    chains, i = {}, 0
    while i < len(steps):
        chain = finder.chain_from(i, residual, exclude)
        if chain is not None:
            chains[i] = chain
            i = chain.last + 1
        else:
            i += 1
    return chains


def graph_call(chain: GraphChain, steps, compiled: dict[int, CompiledLinear],
               residences: dict[int, Residence], x: np.ndarray) -> VectorCall:
    """One call of ``chain`` on NCHW ``x`` (its input map), image by image."""
    first = compiled[chain.layers[0]]
    params = first.params
    x = np.asarray(x)
    form = chain.forms[chain.input]
    if x.ndim != 4 or x.shape[1:] != (form.channels, form.h, form.w) \
            or x.dtype != first.act_dtype:
        raise CompileError(f"{chain.input}: a {form.channels}x{form.h}x{form.w} "
                           f"{first.act_dtype} map expected, got {x.dtype} {x.shape}")
    x, at = as_int8(x), chain.addresses
    prog, answers = Program(params), []
    layer_index = dict(zip((i for i in range(chain.first, chain.last + 1)
                            if hasattr(steps[i], "linear")), chain.layers))
    for image in x:
        prog.configure(chained_config(first))   # the device's configuration is not known here
        prog.load_acts(at[chain.input], pack_feature_map(params, image, False))
        for i in range(chain.first, chain.last + 1):
            step, final = steps[i], i == chain.last
            if isinstance(step, VectorStep):
                _vector(prog, step, chain, final, answers)
            elif hasattr(step, "linear"):
                index = layer_index[i]
                _layer(prog, step, compiled[index], residences[index], chain, final, answers)
    last = steps[chain.last]
    out = chain.forms[chain.output]

    def finish(blocks):
        if isinstance(last, VectorStep):
            return np.stack([unpack_feature_map(params, words, out.channels, out.h, out.w)
                             for words in blocks])
        if last.kind == "gemm":
            return np.concatenate(blocks)
        bands = len(blocks) // len(x)   # a conv's output: its bands, image by image
        return np.stack([np.concatenate(blocks[i:i + bands]).reshape(out.h, out.w, -1)
                         .transpose(2, 0, 1) for i in range(0, len(blocks), bands)])
    name = "+".join(getattr(steps[i], "name", "") for i in range(chain.first, chain.last + 1)
                    if hasattr(steps[i], "linear") or isinstance(steps[i], VectorStep))
    return VectorCall(name, prog, answers, finish)


def _layer(prog: Program, step, layer: CompiledLinear, residence: Residence, chain: GraphChain,
           final: bool, answers: list):
    """A conv walked over its input map, band by band, or a Gemm on a row; its outputs stored
    into its block, or, last, sent."""
    config = layer.config if final else chained_config(layer)
    if config != prog.config:
        prog.configure(config)
    load_streamed_qparams(prog, layer, residence, hands_on=not final)
    at, q_base = chain.addresses[step.input], residence.qparam_base
    to = None if final else chain.addresses[step.output]
    if step.kind != "conv":
        prog.matmul(at, residence.weight_base, 0, 1, layer.k_tiles, layer.n_tiles)
        _store(prog, layer, q_base, 1, 1, to, answers)
        return
    source = chain.forms[step.input]
    oh, ow = output_size(step.conv, source.h, source.w)
    geometry = conv_geometry(layer, step.conv, source.h, source.w)
    for first, end in conv_bands(prog.params, layer, oh, ow, step.output in chain.descending):
        prog.conv_geometry(replace(geometry, first_row=first))
        conv_matmul(prog, layer, geometry, at, residence.weight_base, (end - first) * ow)
        _store(prog, layer, q_base, (end - first) * ow, oh * ow,
               None if to is None else to + first * ow, answers)


def _store(prog: Program, layer: CompiledLinear, q_base: int, rows: int, pixels: int,
           to: int | None, answers: list):
    """A band's ``rows`` sent, or stored from word ``to`` into a map of ``pixels`` a channel
    block (a STORE a block where the band is not the whole map: a STORE's blocks lie ``rows``
    apart)."""
    if to is None:
        prog.store(0, rows, layer.n, q_base, raw=layer.raw)
        answers.append((rows, layer.n, layer.out_dtype))
        return
    per_word, cols = prog.params.act_lanes, prog.params.cols
    blocks = range(0, layer.n, per_word) if rows != pixels else [0]
    for first in blocks:
        n = layer.n - first if rows == pixels else min(per_word, layer.n - first)
        prog.store(first // cols * rows, rows, n, q_base + first,
                   to_acts=to + first // per_word * pixels)


def _vector(prog: Program, step: VectorStep, chain: GraphChain, final: bool, answers: list):
    at, lanes = chain.addresses, prog.params.act_lanes
    out = step.outputs[0]
    if step.op == "add":
        for slot, stage in enumerate(step.stages):
            prog.vector_config(slot, stage)
        # The full channel blocks, then a last one's lanes only: a map of 16 channels in
        # 32-lane words adds in half the cycles.
        form = chain.forms[out]
        pixels, full = form.h * form.w, form.channels // lanes
        addresses = [at[step.inputs[0]], at[step.inputs[1]], at[out]]
        if full:
            prog.add(*addresses, full * pixels)
        if form.channels % lanes:
            prog.add(*(a + full * pixels for a in addresses), pixels, form.channels % lanes)
    else:
        source = chain.forms[step.inputs[0]]
        step.pool(prog, at[step.inputs[0]], at[out], -(-source.channels // lanes),
                  source.h * source.w)
    if final:
        words = chain.forms[out].words(lanes)
        prog.read_acts(at[out], words)
        answers.append(words)

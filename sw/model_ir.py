"""One representation of a quantized model, whatever format it was loaded from.

A :class:`QuantizedModel` is a list of steps in execution order over named tensors: the
:class:`DeviceLayer` s (quantized matmuls and convolutions, with their weights and requantization
parameters, compiled for a device's params on first use), the :class:`HostStep` s (quantize,
dequantize and data movement, run on the host with onnxruntime's arithmetic), and, for a graph
split between device and host, :class:`HostCall` s (a segment an outside runtime runs whole) and
:class:`sw.runtime_layer.RuntimeLayer` s (matmuls whose operands are known only at run time).
Its inputs carry dtype and shape, so feeds are checked before anything runs.

Front ends lower into it (:mod:`sw.onnx_import` from ONNX); the model's outputs are the same
whichever device runs it. Nothing here refers to the format a model came from: a host step names
its operation and carries plain attributes (numbers, lists, arrays).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hw.isa import Precision
from hw.params import RillParams

from .chain import chain_program, conv_chain_program, find_chains
from .compiler import (
    CompiledLinear,
    CompileError,
    LayerProgram,
    QuantizedLinear,
    compile_linear,
    scalar_int,
)
from .conv import QuantizedConv, im2col
from .conv_device import addressable, device_conv_program, device_linear
from .device_base import Device, DeviceError
from .flatten import flattened_inputs, fmap_linear, fmap_order
from .graph_chain import find_graph_chains, graph_call
from .host_ops import run_host_op
from .program import Program
from .resident import Allocation, Residence, allocate, load_program, resident_program
from .vector_step import VectorStep, pooled_inputs

__all__ = ["TensorSpec", "DeviceLayer", "HostStep", "HostCall", "QuantizedModel", "InputError"]


class InputError(ValueError):
    """A feed is missing, unexpected, or of the wrong dtype or shape."""


@dataclass(frozen=True)
class TensorSpec:
    """A model input: its name, element type and shape (``None`` for a dimension of any size;
    ``shape`` ``None`` when even the rank is unknown)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None = None

    def check(self, value: Any) -> np.ndarray:
        """``value`` as an array, or :class:`InputError` saying what it must be."""
        value = np.asarray(value)
        if value.dtype != self.dtype:
            raise InputError(f"input {self.name!r} must be {self.dtype}, got {value.dtype}")
        if self.shape is not None and (value.ndim != len(self.shape) or any(
                d is not None and d != s for d, s in zip(self.shape, value.shape))):
            shown = ["?" if d is None else d for d in self.shape]
            raise InputError(f"input {self.name!r} must have shape {shown}, "
                             f"got {list(value.shape)}")
        return value


@dataclass(eq=False)
class DeviceLayer:
    """One quantized matmul, Gemm or convolution that runs on the device.

    ``kind``: ``"matmul"`` (any leading dimensions, the last one is K), ``"gemm"`` (2-D input,
    transposed first when ``trans_a``) or ``"conv"`` (NCHW input, ``conv`` set; ``in_size``, its
    input's height and width where the model fixes them, so that a map too large for the
    activation SRAM is known to need im2col before anything is placed).
    """

    name: str
    kind: str
    input: str
    output: str
    linear: QuantizedLinear
    conv: QuantizedConv | None = None
    trans_a: bool = False
    in_size: tuple[int, int] | None = None
    _compiled: dict = field(default_factory=dict, repr=False)

    def addressed(self, params: RillParams) -> bool:
        """Whether this is a conv ``params``' core walks itself (:mod:`sw.conv_device`)."""
        return self.kind == "conv" and addressable(params, self.conv, self.in_size)

    def compiled(self, params: RillParams, *, im2col: bool = False,
                 fmap: tuple[int, int] | None = None) -> CompiledLinear:
        """The layer compiled for ``params``: a conv the core walks in the device's K order,
        unless ``im2col``; with ``fmap`` (channels, pixels), a Gemm reading a conv's flattened
        feature map in its order (:mod:`sw.flatten`)."""
        key = (params, im2col or not self.addressed(params), fmap)
        if key not in self._compiled:
            linear = self.linear if key[1] else device_linear(params, self.conv)
            if fmap is not None:
                kc = params.k_per_tile(Precision(linear.precision) == Precision.INT4)
                linear = fmap_linear(linear, *fmap, kc)
            self._compiled[key] = compile_linear(params, linear)
        return self._compiled[key]

    def as_matrix(self, x: np.ndarray):
        """``(x2d, reshape)``: the layer's input as the (M, K) matrix the device multiplies, and
        how to shape the (M, N) result as the layer's output."""
        if self.kind == "conv":
            x = np.asarray(x)
            if x.ndim != 4:
                raise InputError(f"conv {self.name!r} needs an NCHW input, got shape {x.shape}")
            pad = scalar_int(self.linear.a_zp, "activation zero point")
            cols, (n, oh, ow) = im2col(x, self.conv.kernel, self.conv.pads, self.conv.strides, pad)
            return cols.astype(x.dtype, copy=False), lambda y: np.ascontiguousarray(
                y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))
        if self.kind == "gemm":
            if x.ndim != 2:
                raise InputError(f"Gemm {self.name!r} needs a 2-D input, got shape {x.shape}")
            return (np.ascontiguousarray(x.T) if self.trans_a else x), lambda y: y
        lead = x.shape[:-1]
        return x.reshape(-1, x.shape[-1]), lambda y: y.reshape(*lead, y.shape[-1])

    def program(self, params: RillParams, x: np.ndarray, residence: Residence | None = None,
                fmap: tuple[int, int] | None = None):
        """``(LayerProgram, reshape)``: the layer's program and how to shape its (M, N) output;
        with ``residence``, a call of the layer resident there (:mod:`sw.resident`); with
        ``fmap``, compiled to read a flattened feature map (its rows reordered here)."""
        if self.addressed(params):
            try:
                lp, (n, oh, ow) = device_conv_program(self.compiled(params), self.conv, x,
                                                      residence)
                return lp, lambda y: np.ascontiguousarray(
                    y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))
            except CompileError:
                if residence is not None:   # its weights are resident in the device's order
                    raise
        x2d, reshape = self.as_matrix(x)
        compiled = self.compiled(params, im2col=True, fmap=fmap)
        if fmap is not None:
            x2d = fmap_order(x2d, *fmap, compiled.kc)
        if residence is not None:
            return resident_program(compiled, residence, x2d), reshape
        return compiled.program(x2d), reshape


@dataclass(frozen=True)
class HostStep:
    """One step run on the host by :func:`sw.host_ops.run_host_op`: ``op`` is one of
    :data:`sw.host_ops.HOST_OPS`; an empty input name is an absent optional input."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class HostCall:
    """Host steps a front end runs as one call (``run(*inputs) -> outputs``): a segment of a
    partitioned graph that an outside runtime executes whole, so that its own fusions apply
    as they do to the whole model. ``nodes`` names what it runs, for reports."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[..., list[np.ndarray]] = field(repr=False)
    nodes: tuple[str, ...] = ()
    op: str = "host call"

    def execute(self, device: Device, env: dict[str, np.ndarray],
                programs: list[LayerProgram] | None = None) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.run(*(env[name] for name in self.inputs))))


@dataclass(eq=False)
class QuantizedModel:
    """Steps over named tensors; see the module docstring."""

    inputs: list[TensorSpec]
    outputs: list[str]
    constants: dict[str, np.ndarray]
    steps: list[DeviceLayer | HostStep]
    #: The vector steps the last :meth:`run` computed on the host.
    vector_on_host: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[DeviceLayer]:
        return [step for step in self.steps if isinstance(step, DeviceLayer)]

    def check_inputs(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        expected = {spec.name: spec for spec in self.inputs}
        if set(feeds) != set(expected):
            raise InputError(f"inputs {sorted(feeds)} given; the model takes {sorted(expected)}")
        return {name: spec.check(feeds[name]) for name, spec in expected.items()}

    def load(self, device: Device) -> Allocation:
        """Place the model's layers in ``device``'s SRAMs (:func:`sw.resident.allocate`) and load
        the resident ones' weights and requantization entries, unless they are there already."""
        params = device.params
        if isinstance(device.resident, _Resident) and device.resident.model is self \
                and device.resident.params == params:
            return device.resident.allocation
        fmaps = flattened_inputs(params, self.steps, self.constants,
                                 lambda layer: layer.addressed(params))
        compiled = [layer.compiled(params, fmap=fmaps.get(i))
                    for i, layer in enumerate(self.layers)]
        allocation = allocate(params, compiled)
        pools = pooled_inputs(self.steps) if params.vector_unit else {}
        resident = set(allocation.residences)
        graphs = find_graph_chains(params, self.steps, self.outputs, compiled, resident,
                                   lambda layer: layer.addressed(params))
        in_graphs = {index for graph in graphs.values() for index in graph.layers}
        chains = find_chains(params, self.steps, self.outputs, compiled, resident, fmaps,
                             lambda layer: layer.addressed(params), pools)
        chains = {first: chain for first, chain in chains.items() if not in_graphs & set(chain)}
        # Linear stretches placed by liveness and run in bands hold maps the chains' two
        # regions cannot: one replaces the chains it overlaps where it runs more layers.
        for first, stretch in find_graph_chains(
                params, self.steps, self.outputs, compiled, resident,
                lambda layer: layer.addressed(params), residual=False,
                exclude=frozenset(in_graphs)).items():
            overlapped = [start for start, chain in chains.items()
                          if set(chain) & set(stretch.layers)]
            if all(len(stretch.layers) > len(chains[start]) for start in overlapped):
                for start in overlapped:
                    del chains[start]
                graphs[first] = stretch
        allocation = replace(allocation, chains=chains, fmaps=fmaps, pools=pools, graphs=graphs)
        handing_on = {index for chain in chains.values() for index in chain[:-1]} | {
            index for graph in graphs.values() for index in graph.layers[:-1]}
        program = Program(params)
        for index, residence in allocation.residences.items():
            program.extend(load_program(compiled[index], residence, index in handing_on))
        program.sync()   # one answer: a refused load shows up as its error status, not silence
        response = device.execute(program.to_bytes(), program.response_bytes,
                                  program.frame_cuts(), keeps_resident=True)
        if response[0] != 0:
            raise DeviceError(f"loading the model failed with status {response[0]} at "
                              f"instruction #{int.from_bytes(response[2:4], 'little')}",
                              status=response[0], opcode=response[1])
        self.load_program = program
        # Any nonzero 16-bit value: it tells the device's INFO reader that a model was loaded.
        tag = (id(self) >> 4) % 0xFFFF + 1
        device.resident = _Resident(self, params, allocation, tag)
        return allocation

    def run(self, device: Device, feeds: dict[str, Any], *,
            progress: Callable[[str, int, int], None] | None = None,
            programs: list[LayerProgram] | None = None,
            resident: bool = False, vector_calls: bool = False) -> dict[str, np.ndarray]:
        """Run every step; returns ``{output name: array}``. Each device layer's program is
        appended to ``programs``; ``progress(layer name, index, layer count)`` is called before
        each device layer. ``resident``: load the weights once (:meth:`load`, on the first call
        on ``device``) and send only activations and instructions per call. Vector steps run on
        the device inside the on-chip stretches a resident run finds, elsewhere on the host
        (:meth:`sw.vector_step.VectorStep.on_host`, listed in :attr:`vector_on_host`), unless
        ``vector_calls`` makes each a call of its own."""
        self.vector_on_host = []
        env = dict(self.constants)
        env.update(self.check_inputs(feeds))
        allocation = self.load(device) if resident else None
        layers, done, skip_to = len(self.layers), 0, -1
        position_of = {id(step): i for i, step in enumerate(self.steps)}
        for position, step in enumerate(self.steps):
            if position <= skip_to:   # run as part of a chain or a graph chain
                continue
            graph = allocation.graphs.get(position) if allocation is not None else None
            if graph is not None:
                if progress is not None:
                    progress(self.layers[graph.layers[0]].name, done, layers)
                env[graph.output] = self._run_graph(device, allocation, position, graph, env,
                                                    programs)
                done += len(graph.layers)
                skip_to = graph.last
                continue
            if isinstance(step, HostStep):
                env.update(zip(step.outputs, run_host_op(step, env)))
                continue
            if isinstance(step, VectorStep) and not vector_calls:
                env.update(step.on_host(env))
                self.vector_on_host.append(step.name)
                continue
            if not isinstance(step, DeviceLayer):   # HostCall, RuntimeLayer
                env.update(step.execute(device, env, programs))
                continue
            if progress is not None:
                progress(step.name, done, layers)
            chain = allocation.chains.get(done) if allocation is not None else None
            chained = chain and self._chain_program(device.params, allocation, chain,
                                                    env[step.input])
            if chained:
                lp, shape = chained
                skip_to = position_of[id(self.layers[chain[-1]])]
            elif allocation is None:
                lp, shape = step.program(device.params, env[step.input])
            elif done in allocation.residences:
                lp, shape = step.program(device.params, env[step.input],
                                         allocation.residences[done],
                                         allocation.fmaps.get(done))
            else:
                lp, shape = step.program(allocation.streaming_params, env[step.input],
                                         fmap=allocation.fmaps.get(done))
            if allocation is not None:
                lp = self._from_program_memory(device, (done, lp.plan.m), lp)
            if programs is not None:
                programs.append(lp)
            # Resident calls write below the resident layers; streamed ones may write anywhere.
            response = device.execute(lp.command_bytes, lp.response_bytes, lp.frame_cuts,
                                      keeps_resident=resident)
            last = len(chain) - 1 if chained else 0
            env[self.layers[done + last].output] = shape(lp.assemble(response))
            done += 1 + last
        return {name: env[name] for name in self.outputs}

    def _run_graph(self, device: Device, allocation: Allocation, position: int, graph,
                   env: dict[str, np.ndarray], programs: list | None) -> np.ndarray:
        """One call of a graph chain (:mod:`sw.graph_chain`) on its input in ``env``; its
        output."""
        x = env[graph.input]
        call = graph_call(graph, self.steps,
                          {i: self.layers[i].compiled(device.params) for i in graph.layers},
                          allocation.residences, x)
        call = self._from_program_memory(device, ("graph", position, len(x)), call)
        if programs is not None:
            programs.append(call)
        response = device.execute(call.command_bytes, call.response_bytes, call.frame_cuts,
                                  keeps_resident=True)
        return call.assemble(response)

    def _from_program_memory(self, device: Device, key: tuple, lp):
        """A resident call's instructions (a layer's, a chain's or a graph chain's) stored in the
        device's program memory on first use (their headers depend on the call's shape, not its
        values) and run by one ``RUN`` header followed by the call's activations; ``lp`` itself
        where the device has no program memory or the instructions do not fit it."""
        record: _Resident = device.resident
        depth, count = device.params.program_depth, len(lp.program.chunks)
        if count > depth:
            return lp
        call = Program(device.params)
        if key not in record.programs:   # stored by this call, its cost counted in it
            if record.program_top + count > depth:   # full: start again from the bottom
                record.programs.clear()
                record.program_top = 0
            record.programs[key] = record.program_top
            record.program_top += count
            call.extend(lp.program.load_into_program_memory(record.programs[key], record.tag))
        call.extend(lp.program.as_run(record.programs[key]))
        return replace(lp, program=call)

    def _chain_program(self, params: RillParams, allocation: Allocation,
                       chain: tuple[int, ...], x: np.ndarray):
        """``(LayerProgram, reshape)`` of one call of a chain of layers (:mod:`sw.chain`);
        chained layers are row-wise matmuls, so the first layer's reshape fits the last's
        output."""
        first = self.layers[chain[0]]
        compiled = [self.layers[i].compiled(params, fmap=allocation.fmaps.get(i))
                    for i in chain]
        residences = [allocation.residences[i] for i in chain]
        if first.kind == "conv":
            convs = [self.layers[i].conv for i in chain if self.layers[i].kind == "conv"]
            return conv_chain_program(convs, compiled, residences, x,
                                      pooled=allocation.pools.get(chain[len(convs)])
                                      if len(convs) < len(chain) else None)
        x2d, reshape = first.as_matrix(x)
        return chain_program(compiled, residences, x2d), reshape


@dataclass(eq=False)
class _Resident:
    """What :meth:`QuantizedModel.load` left on a device."""

    model: QuantizedModel
    params: RillParams
    allocation: Allocation
    #: The program tag LOAD_PROGRAM gives the device (INFO reports it).
    tag: int = 0
    #: Calls stored in the program memory: ``{(device-layer index, rows): address}`` (a graph
    #: chain's: ``("graph", first step, images)``), and the
    #: first free address.
    programs: dict = field(default_factory=dict)
    program_top: int = 0

"""Full-integer TFLite models on a Rill device: a ``.tflite`` file read
(:mod:`sw.tflite_reader`), lowered into the model representation (:mod:`sw.tflite_lowering`
says where each operator runs) and run with LiteRT's reference arithmetic
(``docs/tflite-arithmetic.md``), so the outputs equal ``ai-edge-litert``'s with
``OpResolverType.BUILTIN_REF`` bit for bit. :meth:`TfliteModel.placement_lines` says where each
operator runs and what share of the model's MACs the device does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hw.params import RillParams

from .compiler import LayerProgram
from .device_base import Device
from .model_ir import DeviceLayer, InputError, QuantizedModel, TensorSpec
from .tflite_lowering import (
    SUPPORTED_OPERATORS,
    Lowering,
    TfliteImportError,
    UnsupportedTfliteOperator,
)
from .tflite_reader import InvalidTflite, TfliteGraph, read_tflite

__all__ = ["TfliteModel", "TfliteImportError", "UnsupportedTfliteOperator", "InvalidTflite",
           "SUPPORTED_OPERATORS"]


class TfliteModel:
    """A full-integer TFLite model ready to run on any Rill device (the same surface as
    :class:`sw.onnx_import.RillModel`)."""

    def __init__(self, graph: TfliteGraph, params: RillParams | None = None):
        self.graph = graph
        self.programs: list[LayerProgram] = []
        self._lower(params or RillParams())

    def _lower(self, params: RillParams):
        """The model representation for a core of ``params``: which depthwise convs run on its
        array depends on its SRAMs."""
        graph = self.graph
        lowering = Lowering(graph, params)
        for index in graph.inputs:
            lowering.nhwc.add(lowering.name(index))
        for op in graph.operators:
            lowering.lower(op)
        outputs = [lowering.layout(index, nchw=False) for index in graph.outputs]
        inputs = [TensorSpec(lowering.name(i), graph.tensors[i].dtype,
                             (None, *graph.tensors[i].shape[1:])) for i in graph.inputs]
        self.params, self.placements = params, lowering.placements
        #: Some tensor between the operators has no batch axis (a batch-1 model's RESHAPE to
        #: ``(C,)``, say): such a model runs image by image, as LiteRT runs it.
        self.per_image = any(
            t.data is None and t.dtype != np.int32 and (not t.shape or t.shape[0] != 1)
            for op in graph.operators for t in (graph.tensors[i] for i in op.outputs))
        #: The model in Rill's own representation, for a core of :attr:`params`.
        self.model = QuantizedModel(inputs, outputs, lowering.constants, lowering.steps)

    @classmethod
    def load(cls, path: str | Path | bytes, params: RillParams | None = None) -> TfliteModel:
        """Read and lower a model, for a core of ``params`` (default :class:`RillParams`;
        :meth:`run` lowers it again for another device's)."""
        return cls(read_tflite(path), params)

    @property
    def input_names(self) -> list[str]:
        return [self.graph.tensors[i].name for i in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [self.graph.tensors[i].name for i in self.graph.outputs]

    @property
    def layers(self) -> list[DeviceLayer]:
        return self.model.layers

    def predicted_cycles(self) -> dict[str, int]:
        """Predicted working cycles of each device layer program of the last :meth:`run`."""
        return {lp.name: lp.predicted_cycles for lp in self.programs}

    def macs(self) -> tuple[int, int]:
        """``(on the device, in all)``: the model's multiply-accumulates per inference."""
        return (sum(p.macs for p in self.placements if p.where.startswith("device")),
                sum(p.macs for p in self.placements))

    def host_operators(self) -> list[str]:
        """What the host does: whole operators, then the host's part of shared ones, then the
        vector unit's operators the last :meth:`run` computed on the host."""
        ran = [name.split(" ", 1)[1] for name in self.model.vector_on_host]
        return sorted({p.op for p in self.placements if p.where == "host"}) + sorted(
            {f"{p.op}'s {p.host_part}" for p in self.placements if p.where == "device + host"}
        ) + [f"{op} x{ran.count(op)} (off chip)" for op in sorted(set(ran))]

    def placement_lines(self) -> list[str]:
        """Where each operator runs, and the device's share of the model's MACs."""
        on_device, total = self.macs()
        width = max([20, *(len(p.op) for p in self.placements)])
        lines = [f"  #{p.index:<3} {p.op:<{width}} {p.where:<14} {p.macs:>10,} MACs"
                 + (f"  ({p.why})" if p.why else "") for p in self.placements]
        lines.append(f"  device: {on_device:,} of {total:,} MACs "
                     f"({on_device / max(total, 1):.1%})")
        return lines

    def run(self, device: Device, feeds: dict[str, Any], *,
            progress: Callable[[str, int, int], None] | None = None,
            resident: bool = False, vector_calls: bool = False) -> dict[str, np.ndarray]:
        """Run the model; returns ``{output name: array}`` exactly as LiteRT's reference kernels
        compute it (any batch size: TFLite's batch of 1 is not enforced). ``resident`` and
        ``vector_calls``: :meth:`sw.model_ir.QuantizedModel.run`'s."""
        by_name = {self.graph.tensors[i].name: name for name, i in
                   zip((s.name for s in self.model.inputs), self.graph.inputs)}
        unknown = set(feeds) - set(by_name)
        if unknown:
            raise TfliteImportError(f"inputs {sorted(unknown)} given; the model takes "
                                    f"{sorted(by_name)}")
        if device.params != self.params:
            self._lower(device.params)
        self.programs = []
        feeds = {by_name[k]: np.asarray(v) for k, v in feeds.items()}
        rows = {len(v) for v in feeds.values() if v.ndim}
        images = [feeds] if not self.per_image or len(rows) != 1 or rows == {1} else \
            [{k: v[row:row + 1] for k, v in feeds.items()} for row in range(rows.pop())]
        try:
            parts = [self.model.run(device, image, progress=progress, programs=self.programs,
                                    resident=resident, vector_calls=vector_calls)
                     for image in images]
        except InputError as error:
            raise TfliteImportError(str(error)) from None
        out = {name: np.concatenate([part[name] for part in parts]) if len(parts) > 1
               else parts[0][name] for name in parts[0]}
        return {self.graph.tensors[i].name: out[name]
                for i, name in zip(self.graph.outputs, self.model.outputs)}

"""Name lookups over an ONNX model's graph, for the importer: constants, producers, consumers,
a topological order, and the element types and shapes onnx's shape inference finds."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .model_ir import TensorSpec

__all__ = ["InvalidModel", "ModelImportError", "OnnxGraph", "infer_types", "input_spec",
           "node_attrs"]


class ModelImportError(ValueError):
    """Base of the errors :class:`sw.onnx_import.RillModel` raises for a model or input it
    cannot take."""


class InvalidModel(ModelImportError):
    """The file or bytes are not a valid ONNX model."""


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _contrib_output_type(node: onnx.NodeProto, types: dict[str, int]) -> int:
    """The element type of a ``com.microsoft`` node's first output (onnx's shape inference does
    not know these operators), or 0 where no rule says."""
    op = node.op_type
    if op.startswith("QLinear"):   # the output zero point's type: last input, or Concat's second
        zp = node.input[1] if op == "QLinearConcat" else [n for n in node.input if n][-1]
        return types.get(zp, 0)
    if op == "QGemm":
        return types.get(node.input[8], 0) if len(node.input) > 8 and node.input[8] \
            else TensorProto.FLOAT
    if op in ("MatMulIntegerToFloat", "DynamicQuantizeMatMul", "DequantizeLinear"):
        return TensorProto.FLOAT
    if op == "QuantizeLinear" and len(node.input) > 2:
        return types.get(node.input[2], 0)
    return 0


def infer_types(model: onnx.ModelProto) -> onnx.GraphProto:
    """onnx's shape inference, with the element types of onnxruntime's ``com.microsoft``
    quantized operators (QOperator models) filled in so that inference goes on past them."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    consts = {i.name: i.data_type for i in model.graph.initializer}
    for _ in range(16):
        graph = onnx.shape_inference.infer_shapes(model).graph
        types = dict(consts)
        types.update({info.name: info.type.tensor_type.elem_type for info in
                      list(graph.value_info) + list(graph.input) + list(graph.output)})
        found = [(node.output[0], _contrib_output_type(node, types)) for node in graph.node
                 if node.domain == "com.microsoft" and node.output
                 and not types.get(node.output[0])]
        found = [(name, t) for name, t in found if t]
        if not found:
            return graph
        model.graph.value_info.extend(helper.make_tensor_value_info(name, t, None)
                                      for name, t in found)
    return graph


def input_spec(info: onnx.ValueInfoProto) -> TensorSpec:
    t = info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim) \
        if t.HasField("shape") else None
    return TensorSpec(info.name, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)), shape)


class OnnxGraph:
    """Name lookups over a model's graph: constants, producers, consumers, topological order."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                              for i in g.initializer}
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for idx, node in enumerate(g.node):
            for name in node.output:
                self.producer[name] = idx
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(idx)
        self.nodes = list(g.node)
        self.order = self._topological()
        self.types: dict[str, int] = {}
        self.shapes: dict[str, tuple[int | None, ...]] = {}
        try:
            inferred = infer_types(model)
            for info in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
                self.types[info.name] = info.type.tensor_type.elem_type
                if info.type.tensor_type.HasField("shape"):
                    self.shapes[info.name] = input_spec(info).shape
        except Exception:   # types are a convenience: matching says what is missing
            pass
        for name, value in self.consts.items():
            self.types.setdefault(name, helper.np_dtype_to_tensor_dtype(value.dtype))
            self.shapes[name] = value.shape

    def dtype(self, name: str, idx: int, matcher) -> np.dtype:
        if not self.types.get(name):
            matcher.fail(idx, f"the element type of {name!r} is unknown; give its zero point")
        return helper.tensor_dtype_to_np_dtype(self.types[name])

    def _topological(self) -> list[int]:
        known = set(self.consts) | {i.name for i in self.inputs} | {""}
        order, pending = [], list(range(len(self.nodes)))
        while pending:
            ready = [i for i in pending if all(n in known for n in self.nodes[i].input)]
            if not ready:
                names = sorted({n for i in pending for n in self.nodes[i].input} - known)
                raise InvalidModel(f"the graph has a cycle or undefined tensors: {names[:5]}")
            for i in ready:
                order.append(i)
                known.update(self.nodes[i].output)
            pending = [i for i in pending if i not in set(ready)]
        return order

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def made_by(self, name: str, op_type: str) -> int | None:
        idx = self.producer.get(name)
        return idx if idx is not None and self.nodes[idx].op_type == op_type else None

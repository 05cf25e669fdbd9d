"""The oracle's emulation for models with float operators (Softmax, LayerNormalization, Add…).

:func:`sw.oracle.emulate` computes quantized integer graphs exactly in numpy; a model with float
operators it refuses. On a CPU whose onnxruntime saturates its U8S8 GEMM, :func:`emulate_mixed`
still gives onnxruntime's exact result for such a model: the integer operators onnxruntime would
run (the QDQ groups it fuses into QLinearMatMul / QGemm / QLinearConv, and those QOperator nodes
and MatMulInteger) are computed by the emulation's own numpy arithmetic, and every other node
runs in onnxruntime itself, in the segments :func:`sw.onnx_partition.segments` cuts so that
onnxruntime fuses them as in the whole model. Only the GEMM kernels depend on the CPU, and none
of them runs in onnxruntime here. The segmenting is the product's; the integer arithmetic, which
is what the oracle checks, is the emulation's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from . import oracle_emulation as oracle
from .model_ir import HostCall
from .onnx_graph import infer_types
from .onnx_partition import segments

__all__ = ["emulate_mixed"]


class _Emulated:
    """One integer operator of the model, computed by the emulation (a step of the order
    :func:`sw.onnx_partition.segments` takes)."""

    def __init__(self, node: onnx.NodeProto, group: tuple | None, inputs: list[str],
                 output: str):
        self.node, self.group = node, group
        self.inputs, self.outputs = tuple(n for n in inputs if n), (output,)

    def compute(self, env: dict[str, Any]) -> np.ndarray:
        def get(name):
            return env[name] if name else None
        if self.group is not None:
            return oracle._group_output(self.node, self.group, get)
        args = [get(n) for n in self.node.input] + [None] * 9
        return oracle._integer_output(self.node, oracle._attrs(self.node), args)


def _claims(graph) -> tuple[dict[int, _Emulated], set[int], dict[str, onnx.NodeProto]]:
    """``(step at node index, node indices it replaces, dequantizers)``."""
    index = {id(node): i for i, node in enumerate(graph.nodes)}
    steps, replaced, folded = {}, set(), []
    for i, node in enumerate(graph.nodes):
        group = graph.fused_group(node) if node.op_type in oracle._FUSABLE else None
        if group is not None:
            dq_x, dq_w, dq_b, relu, q = group
            names = [*dq_x.input, *dq_w.input, *(dq_b.input[:1] if dq_b else []), *q.input[1:]]
            steps[index[id(q)]] = _Emulated(node, group, names, q.output[0])
            replaced |= {i, index[id(q)]} | ({index[id(relu)]} if relu is not None else set())
            folded += [d for d in (dq_x, dq_w, dq_b) if d is not None]
        elif node.op_type in oracle._INTEGER_OPS and not (
                node.op_type == "QGemm" and (len(node.input) < 8 or not node.input[7])):
            steps[i] = _Emulated(node, None, list(node.input), node.output[0])
            replaced.add(i)
    dequantizers = {}
    for dq in folded:   # computed only where something else reads it
        readers = graph.consumers.get(dq.output[0], [])
        if all(index[id(r)] in replaced for r in readers) and dq.output[0] not in graph.outputs:
            replaced.add(index[id(dq)])
            if all(n in graph.inits for n in dq.input[1:] if n):
                dequantizers[dq.input[0]] = dq
    return steps, replaced, dequantizers


def emulate_mixed(model: oracle.ModelLike, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """onnxruntime's ``ORT_ENABLE_ALL`` result for a model with float operators, exact on every
    CPU (see the module docstring)."""
    proto = oracle._proto(model)
    graph = oracle._Graph(proto)
    steps, replaced, dequantizers = _claims(graph)
    order = [steps[i] if i in steps else node for i, node in enumerate(graph.nodes)
             if i in steps or i not in replaced]
    types = {info.name: info.type.tensor_type.elem_type for info in
             (lambda g: list(g.value_info) + list(g.input) + list(g.output))(infer_types(proto))}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    env: dict[str, Any] = dict(graph.inits)
    env.update({k: np.asarray(v) for k, v in feeds.items()})
    for step in segments(proto, order, graph.inits, types, graph.outputs, dequantizers):
        if isinstance(step, HostCall):
            env.update(zip(step.outputs, step.run(*(env[n] for n in step.inputs))))
        else:
            env[step.outputs[0]] = step.compute(env)
    return {name: env[name] for name in graph.outputs}

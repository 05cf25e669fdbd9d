"""An ONNX graph split between the device and onnxruntime on the host.

:class:`sw.onnx_import.RillModel` claims the nodes the device runs bit-exactly (quantized
matmuls and convolutions, static or with run-time operands, :mod:`sw.runtime_layer`); every other
node runs on the host. Where the host part is only quantize, dequantize and data movement, Rill's
own exact host operators run it (:mod:`sw.host_ops`). Otherwise the host part runs through
onnxruntime, in **segments**: each segment is a subgraph cut from the model (``onnx.helper``),
loaded into onnxruntime once and fed the device's outputs as inputs.

Cutting a graph can change what onnxruntime computes: it fuses ``DQ -> Add -> Q`` into
``QLinearAdd`` and ``DQ -> MatMul -> Q`` into ``QLinearMatMul``, whose arithmetic differs from
the float nodes they replace. The cuts keep every such group whole:

- the device claims a quantized matmul exactly where onnxruntime fuses one, so the tensors
  crossing a cut are the quantized tensors onnxruntime's fused node would read and write;
- each host node is placed in the *latest* segment its consumers allow (a dequantize goes with
  the add that reads it, not with the node that made its input), so the groups onnxruntime
  fuses lie in one segment.

Segments and device steps alternate by *level*: a device step's level is one more than the
highest level of the tensors it reads, a host node's the highest of its inputs' (raised as far
as its consumers allow); the host segment of level ``L`` runs after the device steps of level
``L`` and before those of level ``L + 1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from .host_ops import quantize_linear
from .model_ir import HostCall
from .onnx_graph import infer_types, node_attrs
from .runtime_layer import RuntimeLayer

__all__ = ["PartitionError", "RUNTIME_OPS", "claim_runtime", "node_macs",
           "onnxruntime_inference", "placement_lines", "segments"]

#: Suffixes of a segment's outputs (see :func:`_segment`).
_OUT, _SPARE = ":segment out", ":segment spare"
class PartitionError(ValueError):
    """A host segment onnxruntime cannot load."""


def onnxruntime_inference(model: bytes | str, config: dict[str, str] | None = None):
    """``model`` (serialized, or a path) loaded into onnxruntime on the CPU as the oracle and the
    host segments run it: ``ORT_ENABLE_ALL``, one thread, ``config`` entries added."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _reads(step) -> tuple[str, ...]:
    if isinstance(step, onnx.NodeProto):
        return tuple(name for name in step.input if name)
    return (step.input,) if hasattr(step, "linear") else tuple(step.inputs)


def _writes(step) -> tuple[str, ...]:
    if isinstance(step, onnx.NodeProto):
        return tuple(step.output)
    return (step.output,) if hasattr(step, "linear") else tuple(step.outputs)


def segments(model: onnx.ModelProto, order: list, consts: dict[str, np.ndarray],
             types: dict[str, int], outputs: list[str],
             dequantizers: dict[str, onnx.NodeProto] | None = None) -> list:
    """The model's steps in execution order: ``order`` lists device steps and host nodes
    (``onnx.NodeProto``) in a topological order; the host nodes are grouped into
    :class:`~sw.model_ir.HostCall` segments run by onnxruntime (see the module docstring).
    ``types``: element types of the graph's tensors. Raises :class:`PartitionError` for a
    segment onnxruntime cannot load. ``dequantizers``: for a quantized tensor a device step
    reads, the DequantizeLinear (constant scale and zero point) the step stands in for."""
    level: dict[str, int] = {}
    step_level: list[int] = []
    for step in order:   # as soon as possible
        base = max((level.get(name, 0) for name in _reads(step)), default=0)
        lv = base if isinstance(step, onnx.NodeProto) else base + 1
        step_level.append(lv)
        level.update(dict.fromkeys(_writes(step), lv))
    last = max(step_level, default=0)
    readers: dict[str, list[int]] = {}
    for i, step in enumerate(order):
        for name in _reads(step):
            readers.setdefault(name, []).append(i)
    for i in reversed(range(len(order))):   # host nodes as late as their readers allow
        if not isinstance(order[i], onnx.NodeProto):
            continue
        bound = last if any(name in outputs for name in _writes(order[i])) else None
        for name in _writes(order[i]):
            for j in readers.get(name, []):
                limit = step_level[j] if isinstance(order[j], onnx.NodeProto) \
                    else step_level[j] - 1
                bound = limit if bound is None else min(bound, limit)
        step_level[i] = max(step_level[i], last if bound is None else bound)
    steps = []
    for lv in range(last + 1):
        nodes = [s for s, sl in zip(order, step_level) if sl == lv
                 and isinstance(s, onnx.NodeProto)]
        if nodes:
            steps.append(_segment(model, nodes, lv, order, consts, types, outputs,
                                  dequantizers or {}))
        steps += [s for s, sl in zip(order, step_level) if sl == lv + 1
                  and not isinstance(s, onnx.NodeProto)]
    return steps


def _value_info(name: str, types: dict[str, int], suffix: str = "") -> onnx.ValueInfoProto:
    if not types.get(name):
        raise PartitionError(f"the element type of {name!r} is unknown (shape inference did "
                             "not find it), so it cannot cross between device and host")
    return helper.make_tensor_value_info(name + suffix, types[name], None)


def _segment(model: onnx.ModelProto, nodes: list[onnx.NodeProto], lv: int, order: list,
             consts: dict[str, np.ndarray], types: dict[str, int], outputs: list[str],
             dequantizers: dict[str, onnx.NodeProto]) -> HostCall:
    made = {name for node in nodes for name in node.output}
    needed = [name for node in nodes for name in node.input if name]
    members = {id(node) for node in nodes}
    read_elsewhere = {name for step in order if id(step) not in members for name in _reads(step)}
    outs = [name for node in nodes for name in node.output
            if name and (name in read_elsewhere or name in outputs)]
    # onnxruntime fuses and converts QDQ groups by what reads their QuantizeLinear: it does not
    # fuse a group whose QuantizeLinear makes a graph output, and rewrites an int8
    # QuantizeLinear -> DequantizeLinear pair to uint8 (changing the fused kernels around it)
    # only where the pair is there. So a quantized tensor the device reads leaves the segment
    # through the device's DequantizeLinear, as in the whole model, and is quantized back
    # exactly; any other output through an Identity -- two of them, as onnxruntime removes an
    # Identity whose input has no other reader.
    exits, requantize = [], {}
    for name in outs:
        dq = dequantizers.get(name)
        if dq is not None:
            exits.append(helper.make_node("DequantizeLinear", [name, *dq.input[1:]],
                                          [name + _OUT], **node_attrs(dq)))
            requantize[name] = ([consts[n] for n in dq.input[1:] if n],
                                node_attrs(dq).get("axis", 1))
            needed += [n for n in dq.input[1:] if n]
        else:
            exits += [helper.make_node("Identity", [name], [name + suffix])
                      for suffix in (_OUT, _SPARE)]
    needed = list(dict.fromkeys(needed))   # the dequantizers' scales may repeat
    inputs = [name for name in needed if name not in made and name not in consts]
    initializers = [onnx.numpy_helper.from_array(consts[name], name)
                    for name in needed if name not in made and name in consts]
    out_infos = [helper.make_tensor_value_info(name + _OUT, TensorProto.FLOAT, None)
                 if name in requantize else _value_info(name, types, _OUT) for name in outs]
    graph = helper.make_graph(nodes + exits, f"host segment {lv}",
                              [_value_info(name, types) for name in inputs],
                              out_infos + [_value_info(name, types, _SPARE) for name in outs
                                           if name not in requantize],
                              initializers)
    sub = helper.make_model(graph, opset_imports=list(model.opset_import),
                            ir_version=model.ir_version, functions=list(model.functions))
    try:
        loaded = onnxruntime_inference(sub.SerializeToString())
    except Exception as error:   # onnxruntime raises its own exception types
        names = ", ".join(f"{n.name or '?'} ({n.op_type})" for n in nodes)
        raise PartitionError(f"onnxruntime cannot run the host nodes {names}: "
                             f"{str(error).strip()[:400]}") from None

    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        results = loaded.run([name + _OUT for name in outs], dict(zip(inputs, arrays)))
        return [quantize_linear(value, *requantize[name][0], axis=requantize[name][1])
                if name in requantize else value for name, value in zip(outs, results)]

    return HostCall(f"host segment {lv}", tuple(inputs), tuple(outs), run,
                    tuple(n.name or n.op_type for n in nodes), op="onnxruntime")


_MATMUL_LIKE = ("MatMul", "MatMulInteger", "QLinearMatMul", "Gemm", "QGemm", "Conv",
                "ConvInteger", "QLinearConv")


def node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]],
              attrs: dict[str, Any]) -> int | None:
    """Multiply-accumulates of a matmul-like node from its tensors' static shapes, or ``None``
    (not matmul-like, or a shape unknown)."""
    op = node.op_type
    out = shapes.get(node.output[0]) if node.output else None
    if out is None or any(d is None for d in out):
        return None
    size = int(np.prod(out))
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shapes.get(node.input[0])
        return None if not a or a[-1] is None else size * a[-1]
    if op in ("Gemm", "QGemm"):
        a = shapes.get(node.input[0])
        if not a or None in a:
            return None
        return size * (a[0] if attrs.get("transA", 0) else a[-1])
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shapes.get(node.input[3 if op == "QLinearConv" else 1])
        return None if not w or None in w else size * int(np.prod(w[1:]))
    return None


#: Matmul-like operators the device runs whatever their operands (:mod:`sw.runtime_layer`).
RUNTIME_OPS = ("QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger", "QGemm", "MatMul",
               "Conv", "Gemm")


def claim_runtime(matcher, idx: int) -> RuntimeLayer:
    """``node idx`` as a :class:`~sw.runtime_layer.RuntimeLayer`, or the matcher's
    :class:`~sw.onnx_import.UnsupportedOperator` saying why the device cannot run it:
    ``QLinearMatMul``, ``MatMulInteger``, ``QLinearConv``, ``ConvInteger``, ``QGemm``, and QDQ
    ``MatMul``, ``Conv`` and ``Gemm`` (``DQ(a), DQ(b) -> MatMul -> Q``, which onnxruntime fuses
    into ``QLinearMatMul`` whatever ``b`` is, and the same for uint8 weights)."""
    g = matcher.g
    node = g.nodes[idx]
    op, attrs, name = node.op_type, node_attrs(node), node.name or f"#{idx}"
    i = list(node.input) + [""] * 9
    conv = {}
    if op in ("QLinearConv", "ConvInteger", "Conv"):
        if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            matcher.fail(idx, "only group=1, dilation=1 convolutions run on the device")
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            matcher.fail(idx, "auto_pad SAME_* is not supported; give explicit pads")
        conv = {"pads": tuple(attrs.get("pads", [0, 0, 0, 0])),
                "strides": tuple(attrs.get("strides", [1, 1]))}
    if op in ("QLinearMatMul", "QLinearConv"):
        layer = RuntimeLayer(name, "conv" if conv else "matmul", i[0], i[3], node.output[0],
                             a_zp=i[2], b_zp=i[5], a_scale=i[1], b_scale=i[4], y_scale=i[6],
                             y_zp=i[7], bias=i[8] if conv else "", conv=conv)
    elif op in ("MatMulInteger", "ConvInteger"):
        layer = RuntimeLayer(name, "conv" if conv else "matmul", i[0], i[1], node.output[0],
                             a_zp=i[2], b_zp=i[3], conv=conv)
    elif op == "QGemm" and i[7]:
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            matcher.fail(idx, "QGemm with transA or alpha other than 1 does not run on the device")
        layer = RuntimeLayer(name, "matmul", i[0], i[3], node.output[0], a_zp=i[2], b_zp=i[5],
                             a_scale=i[1], b_scale=i[4], y_scale=i[7], y_zp=i[8], bias=i[6],
                             trans_b=bool(attrs.get("transB", 0)))
    elif op in ("MatMul", "Conv", "Gemm"):
        gemm = op == "Gemm"
        if gemm and (attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0
                     or attrs.get("beta", 1.0) != 1.0):
            matcher.fail(idx, "Gemm with transA, alpha or beta does not run on the device")
        dqs = [g.made_by(i[k], "DequantizeLinear") for k in (0, 1)]
        if None in dqs:
            matcher.fail(idx, f"a float {op} (its inputs are not both DequantizeLinear): "
                         "onnxruntime runs it in float")
        a, b = (g.nodes[dq] for dq in dqs)
        b_axis = node_attrs(b).get("axis", 1)
        rank = len(g.shapes.get(b.input[0]) or ())
        trans_b = gemm and bool(attrs.get("transB", 0))
        if g.const(b.input[1]) is None or g.const(b.input[1]).size != 1:
            if not rank or b_axis % rank != (0 if conv or trans_b else rank - 1):
                matcher.fail(idx, "B's scales must be per tensor or per output channel")
        bias = ""
        if (conv or gemm) and i[2]:
            bias_dq = g.made_by(i[2], "DequantizeLinear")
            if bias_dq is None or g.const(g.nodes[bias_dq].input[0]) is None:
                matcher.fail(idx, "the bias must be DequantizeLinear of a constant int32 tensor")
            bias = g.nodes[bias_dq].input[0]
            dqs.append(bias_dq)
        y, _, _, relu = matcher._output(idx)
        if relu:
            matcher.fail(idx, "a fused Relu after a matmul with run-time operands")
        q = g.nodes[g.producer[y]]
        layer = RuntimeLayer(name, "conv" if conv else "matmul", a.input[0], b.input[0], y,
                             a_zp=(list(a.input) + [""])[2], b_zp=(list(b.input) + [""])[2],
                             a_scale=a.input[1], b_scale=b.input[1], y_scale=q.input[1],
                             y_zp=(list(q.input) + [""])[2], bias=bias, conv=conv,
                             trans_b=trans_b)
        matcher.folded |= set(dqs)
    else:
        matcher.fail(idx, "this operator does not take run-time operands")
    matcher.fused.add(idx)
    return layer


def _batch_one_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Static shapes of every tensor with each input's unknown dimensions taken as 1."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for info in model.graph.input:
        for dim in info.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    try:
        graph = infer_types(model)
    except Exception:   # no shapes: MACs are reported unknown
        return shapes
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                      for d in tensor.shape.dim)
    return shapes


def placement_lines(rill) -> list[str]:
    """Where each node of a :class:`~sw.onnx_import.RillModel` runs (nodes fused into a device
    step aside), its MACs at batch 1 where shapes allow, and the device's share of them."""
    g = rill.graph
    shapes = _batch_one_shapes(rill.proto)
    lines, on_device, total = [], 0, 0
    for idx in sorted(set(rill.device_steps) | set(rill.host_nodes), key=g.order.index):
        node = g.nodes[idx]
        step = rill.device_steps.get(idx)
        where = "host" if step is None else \
            "device" if hasattr(step, "linear") else "device+host"
        macs = node_macs(node, shapes, node_attrs(node))
        if macs is not None:
            total += macs
            on_device += macs if step is not None else 0
        why = rill.host_reasons.get(idx, "") if step is None else \
            "" if hasattr(step, "linear") else "run-time operands: compiled per value"
        count = f"{macs:>10,} MACs" if macs is not None else \
            f"{'? MACs' if node.op_type in _MATMUL_LIKE else '':>15}"
        lines.append(f"  {node.name or f'#{idx}':<28.28} {node.op_type:<20.20} {where:<12} "
                     f"{count}" + (f"  ({why})" if why else "").rstrip())
    lines.append(f"  device: {on_device:,} of {total:,} MACs at batch 1 "
                 f"({on_device / max(total, 1):.1%})")
    return lines

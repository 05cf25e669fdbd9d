"""The oracle's emulation: onnxruntime's integer operators computed exactly in numpy
(:func:`emulate`; :mod:`sw.oracle` says when it is the oracle and why). Written from
onnxruntime's definitions, not from Rill's golden model or ``sw.requant``, so it can check them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["ModelLike", "NotEmulated", "emulate"]

ModelLike = str | Path | bytes | onnx.ModelProto


class NotEmulated(ValueError):
    """A model the emulation does not cover (an operator, or a form onnxruntime runs in float)."""


def _proto(model: ModelLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.ModelProto.FromString(model)
    return onnx.load(str(model))


_FUSABLE = ("MatMul", "Gemm", "Conv")
_SHAPE_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _along(value, axis: int, ndim: int) -> np.ndarray:
    """A scalar or 1-D per-axis parameter shaped to broadcast along ``axis`` of an ndim tensor."""
    value = np.asarray(value)
    if value.ndim == 0 or value.size == 1:
        return value.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = value.size
    return value.reshape(shape)


def _dequantize(q, scale, zp, axis: int = 1) -> np.ndarray:
    # onnxruntime: float(int32(q) - zp) * scale, in float32.
    q = np.asarray(q)
    zp = 0 if zp is None else _along(zp, axis, q.ndim).astype(np.int64)
    centred = (q.astype(np.int64) - zp).astype(np.float32)
    return centred * _along(np.asarray(scale, np.float32), axis, q.ndim)


def _quantize(x, scale, zp, axis: int = 1) -> np.ndarray:
    # onnxruntime: x / scale in float32, clamp to the range less the zero point, round half to
    # even, add the zero point.
    dtype = np.dtype(np.uint8) if zp is None else np.asarray(zp).dtype
    x = np.asarray(x, np.float32)
    zp = np.zeros((), np.int64) if zp is None else _along(zp, axis, x.ndim).astype(np.int64)
    info = np.iinfo(dtype)
    scaled = x / _along(np.asarray(scale, np.float32), axis, x.ndim)
    clamped = np.clip(scaled, (info.min - zp).astype(np.float32),
                      (info.max - zp).astype(np.float32))
    return (np.rint(clamped).astype(np.int64) + zp).astype(dtype)


def _requantize(acc: np.ndarray, scale: np.ndarray, y_zp, dtype, channel_axis: int) -> np.ndarray:
    """int32 accumulator -> ``float32(acc) * scale`` -> clamp -> round half to even -> + zp."""
    info = np.iinfo(dtype)
    acc32 = acc.astype(np.int64)
    if acc32.min(initial=0) < -2**31 or acc32.max(initial=0) >= 2**31:
        raise NotEmulated("an int32 accumulator overflows")
    product = acc32.astype(np.float32) * _along(scale, channel_axis, acc.ndim)
    zp = int(np.asarray(y_zp).reshape(-1)[0]) if np.asarray(y_zp).size == 1 else None
    if zp is None:
        raise NotEmulated("a per-channel output zero point")
    clamped = np.clip(product, np.float32(info.min - zp), np.float32(info.max - zp))
    return (np.rint(clamped).astype(np.int64) + zp).astype(dtype)


def _output_scale(a_scale, w_scale, y_scale, alpha: float = 1.0) -> np.ndarray:
    """onnxruntime's float32 requantization scale, in its order: ``alpha * a * w / y``."""
    a = np.float32(np.asarray(a_scale, np.float32).reshape(()))
    y = np.float32(np.asarray(y_scale, np.float32).reshape(()))
    w = np.asarray(w_scale, np.float32).reshape(-1)
    if alpha != 1.0:
        a = np.float32(alpha) * a
    return ((a * w) / y).astype(np.float32)


def _centred(q, zp, axis: int) -> np.ndarray:
    q = np.asarray(q).astype(np.int64)
    return q if zp is None else q - _along(zp, axis, q.ndim).astype(np.int64)


def _conv_acc(x: np.ndarray, w: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """Integer NCHW convolution of zero-point-free operands (padding with 0 is then padding with
    the input zero point, as onnxruntime does)."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotEmulated("an auto-padded Conv")
    if x.ndim != 4:
        raise NotEmulated("a Conv that is not 2-D")
    group = attrs.get("group", 1)
    if group != 1:   # each group of output channels reads its own group of input channels
        cg, og = x.shape[1] // group, w.shape[0] // group
        return np.concatenate([_conv_acc(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og],
                                         {**attrs, "group": 1}) for g in range(group)], axis=1)
    kh, kw = w.shape[2:]
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((x.shape[0], w.shape[0], out_h, out_w), np.int64)
    for i in range(kh):
        for j in range(kw):
            window = x[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                       j * dw:j * dw + sw * (out_w - 1) + 1:sw]
            acc += np.einsum("nchw,oc->nohw", window, w[:, :, i, j])
    return acc


def _gemm_acc(a: np.ndarray, b: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    return a @ b


def _linear(op: str, attrs, x, x_zp, w, w_zp, bias, a_scale, w_scale, y_scale, y_zp, dtype):
    """A fused QLinearMatMul / QGemm / QLinearConv: integer accumulate, then requantize."""
    if op == "Conv":
        acc = _conv_acc(_centred(x, x_zp, 1), _centred(w, w_zp, 0), attrs)
        channel_axis = 1
    else:
        # Weight zero points and scales are per output column: axis 1 of B, or 0 when transposed.
        w_axis = 0 if attrs.get("transB", 0) else -1
        xc, wc = _centred(x, x_zp, 0), _centred(w, w_zp, w_axis)
        acc = _gemm_acc(xc, wc, attrs) if op == "Gemm" else np.matmul(xc, wc)
        channel_axis = -1
    if bias is not None:
        acc = acc + _along(np.asarray(bias).astype(np.int64), channel_axis, acc.ndim)
    alpha = float(attrs.get("alpha", 1.0))
    scale = _output_scale(a_scale, w_scale, y_scale, alpha)
    return _requantize(acc, scale, y_zp, dtype, channel_axis)


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.nodes = list(model.graph.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.outputs = [o.name for o in model.graph.output]
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def made_by(self, name: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def fused_group(self, node: onnx.NodeProto):
        """``(DQ of x, DQ of w, DQ of bias or None, Relu or None, Q)`` when onnxruntime fuses
        ``node`` into an integer operator, else None."""
        inputs = list(node.input) + [""] * 3
        dq_x, dq_w = self.made_by(inputs[0], "DequantizeLinear"), \
            self.made_by(inputs[1], "DequantizeLinear")
        dq_b = self.made_by(inputs[2], "DequantizeLinear") if inputs[2] else None
        if dq_x is None or dq_w is None or (inputs[2] and dq_b is None):
            return None
        after, relu = self.sole_consumer(node.output[0]), None
        if after is not None and after.op_type == "Relu":
            relu, after = after, self.sole_consumer(after.output[0])
        if after is None or after.op_type != "QuantizeLinear":
            return None
        if relu is not None:
            # ReluQuantFusion: the Relu goes when Q's clamp at the zero point already does it.
            zp = self.inits.get(after.input[2]) if len(after.input) > 2 else None
            if zp is None or int(zp.reshape(-1)[0]) != np.iinfo(zp.dtype).min:
                return None
        return dq_x, dq_w, dq_b, relu, after


def _shape_op(op: str, attrs, args) -> np.ndarray:
    x = args[0]
    if op == "Identity":
        return x
    if op == "Flatten":
        axis = attrs.get("axis", 1) % max(x.ndim, 1) if x.ndim else 0
        return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    if op == "Transpose":
        return np.transpose(x, attrs.get("perm"))
    if op == "Reshape":
        shape = [int(s) for s in args[1]]
        if not attrs.get("allowzero", 0):
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return x.reshape(shape)
    axes = attrs.get("axes")
    if axes is None and len(args) > 1 and args[1] is not None:
        axes = [int(a) for a in args[1]]
    if op == "Squeeze":
        return np.squeeze(x, axis=None if axes is None else tuple(axes))
    out = x
    for axis in sorted(a % (x.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, axis)
    return out


def _group_output(op_node: onnx.NodeProto, group: tuple, get) -> np.ndarray:
    """The output of a QDQ group onnxruntime fuses into an integer operator (see
    :meth:`_Graph.fused_group`); ``get(name)`` looks tensors up."""
    dq_x, dq_w, dq_b, _relu, q = group
    op_attrs = _attrs(op_node)
    if op_node.op_type == "Gemm" and (op_attrs.get("alpha", 1.0) != 1.0
                                      or op_attrs.get("beta", 1.0) != 1.0):
        raise NotEmulated(f"QDQ Gemm {op_node.name!r} with alpha or beta != 1")
    xq, xs, xz = (get(n) for n in list(dq_x.input) + [""] * (3 - len(dq_x.input)))
    wq, ws, wz = (get(n) for n in list(dq_w.input) + [""] * (3 - len(dq_w.input)))
    bias = get(dq_b.input[0]) if dq_b is not None else None
    q_in = list(q.input) + [""] * 2
    y_zp = get(q_in[2]) if q_in[2] else np.uint8(0)
    return _linear(op_node.op_type, op_attrs, xq, xz, wq, wz, bias, xs, ws, get(q_in[1]), y_zp,
                   np.asarray(y_zp).dtype)


#: The QOperator integer nodes the emulation computes (:func:`_integer_output`).
_INTEGER_OPS = ("QLinearMatMul", "QGemm", "QLinearConv", "MatMulInteger")


def _integer_output(node: onnx.NodeProto, attrs: dict[str, Any], args: list) -> np.ndarray:
    """The output of a QOperator integer node; ``args`` its inputs (``None`` where absent)."""
    op = node.op_type
    if op == "QLinearMatMul":
        a, a_s, a_z, b, b_s, b_z, y_s, y_z = args[:8]
        return _linear("MatMul", {}, a, a_z, b, b_z, None, a_s, b_s, y_s, y_z,
                       np.asarray(y_z).dtype)
    if op == "QGemm":
        a, a_s, a_z, b, b_s, b_z, c, y_s, y_z = args[:9]
        if y_s is None:
            raise NotEmulated(f"QGemm {node.name!r} with a float output")
        if c is not None and attrs.get("beta", 1.0) != 1.0:
            raise NotEmulated(f"QGemm {node.name!r} with beta != 1")
        return _linear("Gemm", attrs, a, a_z, b, b_z, c, a_s, b_s, y_s, y_z,
                       np.asarray(y_z).dtype)
    if op == "QLinearConv":
        x, x_s, x_z, w, w_s, w_z, y_s, y_z, bias = args[:9]
        return _linear("Conv", attrs, x, x_z, w, w_z, bias, x_s, w_s, y_s, y_z,
                       np.asarray(y_z).dtype)
    a, b, a_z, b_z = args[:4]   # MatMulInteger
    acc = np.matmul(_centred(a, a_z, 0), _centred(b, b_z, -1))
    if acc.min(initial=0) < -2**31 or acc.max(initial=0) >= 2**31:
        raise NotEmulated("an int32 accumulator overflows")
    return acc.astype(np.int32)


def emulate(model: ModelLike, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """onnxruntime's ``ORT_ENABLE_ALL`` result computed exactly in numpy, ``{output: array}``.

    Covers QuantizeLinear, DequantizeLinear, QLinearMatMul, QGemm, QLinearConv, MatMulInteger,
    the QDQ forms onnxruntime fuses into those, and data movement (Reshape, Flatten, Transpose,
    Squeeze, Unsqueeze, Identity). Raises :class:`NotEmulated` for anything else, including float
    arithmetic onnxruntime would run unfused.
    """
    proto = _proto(model)
    graph = _Graph(proto)
    env: dict[str, Any] = dict(graph.inits)
    env.update({k: np.asarray(v) for k, v in feeds.items()})
    fused_at: dict[str, tuple] = {}     # Q node output -> (op node, group)
    skipped: set[str] = set()           # names of float nodes folded into an integer operator
    for node in graph.nodes:
        if node.op_type in _FUSABLE:
            group = graph.fused_group(node)
            if group is not None:
                fused_at[group[-1].output[0]] = (node, group)
                skipped.add(node.output[0])
                if group[3] is not None:
                    skipped.add(group[3].output[0])

    def get(name):
        return env[name] if name else None

    for node in graph.nodes:
        if node.output[0] in skipped:
            continue
        op, attrs = node.op_type, _attrs(node)
        args = [get(n) if n not in skipped else None for n in node.input] + [None] * 9
        if op == "QuantizeLinear" and node.output[0] in fused_at:
            env[node.output[0]] = _group_output(*fused_at[node.output[0]], get)
        elif op == "QuantizeLinear":
            env[node.output[0]] = _quantize(args[0], args[1], args[2], attrs.get("axis", 1))
        elif op == "DequantizeLinear":
            env[node.output[0]] = _dequantize(args[0], args[1], args[2], attrs.get("axis", 1))
        elif op in _INTEGER_OPS:
            env[node.output[0]] = _integer_output(node, attrs, args)
        elif op in _SHAPE_OPS:
            env[node.output[0]] = _shape_op(op, attrs, args)
        elif op == "Constant":
            env[node.output[0]] = numpy_helper.to_array(attrs["value"])
        else:
            raise NotEmulated(f"node {node.name or node.output[0]!r} ({op}): the emulation covers "
                              "quantized integer operators and data movement only")
    return {name: env[name] for name in graph.outputs}

"""onnxruntime's exact integer semantics, on every CPU: the outside oracle Rill is checked against.

onnxruntime (``ORT_ENABLE_ALL``) runs a quantized model as int32 accumulation (+ int32 bias),
``float32(acc) * float32((a_scale * w_scale) / y_scale)``, clamp, round half to even, + zero point.
VNNI x86 and ARM compute exactly that. x86 CPUs without AVX-VNNI / AVX512-VNNI do not: their U8S8
GEMM (``vpmaddubsw``) adds pairs of u8 x s8 products in int16 with saturation, and onnxruntime
rewrites int8 QDQ activations to uint8 on x86, so int8 models take that path too. The configuration
entry ``session.x64quantprecision = "1"`` repairs only some of those kernels (constant weights,
not every QLinearMatMul, and int8 QOperator QLinearConv then fails to load).

So the oracle is one of two paths, chosen once per process:

- ``onnxruntime``: onnxruntime itself, when :func:`onnxruntime_saturates` finds this CPU's default
  path exact;
- ``emulation``: :func:`emulate`, a numpy interpreter of the quantized graph that applies the
  integer fusions onnxruntime applies (DQ -> MatMul / Gemm / Conv [-> Relu] -> Q become
  QLinearMatMul / QGemm / QLinearConv) and computes them in int64 and float32 as above. It is
  written from onnxruntime's definitions, not from Rill's golden model or ``sw.requant``, so it
  can check them. A model with float operators (Softmax, LayerNormalization, Add...) runs them
  in onnxruntime around the emulated integer operators (:mod:`sw.oracle_mixed`).

The emulation is preferred to that entry on saturating CPUs because it is exact for every model
form it accepts and can be tested on any machine (force it with ``RILL_ORACLE=emulate``), while
the entry's coverage depends on the operator, the weights and the zero points.
``RILL_ORACLE=onnxruntime`` forces onnxruntime.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["ENV_VAR", "PRECISION_OPTION", "Comparison", "NotEmulated", "OracleChoice", "choice",
           "compare_with_onnxruntime", "describe",
           "emulate", "onnxruntime_run", "onnxruntime_saturates", "run", "saturation_probe"]

#: Chooses the oracle's path: ``auto`` (default), ``onnxruntime`` or ``emulate``.
ENV_VAR = "RILL_ORACLE"
#: The onnxruntime configuration entry that widens some U8S8 kernels to exact U8U8 ones on x86.
PRECISION_OPTION = "session.x64quantprecision"

ModelLike = str | Path | bytes | onnx.ModelProto


class NotEmulated(ValueError):
    """A model the emulation does not cover (an operator, or a form onnxruntime runs in float)."""


# -- onnxruntime ----------------------------------------------------------------------------------

def _proto(model: ModelLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.ModelProto.FromString(model)
    return onnx.load(str(model))


def onnxruntime_run(model: ModelLike, feeds: dict[str, Any], *,
                    session_options: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{output name: array}`` from onnxruntime on the CPU: ``ORT_ENABLE_ALL``, one thread.

    This is onnxruntime as this CPU computes it, saturating or not; :func:`run` is the oracle.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    for key, value in (session_options or {}).items():
        options.add_session_config_entry(key, value)
    source = model if isinstance(model, (str, Path)) else _proto(model).SerializeToString()
    session = ort.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def saturation_probe() -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """MatMulInteger, A = 255 (uint8), B = 127 (int8 constant), K = 64: the model, its feeds and
    the exact result, 64 * 255 * 127 = 2,072,640 (an int16-saturating U8S8 kernel gives
    32 * 32,767 = 1,048,544)."""
    k = 64
    node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    graph = helper.make_graph(
        [node], "probe", [helper.make_tensor_value_info("a", onnx.TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [1, 1])],
        [numpy_helper.from_array(np.full((k, 1), 127, np.int8), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model, {"a": np.full((1, k), 255, np.uint8)}, k * 255 * 127


@functools.cache
def onnxruntime_saturates() -> bool:
    """Whether this CPU's onnxruntime (default configuration) saturates the U8S8 GEMM."""
    model, feeds, exact = saturation_probe()
    return int(onnxruntime_run(model, feeds)["y"][0, 0]) != exact


class OracleChoice:
    """Which path the oracle takes in this process, and why."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@functools.cache
def choice() -> OracleChoice:
    forced = (os.environ.get(ENV_VAR) or "auto").strip().lower()
    if forced not in ("auto", "emulate", "emulation", "onnxruntime", "ort"):
        raise ValueError(f"{ENV_VAR}={forced!r}: use auto, onnxruntime or emulate")
    if forced != "auto":
        probe = "saturates" if onnxruntime_saturates() else "is exact"
        path = "emulation" if forced.startswith("emul") else "onnxruntime"
        return OracleChoice(path, f"forced by {ENV_VAR}={forced}; this CPU's onnxruntime U8S8 "
                            f"integer GEMM {probe}")
    if onnxruntime_saturates():
        return OracleChoice("emulation", "this CPU's onnxruntime saturates its U8S8 integer GEMM "
                            "(no AVX-VNNI); the numpy emulation computes the exact result")
    return OracleChoice("onnxruntime", "this CPU's onnxruntime U8S8 integer GEMM is exact")


def describe() -> str:
    """One line naming the oracle's path, for test headers and the demo."""
    return f"onnxruntime oracle: {choice()}"


def run(model: ModelLike, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """onnxruntime's exact result, ``{output name: array}``, whatever this CPU's kernels do."""
    if choice().path == "emulation":
        try:
            return emulate(model, feeds)
        except NotEmulated as error:
            if "the emulation covers quantized integer operators" not in str(error):
                raise
        from .oracle_mixed import emulate_mixed  # float operators: through onnxruntime
        return emulate_mixed(model, feeds)
    return onnxruntime_run(model, feeds)


# -- emulation ------------------------------------------------------------------------------------

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


# -- comparing a device with onnxruntime ----------------------------------------------------------

def _differing(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> int:
    """Output elements of ``got`` that differ from ``want`` (a whole tensor when dtype or shape
    differ)."""
    count = 0
    for name, value in want.items():
        mine = np.asarray(got.get(name))
        if mine.dtype != value.dtype or mine.shape != value.shape:
            count += value.size
        else:
            count += int(np.count_nonzero(mine != value))
    return count


class Comparison:
    """A device's outputs against this CPU's onnxruntime and, where they differ, against the exact
    result: whose answer is wrong."""

    def __init__(self, device: dict[str, np.ndarray], onnxruntime: dict[str, np.ndarray],
                 exact: dict[str, np.ndarray] | None, saturates: bool,
                 exact_note: str = ""):
        self.total = sum(v.size for v in onnxruntime.values())
        self.differ_from_onnxruntime = _differing(device, onnxruntime)
        self.exact_available = exact is not None
        self.differ_from_exact = None if exact is None else _differing(device, exact)
        self.onnxruntime_off_exact = None if exact is None else _differing(onnxruntime, exact)
        self.saturates, self.exact_note = saturates, exact_note

    @property
    def device_is_right(self) -> bool:
        """The device equals onnxruntime's exact result (this CPU's, or the emulated one)."""
        if self.differ_from_onnxruntime == 0:
            return True
        return self.differ_from_exact == 0

    def lines(self) -> list[str]:
        n, total = self.differ_from_onnxruntime, self.total
        if n == 0:
            return [f"onnxruntime: equal ({total} outputs)"]
        head = f"onnxruntime: {n} of {total} outputs differ"
        if not self.exact_available:
            return [head, f"  no exact reference for this model ({self.exact_note}); onnxruntime "
                    "on a CPU with AVX-VNNI or on ARM decides which answer is right"]
        if self.differ_from_exact == 0:
            if self.saturates:
                why = ("this CPU's onnxruntime is wrong: its U8S8 integer GEMM adds pairs of "
                       "u8 x s8 products in int16 with saturation (x86 without AVX-VNNI)")
            else:
                why = ("onnxruntime on this CPU disagrees with its exact integer semantics, "
                       "though the saturation probe passed: please report this model")
            return [head, "  the device equals onnxruntime's exact integer result (what VNNI x86 "
                    "and ARM compute, emulated here)", f"  {why}; the configuration entry "
                    f"{PRECISION_OPTION}=1 makes some of its kernels exact, not all"]
        return [head, f"  the device is wrong: {self.differ_from_exact} of {total} outputs differ "
                "from onnxruntime's exact integer result"
                + ("" if self.onnxruntime_off_exact else " (which this CPU's onnxruntime gives)")]


def compare_with_onnxruntime(model: ModelLike, feeds: dict[str, Any],
                             device_outputs: dict[str, np.ndarray]) -> Comparison:
    """Run onnxruntime beside a device's outputs; where they differ, also the exact emulation."""
    proto = _proto(model)
    ort_outputs = onnxruntime_run(proto, feeds)
    device_outputs = {k: device_outputs[k] for k in ort_outputs if k in device_outputs}
    ort_outputs = {k: v for k, v in ort_outputs.items() if k in device_outputs}
    exact, note = None, ""
    if _differing(device_outputs, ort_outputs):
        try:
            exact = emulate(proto, feeds)
        except NotEmulated as error:
            note = str(error)
        else:
            exact = {k: exact[k] for k in ort_outputs}
    return Comparison(device_outputs, ort_outputs, exact, onnxruntime_saturates(), note)

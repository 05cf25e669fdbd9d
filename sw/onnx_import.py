"""Running quantized ONNX models on Rill, with outputs bit-identical to onnxruntime.

:meth:`RillModel.load` reads a model quantized by ``onnxruntime.quantization`` (static, QDQ or
QOperator; or dynamic) or built from the ONNX quantized operators, and splits it into device
steps and host steps:

- **Device** (every matmul-like node onnxruntime computes in integers):
  ``DQ(x), DQ(W)[, DQ(bias)] -> MatMul | Gemm | Conv [-> Relu] -> Q`` exactly where
  onnxruntime (``ORT_ENABLE_ALL``) fuses the same nodes into ``QLinearMatMul`` / ``QGemm`` /
  ``QLinearConv``; the QOperator nodes ``QLinearMatMul``, ``QLinearConv``,
  ``com.microsoft.QGemm``; ``MatMulInteger`` and ``ConvInteger`` (raw int32 accumulators).
  Constant int8 weights with zero point 0 compile once (:class:`~sw.model_ir.DeviceLayer`);
  weights, scales or zero points known only at run time, and uint8 or zero-pointed weights,
  compile per value (:class:`~sw.runtime_layer.RuntimeLayer`).
- **Host**: everything else. Quantize, dequantize and data movement run on Rill's exact host
  operators (:mod:`sw.host_ops`); any other operator makes the host part run through
  onnxruntime, cut into segments that keep its fusions (:mod:`sw.onnx_partition`).

``device_only=True`` refuses a model needing the host beyond quantize, dequantize and data
movement. An operator neither the device nor onnxruntime knows raises
:class:`UnsupportedOperator` at load time, before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hw.params import RillParams

from .compiler import CompileError, LayerProgram, QuantizedLinear, compile_linear
from .conv import QuantizedConv
from .device_base import Device
from .host_ops import HOST_OPS
from .model_ir import DeviceLayer, HostStep, InputError, QuantizedModel
from .onnx_graph import InvalidModel, ModelImportError, OnnxGraph, input_spec, node_attrs
from .onnx_partition import (
    RUNTIME_OPS,
    PartitionError,
    claim_runtime,
    placement_lines,
    segments,
)
from .runtime_layer import RuntimeLayer

__all__ = ["RillModel", "ModelImportError", "UnsupportedOperator", "InvalidModel", "InputMismatch",
           "DEVICE_OPS"]

DEVICE_OPS = ("MatMul", "Gemm", "Conv", "QLinearMatMul", "QLinearConv", "QGemm", "MatMulInteger")
_SUPPORTED = (f"device: {', '.join(DEVICE_OPS)} (quantized), and QLinearMatMul, MatMulInteger, "
              "QLinearConv, ConvInteger and QDQ MatMul whose operands are known only at run "
              "time; host: any operator onnxruntime runs (with device_only, only "
              f"{', '.join(HOST_OPS)})")
#: The largest grouped conv run as a dense one: its dense filters within the default core's
#: weight SRAM (it multiplies C / group times the MACs it needs; larger ones stay on the host).
_DENSE_LIMIT = RillParams().weight_capacity(False)
_Q_TYPES = {np.dtype(np.int8), np.dtype(np.uint8)}


class UnsupportedOperator(ModelImportError):
    """A node Rill cannot run (or cannot run bit-exactly as onnxruntime does)."""

    def __init__(self, node: onnx.NodeProto, index: int, why: str = ""):
        name = node.name or f"#{index}"
        domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
        why = why or "this operator is not supported"
        super().__init__(f"node {name!r} ({domain}{node.op_type}): {why}. Supported: {_SUPPORTED}")
        self.node_name, self.op_type, self.why = name, node.op_type, why


class InputMismatch(ModelImportError, InputError):
    """An input is missing, unexpected, or of the wrong dtype or shape."""


def _host_step(node: onnx.NodeProto, index: int) -> HostStep:
    """An ONNX host node as a step of the model representation (tensor attributes as arrays)."""
    attrs = {name: numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value
             for name, value in node_attrs(node).items()}
    return HostStep(node.name or f"#{index}", node.op_type, tuple(node.input),
                    tuple(node.output), attrs)


class _Matcher:
    """Turns matmul-like nodes into :class:`DeviceLayer` s, refusing what it cannot match."""

    def __init__(self, graph: OnnxGraph):
        self.g = graph
        self.fused: set[int] = set()    # nodes a device layer replaces
        self.folded: set[int] = set()   # DequantizeLinear nodes read by device layers

    def fail(self, idx: int, why: str):
        raise UnsupportedOperator(self.g.nodes[idx], idx, why)

    def _qparam(self, idx: int, name: str, what: str, scalar: bool = True) -> np.ndarray:
        value = self.g.const(name)
        if value is None:
            self.fail(idx, f"{what} ({name!r}) must be a constant initializer")
        if scalar and value.size != 1:
            self.fail(idx, f"{what} must be a single value (per-tensor), got shape {value.shape}")
        return value

    def _dq_input(self, idx: int, name: str, const: bool):
        """``(tensor, scale, zero_point, axis, DQ node)`` of the DQ that makes ``name``."""
        dq = self.g.made_by(name, "DequantizeLinear")
        if dq is None:
            what = "weight" if const else "input"
            self.fail(idx, f"its {what} {name!r} is float, not DequantizeLinear of a quantized "
                      "tensor: onnxruntime runs it in float")
        node = self.g.nodes[dq]
        src = node.input[0]
        if (self.g.const(src) is not None) != const:
            self.fail(idx, f"{'weights' if const else 'activations'} {src!r} must be "
                      f"{'constant' if const else 'computed'}")
        scale = self._qparam(dq, node.input[1], "scale", scalar=not const)
        zp = self._qparam(dq, node.input[2], "zero point", scalar=not const) \
            if len(node.input) > 2 and node.input[2] else None
        if zp is None and not const:   # no zero point: 0 of the quantized tensor's type
            zp = np.zeros((), self.g.dtype(src, dq, self))
        return src, scale, zp, node_attrs(node).get("axis", 1), dq

    def _output(self, idx: int):
        """The QuantizeLinear (with an optional fused Relu) consuming a node's float output."""
        out = self.g.nodes[idx].output[0]
        users = self.g.consumers.get(out, [])
        if out in self.g.outputs or len(users) != 1:
            self.fail(idx, "its float output must feed exactly one QuantizeLinear (onnxruntime "
                      "fuses only that pattern)")
        relu = False
        if self.g.nodes[users[0]].op_type == "Relu":
            relu_idx = users[0]
            r_out = self.g.nodes[relu_idx].output[0]
            users = self.g.consumers.get(r_out, [])
            if r_out in self.g.outputs or len(users) != 1:
                self.fail(relu_idx, "Relu must feed exactly one QuantizeLinear")
            relu = True
            self.fused.add(relu_idx)
        q_idx = users[0]
        q = self.g.nodes[q_idx]
        if q.op_type != "QuantizeLinear":
            self.fail(idx, f"its output feeds {q.op_type}, not QuantizeLinear: onnxruntime runs "
                      "it in float")
        scale = self._qparam(q_idx, q.input[1], "output scale")
        zp = self._qparam(q_idx, q.input[2], "output zero point") \
            if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
        if relu and int(zp.reshape(())) != np.iinfo(zp.dtype).min:
            self.fail(relu_idx, "Relu before a QuantizeLinear whose zero point is not the type "
                      "minimum is not fused by onnxruntime (it runs in float)")
        self.fused.add(q_idx)
        return q.output[0], scale, zp, relu

    def _weights(self, idx: int, w: np.ndarray, w_scale, w_zp, axis: int, n_axis: int, trans: bool):
        """Check weight quantization and return ``(K x N weights, per-channel or scalar scale)``."""
        if w.dtype != np.int8:
            self.fail(idx, f"weights are {w.dtype}; Rill takes int8 weights with zero point 0 "
                      "(quantize_static's default QInt8 weights)")
        if w_zp is not None and np.any(np.asarray(w_zp) != 0):
            self.fail(idx, "weight zero point must be 0 (symmetric weights)")
        w_scale = np.asarray(w_scale, dtype=np.float32)
        if w_scale.size > 1 and axis % w.ndim != n_axis:
            self.fail(idx, f"per-channel weight scales along axis {axis}; only the output-channel "
                      f"axis {n_axis} can be requantized per channel")
        return (w.T if trans else w), w_scale.reshape(-1)

    def _bias(self, idx: int, name: str | None, n: int):
        if not name:
            return None
        dq = self.g.made_by(name, "DequantizeLinear")
        bias = self.g.const(self.g.nodes[dq].input[0]) if dq is not None else self.g.const(name)
        if bias is None or bias.dtype != np.int32:
            self.fail(idx, f"bias {name!r} must be a constant int32 tensor (DequantizeLinear of "
                      "int32, as quantize_static writes it)")
        if dq is not None:
            self.folded.add(dq)
        if bias.size not in (1, n):
            self.fail(idx, f"bias of shape {bias.shape} is not per output channel")
        return bias.reshape(-1)

    def match(self, idx: int) -> DeviceLayer:
        node = self.g.nodes[idx]
        op, attrs, name = node.op_type, node_attrs(node), node.name or f"#{idx}"
        inputs = list(node.input) + [""] * 9
        if op in ("MatMul", "Gemm", "Conv"):
            x, a_scale, a_zp, _, x_dq = self._dq_input(idx, inputs[0], const=False)
            w_name, w_scale, w_zp, w_axis, w_dq = self._dq_input(idx, inputs[1], const=True)
            w = self.g.const(w_name)
            y, y_scale, y_zp, relu = self._output(idx)
            self.fused.add(idx)
            self.folded |= {x_dq, w_dq}
            bias_name = inputs[2] if op != "MatMul" else ""
        elif op in ("QLinearMatMul", "QLinearConv", "QGemm"):
            spec = {"QLinearMatMul": (0, 1, 2, 3, 4, 5, 6, 7, None),
                    "QLinearConv": (0, 1, 2, 3, 4, 5, 6, 7, 8),
                    "QGemm": (0, 1, 2, 3, 4, 5, 7, 8, 6)}[op]
            x, s_a, z_a, w_name, s_w, z_w, s_y, z_y, b = spec
            if op == "QGemm" and not inputs[s_y]:
                self.fail(idx, "QGemm with a float output (no y_scale) is not supported")
            x = inputs[x]
            a_scale, a_zp = self._qparam(idx, inputs[s_a], "a_scale"), self._zp(idx, inputs[z_a])
            w_name = inputs[w_name]
            w = self.g.const(w_name)
            if w is None:
                self.fail(idx, "weights must be a constant initializer")
            w_scale = self._qparam(idx, inputs[s_w], "weight scale", scalar=False)
            w_zp = self._zp(idx, inputs[z_w], scalar=False)
            y_scale, y_zp = self._qparam(idx, inputs[s_y], "y_scale"), self._zp(idx, inputs[z_y])
            y, relu, w_axis = node.output[0], False, None
            bias_name = inputs[b] if b is not None else ""
            self.fused.add(idx)
        elif op == "MatMulInteger":
            x, w_name = inputs[0], inputs[1]
            w = self.g.const(w_name)
            if w is None:
                self.fail(idx, "weights (input B) must be a constant initializer")
            a_zp = self._zp(idx, inputs[2]) if inputs[2] else \
                np.zeros((), self.g.dtype(x, idx, self))
            w_zp = self._zp(idx, inputs[3], scalar=False) if inputs[3] else None
            a_scale = w_scale = y_scale = None
            y, y_zp, relu, w_axis = node.output[0], np.zeros((), np.int32), False, None
            bias_name = ""
            self.fused.add(idx)
        else:
            raise AssertionError(op)
        return self._layer(idx, op, name, attrs, x, w, w_scale, w_zp, w_axis, a_scale, a_zp,
                           y, y_scale, y_zp, relu, bias_name)

    def _zp(self, idx: int, name: str, scalar: bool = True) -> np.ndarray:
        if not name:
            self.fail(idx, "zero points must be given")
        return self._qparam(idx, name, "zero point", scalar=scalar)

    def _layer(self, idx, op, name, attrs, x, w, w_scale, w_zp, w_axis, a_scale, a_zp, y,
               y_scale, y_zp, relu, bias_name) -> DeviceLayer:
        if a_zp.dtype not in _Q_TYPES:
            self.fail(idx, f"activations are {a_zp.dtype}; Rill takes int8 or uint8")
        conv = None
        kind = {"Conv": "conv", "QLinearConv": "conv", "Gemm": "gemm", "QGemm": "gemm"}.get(op,
                                                                                           "matmul")
        if kind == "conv":
            if w.ndim != 4:
                self.fail(idx, f"only 2-D convolutions (4-D weights) are supported, got {w.shape}")
            if any(d != 1 for d in attrs.get("dilations", [1, 1])):
                self.fail(idx, "only dilation=1 convolutions are supported")
            group = attrs.get("group", 1)   # on the array as the equivalent dense conv
            if group > 1 and w.shape[0] * w.shape[1] * group * w[0, 0].size > _DENSE_LIMIT:
                self.fail(idx, f"a group={group} conv too large to run as a dense conv")
            w = QuantizedConv.dense_filters(w, group) if group > 1 else w
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                self.fail(idx, "auto_pad SAME_* is not supported; give explicit pads")
            weights, scale = self._weights(idx, QuantizedConv.filters_to_weights(w).T, w_scale,
                                           w_zp, 0 if w_axis is None else w_axis, 0, trans=True)
            pads = tuple(attrs.get("pads", [0, 0, 0, 0]))
            conv = QuantizedConv(None, tuple(w.shape[2:]), (pads[0], pads[1], pads[2], pads[3]),
                                 tuple(attrs.get("strides", [1, 1])),
                                 depthwise=group > 1 and group == w.shape[0] == w.shape[1])
        elif kind == "gemm":
            if (op == "Gemm" and attrs.get("alpha", 1.0) != 1.0) or attrs.get("beta", 1.0) != 1.0:
                self.fail(idx, "Gemm with alpha or beta other than 1 is not supported")
            if w.ndim != 2:
                self.fail(idx, f"weights must be 2-D, got {w.shape}")
            trans_b = bool(attrs.get("transB", 0))
            axis = (0 if trans_b else 1) if w_axis is None else w_axis
            weights, scale = self._weights(idx, w, w_scale, w_zp, axis, 0 if trans_b else 1,
                                           trans=trans_b)
            alpha = np.float32(attrs.get("alpha", 1.0))
            if alpha != 1.0:   # QGemm: onnxruntime's scale is (alpha * a_scale * b_scale) / y_scale
                a_scale = alpha * np.float32(a_scale.reshape(()))
        else:
            if w.ndim != 2:
                self.fail(idx, f"weights must be 2-D (K, N), got {w.shape}")
            weights, scale = self._weights(idx, w, w_scale if w_scale is not None else 1.0, w_zp,
                                           1 if w_axis is None else w_axis, 1, trans=False)
        n = weights.shape[1]
        if scale.size not in (1, n):
            self.fail(idx, f"{scale.size} weight scales for {n} output channels")
        linear = QuantizedLinear(
            np.ascontiguousarray(weights), a_scale=None if a_scale is None else
            np.float32(np.asarray(a_scale).reshape(())),
            a_zp=int(a_zp.reshape(())), w_scale=None if w_scale is None else scale,
            y_scale=None if y_scale is None else np.float32(y_scale.reshape(())),
            y_zp=int(y_zp.reshape(())), bias=self._bias(idx, bias_name, n),
            act_dtype=a_zp.dtype.type, out_dtype=y_zp.dtype.type, relu=relu, name=name)
        if conv is not None:
            conv.linear = linear
        layer = DeviceLayer(name, kind, x, y, linear, conv, bool(attrs.get("transA", 0)))
        try:
            compile_linear(RillParams(), linear)   # refuse now what no device could run
        except CompileError as e:
            self.fail(idx, str(e))
        return layer


class RillModel:
    """A quantized ONNX model lowered into Rill's model representation (``model``, a
    :class:`~sw.model_ir.QuantizedModel`) of device layers and host steps. See the module
    docstring."""

    def __init__(self, model: onnx.ModelProto, *, device_only: bool = False):
        self.proto = model
        self.graph = g = OnnxGraph(model)
        for idx in g.order:   # every operator is checked before any pattern
            node = g.nodes[idx]
            if node.domain not in ("", "ai.onnx", "com.microsoft") or (
                    node.domain != "com.microsoft" and not onnx.defs.has(node.op_type)):
                raise UnsupportedOperator(node, idx, "no implementation on the device, on the "
                                          "host or in onnxruntime")
        matcher = _Matcher(g)
        device: dict[int, Any] = {}
        #: Why each node that could have run on the device does not.
        self.host_reasons: dict[int, str] = {}
        for idx in g.order:
            node = g.nodes[idx]
            if node.op_type not in DEVICE_OPS + RUNTIME_OPS or (
                    node.domain == "com.microsoft") != (node.op_type == "QGemm"):
                continue
            why = ""
            for claim in ((matcher.match,) if node.op_type in DEVICE_OPS else ()) \
                    + (lambda i: claim_runtime(matcher, i),):
                saved = set(matcher.fused), set(matcher.folded)
                try:
                    device[idx] = claim(idx)
                    break
                except UnsupportedOperator as error:
                    matcher.fused, matcher.folded = saved
                    why = why or error.why
            else:
                self.host_reasons[idx] = why
        skip = set(matcher.fused) - set(self.host_reasons)
        for dq in matcher.folded:   # a DQ read only by device layers is not computed at all
            if all(c in skip for c in g.consumers.get(g.nodes[dq].output[0], [])) \
                    and g.nodes[dq].output[0] not in g.outputs:
                skip.add(dq)
        self.host_nodes = [i for i in g.order if i not in device and i not in skip]
        for idx in self.host_nodes:
            if g.nodes[idx].op_type == "Relu":
                self.host_reasons.setdefault(idx, "a Relu not between a quantized matmul and "
                                             "its QuantizeLinear runs in float")
        beyond = [i for i in self.host_nodes if g.nodes[i].op_type not in HOST_OPS
                  or g.nodes[i].domain not in ("", "ai.onnx")]
        if beyond and device_only:
            names = ", ".join(f"{g.nodes[i].name or f'#{i}'} ({g.nodes[i].op_type}"
                              + (f": {self.host_reasons[i]}" if i in self.host_reasons else "")
                              + ")" for i in beyond[:12])
            raise UnsupportedOperator(g.nodes[beyond[0]], beyond[0], f"--device-only: "
                                      f"{len(beyond)} node(s) would run on the host: {names}")
        self.device_steps = device
        if beyond:   # the host part through onnxruntime, in segments cut to keep its fusions
            order = [device[i] if i in device else g.nodes[i] for i in g.order
                     if i in device or i not in skip]
            dequantizers = {g.nodes[dq].input[0]: g.nodes[dq] for dq in matcher.folded
                            if dq in skip and all(n in g.consts for n in g.nodes[dq].input[1:]
                                                  if n)}
            try:
                steps = segments(model, order, g.consts, g.types, g.outputs, dequantizers)
            except PartitionError as error:
                raise ModelImportError(str(error)) from None
        else:
            steps = [device[i] if i in device else _host_step(g.nodes[i], i) for i in g.order
                     if i in device or i not in skip]
        #: The model in Rill's own representation: what the compiler and the devices run.
        self.model = QuantizedModel([input_spec(i) for i in g.inputs], list(g.outputs),
                                    dict(g.consts), steps)
        self.programs: list[LayerProgram] = []

    @classmethod
    def load(cls, model: str | Path | bytes | onnx.ModelProto, *,
             device_only: bool = False) -> RillModel:
        """Load and check a model from a path, serialized bytes or a ``ModelProto``.
        ``device_only``: refuse a model any of whose nodes beyond quantize, dequantize and data
        movement would run on the host, naming them."""
        if not isinstance(model, onnx.ModelProto):
            try:
                model = onnx.load_model_from_string(model) if isinstance(model, bytes) \
                    else onnx.load(str(model))
            except FileNotFoundError:
                raise
            except Exception as e:
                raise InvalidModel(f"{model!s:.200} is not an ONNX model ({type(e).__name__}: "
                                   f"{e}); pass a .onnx file written by onnx.save") from None
        # Structural checks only: onnx.checker is stricter than onnxruntime (it refuses, say,
        # outputs declared without a shape), and a model onnxruntime runs should run here too.
        if model.ir_version <= 0 or not model.opset_import or not model.graph.node \
                or not model.graph.output:
            raise InvalidModel("this is not an ONNX model: no IR version, opset, nodes or "
                               "outputs; pass a .onnx file written by onnx.save")
        return cls(model, device_only=device_only)

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.model.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self.model.outputs)

    def placement_lines(self) -> list[str]:
        """Where each node runs and the device's share of the model's MACs."""
        return placement_lines(self)

    def runtime_lines(self) -> list[str]:
        """What the layers compiled per value cost so far: compiles (planning and weight
        layout), cache hits, building each call's program."""
        return [f"{step.name}: compiled {step.stats['compiles']}x in "
                f"{step.stats['compile_seconds'] * 1e3:.1f} ms, {step.stats['cache_hits']} "
                f"cache hit(s); {step.stats['device_calls']} device call(s), programs built in "
                f"{step.stats['program_seconds'] * 1e3:.1f} ms"
                for step in self.model.steps if isinstance(step, RuntimeLayer)]

    def predicted_cycles(self) -> dict[str, int]:
        """Predicted working cycles of each device layer program of the last :meth:`run`."""
        return {lp.name: lp.predicted_cycles for lp in self.programs}

    @property
    def layers(self) -> list[DeviceLayer]:
        return self.model.layers

    def run(self, device: Device, feeds: dict[str, Any], *,
            progress: Callable[[str, int, int], None] | None = None,
            resident: bool = False) -> dict[str, np.ndarray]:
        """Run the model; returns ``{output name: array}`` exactly as onnxruntime would.

        ``progress(layer name, index, layer count)`` is called before each device layer.
        ``resident``: the weights that fit stay on the device between calls
        (:meth:`sw.model_ir.QuantizedModel.load`); each call then sends little more than its
        inputs.
        """
        self.programs = []
        try:
            return self.model.run(device, feeds, progress=progress, programs=self.programs,
                                  resident=resident)
        except InputError as error:
            if isinstance(error, InputMismatch):
                raise
            raise InputMismatch(str(error)) from None

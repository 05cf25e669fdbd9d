"""Quantized matmuls and convolutions whose operands are known only when the model runs.

A :class:`RuntimeLayer` is ``QLinearMatMul`` / ``MatMulInteger`` / ``QLinearConv`` /
``ConvInteger`` (or their QDQ form) whose second operand, scales or zero points are graph inputs
or computed tensors: attention's ``Q @ K^T`` multiplies two activations, and a model may take its
weights as inputs. Each call compiles the layer for the values it is given (cached by value, so
weights that repeat compile once) and runs every multiply-accumulate on the device.

**Nonzero weight zero points** (uint8 weights, or int8 ones with a zero point) are outside the
device's arithmetic: its weights are int8 and its requantizer adds one bias per output column,
while ``sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n])`` needs a term per output *row*. The
layer splits the weights as ``b - b_zp = w + c`` with ``w`` int8 (``b - 128`` for uint8, ``b``
for int8) and ``c[n] = 128 - b_zp[n]`` (or ``-b_zp[n]``), so

    acc[m, n] = sum_k (a[m, k] - a_zp) * w[k, n]  +  c[n] * sum_k (a[m, k] - a_zp)

The first term is the device's matmul, returned raw (int32, ``STORE RAW``); the second is one
row sum per output row, ``K`` additions against the device's ``K * N`` multiply-accumulates, and
the host adds it. (A matmul's ``a_zp`` is taken out the same way, ``a_zp * sum_k (w + c)`` per
column, so weights compiled once serve every activation zero point, as DynamicQuantizeLinear
picks one per input; a convolution keeps ``a_zp`` on the device, whose padding depends on it.)
The host then requantizes exactly as the device's requantizer does (:func:`sw.requant.requantize`,
onnxruntime's float32 arithmetic), so the result is the one a single device layer would give. A
row sum on the device (a column of ones appended to ``w``) would still leave the
per-(row, column) addition to the host; per-row bias entries would need a requantizer entry per
output element.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw.isa import OutType, Rounding

from .compiler import CompileError, LayerProgram, QuantizedLinear
from .conv import QuantizedConv, im2col
from .conv_device import output_size
from .device_base import Device
from .model_ir import DeviceLayer, InputError
from .requant import encode_onnx_scale, onnx_scale, requantize

__all__ = ["RuntimeLayer", "RuntimeOperandError", "signed_weights"]

_OUT_TYPES = {np.dtype(np.int8): OutType.INT8, np.dtype(np.uint8): OutType.UINT8}
#: Compiled layers kept per RuntimeLayer: enough for every distinct weight of a model's calls,
#: bounded for attention, whose second operand changes with every input.
_CACHE_SIZE = 32


class RuntimeOperandError(InputError):
    """A run-time operand of the wrong dtype or shape (for the layer it feeds)."""


def signed_weights(b: np.ndarray, b_zp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(w, c)``: int8 weights ``w`` and per-column offsets ``c`` with ``b - b_zp == w + c``
    (``b`` uint8 or int8, ``b_zp`` a scalar or one value per column of the last axis)."""
    shift = 128 if b.dtype == np.uint8 else 0
    w = (b.astype(np.int16) - shift).astype(np.int8)
    return w, shift - np.asarray(b_zp, np.int64)


def _along(value: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    value = np.asarray(value).reshape(-1)
    shape = [1] * ndim
    shape[axis] = value.size
    return value.reshape(shape)


@dataclass(eq=False)
class RuntimeLayer:
    """One quantized matmul or 2-D convolution with run-time operands (see the module docstring).

    Tensor names: ``a`` (activations, int8/uint8), ``b`` (weights: ``(..., K, N)`` for a matmul,
    ``(N, C, kh, kw)`` for a conv), their zero points, and for a quantized output the three
    scales and ``y_zp`` (all empty: int32 accumulators out, as MatMulInteger / ConvInteger);
    ``bias`` an optional int32 per-output-channel tensor; ``trans_b``: ``b`` is ``(N, K)`` (a
    Gemm's ``transB``). ``conv`` carries ``pads`` and ``strides``. Statistics of the calls so
    far are in :attr:`stats`.
    """

    name: str
    kind: str
    a: str
    b: str
    output: str
    a_zp: str = ""
    b_zp: str = ""
    a_scale: str = ""
    b_scale: str = ""
    y_scale: str = ""
    y_zp: str = ""
    bias: str = ""
    trans_b: bool = False
    conv: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=lambda: dict(
        compiles=0, cache_hits=0, compile_seconds=0.0, program_seconds=0.0, device_macs=0,
        device_calls=0))
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(n for n in (self.a, self.b, self.a_zp, self.b_zp, self.a_scale,
                                 self.b_scale, self.y_scale, self.y_zp, self.bias) if n)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.output,)

    op = "run-time matmul"

    @property
    def quantized(self) -> bool:
        return bool(self.y_scale)

    def _fail(self, why: str):
        raise RuntimeOperandError(f"{self.name}: {why}")

    def _zero_point(self, env: dict[str, np.ndarray], name: str, dtype: np.dtype,
                    what: str) -> np.ndarray:
        if not name:
            return np.zeros((), np.int64)
        zp = np.asarray(env[name])
        if zp.dtype != dtype:
            self._fail(f"{what} zero point is {zp.dtype}, its tensor {dtype}")
        return zp.astype(np.int64)

    def execute(self, device: Device, env: dict[str, np.ndarray],
                programs: list[LayerProgram] | None = None) -> dict[str, np.ndarray]:
        """A step of :meth:`sw.model_ir.QuantizedModel.run`."""
        return {self.output: self.run(device, env, programs)}

    def run(self, device: Device, env: dict[str, np.ndarray],
            programs: list[LayerProgram] | None = None) -> np.ndarray:
        """The layer's output for the tensors in ``env``, its MACs run on ``device``."""
        a, b = np.asarray(env[self.a]), np.asarray(env[self.b])
        for what, t in (("input A", a), ("input B (weights)", b)):
            if t.dtype not in _OUT_TYPES:
                self._fail(f"{what} is {t.dtype}; the device multiplies int8 or uint8")
        a_zp = self._zero_point(env, self.a_zp, a.dtype, "A's")
        if a_zp.size != 1:
            self._fail(f"A's zero point must be one value (per tensor), got shape {a_zp.shape}")
        b_zp = self._zero_point(env, self.b_zp, b.dtype, "B's")
        a_zp = int(a_zp.reshape(()))
        if self.kind == "conv":
            acc, axis = self._conv(device, a, a_zp, b, b_zp, programs), 1
        else:
            acc, axis = self._matmul(device, a, a_zp, b, b_zp, programs), -1
        if self.bias:
            acc = acc + _along(np.asarray(env[self.bias], np.int64), axis, acc.ndim)
        if not self.quantized:
            return acc.astype(np.int32)
        scales = [np.asarray(env[n]).astype(np.float32) for n in
                  (self.a_scale, self.b_scale, self.y_scale)]
        y_zp = np.asarray(env[self.y_zp]) if self.y_zp else np.zeros((), np.uint8)
        if y_zp.dtype not in _OUT_TYPES or y_zp.size != 1 or scales[0].size != 1 \
                or scales[2].size != 1:
            self._fail("a_scale, y_scale and y_zero_point must be single values, y_zero_point "
                       "int8 or uint8")
        multiplier, shift = encode_onnx_scale(onnx_scale(scales[0].reshape(()), scales[1],
                                                         scales[2].reshape(())))
        out = requantize(acc, 0, _along(multiplier, axis, acc.ndim),
                         _along(shift, axis, acc.ndim), int(y_zp.reshape(())),
                         rounding=Rounding.ONNX, relu=False, out_type=_OUT_TYPES[y_zp.dtype])
        return out.astype(y_zp.dtype)

    # -- the device part ------------------------------------------------------------------------

    def _device_layer(self, device: Device, w: np.ndarray, a_zp: int, act_dtype: np.dtype,
                      conv: QuantizedConv | None) -> DeviceLayer:
        """The device layer for weights ``w`` (``(K, N)``, or conv filters), compiled once per
        distinct value."""
        key = (device.params, w.shape, w.tobytes(), a_zp, act_dtype)
        if key in self._cache:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return self._cache[key]
        started = time.perf_counter()
        weights = QuantizedConv.filters_to_weights(w) if conv is not None else w
        linear = QuantizedLinear(np.ascontiguousarray(weights), a_zp=a_zp, y_zp=0,
                                 act_dtype=act_dtype.type, out_dtype=np.int32, name=self.name)
        if conv is not None:
            conv = QuantizedConv(linear, conv.kernel, conv.pads, conv.strides)
        layer = DeviceLayer(self.name, "conv" if conv is not None else "matmul", self.a,
                            self.output, linear, conv)
        try:
            layer.compiled(device.params)
        except CompileError as e:
            self._fail(str(e))
        self.stats["compiles"] += 1
        self.stats["compile_seconds"] += time.perf_counter() - started
        self._cache[key] = layer
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return layer

    def _execute(self, device: Device, layer: DeviceLayer, x: np.ndarray, macs: int,
                 programs: list[LayerProgram] | None) -> np.ndarray:
        started = time.perf_counter()
        lp, reshape = layer.program(device.params, x)
        self.stats["program_seconds"] += time.perf_counter() - started
        if programs is not None:
            programs.append(lp)
        response = device.execute(lp.command_bytes, lp.response_bytes, lp.frame_cuts)
        self.stats["device_macs"] += macs
        self.stats["device_calls"] += 1
        return reshape(lp.assemble(response)).astype(np.int64)

    def _matmul(self, device, a, a_zp, b, b_zp, programs) -> np.ndarray:
        if self.trans_b:
            b = np.swapaxes(b, -1, -2)
        if a.ndim < 2 or b.ndim < 2:
            self._fail(f"A {a.shape} and B {b.shape} must both have two or more dimensions")
        k, n = b.shape[-2:]
        if a.shape[-1] != k:
            self._fail(f"A {a.shape} and B {b.shape} do not multiply (K {a.shape[-1]} != {k})")
        if b_zp.size not in (1, n):
            self._fail(f"B's zero point has {b_zp.size} values for {n} columns")
        w, offset = signed_weights(b, b_zp.reshape(-1))
        if all(d == 1 for d in b.shape[:-2]):   # one weight matrix for every row of A
            rows = a.reshape(-1, k)
            acc = self._matmul2d(device, rows, a_zp, w.reshape(k, n), offset, programs)
            lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            return acc.reshape(*lead, a.shape[-2], n)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a_all = np.broadcast_to(a, batch + a.shape[-2:])
        w_all = np.broadcast_to(w, batch + w.shape[-2:])
        acc = np.empty(batch + (a.shape[-2], n), np.int64)
        for index in np.ndindex(*batch):
            acc[index] = self._matmul2d(device, a_all[index], a_zp, w_all[index], offset,
                                        programs)
        return acc

    def _matmul2d(self, device, x, a_zp, w, offset, programs) -> np.ndarray:
        # The device multiplies x itself (zero point 0) and the host subtracts a_zp's share,
        # a_zp * sum_k w[k, n], one value per column: weights compiled once serve every a_zp
        # (DynamicQuantizeLinear picks a new one per input).
        layer = self._device_layer(device, np.ascontiguousarray(w), 0, x.dtype, None)
        acc = self._execute(device, layer, np.ascontiguousarray(x), x.size * w.shape[1],
                            programs)
        k = x.shape[1]
        if a_zp:
            acc -= a_zp * (w.astype(np.int64).sum(axis=0) + k * offset)[None, :]
        if np.any(offset):
            acc += x.astype(np.int64).sum(axis=1)[:, None] * offset.reshape(1, -1)
        return acc

    def _conv(self, device, x, a_zp, filters, w_zp, programs) -> np.ndarray:
        if x.ndim != 4 or filters.ndim != 4 or x.shape[1] != filters.shape[1]:
            self._fail(f"a 2-D convolution takes NCHW input and (N, C, kh, kw) filters of the "
                       f"same C; got {x.shape} and {filters.shape}")
        n_out = filters.shape[0]
        if w_zp.size not in (1, n_out):
            self._fail(f"W's zero point has {w_zp.size} values for {n_out} output channels")
        kernel = tuple(filters.shape[2:])
        pads = tuple(self.conv.get("pads", (0, 0, 0, 0)))
        strides = tuple(self.conv.get("strides", (1, 1)))
        w, offset = signed_weights(filters, w_zp.reshape(-1))   # one offset per filter
        offset = np.broadcast_to(offset, (n_out,))
        conv = QuantizedConv(None, kernel, (pads[0], pads[1], pads[2], pads[3]), strides)
        layer = self._device_layer(device, np.ascontiguousarray(w), a_zp, x.dtype, conv)
        oh, ow = output_size(conv, *x.shape[2:])
        acc = self._execute(device, layer, x, x.shape[0] * oh * ow * filters[0].size * n_out,
                            programs)
        if np.any(offset):   # each output pixel's window sum, padding counting as a_zp
            cols, _ = im2col(x, kernel, conv.pads, strides, a_zp)
            sums = cols.astype(np.int64).sum(axis=1) - a_zp * cols.shape[1]
            acc += sums.reshape(x.shape[0], 1, oh, ow) * offset.reshape(1, -1, 1, 1)
        return acc


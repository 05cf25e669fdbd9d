"""The steps of a quantized model that run on the host: QuantizeLinear and DequantizeLinear with
onnxruntime's float32 arithmetic to the bit, and data movement (Reshape, Flatten, Transpose,
Squeeze, Unsqueeze, Identity, Constant), named and parametrized as ONNX names them; a model
input cut into pixel blocks for a strided first conv (``PixelBlocks``, space to depth:
:mod:`sw.space_to_depth`); and the TFLite operators of :mod:`sw.tflite_host_ops`. A step is a
:class:`sw.model_ir.HostStep`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .tflite_host_ops import TFLITE_HOST_OPS, run_tflite_op

__all__ = ["HOST_OPS", "quantize_linear", "dequantize_linear", "run_host_op"]

HOST_OPS = ("QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Transpose", "Squeeze",
            "Unsqueeze", "Identity", "Constant")


def _per_axis(value: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    value = np.asarray(value)
    if value.size == 1 or ndim == 0:
        return value.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = value.size
    return value.reshape(shape)


def quantize_linear(x: np.ndarray, scale, zero_point=None, axis: int = 1) -> np.ndarray:
    """ONNX QuantizeLinear as onnxruntime computes it: float32 ``x / scale``, round half to even,
    add the zero point, saturate. The output dtype is the zero point's (uint8 when absent)."""
    dtype = np.dtype(np.uint8) if zero_point is None else np.asarray(zero_point).dtype
    x = np.asarray(x, dtype=np.float32)
    scale = _per_axis(np.asarray(scale, dtype=np.float32), x.ndim, axis)
    zp = 0 if zero_point is None else _per_axis(zero_point, x.ndim, axis).astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zp, info.min, info.max).astype(dtype)


def dequantize_linear(q: np.ndarray, scale, zero_point=None, axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear as onnxruntime computes it: ``float32(q - zp) * scale``."""
    q = np.asarray(q)
    zp = 0 if zero_point is None else _per_axis(zero_point, q.ndim, axis).astype(np.int64)
    scale = _per_axis(np.asarray(scale, dtype=np.float32), q.ndim, axis)
    return ((q.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def run_host_op(step: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of one host step (a :class:`sw.model_ir.HostStep`), from ``env`` (tensor name ->
    array)."""
    op, a = step.op, step.attrs
    if op in TFLITE_HOST_OPS:
        return run_tflite_op(step, env)
    args = [env[n] if n else None for n in step.inputs] + [None] * 3
    if op == "QuantizeLinear":
        return [quantize_linear(args[0], args[1], args[2], a.get("axis", 1))]
    if op == "DequantizeLinear":
        return [dequantize_linear(args[0], args[1], args[2], a.get("axis", 1))]
    if op == "Identity":
        return [args[0]]
    if op == "Constant":
        return [np.asarray(a["value"])]
    if op == "Reshape":
        shape = [int(s) for s in args[1]]
        if not a.get("allowzero", 0):
            shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [args[0].reshape(shape)]
    if op == "Flatten":
        axis = a.get("axis", 1) % max(args[0].ndim, 1) if args[0].ndim else 0
        return [args[0].reshape(int(np.prod(args[0].shape[:axis])), -1)]
    if op == "PixelBlocks":   # NHWC in, NCHW blocks out
        return [a["blocks"].apply(args[0])]
    if op == "Transpose":
        return [np.ascontiguousarray(np.transpose(args[0], a.get("perm")))]
    if op in ("Squeeze", "Unsqueeze"):
        axes = a.get("axes") if args[1] is None else [int(v) for v in args[1]]
        if op == "Squeeze":
            return [np.squeeze(args[0], axis=None if axes is None else tuple(axes))]
        return [np.expand_dims(args[0], tuple(axes))]
    raise AssertionError(op)

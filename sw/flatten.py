"""A convolution's feature map read by the fully connected layer after a Flatten, in place.

ONNX flattens an NCHW map channel-major: input ``k = c * P + p`` of the next Gemm is channel
``c`` of pixel ``p`` (``P`` pixels). On the device the map lies pixel by pixel
(``hw.isa.ConvGeometry``), and the Gemm reads it as a convolution whose kernel covers the whole
map (one output pixel, K tile ``(p, cc)``: channel chunk ``cc`` of pixel ``p``), so each K tile
reads its chunk wherever the word layout puts it, and a map of few channels costs no K tiles of
padding. Reordering the Gemm's weight rows to that K order (:func:`fmap_linear`) makes the
Flatten plain addressing, and nothing moves. The host reorders its own rows the same way when it
feeds such a layer (:func:`fmap_order`).

The pattern recognised between the conv and the Gemm (:func:`flattened_inputs`): a Flatten
(axis 1), alone or between a DequantizeLinear and a QuantizeLinear of equal scale and zero point
(QDQ models write it so; quantizing what was just dequantized with the same parameters is exact).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hw.params import RillParams

from .compiler import QuantizedLinear

__all__ = ["flattened_inputs", "fmap_linear", "fmap_order", "between"]


def between(steps, first, second) -> list:
    """The steps strictly between device layers ``first`` and ``second`` (step objects)."""
    return steps[steps.index(first) + 1:steps.index(second)]


def _same_constant(constants: dict, a: str, b: str) -> bool:
    if a == b:
        return True
    return a in constants and b in constants and np.array_equal(constants[a], constants[b])


def flattens(host_steps, conv, fc, constants: dict) -> bool:
    """Whether ``host_steps`` (between ``conv`` and ``fc``) only flatten the conv's output."""
    ops = [step.op for step in host_steps]
    if ops == ["Flatten"]:
        (flatten,) = host_steps
        return (flatten.inputs[0] == conv.output and flatten.outputs[0] == fc.input
                and flatten.attrs.get("axis", 1) == 1)
    if ops == ["DequantizeLinear", "Flatten", "QuantizeLinear"]:
        dq, flatten, q = host_steps
        return (dq.inputs[0] == conv.output and flatten.inputs[0] == dq.outputs[0]
                and q.inputs[0] == flatten.outputs[0] and q.outputs[0] == fc.input
                and flatten.attrs.get("axis", 1) == 1
                and len(dq.inputs) == len(q.inputs) == 3
                and all(_same_constant(constants, a, b)
                        for a, b in zip(dq.inputs[1:], q.inputs[1:]))
                and dq.attrs.get("axis", 1) == q.attrs.get("axis", 1))
    return False


def flattened_inputs(params: RillParams, steps, constants: dict,
                     addressed) -> dict[int, tuple[int, int]]:
    """``{device-layer index of a Gemm/MatMul: (channels, pixels)}`` for each that reads the
    output of the device layer before it, a conv the core walks (``addressed(layer)``), through
    a flatten only. Needs a core that chains layers and walks convolutions."""
    if not (params.store_to_acts and params.conv_addressing):
        return {}
    found, index, previous = {}, -1, None
    for step in steps:
        if not hasattr(step, "linear"):
            continue
        index += 1
        if (previous is not None and previous.kind == "conv" and addressed(previous)
                and step.kind in ("gemm", "matmul") and not step.trans_a
                and flattens(between(steps, previous, step), previous, step, constants)):
            channels = np.asarray(previous.linear.weights).shape[1]
            k = np.asarray(step.linear.weights).shape[0]
            if k % channels == 0:
                found[index] = (channels, k // channels)
        previous = step
    return found


def _permutation(channels: int, pixels: int, kc: int) -> np.ndarray:
    """For each device K index ``(p * chunks + cc) * kc + l``, the ONNX index ``c * P + p`` of
    channel ``c = cc * kc + l``, or -1 past the last channel."""
    chunks = -(-channels // kc)
    p, cc, lane = np.meshgrid(np.arange(pixels), np.arange(chunks), np.arange(kc),
                              indexing="ij")
    c = cc * kc + lane
    return np.where(c < channels, c * pixels + p, -1).reshape(-1)


def fmap_linear(linear: QuantizedLinear, channels: int, pixels: int,
                kc: int) -> QuantizedLinear:
    """``linear`` with its weight rows in the feature map's order (zero rows past the last
    channel: the same sums)."""
    weights = np.asarray(linear.weights)
    order = _permutation(channels, pixels, kc)
    reordered = np.where((order >= 0)[:, None], weights[np.maximum(order, 0)], 0)
    return replace(linear, weights=reordered.astype(weights.dtype))


def fmap_order(x: np.ndarray, channels: int, pixels: int, kc: int) -> np.ndarray:
    """Flattened rows ``(N, channels * pixels)`` in the feature map's order, as
    :func:`fmap_linear`'s layer takes them (zero past the last channel)."""
    order = _permutation(channels, pixels, kc)
    x = np.asarray(x)
    return np.where(order >= 0, x[:, np.maximum(order, 0)], 0).astype(x.dtype)

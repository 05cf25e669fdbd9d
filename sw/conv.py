"""Quantized 2-D convolution on the device: im2col on the host, the patches through a compiled
linear layer (:mod:`sw.compiler`), padding with the input zero point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compiler import CompiledLinear, CompileError, QuantizedLinear, compiled_for, scalar_int
from .device_base import Device

__all__ = ["QuantizedConv", "im2col", "conv_program", "run_conv", "pack_feature_map",
           "unpack_feature_map", "device_conv_weights"]


@dataclass(eq=False)
class QuantizedConv:
    """A 2-D quantized convolution (NCHW, group 1, dilation 1) as a matmul over im2col patches.

    ``linear.weights`` is ``(C * kh * kw, C_out)``: build it with :meth:`from_filters`.
    ``depthwise``: output channel ``c`` reads input channel ``c`` only (a depthwise conv, one
    output per channel: ``linear.weights`` is zero elsewhere), so a core can walk it a channel
    chunk per output tile (:func:`sw.conv_device.walks_depthwise`).
    """
    linear: QuantizedLinear
    kernel: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right (ONNX order)
    strides: tuple[int, int] = (1, 1)
    depthwise: bool = False

    @staticmethod
    def filters_to_weights(filters: np.ndarray) -> np.ndarray:
        """ONNX ``(C_out, C, kh, kw)`` filters -> ``(C * kh * kw, C_out)`` matmul weights."""
        filters = np.asarray(filters)
        return filters.reshape(filters.shape[0], -1).T

    @staticmethod
    def dense_filters(filters: np.ndarray, group: int) -> np.ndarray:
        """A grouped convolution's ``(C_out, C / group, kh, kw)`` filters as the dense
        ``(C_out, C, kh, kw)`` filters of the same convolution: zero off each output channel's
        own group of input channels, where they add nothing (a depthwise conv: ``group = C``)."""
        out, per_group = filters.shape[:2]
        dense = np.zeros((out, per_group * group) + filters.shape[2:], filters.dtype)
        for o in range(out):
            g = o // (out // group)
            dense[o, g * per_group:(g + 1) * per_group] = filters[o]
        return dense


def im2col(x: np.ndarray, kernel: tuple[int, int], pads: tuple[int, int, int, int],
           strides: tuple[int, int], pad_value: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """NCHW ``x`` -> ``(N * OH * OW, C * kh * kw)`` patches and ``(N, OH, OW)``.

    Padding takes ``pad_value`` (the input zero point: a padded zero *real* value is the zero
    point, not 0, in quantized units).
    """
    n, c, _, _ = x.shape
    kh, kw = kernel
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    if padded.shape[2] < kh or padded.shape[3] < kw:
        raise CompileError(f"kernel {kernel} is larger than the padded input {padded.shape[2:]}")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::strides[0], ::strides[1]]
    oh, ow = windows.shape[2:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    return np.ascontiguousarray(cols), (n, oh, ow)


def pack_feature_map(params, x: np.ndarray, int4: bool) -> np.ndarray:
    """One image's ``(C, H, W)`` int8 channels as activation words for a conv addressed on the
    device (``hw.isa.ConvGeometry``): channels ``[g * v, (g + 1) * v)`` of pixel ``p`` in word
    ``g * H * W + p`` (``v = values_per_word``; zero past the last channel). Fewer channels than
    one word give words of C lanes (a narrow load: the rest meet zero weights)."""
    c, h, w = x.shape
    per_word = params.values_per_word(int4)
    if c < per_word:
        return np.ascontiguousarray(x.reshape(c, h * w).T, dtype=np.int8)
    groups = -(-c // per_word)
    channels = np.zeros((groups * per_word, h * w), np.int8)
    channels[:c] = x.reshape(c, h * w)
    return channels.reshape(groups, per_word, h * w).transpose(0, 2, 1).reshape(-1, per_word)


def unpack_feature_map(params, words: np.ndarray, channels: int, h: int, w: int) -> np.ndarray:
    """``(C, H, W)`` of a map stored in whole INT8 words (:func:`pack_feature_map`'s layout, as
    a ``STORE TO_ACTS`` or the vector unit writes it): the inverse, lanes past ``C`` dropped."""
    per_word = params.values_per_word(False)
    groups = -(-channels // per_word)
    return (np.asarray(words).reshape(groups, h * w, per_word).transpose(0, 2, 1)
            .reshape(groups * per_word, h, w)[:channels])


def device_conv_weights(filters: np.ndarray, kpt: int) -> np.ndarray:
    """ONNX ``(C_out, C, kh, kw)`` filters as the ``(K, C_out)`` weights of a conv addressed on
    the device: K tile ``(dy, dx, cc)`` in that order, lane ``l`` meeting channel
    ``cc * kpt + l`` (zero past the last channel)."""
    f, c, kh, kw = filters.shape
    chunks = -(-c // kpt)
    weights = np.zeros((kh, kw, chunks * kpt, f), np.int64)
    weights[:, :, :c] = np.asarray(filters).transpose(2, 3, 1, 0)
    return weights.reshape(-1, f)


def conv_program(compiled: CompiledLinear, conv: QuantizedConv, x: np.ndarray):
    """``(LayerProgram, (N, OH, OW))`` for a conv on NCHW ``x`` (``compiled`` from conv.linear)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise CompileError(f"{compiled.name}: conv input must be NCHW, got shape {x.shape}")
    pad_value = scalar_int(conv.linear.a_zp, "activation zero point")
    cols, shape = im2col(x, conv.kernel, conv.pads, conv.strides, pad_value)
    return compiled.program(cols.astype(x.dtype, copy=False)), shape


def run_conv(device: Device, conv: QuantizedConv, x: np.ndarray,
             compiled: CompiledLinear | None = None) -> np.ndarray:
    """Run a quantized conv on ``device``: NCHW ``x`` -> NCHW ``y``."""
    compiled = compiled_for(device, compiled or conv.linear)
    lp, (n, oh, ow) = conv_program(compiled, conv, x)
    y = lp.assemble(device.execute(lp.command_bytes, lp.response_bytes, lp.frame_cuts))
    return np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))


"""Convolutions addressed on the device: each image crosses the link once, as a feature map, and
the core walks the kernel over it (``MATMUL`` with ``MatmulFlags.CONV``, :class:`ConvGeometry`).

A conv compiled this way keeps its weights in the device's K order (:func:`device_linear`:
kernel row, kernel column, channel chunk; a depthwise conv, :func:`walks_depthwise`, only each
output tile's own chunk, its tiles diagonal), so a core with ``RillParams.conv_addressing`` compiles
every conv that way whose K tiles fit a MATMUL; the others, and every conv on a core without it,
go through im2col on the host (:mod:`sw.conv`).

A call runs image by image: the image's feature map loaded into the activation SRAM, then, for
each band of output rows the accumulators hold, a geometry, a MATMUL and a STORE.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hw.isa import ConvGeometry, Precision
from hw.params import RillParams

from .compiler import (
    CompiledLinear,
    CompileError,
    LayerProgram,
    QuantizedLinear,
    as_int8,
)
from .conv import QuantizedConv, device_conv_weights, pack_feature_map
from .planner import TilePlan
from .program import Program
from .resident import load_streamed_qparams

__all__ = ["addressable", "depthwise_walkable", "walks_depthwise", "device_linear", "output_size",
           "conv_geometry", "conv_matmul", "device_conv_program"]

_MAX_TILES = 255


def _int4(conv: QuantizedConv) -> bool:
    return Precision(conv.linear.precision) == Precision.INT4


def _channels(conv: QuantizedConv) -> int:
    return np.asarray(conv.linear.weights).shape[0] // (conv.kernel[0] * conv.kernel[1])


def _filters(conv: QuantizedConv) -> np.ndarray:
    """The ONNX ``(C_out, C, kh, kw)`` filters behind ``conv.linear``'s im2col weights."""
    weights = np.asarray(conv.linear.weights)
    kh, kw = conv.kernel
    return weights.T.reshape(weights.shape[1], -1, kh, kw)


def addressable(params: RillParams, conv: QuantizedConv,
                in_size: tuple[int, int] | None = None) -> bool:
    """Whether ``params``' core can walk this conv: conv addressing present, a byte's worth of
    K tiles and kernel, stride and padding within the geometry's fields, and, where the input's
    ``(height, width)`` is known, its feature map within the activation SRAM."""
    if not params.conv_addressing:
        return False
    if in_size is not None and -(-_channels(conv) // params.values_per_word(_int4(conv))) \
            * in_size[0] * in_size[1] > params.act_depth:
        return False
    kh, kw = conv.kernel
    kpt = params.k_per_tile(_int4(conv))
    return (kh * kw * -(-_channels(conv) // kpt) <= _MAX_TILES and max(kh, kw) <= 255
            and max(conv.strides) <= 255 and conv.strides[0] == conv.strides[1]
            and max(conv.pads) <= 255)


def depthwise_walkable(params: RillParams, int4: bool = False) -> bool:
    """Whether ``params``' core walks depthwise convs of this precision a channel chunk per
    output tile (``MatmulFlags.DEPTHWISE``): INT8, a chunk as wide as a tile (``rows == cols``)."""
    return params.conv_addressing and not int4 and params.k_per_tile(False) == params.cols


def walks_depthwise(params: RillParams, conv: QuantizedConv) -> bool:
    """Whether ``params``' core walks the depthwise ``conv`` depthwise; else it runs as the
    dense conv, all chunks for every tile, most of them meeting zeros."""
    return conv.depthwise and depthwise_walkable(params, _int4(conv))


def device_linear(params: RillParams, conv: QuantizedConv) -> QuantizedLinear:
    """``conv.linear`` with its weights in the device's K order (same bias and scales: the
    reordering and the zero channels change no sum); a conv the core walks depthwise keeps a
    chunk's K per kernel offset, lane ``l`` of offset ``(dy, dx)`` meeting the channel of column
    ``n`` when ``l == n % cols`` (the chunk's lanes and the tile's columns are its channels):
    every tile diagonal, stored as its diagonal, a word (``QuantizedLinear.diagonal``)."""
    filters = _filters(conv)
    if not walks_depthwise(params, conv):
        return replace(conv.linear, weights=device_conv_weights(filters,
                                                                params.k_per_tile(_int4(conv))))
    channels, _, kh, kw = filters.shape
    own = filters[np.arange(channels), np.arange(channels)]   # (C, kh, kw)
    weights = np.zeros((kh, kw, params.cols, channels), np.int64)
    weights[:, :, np.arange(channels) % params.cols, np.arange(channels)] = own.transpose(1, 2, 0)
    return replace(conv.linear, weights=weights.reshape(-1, channels), diagonal=True)


def output_size(conv: QuantizedConv, h: int, w: int) -> tuple[int, int]:
    kh, kw = conv.kernel
    top, left, bottom, right = conv.pads
    return ((h + top + bottom - kh) // conv.strides[0] + 1,
            (w + left + right - kw) // conv.strides[1] + 1)


def conv_geometry(compiled: CompiledLinear, conv: QuantizedConv, h: int, w: int,
                  first_row: int = 0) -> ConvGeometry:
    """The geometry of ``conv`` on an ``h x w`` map of ``compiled``'s channels; padding holds
    the input's zero point as the device holds it (uint8 flipped to int8)."""
    oh, ow = output_size(conv, h, w)
    if not (1 <= h <= 255 and 1 <= w <= 255 and 1 <= ow <= 255 and oh >= 1):
        raise CompileError(f"{compiled.name}: a {h}x{w} feature map giving {oh}x{ow} does not "
                           "fit the device's convolution geometry (1 to 255 pixels a side)")
    return ConvGeometry(in_w=w, in_h=h, out_w=ow, kernel_h=conv.kernel[0],
                        kernel_w=conv.kernel[1], stride=conv.strides[0], pad_top=conv.pads[0],
                        pad_left=conv.pads[1], first_row=first_row,
                        zero_point=compiled.device_a_zp, chunks=-(-_channels(conv) // compiled.kc))


def conv_matmul(prog: Program, layer: CompiledLinear, geometry: ConvGeometry, act_addr: int,
                weight_addr: int, rows: int):
    """The MATMUL of ``layer`` walking ``geometry`` over the map at ``act_addr``: depthwise
    where the layer's tiles are diagonal, one chunk's K per kernel offset
    (:func:`device_linear`)."""
    depthwise = layer.diagonal
    assert not depthwise or (layer.k_tiles, layer.n_tiles) == (geometry.kernel, geometry.chunks)
    prog.matmul(act_addr, weight_addr, 0, rows, layer.k_tiles, layer.n_tiles, conv=True,
                depthwise=depthwise)


def band_rows(params: RillParams, compiled: CompiledLinear, oh: int, ow: int) -> int:
    """Output rows one MATMUL covers: as many as the accumulators hold (and MATMUL's ``m``)."""
    rows = min(oh, params.acc_depth // (compiled.n_tiles * ow), 0xFFFF // ow)
    if rows < 1:
        raise CompileError(f"{compiled.name}: one output row ({ow} pixels x "
                           f"{compiled.n_tiles} tiles) does not fit the accumulators")
    return rows


def device_conv_program(compiled: CompiledLinear, conv: QuantizedConv, x: np.ndarray,
                        residence=None) -> tuple[LayerProgram, tuple[int, int, int]]:
    """``(LayerProgram, (N, OH, OW))`` for ``conv`` (compiled from :func:`device_linear`) on
    NCHW ``x``: with ``residence`` (:mod:`sw.resident`) its weights are on the device; else
    the call loads them first, and they must fit the SRAM."""
    params = compiled.params
    x = np.asarray(x)
    if x.ndim != 4:
        raise CompileError(f"{compiled.name}: conv input must be NCHW, got shape {x.shape}")
    n, c, h, w = x.shape
    if c != _channels(conv):
        raise CompileError(f"{compiled.name}: input has {c} channels, the filters take "
                           f"{_channels(conv)}")
    if x.dtype != compiled.act_dtype:
        raise CompileError(f"{compiled.name}: activations must be {compiled.act_dtype}, "
                           f"got {x.dtype}")
    x = as_int8(x)
    geometry = conv_geometry(compiled, conv, h, w)
    oh, ow = output_size(conv, h, w)
    words = geometry.words(params.k_tiles_per_word(compiled.int4))
    if words > params.act_depth:
        raise CompileError(f"{compiled.name}: a {c}x{h}x{w} feature map takes {words} "
                           f"activation words; the device has {params.act_depth}")
    rows = band_rows(params, compiled, oh, ow)
    prog = Program(params)
    prog.configure(compiled.config)
    if residence is None:
        weights = compiled.weight_words()
        if len(weights) > params.weight_depth or compiled.n > params.qparam_depth:
            raise CompileError(f"{compiled.name}: its weights do not fit the device at once")
        prog.load_weights(0, weights)
        prog.load_qparams(0, *compiled.qparams)
        weight_base = q_base = 0
    else:
        weight_base, q_base = residence.weight_base, residence.qparam_base
        load_streamed_qparams(prog, compiled, residence)
    stores = []
    for image in range(n):
        prog.load_acts(0, pack_feature_map(params, x[image], compiled.int4))
        for first in range(0, oh, rows):
            band = min(rows, oh - first)
            prog.conv_geometry(replace(geometry, first_row=first))
            conv_matmul(prog, compiled, geometry, 0, weight_base, band * ow)
            prog.store(0, band * ow, compiled.n, q_base, raw=compiled.raw)
            stores.append(((image * oh + first) * ow, band * ow, 0, compiled.n))
    plan = TilePlan(n * oh * ow, ((0, compiled.n_tiles),), ((0, compiled.k_tiles),),
                    tuple((row0, size) for row0, size, _, _ in stores), 1, False)
    compulsory = x.size + n * oh * ow * compiled.n * compiled.out_dtype.itemsize
    return LayerProgram(compiled.name, prog, plan, stores, compiled.out_dtype, compiled.n,
                        compulsory), (n, oh, ow)

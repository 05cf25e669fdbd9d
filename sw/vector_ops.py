"""The vector unit's instructions in exact numpy: the golden model's half for ``VECTOR_CONFIG``,
``ADD``, ``AVGPOOL``, ``MEAN``, ``POOL`` and ``READ_ACTS`` (``hw.isa``), and the constants a
compiler picks for them.

The arithmetic is TFLite's integer ADD, AVERAGE_POOL_2D, MAX_POOL_2D and MEAN
(:mod:`sw.tflite_kernels` is the reference they are held to), lane by lane over activation
words: an ADD of two int8 tensors in the layout the array's layers write is an ADD of their
words.
"""

from __future__ import annotations

import numpy as np

from hw.isa import (
    ADD_LEFT_SHIFT,
    VECTOR_SLOTS,
    ConvGeometry,
    Opcode,
    Status,
    VectorStage,
)
from hw.params import RillParams

from .requant import rounding_divide_by_pot, saturating_rounding_doubling_high_mul, wrap_int32
from .tflite_kernels import add_multipliers, mean_multiplier

__all__ = ["check", "scale", "add_words", "avgpool_words", "mean_words", "window_pool_words",
           "pool_reciprocal", "add_stages", "mean_stages", "RECIPROCAL_BITS"]

#: Width of AVGPOOL's ``reciprocal`` field.
RECIPROCAL_BITS = 24


def check(params: RillParams, opcode: Opcode, f: dict[str, int],
          geometry: ConvGeometry | None = None) -> Status:
    """A vector instruction's status: its modes and lengths, then its range, then overlap
    (``POOL``'s map is ``geometry``'s)."""
    depth = params.act_depth
    if opcode == Opcode.POOL:
        geometry = geometry or ConvGeometry()
        if f["average"] > 1:
            return Status.BAD_MODE
        if f["groups"] == 0 or f["out_h"] == 0:
            return Status.BAD_LENGTH
        act, words = f["act_addr"], f["groups"] * geometry.in_h * geometry.in_w
        out, out_words = f["out_addr"], f["groups"] * f["out_h"] * geometry.out_w
        if act + words > depth or out + out_words > depth:
            return Status.OUT_OF_RANGE
        # A window's reads reach back across rows, so no output word may lie in the input.
        return Status.OVERLAP if out < act + words and act < out + out_words else Status.OK
    if opcode == Opcode.VECTOR_CONFIG:
        ok = f["slot"] < VECTOR_SLOTS and f["shift"] <= VectorStage.MAX_SHIFT
        return Status.OK if ok else Status.BAD_MODE
    if opcode == Opcode.READ_ACTS:
        if f["count"] == 0:
            return Status.BAD_LENGTH
        return Status.OUT_OF_RANGE if f["addr"] + f["count"] > depth else Status.OK
    if opcode == Opcode.ADD:
        if not 1 <= f["lanes"] <= params.act_lanes:
            return Status.BAD_LENGTH
        words, out = f["words"], f["out_addr"]
        inputs = [(f["a_addr"], words), (f["b_addr"], words)]
        outputs = words
    else:
        words, out = f["groups"] * f["pixels"], f["out_addr"]
        inputs = [(f["act_addr"], words)]
        outputs = f["groups"]
    if words == 0:
        return Status.BAD_LENGTH
    if any(addr + length > depth for addr, length in [*inputs, (out, outputs)]):
        return Status.OUT_OF_RANGE
    # The output trails the reads: at or before an input, it only overwrites words read.
    if any(addr < out < addr + length for addr, length in inputs):
        return Status.OVERLAP
    return Status.OK


def scale(x, stage: VectorStage) -> np.ndarray:
    """``mbqm(x)`` of one stage: TFLite's ``MultiplyByQuantizedMultiplierSmallerThanOneExp``."""
    high = saturating_rounding_doubling_high_mul(wrap_int32(x), stage.multiplier)
    return rounding_divide_by_pot(high, stage.shift)


def add_words(a: np.ndarray, b: np.ndarray, stages: tuple[VectorStage, ...]) -> np.ndarray:
    """``ADD`` of two blocks of words (any shape, int8), with the three slots' stages."""
    first, second, out = stages
    shifted = [wrap_int32((np.asarray(x, np.int64) + stage.offset) << ADD_LEFT_SHIFT)
               for x, stage in ((a, first), (b, second))]
    total = wrap_int32(scale(shifted[0], first) + scale(shifted[1], second))
    return np.clip(scale(total, out) + out.offset, out.lo, out.hi).astype(np.int8)


def avgpool_words(blocks: np.ndarray, pixels: int, reciprocal: int, shift: int) -> np.ndarray:
    """``AVGPOOL`` of ``(groups, pixels, lanes)`` int8 words: ``(groups, lanes)``."""
    total = np.asarray(blocks, np.int64).sum(axis=1)
    # The product has at most 48 bits, so a shift past 63 gives 0 as a shift by 63 does.
    magnitude = (np.abs(total) + pixels // 2) * reciprocal >> min(shift, 63)
    return np.where(total < 0, -np.minimum(magnitude, 128),
                    np.minimum(magnitude, 127)).astype(np.int8)


def mean_words(blocks: np.ndarray, stages: tuple[VectorStage, ...]) -> np.ndarray:
    """``MEAN`` of ``(groups, pixels, lanes)`` int8 words: ``(groups, lanes)``, each lane's sum
    of ``x + offset`` (stage 0's offset) through the output stage (stage 2)."""
    first, _, out = stages
    blocks = np.asarray(blocks, np.int64)
    total = wrap_int32(blocks.sum(axis=1) + blocks.shape[1] * first.offset)
    return np.clip(scale(total, out) + out.offset, out.lo, out.hi).astype(np.int8)


def window_pool_words(maps: np.ndarray, geometry: ConvGeometry, out_h: int, average: bool,
                      reciprocal: int, shift: int, stage: VectorStage) -> np.ndarray:
    """``POOL`` of ``(groups, in_h, in_w, lanes)`` int8 words over ``geometry``'s windows:
    ``(groups, out_h, out_w, lanes)``, output rows from ``geometry.first_row``. A window's
    pixels outside the map count for nothing: the maximum is over those inside (-128 if none),
    the sum ``s`` adds only them."""
    g = geometry
    maps = np.asarray(maps, np.int64)
    groups, lanes = maps.shape[0], maps.shape[-1]
    oy, ox = g.first_row + np.arange(out_h)[:, None], np.arange(g.out_w)[None, :]
    result = np.full((groups, out_h, g.out_w, lanes), 0 if average else -128, np.int64)
    for dy in range(g.kernel_h):
        for dx in range(g.kernel_w):
            iy = oy * g.stride - g.pad_top + dy + 0 * ox
            ix = ox * g.stride - g.pad_left + dx + 0 * oy
            inside = ((iy >= 0) & (iy < g.in_h) & (ix >= 0) & (ix < g.in_w))[None, :, :, None]
            taps = maps[:, np.clip(iy, 0, g.in_h - 1), np.clip(ix, 0, g.in_w - 1)]
            result = (np.where(inside, result + taps, result) if average
                      else np.where(inside, np.maximum(result, taps), result))
    if average:   # AVGPOOL's rounded quotient, over the kernel's pixels
        magnitude = (np.abs(result) + g.kernel // 2) * reciprocal >> min(shift, 63)
        result = np.where(result < 0, -np.minimum(magnitude, 128), np.minimum(magnitude, 127))
    return np.clip(result, stage.lo, stage.hi).astype(np.int8)


def mean_stages(input_scale: float, input_zp: int, output_scale: float, output_zp: int,
                pixels: int) -> tuple[VectorStage, ...] | None:
    """The stages making ``MEAN`` TFLite's int8 MEAN over ``pixels`` values (the multiplier
    ``sw.tflite_kernels.mean`` folds), or ``None`` when it needs a left shift or its sums could
    leave int32."""
    multiplier, shift = mean_multiplier(input_scale, output_scale, pixels)
    if shift > 0 or -shift > VectorStage.MAX_SHIFT or 256 * pixels >= 1 << 31:
        return None
    unused = VectorStage(0, 0, 0, 0, 0)
    return (VectorStage(0, 0, -input_zp, 0, 0), unused,
            VectorStage(multiplier, -shift, output_zp, -128, 127))


def pool_reciprocal(pixels: int) -> tuple[int, int]:
    """``(reciprocal, shift)`` making ``AVGPOOL`` TFLite's rounded mean over ``pixels`` values,
    ``sign(s) * ((|s| + pixels // 2) // pixels)``, for every sum of int8 values.

    With ``r = ceil(2**shift / pixels)`` and ``e = r * pixels - 2**shift < pixels``,
    ``x * r >> shift == x // pixels`` whenever ``x * e < 2**shift``; ``x`` is at most
    ``128 * pixels + pixels // 2``. The largest such shift whose ``r`` fits the field is taken.
    """
    if pixels < 1:
        raise ValueError(f"pooling over {pixels} pixels")
    largest = 128 * pixels + pixels // 2
    best = None
    for shift in range(64):
        reciprocal = -(-(1 << shift) // pixels)
        if reciprocal >= 1 << RECIPROCAL_BITS:
            break
        if largest * (reciprocal * pixels - (1 << shift)) < 1 << shift:
            best = (reciprocal, shift)
    if best is None:
        raise ValueError(f"no {RECIPROCAL_BITS}-bit reciprocal divides sums over {pixels} "
                         f"pixels exactly")
    return best


def add_stages(a_scale: float, a_zp: int, b_scale: float, b_zp: int, output_scale: float,
               output_zp: int, act_range=(-128, 127)) -> tuple[VectorStage, ...] | None:
    """The three stages of TFLite's int8 ADD for these quantizations (as ``Prepare`` computes
    its multipliers), or ``None`` when a multiplier needs a left shift the unit does not do."""
    encoded = add_multipliers(a_scale, b_scale, output_scale)
    if any(shift > 0 or -shift > VectorStage.MAX_SHIFT for _, shift in encoded):
        return None
    offsets = (-a_zp, -b_zp, output_zp)
    return tuple(VectorStage(mult, -shift, offset, *act_range)
                 for (mult, shift), offset in zip(encoded, offsets))

"""A strided conv over a few channels, run as a stride-1 conv over the input's pixel blocks.

The array takes a conv one kernel offset per K tile: a conv of stride ``s`` and a ``kh x kw``
kernel over ``C`` channels costs ``kh * kw`` K tiles each with only ``C`` of its lanes used, and
its map a word a pixel. A model's first conv is often just that: DS-CNN's 10x4 of stride 2 over
one channel (40 K tiles a band), MobileNetV1's 3x3 of stride 2 over a 96x96 RGB image (9,216
words, more than the 85F's activation SRAM holds).

Rearranged into blocks of ``s x s`` pixels (space to depth: channel ``(dy * s + dx) * C + c`` of
block ``(by, bx)`` is channel ``c`` of pixel ``(s * by + dy, s * bx + dx)`` of the padded input),
the same conv is one of stride 1 and kernel ``ceil(kh / s) x ceil(kw / s)`` over ``C * s * s``
channels, the taps past the kernel's edge zero: the same sums from ``s * s`` times fewer
pixels and about ``s * s`` times fewer K tiles. TPUs run ResNet-50's 7x7 first conv of stride 2
the same way. The blocks are made where the map is made anyway, on the host (a model's input),
and cost only the padding's bytes on the link: the input padded with its zero point, as the
conv's own padding reads it, to whole blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpaceToDepth", "plan_space_to_depth"]


@dataclass(frozen=True)
class SpaceToDepth:
    """An ``(N, H, W, C)`` map padded (``pad_top``, ``pad_left`` rows and columns of
    ``zero_point`` before it, as many after as whole blocks need) and cut into ``height x
    width`` blocks of ``block x block`` pixels: an ``(N, C * block**2, height, width)`` map.
    The rest of the conv's padding is whole blocks, ``conv_pads`` (top, left, bottom, right),
    which the device adds as it adds any conv's."""

    block: int
    pad_top: int
    pad_left: int
    height: int
    width: int
    zero_point: int
    conv_pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The blocks of NHWC ``x``, NCHW."""
        x = np.asarray(x)
        n, h, w, c = x.shape
        s = self.block
        padded = np.full((n, self.height * s, self.width * s, c), self.zero_point, x.dtype)
        rows = min(h, self.height * s - self.pad_top)   # rows no output reads are left out
        cols = min(w, self.width * s - self.pad_left)
        padded[:, self.pad_top:self.pad_top + rows, self.pad_left:self.pad_left + cols] = \
            x[:, :rows, :cols]
        blocks = padded.reshape(n, self.height, s, self.width, s, c)
        return np.ascontiguousarray(blocks.transpose(0, 2, 4, 5, 1, 3)).reshape(
            n, s * s * c, self.height, self.width)

    def filters(self, filters: np.ndarray) -> np.ndarray:
        """``(C_out, C, kh, kw)`` filters of the strided conv as the block conv's ``(C_out,
        C * block**2, ceil(kh / block), ceil(kw / block))``."""
        out, c, kh, kw = filters.shape
        s = self.block
        kh2, kw2 = -(-kh // s), -(-kw // s)
        padded = np.zeros((out, c, kh2 * s, kw2 * s), filters.dtype)
        padded[:, :, :kh, :kw] = filters
        return np.ascontiguousarray(padded.reshape(out, c, kh2, s, kw2, s)
                                    .transpose(0, 3, 5, 1, 2, 4)).reshape(out, s * s * c, kh2, kw2)


def _axis(size: int, kernel: int, stride: int, before: int, after: int) -> tuple[int, ...]:
    """Along one axis: the host's padding before the data, the blocks it sends, and the
    blocks of padding the device adds before and after them."""
    out = (size + before + after - kernel) // stride + 1
    blocks = out - 1 + -(-kernel // stride)   # the block conv's padded input
    device_before = before // stride
    sent = min(-(-(before % stride + size) // stride), blocks - device_before)
    return before % stride, sent, device_before, blocks - device_before - sent


def plan_space_to_depth(in_hw: tuple[int, int], channels: int, kernel: tuple[int, int],
                        stride: tuple[int, int], pads: tuple[int, int, int, int],
                        zero_point: int, lanes: int, k_per_tile: int) -> SpaceToDepth | None:
    """The blocks that run the conv (``pads``: top, left, bottom, right) with fewer K tiles and
    a block a word (``lanes`` values a word, ``k_per_tile`` a K tile); None where it has no
    such blocks (stride 1, unequal strides, too many channels)."""
    s = stride[0]
    if s < 2 or stride[1] != s or channels * s * s > lanes:
        return None
    (h, w), (kh, kw), (top, left, bottom, right) = in_hw, kernel, pads
    tiles = kh * kw * -(-channels // k_per_tile)
    if -(-kh // s) * -(-kw // s) * -(-(channels * s * s) // k_per_tile) >= tiles:
        return None
    pad_top, height, block_top, block_bottom = _axis(h, kh, s, top, bottom)
    pad_left, width, block_left, block_right = _axis(w, kw, s, left, right)
    return SpaceToDepth(s, pad_top, pad_left, height, width, zero_point,
                        (block_top, block_left, block_bottom, block_right))

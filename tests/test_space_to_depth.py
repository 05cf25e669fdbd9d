"""A strided conv over few channels as a stride-1 conv over pixel blocks (sw/space_to_depth.py):
the same int8 outputs as LiteRT's conv arithmetic (``sw.tflite_kernels.conv2d``, itself checked
against LiteRT), for SAME and VALID padding, odd sizes and strides 2 and 3."""

import numpy as np
import pytest

from sw.space_to_depth import plan_space_to_depth
from sw.tflite_kernels import conv2d, same_padding

CASES = [  # (h, w, channels, kernel, stride, SAME)
    (49, 10, 1, (10, 4), 2, True),   # DS-CNN's first conv
    (96, 96, 3, (3, 3), 2, True),    # MobileNetV1's
    (13, 11, 2, (3, 3), 2, True),
    (17, 16, 1, (7, 7), 2, True),
    (15, 15, 1, (5, 5), 3, False),
    (10, 9, 2, (3, 3), 2, False),
    (9, 9, 1, (4, 4), 3, True),
]


@pytest.mark.parametrize("h, w, channels, kernel, stride, same", CASES)
def test_the_block_conv_gives_the_strided_convs_outputs(h, w, channels, kernel, stride, same):
    rng = np.random.default_rng(h * w + stride)
    x = rng.integers(-128, 128, (2, h, w, channels)).astype(np.int8)
    filters = rng.integers(-127, 128, (5, *kernel, channels)).astype(np.int8)   # OHWI
    bias = rng.integers(-5000, 5000, 5)
    if same:
        (_, top, bottom), (_, left, right) = (same_padding(h, kernel[0], stride),
                                              same_padding(w, kernel[1], stride))
        pads = (top, left, bottom, right)
    else:
        pads = (0, 0, 0, 0)
    quant = dict(input_zp=-7, multiplier=np.full(5, 1 << 30), shift=np.full(5, -6),
                 output_zp=3)
    want = conv2d(x, filters, bias, stride=(stride, stride), pads=pads, **quant)

    blocks = plan_space_to_depth((h, w), channels, kernel, (stride, stride), pads, -7, 32, 16)
    assert blocks is not None
    mapped = blocks.apply(x)                                   # NCHW blocks
    assert mapped.shape[1:] == (channels * stride * stride, blocks.height, blocks.width)
    block_filters = blocks.filters(filters.transpose(0, 3, 1, 2))   # (O, C s s, kh', kw')
    got = conv2d(mapped.transpose(0, 2, 3, 1), block_filters.transpose(0, 2, 3, 1), bias,
                 pads=blocks.conv_pads, **quant)
    assert np.array_equal(got, want)
    # The host sends the map's pixels once and only the padding that is not whole blocks.
    assert blocks.height * stride <= h + stride - 1 + (pads[0] % stride)
    assert blocks.width * stride <= w + stride - 1 + (pads[1] % stride)


def test_no_blocks_where_they_would_not_help():
    args = dict(pads=(1, 1, 1, 1), zero_point=0, lanes=32, k_per_tile=16)
    assert plan_space_to_depth((32, 32), 3, (3, 3), (1, 1), **args) is None    # stride 1
    assert plan_space_to_depth((32, 32), 3, (3, 3), (2, 1), **args) is None    # unequal
    assert plan_space_to_depth((32, 32), 9, (3, 3), (2, 2), **args) is None    # 36 > 32 lanes
    assert plan_space_to_depth((32, 32), 4, (1, 1), (2, 2), **args) is None    # no fewer tiles
    assert plan_space_to_depth((32, 32), 3, (3, 3), (2, 2), **args) is not None

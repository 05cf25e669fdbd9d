"""LiteRT's reference int8 arithmetic (sw.tflite_kernels) on cases whose answers follow from the
kernels' definitions by hand (docs/tflite-arithmetic.md); the kernels against LiteRT itself are in
tests/test_tflite_litert.py."""

import math

import numpy as np
import pytest

from sw import tflite_kernels as K


def test_quantize_multiplier_is_q31_with_tflites_edge_cases():
    assert K.quantize_multiplier(0.5) == (1 << 30, 0)
    assert K.quantize_multiplier(0.0) == (0, 0)
    # A fraction that rounds up to 2**31 becomes 2**30 with the exponent one higher.
    assert K.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    # Below 2**-32 the multiplier flushes to zero.
    assert K.quantize_multiplier(2.0 ** -40) == (0, 0)
    q, shift = K.quantize_multiplier(0.3)
    assert abs(q * 2.0 ** (shift - 31) - 0.3) < 2.0 ** -31


def test_multiply_by_quantized_multiplier_rounds_twice():
    """Effective scale 1/4 (Q31 ``2**30``, shift -1): -2 times 1/2 is -1 exactly in the high
    multiply, then -1 / 2 = -0.5 rounds away from zero to -1; single rounding would give 0."""
    q, shift = K.quantize_multiplier(0.25)
    conv = K.conv2d(np.array([-2, -6, 2, 6], np.int8).reshape(1, 1, 4, 1),
                    np.ones((1, 1, 1, 1), np.int8), [0], input_zp=0, multiplier=[q],
                    shift=[shift], output_zp=0)
    assert conv.reshape(-1).tolist() == [-1, -2, 1, 2]


def test_average_pool_rounds_half_away_with_truncating_division():
    x = np.zeros((1, 3, 3, 2), np.int8)
    x[0, 0, 0] = (4, 5)       # sums 4 and 5 over nine taps: (4 + 4) // 9 = 0, (5 + 4) // 9 = 1
    out = K.average_pool(x, kernel=(3, 3))
    assert out.reshape(-1).tolist() == [0, 1]
    assert K.average_pool(-x, kernel=(3, 3)).reshape(-1).tolist() == [0, -1]


def test_average_pool_counts_only_taps_inside_the_map():
    x = np.full((1, 2, 2, 1), 10, np.int8)
    _, top, bottom = K.same_padding(2, 3, 1)
    out = K.average_pool(x, kernel=(3, 3), pads=(top, top, bottom, bottom))
    assert np.array_equal(out, np.full((1, 2, 2, 1), 10, np.int8))   # not diluted by padding


def test_same_padding_puts_the_odd_extra_after():
    assert K.same_padding(49, 10, 2) == (25, 4, 5)   # DS-CNN's first conv, along the time axis
    assert K.same_padding(10, 4, 2) == (5, 1, 1)
    assert K.same_padding(32, 3, 1) == (32, 1, 1)


def test_activation_ranges():
    assert K.activation_range("NONE", 0.05, -3) == (-128, 127)
    assert K.activation_range("RELU", 0.05, -3) == (-3, 127)
    assert K.activation_range("RELU6", 0.05, -128) == (-128, -8)   # 6 / 0.05 = 120
    assert K.activation_range("RELU_N1_TO_1", 0.01, 0) == (-100, 100)


def test_quantize_rounds_a_float32_quotient_half_away():
    out = K.quantize(np.array([0.25, -0.25, 0.75, 0.4999999], np.float32), scale=0.5, zero_point=1)
    assert out.tolist() == [2, 0, 3, 2]


def test_fully_connected_rounds_the_double_product_half_away():
    # acc = 5, scale 0.5 * 1 / 1: 2.5 -> 3 (half to even would give 2).
    out = K.fully_connected(np.array([[5]]), np.array([[1]]), None, input_zp=0,
                            input_scale=0.5, filter_scale=[1.0], output_scale=1.0, output_zp=0)
    assert out.tolist() == [[3]]


@pytest.mark.parametrize("length", [2, 10, 37])
def test_softmax_of_equal_logits_is_uniform(length):
    out = K.softmax(np.full((1, length), 17), input_scale=0.1)
    expected = math.floor(256 / length + 0.5) - 128   # 1/length at scale 1/256, zero point -128
    assert np.all(np.abs(out.astype(int) - expected) <= 1) and len(set(out[0])) == 1


def test_softmax_gives_the_largest_logit_the_largest_share():
    out = K.softmax(np.array([[-100, 0, 100]]), input_scale=0.05)
    assert out[0, 2] > out[0, 1] > out[0, 0] and out[0, 0] == -128


def test_transpose_conv_is_a_conv_over_its_spread_input():
    """TRANSPOSE_CONV's scatter of each input pixel equals a conv of stride 1, VALID, with the
    filters flipped, over the input's pixels spread ``stride`` apart among zero points (how
    the device runs it): random sizes, kernels, strides, paddings and zero points; a window
    by hand first (one input pixel, stride 2: the filter lands at ``(2, 2)`` less the
    padding)."""
    one = np.zeros((1, 2, 2, 1), np.int64)
    one[0, 1, 1, 0] = 3
    unit = dict(multiplier=[1 << 30], shift=[1], output_zp=0)   # times one
    got = K.transpose_conv(one, np.arange(1, 5).reshape(1, 2, 2, 1), None, output_size=(4, 4),
                           input_zp=0, stride=(2, 2), pads=(1, 1), **unit)
    want = np.zeros((4, 4), np.int64)
    want[1:3, 1:3] = 3 * np.arange(1, 5).reshape(2, 2)
    assert np.array_equal(got[0, :, :, 0], want)
    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w, c, o = (int(v) for v in rng.integers(1, 6, 4))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        size = ((h - 1) * sh + kh - int(rng.integers(0, kh)),
                (w - 1) * sw + kw - int(rng.integers(0, kw)))
        pads = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        x = rng.integers(-128, 128, (2, h, w, c))
        filters = rng.integers(-127, 128, (o, kh, kw, c))
        zp = int(rng.integers(-128, 128))
        scale = dict(multiplier=np.full(o, 1 << 30), shift=np.full(o, -8), output_zp=0)
        scattered = K.transpose_conv(x, filters, None, output_size=size, input_zp=zp,
                                     stride=(sh, sw), pads=pads, **scale)
        spread = K.transpose_conv_input(x, stride=(sh, sw), pads=pads, output_size=size,
                                        kernel=(kh, kw), zero_point=zp)
        conv = K.conv2d(spread.transpose(0, 2, 3, 1), filters[:, ::-1, ::-1, :], np.zeros(o),
                        input_zp=zp, **scale)
        assert scattered.shape == (2, *size, o) and np.array_equal(scattered, conv)


def test_space_to_batch_and_back_move_each_pixel_where_tensorflow_says():
    """SPACE_TO_BATCH_ND (``sw.tflite_movement``) against its definition, element by element:
    ``out[(bh * block_w + bw) * N + n, y, x, c] = padded[n, y * block_h + bh, x * block_w + bw,
    c]``, the padding the zero point; BATCH_TO_SPACE_ND with the same crops undoes it. Random
    sizes, blocks and paddings, 2-D maps and 1-D sequences."""
    from sw.tflite_movement import batch_to_space, space_to_batch
    rng = np.random.default_rng(1)
    for _ in range(20):
        spatial = int(rng.integers(1, 3))
        block = tuple(int(b) for b in rng.integers(1, 4, spatial))
        sizes = [int(s) for s in rng.integers(1, 7, spatial)]
        before = [int(p) for p in rng.integers(0, 3, spatial)]
        pads = [(p, (-(s + p)) % b) for p, s, b in zip(before, sizes, block)]
        n, c, fill = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(-9, 9))
        x = rng.integers(-128, 128, (n, *sizes, c))
        got = space_to_batch(x, block, pads, fill)
        padded = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
        for index in np.ndindex(*got.shape):
            batch, *coarse, channel = index
            offset, image = divmod(batch, n)
            fine = np.unravel_index(offset, block)
            source = [y * b + f for y, b, f in zip(coarse, block, fine)]
            assert got[index] == padded[(image, *source, channel)]
        assert np.array_equal(batch_to_space(got, block, pads), x)


def test_space_to_depth_and_depth_to_space_are_tensorflows_and_inverse():
    """SPACE_TO_DEPTH: ``out[n, y, x, (by * block + bx) * C + c] = in[n, y * block + by,
    x * block + bx, c]``; DEPTH_TO_SPACE (DCR) undoes it."""
    from sw.tflite_movement import depth_to_space, space_to_depth
    x = np.random.default_rng(2).integers(-128, 128, (2, 6, 4, 3))
    got = space_to_depth(x, 2)
    for n, y, xx, depth in np.ndindex(*got.shape):
        offset, c = divmod(depth, 3)
        by, bx = divmod(offset, 2)
        assert got[n, y, xx, depth] == x[n, y * 2 + by, xx * 2 + bx, c]
    assert np.array_equal(depth_to_space(got, 2), x)


def test_a_dilated_or_grouped_conv_equals_its_spread_dense_conv():
    """The array runs a dilated conv with zeros between its taps and a grouped conv with zeros
    where a group does not read (``Lowering._dilated``, ``_ungrouped``): the sums, hence the
    outputs, equal the reference kernel's dilated conv and the per-group convs joined."""
    from types import SimpleNamespace

    from sw.tflite_lowering import Lowering
    rng = np.random.default_rng(3)
    scale = dict(multiplier=np.full(6, 1 << 30), shift=np.full(6, -7), output_zp=3)
    x = rng.integers(-128, 128, (2, 9, 8, 4))
    filters = rng.integers(-127, 128, (6, 3, 2, 4))
    op = SimpleNamespace(options={"dilation": (2, 3)})
    spread = Lowering._dilated(op, filters.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert spread.shape == (6, 5, 4, 4)
    dilated = K.conv2d(x, filters, np.zeros(6), input_zp=-5, dilation=(2, 3), pads=(2, 1, 2, 2),
                       **scale)
    dense = K.conv2d(x, spread, np.zeros(6), input_zp=-5, pads=(2, 1, 2, 2), **scale)
    assert np.array_equal(dilated, dense)
    grouped = rng.integers(-127, 128, (6, 3, 3, 2))   # 2 groups of 2 input channels
    lowering = SimpleNamespace(tensor=lambda index: SimpleNamespace(shape=(2, 9, 8, 4)),
                               refusal=None)
    ungrouped = Lowering._ungrouped(lowering, SimpleNamespace(inputs=[0]), grouped)
    halves = [K.conv2d(x[..., 2 * g:2 * g + 2], grouped[3 * g:3 * g + 3], np.zeros(3),
                       input_zp=-5, multiplier=np.full(3, 1 << 30), shift=np.full(3, -7),
                       output_zp=3) for g in range(2)]
    assert np.array_equal(K.conv2d(x, ungrouped, np.zeros(6), input_zp=-5, **scale),
                          np.concatenate(halves, axis=-1))

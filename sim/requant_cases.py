"""Accumulators and scales that hit requantization's edges, for the golden model's tests and the
gateware's (``tests/test_requant.py``, ``tests/test_requant_rtl.py``)."""

import numpy as np

__all__ = ["INT32_MIN", "INT32_MAX", "interesting_accs", "product_ties", "conversion_ties",
           "high_product_near_ties"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def interesting_accs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Accumulators of every magnitude, many around 2**24 and at the int32 edges."""
    bits = rng.integers(0, 32, size)
    acc = rng.integers(0, 1 << 32, size, dtype=np.int64) >> (32 - bits)
    near = rng.random(size) < 0.3
    acc[near] = (1 << 24) + rng.integers(-64, 64, near.sum()) * rng.integers(1, 9, near.sum())
    acc = np.where(rng.random(size) < 0.5, -acc, acc)
    edges = np.array([0, 1, -1, INT32_MAX, INT32_MIN, INT32_MIN + 1, (1 << 24) - 1, 1 << 24,
                      (1 << 24) + 1, (1 << 24) + 3, -(1 << 24) - 1, (1 << 25) + 2, (1 << 25) + 6])
    acc[rng.choice(size, min(size, edges.size), replace=False)] = edges[:size]
    return np.clip(acc, INT32_MIN, INT32_MAX)


def product_ties(rng: np.random.Generator, size: int):
    """``(x, multiplier, shift)`` where the float32 product ``x * scale`` is an exact tie.

    With ``m = c * 2**(23 - b)`` (``c`` odd, ``b`` bits) and ``c * x`` odd in ``[2**24, 2**25)``,
    the product ``c * x * 2**(23 - b)`` sits exactly halfway between two float32 values. ``x`` is
    also chosen so that one of the two neighbours lies exactly on a half of the final shift by
    ``k``, which makes the tie-break visible in the output.
    """
    b = rng.integers(1, 5, size)
    c = 2 * rng.integers(1 << (b - 1), 1 << b) + 1
    k = rng.integers(15, 19, size)
    x = np.zeros(size, dtype=np.int64)
    for n in range(size):
        modulus = 1 << (int(k[n]) + 1)
        base = ((1 << int(k[n])) - 1) * pow(int(c[n]), -1, modulus) % modulus
        lo = -(-(1 << 24) // int(c[n]))
        first = lo + (base - lo) % modulus
        steps = ((1 << 25) // int(c[n]) - first) // modulus
        x[n] = first + modulus * int(rng.integers(0, steps + 1))
    multiplier = c << (23 - b)
    shift = 24 - b + k
    sign = rng.choice([-1, 1], size)
    return sign * x, multiplier, shift


def conversion_ties(rng: np.random.Generator, size: int):
    """``(x, multiplier, shift, zero_point)`` where ``float32(x)`` is an exact tie that decides
    the output.

    ``x = F +- 2**(ta - 1)`` with ``2**(23 + ta) <= x < 2**(24 + ta)`` lies halfway between two
    float32 values, ``F`` and ``F +- 2**ta``; ``F = c * 2**n + 2**(n - 1)`` is the even one. The
    scale ``2**-n`` (mantissa ``2**23``, shift ``23 + n``) puts ``F`` exactly on a half of the
    final rounding and its neighbour on one side of it, so only the right float32 rounding
    gives ``c + (c odd)``; the zero point brings that back into the output range.
    """
    ta = rng.integers(1, 8, size)
    n = ta + rng.integers(9, 12, size)
    up = rng.random(size) < 0.5
    lo, hi = np.int64(1) << (23 + ta - n), np.int64(1) << (24 + ta - n)
    c = rng.integers(lo + 1, hi - 1)
    c = np.where(up, c & ~1, c | 1)     # the wrong neighbour would round to c + 1, resp. c
    f = (c << n) + (np.int64(1) << (n - 1))
    x = f + np.where(up, 1, -1) * (np.int64(1) << (ta - 1))
    v = c + (c & 1)
    sign = rng.choice([-1, 1], size)
    multiplier = np.full(size, 1 << 23)
    return sign * x, multiplier, 23 + n, -sign * v + rng.integers(-5, 6, size)


def high_product_near_ties(rng: np.random.Generator, size: int):
    """``(x, multiplier, shift)`` for TFLITE where the doubling high multiply ``x * M / 2**31``
    lies a hair past a half, the hair a bit far below the half's.

    ``M = 2**30 + 2**j`` and ``x`` odd: ``|x * M| = |x| * 2**30 + |x| * 2**j``, the half at bit 30
    and the hair below bit 23. A rounding done in parts (``hw.requant``'s stage 7a shifts by whole
    bytes first, keeping the OR of what it drops) must not lose the hair: without it the value is
    a tie, which a negative product breaks toward zero, one less in magnitude. ``shift = 0``: the
    rounded value is the output.
    """
    x = 2 * rng.integers(0, 128, size) + 1
    j = rng.integers(0, 15, size)   # |x| * 2**j < 2**23
    return -x, (1 << 30) + (np.int64(1) << j), np.zeros(size, dtype=np.int64)

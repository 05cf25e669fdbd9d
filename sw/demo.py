"""``python -m sw demo``: GEMMs on the simulated RTL, checked byte for byte with the golden model.
"""

from __future__ import annotations

import time

import numpy as np

from hw.isa import Config, OutType, Precision, Rounding
from hw.params import RillParams

from .bench import split_timed_response, timed_gemm_program
from .golden import GoldenCore

__all__ = ["run_demo"]

_GEMMS = ((Precision.INT8, (64, 64, 64), Rounding.ONNX),
          (Precision.INT4, (64, 64, 64), Rounding.TFLITE),
          (Precision.INT8, (37, 50, 29), Rounding.ONNX))


def run_demo(params: RillParams, device: str = "sim") -> int:
    from sim.cases import random_qparams

    from .cli import _executor
    rng = np.random.default_rng(2026)
    demos = []
    for precision, (m, k, n), rounding in _GEMMS:
        lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
        acts, weights = rng.integers(-128, 128, (m, k)), rng.integers(lo, hi, (k, n))
        config = Config(precision, rounding, relu=True, out_type=OutType.INT8)
        prog, predicted = timed_gemm_program(params, acts, weights, config,
                                             random_qparams(rng, n, rounding, k))
        name = f"{precision.name} {m}x{k}x{n}, {rounding.name.lower()} rounding, ReLU"
        demos.append((name, (m, k, n), precision, prog, predicted))
    print(f"Rill {params.rows}x{params.cols} core on device '{device}': {len(demos)} GEMMs, "
          f"each result compared byte for byte with the golden model")
    start = time.monotonic()
    responses = _executor(device, params)(
        [(d[0], d[3].to_bytes(), d[3].response_bytes) for d in demos])
    elapsed = time.monotonic() - start
    golden = GoldenCore(params)   # one device, programs in order: state carries over
    failures = 0
    print(f"  {'GEMM':<38}{'result':<11}{'MATMUL cycles':>14}{'predicted':>11}{'utilization':>13}")
    for (name, (m, k, n), precision, prog, predicted), got in zip(demos, responses, strict=True):
        expected = golden.feed(prog.to_bytes())
        cycles, _, result = split_timed_response(prog, got, m, n)
        _, _, expected_result = split_timed_response(prog, expected, m, n)
        same = result == expected_result
        peak = params.peak_macs_per_cycle(precision == Precision.INT4)
        print(f"  {name:<38}{'bit-exact' if same else 'MISMATCH':<11}{cycles:>14}{predicted:>11}"
              f"{m * k * n / (cycles * peak):>13.1%}")
        failures += (not same) + (cycles != predicted)
    print(f"done in {elapsed:.1f} s. Utilization across GEMM sizes: python -m sw bench")
    return 1 if failures else 0

"""``python -m sw demo``: GEMMs on the simulated RTL, checked byte for byte against the golden model."""

from __future__ import annotations

import time

import numpy as np

from hw.isa import OutType, Precision, Rounding
from hw.params import RillParams

from .golden import GoldenCore
from .program import gemm_program

__all__ = ["run_demo"]


def _demo_programs(params: RillParams):
    rng = np.random.default_rng(2026)
    from sim.cases import random_qparams
    for precision, (m, k, n), rounding in ((Precision.INT8, (64, 64, 64), Rounding.ONNX),
                                           (Precision.INT4, (64, 64, 64), Rounding.TFLITE),
                                           (Precision.INT8, (37, 50, 29), Rounding.ONNX)):
        lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
        acts, weights = rng.integers(-128, 128, (m, k)), rng.integers(lo, hi, (k, n))
        prog = gemm_program(params, acts, weights, precision=precision, rounding=rounding,
                            out_type=OutType.INT8, relu=True,
                            qparams=random_qparams(rng, n, rounding, k))
        yield f"{precision.name} {m}x{k}x{n} {rounding.name.lower()} rounding + ReLU", (m, k, n), \
            precision, prog


def run_demo(params: RillParams, device: str = "sim") -> int:
    from .cli import _executor
    demos = list(_demo_programs(params))
    print(f"Rill {params.rows}x{params.cols} core on device '{device}': "
          f"{len(demos)} GEMMs, results checked against the golden model")
    start = time.monotonic()
    responses = _executor(device, params)(
        [(name, prog.to_bytes(), prog.response_bytes) for name, _, _, prog in demos])
    elapsed = time.monotonic() - start
    failures = 0
    for (name, (m, k, n), precision, prog), got in zip(demos, responses, strict=True):
        expected = GoldenCore(params).feed(prog.to_bytes())
        # The stall counter (bytes 8..12 of the counters payload) depends on the link, not the ISA.
        same = got[:-8] == expected[:-8] and got[-4:] == expected[-4:]
        cycles = int.from_bytes(got[-16:-12], "little")
        peak = params.peak_macs_per_cycle(precision == Precision.INT4)
        matmul = m * k * n
        print(f"  {name:<42} {'bit-exact' if same else 'MISMATCH':<10} "
              f"cycles {cycles:>6} (predicted {prog.predicted_cycles - 13 - 20:>6})  "
              f"MACs {matmul:>7}  array peak {peak}/cycle")
        failures += not same
    print(f"simulated in {elapsed:.1f} s; utilization per GEMM size: python -m sw bench")
    return 1 if failures else 0

"""Running command streams on the core's RTL in Verilator (or Icarus) through ``core_tb``."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from hw.core import RillCore
from hw.params import RillParams

from .runner import run_cocotb

__all__ = ["TOPLEVEL", "run_case_file", "run_programs"]

TOPLEVEL = "rill_core"


def run_case_file(params: RillParams, cases: Path, *, simulator: str = "verilator",
                  timeout: float | None = 1800, waves: bool = False):
    """Run a ``core_tb`` case list (see ``sim/cases.py``) on a fresh device.

    The simulator's own output goes to ``run/sim.log`` beside the case list; a failing run raises
    with the failing assertion in the message.
    """
    run_dir = cases.parent / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_cocotb(lambda: RillCore(params), TOPLEVEL, "sim.testbenches.core_tb",
                      simulator=simulator, extra_env={"RILL_TB_CASES": str(cases)},
                      timeout=timeout, waves=waves, test_dir=run_dir,
                      log_file=run_dir / "sim.log")


def run_programs(params: RillParams, programs: list[tuple[str, bytes, int]], *,
                 simulator: str = "verilator", idle_in: float = 0.0, busy_out: float = 0.0,
                 seed: int = 0) -> list[bytes]:
    """Send each ``(name, program bytes, response length)`` in order to one simulated device.

    Returns the bytes each program got back. Progress goes to stderr: the first run of a new
    design compiles it with Verilator (a minute or two); later runs reuse the build.
    """
    with tempfile.TemporaryDirectory(prefix="rill-rtl-") as tmp:
        tmp = Path(tmp)
        cases = []
        for i, (name, program, response_bytes) in enumerate(programs):
            (tmp / f"{i:03d}.prog").write_bytes(program)
            cases.append({"name": name, "program": str(tmp / f"{i:03d}.prog"),
                          "received": str(tmp / f"{i:03d}.received"),
                          "response_bytes": response_bytes, "idle_in": idle_in,
                          "busy_out": busy_out})
        path = tmp / "cases.json"
        path.write_text(json.dumps({"seed": seed, "cases": cases}))
        total = sum(len(p) for _, p, _ in programs)
        print(f"rill: running {len(programs)} program(s), {total} command bytes, on the "
              f"{params.rows}x{params.cols} RTL in {simulator}", file=sys.stderr)
        run_case_file(params, path, simulator=simulator)
        return [Path(case["received"]).read_bytes() for case in cases]

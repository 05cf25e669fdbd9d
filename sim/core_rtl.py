"""Running command streams on the core's RTL in Verilator (or Icarus) through ``core_tb``."""

from __future__ import annotations

from pathlib import Path

from hw.core import RillCore
from hw.params import RillParams

from .runner import run_cocotb

__all__ = ["TOPLEVEL", "run_case_file"]

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


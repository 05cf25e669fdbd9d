"""Programs on the core and link RTL over a UART-paced link, timed in simulated cycles.

``run_paced`` is how ``python -m sw bench`` measures end-to-end throughput: the host driver
(``sw.link.LinkHost``) runs inside the cocotb testbench ``sim/testbenches/link_tb.py`` (test
``paced``) and the wire carries at most one byte each way every ``cycles_per_byte`` cycles, as a
UART does (a 3 Mbaud UART at 36 MHz: 10 bits x 12 cycles = 120). Every response is checked
against the golden model byte for byte.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from hw.link import LinkedCore
from hw.link.protocol import RSP_BUFFER_BYTES
from hw.params import RillParams
from sw.golden import GoldenCore
from sw.program import Program

from .link_cases import golden_answer
from .runner import run_cocotb

__all__ = ["run_paced"]


def run_paced(params: RillParams, jobs: list[tuple[str, Program]], cycles_per_byte: int, *,
              timeout: float = 1800) -> list[dict]:
    """Run ``jobs`` in order on one device; per job: ``cycles`` (first byte sent to last response
    byte received), ``response`` (hex), ``wire_bytes_sent``/``wire_bytes_received`` and the rest
    of :class:`sw.link.LinkStats`, as deltas."""
    golden = GoldenCore(params)
    records = []
    for name, prog in jobs:
        expected, ignore = golden_answer(golden, prog)
        records.append({"name": name, "program": prog.to_bytes().hex(),
                        "cuts": list(prog.frame_cuts()),
                        "expected": expected.hex(), "ignore": sorted(ignore)})
    with tempfile.TemporaryDirectory(prefix="rill-paced-") as folder:
        folder = Path(folder)
        (folder / "jobs.json").write_text(json.dumps(records))
        config = {"params": asdict(params), "cycles_per_byte": cycles_per_byte,
                  "jobs": str(folder / "jobs.json"), "report": str(folder / "report.json"),
                  "ack_every": RSP_BUFFER_BYTES // 2,
                  # Timeouts in the host's seconds at 1 M cycles per second: longer than any
                  # MATMUL here, so a long computation is not mistaken for a lost frame.
                  "timeout": 0.2, "trace": "/tmp/trace.json"}
        run_cocotb(lambda: LinkedCore(params), "rill_linked_core", "sim.testbenches.link_tb",
                   testcase="paced", extra_env={"RILL_LINK_TB": json.dumps(config)},
                   test_dir=folder / "run", log_file=folder / "run" / "sim.log",
                   timeout=timeout)
        return json.loads((folder / "report.json").read_text())["jobs"]

"""The ``sim+cocotb`` device's simulator: the core and link RTL under cocotb, served on a socket.

``python -m sim.bridge --port-file FILE [--rows R ...]`` builds the design through the cached
runner and runs ``sim/testbenches/bridge_tb.py``, which serves the device's wire on a local TCP
socket and writes its port to ``FILE``. :class:`sim.devices.CocotbSimDevice` starts it; the default
``sim`` device runs the C++ harness instead (:mod:`sim.harness`), with the same socket protocol.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from hw.params import RillParams

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="serve the Rill core and link RTL on a local socket")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--simulator", default="verilator")
    for name, value in asdict(RillParams()).items():
        # Every field is an int or a bool (passed as 0 or 1).
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=int(value))
    args = parser.parse_args(argv)
    params = RillParams(**{name: type(default)(getattr(args, name))
                           for name, default in asdict(RillParams()).items()})
    from hw.link import LinkedCore

    from .runner import run_cocotb
    run_dir = Path(args.port_file).parent / "run"
    run_dir.mkdir(exist_ok=True)
    run_cocotb(lambda: LinkedCore(params), "rill_linked_core", "sim.testbenches.bridge_tb",
               simulator=args.simulator, test_dir=run_dir, log_file=run_dir / "sim.log",
               extra_env={"RILL_BRIDGE_PORT_FILE": args.port_file})


if __name__ == "__main__":
    main()

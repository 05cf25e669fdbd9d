"""The ``sim`` device: the core and link RTL in Verilator, served on a local socket.

:class:`SimDevice` starts ``python -m sim.bridge`` (which builds the design through the cached
runner and runs ``sim/testbenches/bridge_tb.py``), connects to the port it reports with pyserial's
``socket://`` handler and speaks the link protocol to it, exactly as to a board. Closing the
device closes the socket, which ends the simulation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from hw.params import RillParams
from sw.device import DeviceError
from sw.link import LinkedDevice
from sw.transport import open_transport

__all__ = ["SimDevice"]

_START_TIMEOUT = 900   # a first Verilator build of a large array takes minutes on 2 cores


class SimDevice(LinkedDevice):
    """The core and link RTL in a simulator subprocess, reached over ``socket://127.0.0.1``."""

    def __init__(self, params: RillParams, *, simulator: str = "verilator",
                 timeout: float = 5.0):
        self._proc = None
        self._dir = tempfile.TemporaryDirectory(prefix="rill-sim-")
        port_file = Path(self._dir.name) / "port"
        log = open(Path(self._dir.name) / "bridge.log", "wb")
        args = [sys.executable, "-m", "sim.bridge", "--port-file", str(port_file),
                "--simulator", simulator]
        for name, value in asdict(params).items():
            args += [f"--{name.replace('_', '-')}", str(int(value))]
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
        # The build's progress lines go to our stderr; the simulator's chatter to a log file.
        self._proc = subprocess.Popen(args, stdout=log, stderr=None, env=env, cwd=root)
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not port_file.exists() or not port_file.read_text():
            if self._proc.poll() is not None:
                self._cleanup()
                raise DeviceError(f"the simulation exited before serving (code "
                                  f"{self._proc.returncode}); see the log above")
            if time.monotonic() > deadline:
                self._cleanup()
                raise DeviceError(f"the simulation did not start within {_START_TIMEOUT} s")
            time.sleep(0.05)
        try:
            transport = open_transport(f"socket://127.0.0.1:{port_file.read_text()}")
            # A timeout is wall-clock time without a byte: the simulation runs ~25k cycles/s.
            super().__init__(params, transport, timeout=timeout)
        except BaseException:
            self._cleanup()
            raise

    def close(self):
        super().close()
        self._cleanup()

    def _cleanup(self):
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()


def _serve(argv=None):
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
    _serve()

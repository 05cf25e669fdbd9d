"""The ``sim`` device: the core's RTL in Verilator, served on a local socket, driven by the host.

:class:`SimDevice` starts ``python -m sim.bridge`` (which builds the design through the cached
runner and runs ``sim/testbenches/bridge_tb.py``), connects to the port it reports and exchanges
bytes with it. Closing the device closes the socket, which ends the simulation.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from hw.params import RillParams
from sw.device import Device, DeviceError

__all__ = ["SimDevice"]

_START_TIMEOUT = 900   # a first Verilator build of a large array takes minutes on 2 cores


class SimDevice(Device):
    """The RTL in a simulator subprocess, over a socket on 127.0.0.1."""

    def __init__(self, params: RillParams, *, simulator: str = "verilator",
                 timeout: float = 600.0):
        super().__init__(params)
        self.timeout = timeout
        self._dir = tempfile.TemporaryDirectory(prefix="rill-sim-")
        port_file = Path(self._dir.name) / "port"
        log = open(Path(self._dir.name) / "bridge.log", "wb")
        args = [sys.executable, "-m", "sim.bridge", "--port-file", str(port_file),
                "--simulator", simulator]
        for name, value in asdict(params).items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
        # The build's progress lines go to our stderr; the simulator's chatter to a log file.
        self._proc = subprocess.Popen(args, stdout=log, stderr=None, env=env, cwd=root)
        log.close()
        self._sock = None
        deadline = time.monotonic() + _START_TIMEOUT
        while not port_file.exists() or not port_file.read_text():
            if self._proc.poll() is not None:
                raise DeviceError(f"the simulation exited before serving (code "
                                  f"{self._proc.returncode}); see "
                                  f"{Path(self._dir.name) / 'bridge.log'}")
            if time.monotonic() > deadline:
                self.close()
                raise DeviceError("the simulation did not start within "
                                  f"{_START_TIMEOUT} s")
            time.sleep(0.05)
        self._sock = socket.create_connection(("127.0.0.1", int(port_file.read_text())))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(timeout)

    def _exchange(self, commands: bytes, response_bytes: int) -> bytes:
        self._sock.sendall(commands)
        received = bytearray()
        try:
            while len(received) < response_bytes:
                chunk = self._sock.recv(response_bytes - len(received))
                if not chunk:
                    raise DeviceError("the simulation closed the connection")
                received += chunk
        except TimeoutError:
            raise DeviceError(f"the simulated device sent {len(received)} of {response_bytes} "
                              f"bytes within {self.timeout} s") from None
        return bytes(received)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()


def _serve(argv=None):
    parser = argparse.ArgumentParser(description="serve the Rill core RTL on a local socket")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--simulator", default="verilator")
    for name, value in asdict(RillParams()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args(argv)
    params = RillParams(**{name: getattr(args, name) for name in asdict(RillParams())})
    from hw.core import RillCore

    from .runner import run_cocotb
    run_dir = Path(args.port_file).parent / "run"
    run_dir.mkdir(exist_ok=True)
    run_cocotb(lambda: RillCore(params), "rill_core", "sim.testbenches.bridge_tb",
               simulator=args.simulator, test_dir=run_dir, log_file=run_dir / "sim.log",
               extra_env={"RILL_BRIDGE_PORT_FILE": args.port_file})


if __name__ == "__main__":
    _serve()

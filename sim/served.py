"""A simulator subprocess that serves on ``127.0.0.1`` and names its port in a file.

The ``sim`` and ``sim+cocotb`` devices (:mod:`sim.devices`) and the lockstep transport
(:mod:`sim.lockstep`) all start one: a command line with ``{port_file}`` in it, a log for its
output, a wait until it listens, and on stop a wait for it to end and the speed it reports.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from sw.device_base import DeviceError

from .harness import SimSpeed, read_speed
from .runner import REPO_ROOT

__all__ = ["ServedProcess", "START_TIMEOUT"]

#: Seconds a served simulator may take to listen (the cocotb bridge builds its model first).
START_TIMEOUT = 900


class ServedProcess:
    """Starts ``command`` (``{port_file}`` replaced by the file it writes its port to) and waits
    until it listens. Its standard output goes to ``log``; its standard error (a build's progress
    lines) to ours."""

    def __init__(self, command: list[str], *, env: dict | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="rill-sim-")
        port_file = Path(self._dir.name) / "port"
        self.log = Path(self._dir.name) / "simulator.log"
        self.speed: SimSpeed | None = None
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [part.format(port_file=port_file) for part in command], stdout=log,
                stderr=None, env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists() or not port_file.read_text():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise DeviceError(f"the simulation exited before serving (code {code}); "
                                  "see the lines above")
            if time.monotonic() > deadline:
                self.stop()
                raise DeviceError(f"the simulation did not start within {START_TIMEOUT} s")
            time.sleep(0.01)
        self.port = int(port_file.read_text())

    def stop(self) -> None:
        """Wait for the simulator to end (its host has closed the socket; killed after 30 s),
        keep the speed it reported, and remove its files."""
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.speed = read_speed(self.log)
        self._dir.cleanup()

"""The simulated devices: the core and link RTL served on a local socket, reached like a board.

``sim`` (:class:`SimDevice`) runs the C++ harness (:mod:`sim.harness`): the fast one, and the
default. ``sim+cocotb`` (:class:`CocotbSimDevice`) runs the same RTL under cocotb
(``sim/testbenches/bridge_tb.py``), with Python in every cycle that bytes are on the wire, for
those who want to watch or change the testbench in Python. Both write the port they listen on to
a file, and the host driver connects with pyserial's ``socket://`` handler and speaks the link
protocol, exactly as to a board. Closing the device closes the socket, which ends the simulation.

Both are registered with :func:`sw.device.open_device` as device kinds (``pyproject.toml``'s
``rill.devices`` entry points), so the host software never imports the simulator.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

from hw.params import RillParams
from sw.device_base import DeviceError
from sw.link import LinkedDevice
from sw.transport import open_transport

from .harness import SimSpeed, harness_binary, replay_speed, trace_format
from .lockstep import run_paced
from .runner import REPO_ROOT
from .served import ServedProcess

__all__ = ["SimDevice", "CocotbSimDevice", "ServedDevice"]

class ServedDevice(LinkedDevice):
    """A simulator subprocess (:class:`sim.served.ServedProcess`) reached over
    ``socket://127.0.0.1``."""

    #: After close: the simulator's own account of the run (:class:`sim.harness.SimSpeed`), or
    #: ``None`` when it gives none (the cocotb bridge).
    speed: SimSpeed | None = None

    def __init__(self, params: RillParams, command: list[str], *, timeout: float = 5.0,
                 env: dict | None = None):
        self._server = ServedProcess(command, env=env)
        self._proc = self._server.process
        try:
            transport = open_transport(f"socket://127.0.0.1:{self._server.port}")
            # The timeout is wall-clock time without a byte from the device.
            super().__init__(params, transport, timeout=timeout)
        except BaseException:
            self._server.stop()
            raise

    def close(self):
        super().close()
        self._server.stop()
        self.speed = self._server.speed


class SimDevice(ServedDevice):
    """The core and link RTL in Verilator, clocked by the C++ harness.

    Parameters
    ----------
    trace : path, optional
        Write a waveform of the run there (``.vcd``, or ``.fst``, which is far smaller); uses a
        separately built model that can trace, which runs slower.
    trace_cycles : (int, int), optional
        Only the cycles in ``[first, last)`` (counted from the end of reset) go to the waveform.
    batch : int, optional
        Cycles simulated between looks at the socket while the device works (default 4096).
    record : path, optional
        Write the run's cycles and the bytes offered on ``rx`` in them there, for
        :func:`sim.harness.replay_speed` (the bare model's speed on the same work).
    """

    #: The streaming benchmark's runner: the host and this RTL in lockstep (``sw bench``).
    run_paced = staticmethod(run_paced)
    #: The bare model's speed on a recorded run's work, the ceiling of this device's speed
    #: (``sw bench``, with ``record``).
    replay_speed = staticmethod(replay_speed)

    def __init__(self, params: RillParams, *, trace: str | os.PathLike | None = None,
                 trace_cycles: tuple[int, int] | None = None, batch: int | None = None,
                 record: str | os.PathLike | None = None, timeout: float = 5.0):
        try:
            binary = harness_binary(params, trace=trace_format(trace))
        except ValueError as error:
            raise DeviceError(str(error)) from None
        command = [str(binary), "--port-file", "{port_file}"]
        if trace is not None:
            command += ["--trace", str(Path(trace).resolve())]
            if trace_cycles is not None:
                first, last = trace_cycles
                command += ["--trace-from", str(int(first)), "--trace-to", str(int(last))]
        if batch is not None:
            command += ["--batch", str(int(batch))]
        if record is not None:
            command += ["--record", str(Path(record).resolve())]
        super().__init__(params, command, timeout=timeout)


class CocotbSimDevice(ServedDevice):
    """The core and link RTL under cocotb (``python -m sim.bridge``): slower, Python in the loop."""

    def __init__(self, params: RillParams, *, simulator: str = "verilator", timeout: float = 5.0,
                 trace=None, trace_cycles=None):
        if trace is not None or trace_cycles is not None:
            raise DeviceError("waveforms come from the sim device (--device sim); the cocotb "
                              "bridge does not write them")
        command = [sys.executable, "-m", "sim.bridge", "--port-file", "{port_file}",
                   "--simulator", simulator]
        for name, value in asdict(params).items():
            command += [f"--{name.replace('_', '-')}", str(int(value))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        super().__init__(params, command, timeout=timeout, env=env)

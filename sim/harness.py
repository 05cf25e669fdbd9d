"""The ``sim`` device's simulator: the core and link RTL in Verilator, clocked by a C++ loop.

``sim/harness/harness.cpp`` is compiled with the Verilator model of a
:class:`~hw.link.LinkedCore` into one executable that serves the device's wire on a local TCP
socket. No Python runs per cycle and the model is built without VPI or public signals, so it
simulates as fast as the bare model does. Builds are cached like every other simulation build
(:mod:`sim.build_cache`), one per design, tracing choice and harness source.

:func:`harness_binary` builds (or finds) the executable; :class:`sim.devices.SimDevice` runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hw.link import LinkedCore
from hw.params import RillParams

from .build_cache import build_once
from .runner import SimBuildError
from .runtime_objects import make_variable
from .toolchain import (
    VERILATOR_BUILD_ARGS,
    cache_root,
    log_tail,
    tool_identity,
    verilator_make_flags,
    verilog_for,
)

__all__ = ["TOPLEVEL", "TRACE_FORMATS", "HARNESS_SOURCES", "SimSpeed", "harness_binary",
           "trace_format", "read_speed", "replay_speed"]

TOPLEVEL = "rill_linked_core"
SOURCE_DIR = Path(__file__).resolve().parent / "harness"
HARNESS_SOURCES = ("harness.cpp", "lockstep.h")

#: Waveform formats by file suffix, and the Verilator option that builds a model able to write it.
TRACE_FORMATS = {".vcd": "--trace", ".fst": "--trace-fst"}

#: Verilator's own optimizations at their highest; the C++ at -O2. Measured on the 8x8 core: -O2
#: builds in about 11 s on two cores and runs within a few percent of -O3.
HARNESS_VERILATOR_ARGS = ("-O3",)
HARNESS_MAKEFLAGS = ("OPT_FAST=-O2", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2")


def trace_format(path: str | os.PathLike | None) -> str | None:
    """The Verilator tracing option a waveform file ``path`` needs (``None``: no waveform)."""
    if path is None:
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in TRACE_FORMATS:
        raise ValueError(f"waveform file {str(path)!r}: name it .vcd or .fst")
    return TRACE_FORMATS[suffix]


#: Binaries this process has built or found, by what they were asked for: the gateware does not
#: change while a process runs, and converting the 8x8 core to Verilog to find its cache key
#: takes seconds.
_BINARIES: dict[tuple, Path] = {}


def harness_binary(params: RillParams, *, trace: str | None = None,
                   link_options: dict | None = None, build_root: Path | None = None) -> Path:
    """The harness executable for a core of ``params`` (built once, then cached).

    ``trace``: ``"--trace"`` (VCD) or ``"--trace-fst"`` for a model that can write waveforms;
    a separate build, since tracing slows every cycle. ``link_options``: keywords for
    :class:`~hw.link.LinkedCore` (a test's small response buffer).
    """
    memo = (params, trace, tuple(sorted((link_options or {}).items())), build_root)
    known = _BINARIES.get(memo)
    if known is not None and known.is_file():
        return known
    verilog = verilog_for(LinkedCore(params, **(link_options or {})), TOPLEVEL)
    args = [*VERILATOR_BUILD_ARGS, *HARNESS_VERILATOR_ARGS, *([trace] if trace else [])]
    make_flags = " ".join(filter(None, [*HARNESS_MAKEFLAGS, os.environ.get("MAKEFLAGS"),
                                        verilator_make_flags()]))
    recipe = {
        "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
        "harness": {name: hashlib.sha256((SOURCE_DIR / name).read_bytes()).hexdigest()
                    for name in HARNESS_SOURCES},
        "args": args, "make_flags": make_flags, "tools": tool_identity("verilator"),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    root = build_root or cache_root()
    build_dir = root / f"{TOPLEVEL}-harness-{key[:20]}"
    binary = build_dir / "rill_harness"

    def build():
        source = build_dir / f"{TOPLEVEL}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        command = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 1),
                   *args, "--top-module", TOPLEVEL, "-Mdir", str(build_dir / "obj"),
                   "-o", str(binary), str(source), str(SOURCE_DIR / "harness.cpp"),
                   "-CFLAGS", f"-I{SOURCE_DIR}"]
        if shutil.which("verilator") is None:
            raise SimBuildError("verilator not found: install Rill's dependencies "
                                "(bash scripts/setup.sh)")
        # The runtime objects from the store every build shares (not part of the recipe: they
        # are what the same compile makes).
        flags = " ".join(filter(None, [make_flags, make_variable(root)]))
        with open(log, "wb") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, MAKEFLAGS=flags))
        if done.returncode != 0 or not binary.is_file():
            raise SimBuildError(f"verilator could not build the {TOPLEVEL} harness (exit "
                                f"{done.returncode}); log {log}:\n{log_tail(log)}")
        # The object files serve only the build.
        shutil.rmtree(build_dir / "obj", ignore_errors=True)

    what = f"{TOPLEVEL} {params.rows}x{params.cols} harness" + (" with tracing" if trace else "")
    build_once(build_dir, build, what=what)
    _BINARIES[memo] = binary
    return binary


@dataclass(frozen=True)
class SimSpeed:
    """Cycles a harness simulated (idle waits for the host excluded), the seconds it ran, and
    how many of those it was blocked waiting for the host with the device idle."""

    cycles: int
    seconds: float
    host_wait_seconds: float = 0.0

    @property
    def cycles_per_second(self) -> float:
        """The simulator's speed while it had work (time blocked on the host left out)."""
        busy = self.seconds - self.host_wait_seconds
        return self.cycles / busy if busy > 0 else 0.0


_SPEED_LINE = re.compile(rb"rill harness: \w+ (\d+) cycles in ([0-9.]+) s, ([0-9.]+) s")


def read_speed(log: Path) -> SimSpeed | None:
    """The speed line a harness prints when it ends, from its log (``None`` if there is none)."""
    try:
        found = _SPEED_LINE.findall(Path(log).read_bytes())
    except OSError:
        return None
    return _speed(found[-1]) if found else None


def replay_speed(params: RillParams, record: Path) -> SimSpeed:
    """The bare model's speed on exactly the work of a served run recorded with
    ``SimDevice(record=...)``: the same cycles and the same bytes on ``rx`` in the same cycles,
    with no socket, no host and no decisions per cycle: the ceiling for that run."""
    binary = harness_binary(params)
    done = subprocess.run([str(binary), "--replay", str(record)], capture_output=True, check=True)
    return _speed(_SPEED_LINE.findall(done.stdout)[-1])


def _speed(fields) -> SimSpeed:
    cycles, seconds, waited = fields
    return SimSpeed(int(cycles), float(seconds), float(waited))

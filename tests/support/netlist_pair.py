"""A design's RTL and its ``synth_ecp5`` netlist run side by side in Verilator on the same random
inputs, every output compared each cycle (``sim/testbenches/netlist_pair_tb.py``)."""

from __future__ import annotations

import json

from amaranth import Shape
from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from flow.netlist import synthesize
from sim.runner import run_cocotb

__all__ = ["pair_wrapper", "compare_with_netlist"]


def pair_wrapper(design: wiring.Component) -> tuple[str, dict[str, int], list[str]]:
    """A top module ``pair`` feeding the RTL (``prims_rtl``) and the netlist (``prims_net``)
    alike; the inputs with their widths, and the outputs."""
    ports = design.signature.members
    inputs = {name: Shape.cast(member.shape).width for name, member in ports.items()
              if member.flow == wiring.In}
    outputs = [name for name, member in ports.items() if member.flow == wiring.Out]
    declarations = ["input clk", "input rst",
                    *(f"input [{width - 1}:0] {name}" for name, width in inputs.items())]
    body = []
    for side in ("rtl", "net"):
        for name in outputs:
            width = Shape.cast(ports[name].shape).width
            declarations.append(f"output [{width - 1}:0] {side}_{name}")
        connections = [".clk(clk)", ".rst(rst)", *(f".{n}({n})" for n in inputs),
                       *(f".{n}({side}_{n})" for n in outputs)]
        body.append(f"  prims_{side} {side} ({', '.join(connections)});")
    # Ports listed in the header and declared below it, as sim.runner reads a top module.
    names = [declaration.split()[-1] for declaration in declarations]
    text = (f"module pair({', '.join(names)});\n"
            + "".join(f"  {declaration};\n" for declaration in declarations))
    return text + "\n".join(body) + "\nendmodule\n", inputs, outputs


def compare_with_netlist(make_design, tmp_path, models: str, *, platform=None,
                         cycles: int = 2000, seed: int = 5) -> str:
    """Run ``make_design()``'s RTL (elaborated without a platform, as simulations are) and its
    netlist (elaborated for ``platform``, then ``synth_ecp5 -abc9``) side by side, with the
    primitives' simulation ``models``; the netlist's Verilog. A mismatch raises
    ``sim.runner.CocotbTestFailure`` naming the output."""
    netlist = synthesize(rtlil.convert(make_design(), name="prims_net", platform=platform),
                         "prims_net", "ecp5", tmp_path / "synth", synth_opts=("-abc9",))
    rtl = make_design()
    wrapper, inputs, outputs = pair_wrapper(rtl)
    design = "\n".join([verilog.convert(rtl, name="prims_rtl"), netlist, models, wrapper])
    run_cocotb(design, "pair", "sim.testbenches.netlist_pair_tb",
               extra_env={"RILL_PAIR_TB": json.dumps({"inputs": inputs, "outputs": outputs,
                                                      "cycles": cycles, "seed": seed})},
               test_dir=tmp_path / "run", log_file=tmp_path / "run" / "sim.log", timeout=300)
    return netlist

"""Simulation models of the ECP5 primitives Yosys ships none of: DP16KD and MULT18X18D.

Yosys' ``share/ecp5/cells_sim.v`` models the LUTs, carries, flip-flops and distributed RAM of an
ECP5 netlist but leaves the block RAM (DP16KD, a ``(* blackbox *)``) and the multiplier
(MULT18X18D, only in ``cells_bb.v``) without a body, so a synthesized ECP5 netlist does not
simulate without these. They model the modes ``synth_ecp5`` maps memories and multipliers to
(Yosys' ``brams_map_16kd.v`` and ``dsp_map_18x18.v``), and stop the simulation at elaboration
on any other, so a netlist that needs more fails loudly instead of simulating something else:

- DP16KD with 1-, 2- or 4-bit ports (16,384 bits, no initial value), or 9- or 18-bit ports
  (byte enables on the address's low bits at 18), or as one 36-bit write port A and one 36-bit
  read port B (the pseudo dual port Yosys makes of a DP16KD for 36-bit words: data
  ``{DIB, DIA}`` in, ``{DOB, DOA}`` out, byte enables on ADA[3:0]); no output register
  (REGMODE "NOREG"), chip selects decoding 0, clocks not inverted; each port's WRITEMODE
  (NORMAL keeps its output, WRITETHROUGH shows the new word, READBEFOREWRITE the old); reset
  clears a port's output, at once or at its clock edge by RESETMODE; INITVAL_00..3F as Yosys
  lays them out for 9 bits and more (1,024 18-bit words, 20 bits apart).
- MULT18X18D without its input, pipeline and output registers: P = A * B, each operand signed
  where SIGNEDA / SIGNEDB is high.

A read of a word the other port writes in the same cycle returns the old word. The part leaves
such a collision undefined; the SRAM tiles promise Yosys there is none, and the core's
simulation asserts it (``hw.sram.check_no_collision``), so the model need not guess.
"""

from __future__ import annotations

__all__ = ["ecp5_models"]


def _bits(prefix: str, width: int) -> str:
    return ", ".join(f"{prefix}{i}" for i in reversed(range(width)))


def _parameters(*items: tuple[str, int | str]) -> str:
    """Verilog parameter declarations with their defaults (the part's own)."""
    def literal(value: int | str) -> str:
        return str(value) if isinstance(value, int) else '"' + value + '"'
    return "\n".join(f"  parameter {name} = {literal(value)};" for name, value in items)


def _dp16kd() -> str:
    initvals = "\n".join(f"  parameter [319:0] INITVAL_{i:02X} = 320'h0;" for i in range(64))
    initvals_any = "(" + " || ".join(f"INITVAL_{i:02X} != 0" for i in range(64)) + ")"
    load = "\n".join(
        f"    for (j = 0; j < 16; j = j + 1) mem[{i} * 16 + j] = INITVAL_{i:02X}[j * 20 +: 18];"
        for i in range(64))
    ports = []
    for p in "AB":
        ports += [f"  input {_bits(f'DI{p}', 18)},", f"  input {_bits(f'AD{p}', 14)},",
                  f"  input CE{p}, OCE{p}, CLK{p}, WE{p}, RST{p}, CS{p}2, CS{p}1, CS{p}0,",
                  f"  output {_bits(f'DO{p}', 18)}{',' if p == 'A' else ''}"]
    port_logic = []
    for p in "AB":
        port_logic.append(f"""
  wire [17:0] di_{p} = {{{_bits(f'DI{p}', 18)}}};
  wire [13:0] ad_{p} = {{{_bits(f'AD{p}', 14)}}};
  wire sel_{p} = {{CS{p}2, CS{p}1, CS{p}0}} == 3'b000;
  reg [17:0] do_{p} = 18'd0;
  // Every width's word lies in the 18-bit row ad[13:4]: 1, 2 and 4 bits at the offset the
  // address's low bits give (16 bits a row), 9 bits in the half ad[3] chooses, 18 bits the
  // whole row, its halves written where ad[0] / ad[1] enable them.
  wire [9:0] row_{p} = ad_{p}[13:4];
  wire [4:0] offset_{p} = DATA_WIDTH_{p} == 1 ? {{1'b0, ad_{p}[3:0]}}
                        : DATA_WIDTH_{p} == 2 ? {{1'b0, ad_{p}[3:1], 1'b0}}
                        : DATA_WIDTH_{p} == 4 ? {{1'b0, ad_{p}[3:2], 2'b0}}
                        : DATA_WIDTH_{p} == 9 ? (ad_{p}[3] ? 5'd9 : 5'd0) : 5'd0;
  wire [17:0] ones_{p} = DATA_WIDTH_{p} == 18 ? 18'h3ffff : (18'd1 << DATA_WIDTH_{p}) - 18'd1;
  wire [17:0] old_{p} = mem[row_{p}];
  wire [17:0] mask_{p} = DATA_WIDTH_{p} == 18 ? {{{{9{{ad_{p}[1]}}}}, {{9{{ad_{p}[0]}}}}}}
                                            : ones_{p} << offset_{p};
  wire [17:0] new_{p} = (old_{p} & ~mask_{p}) | ((di_{p} & ones_{p}) << offset_{p} & mask_{p});
  wire [17:0] old_shown_{p} = (old_{p} >> offset_{p}) & ones_{p};
  wire [17:0] new_shown_{p} = (new_{p} >> offset_{p}) & ones_{p};
  // What the port's output latches at its clock edge (NORMAL: it keeps its word on a write).
  wire [17:0] next_{p} = !WE{p} || WRITEMODE_{p} == "READBEFOREWRITE" ? old_shown_{p}
                       : WRITEMODE_{p} == "WRITETHROUGH" ? new_shown_{p} : do_{p};
  generate if (RESETMODE == "ASYNC") begin : read_{p}
    always @(posedge CLK{p} or posedge RST{p})
      if (RST{p}) do_{p} <= 18'd0;
      else if (!WIDE && CE{p} && sel_{p}) do_{p} <= next_{p};
  end else begin : read_{p}
    always @(posedge CLK{p})
      if (!WIDE && CE{p} && sel_{p}) do_{p} <= RST{p} ? 18'd0 : next_{p};
  end endgenerate
  always @(posedge CLK{p})
    if (!WIDE && CE{p} && WE{p} && sel_{p}) mem[row_{p}] <= new_{p};""")
    body = "\n".join(port_logic)
    return f"""
module DP16KD (
{chr(10).join(ports)}
);
{_parameters(
      ("DATA_WIDTH_A", 18), ("DATA_WIDTH_B", 18), ("REGMODE_A", "NOREG"), ("REGMODE_B", "NOREG"),
      ("RESETMODE", "SYNC"), ("ASYNC_RESET_RELEASE", "SYNC"), ("CSDECODE_A", "0b000"),
      ("CSDECODE_B", "0b000"), ("WRITEMODE_A", "NORMAL"), ("WRITEMODE_B", "NORMAL"),
      ("CLKAMUX", "CLKA"), ("CLKBMUX", "CLKB"), ("GSR", "ENABLED"), ("INIT_DATA", "STATIC"))}
{initvals}

  localparam WIDE = DATA_WIDTH_A == 36;
  reg [17:0] mem [0:1023];
  integer j;
  // 1, 2 and 4 bits leave out the parity bits 9 and 18 have: a block's ports are either.
  localparam NARROW_A = DATA_WIDTH_A == 1 || DATA_WIDTH_A == 2 || DATA_WIDTH_A == 4;
  localparam NARROW_B = DATA_WIDTH_B == 1 || DATA_WIDTH_B == 2 || DATA_WIDTH_B == 4;
  localparam NINE_A = DATA_WIDTH_A == 9 || DATA_WIDTH_A == 18;
  localparam NINE_B = DATA_WIDTH_B == 9 || DATA_WIDTH_B == 18;
  initial begin
    // (How Yosys lays out an initial value for the narrow widths is not modelled: none.)
    if (!((DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36) || (NARROW_A && NARROW_B)
          || (NINE_A && NINE_B)) || (NARROW_A && {initvals_any})
        || REGMODE_A != "NOREG" || REGMODE_B != "NOREG"
        || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
        || CLKAMUX != "CLKA" || CLKBMUX != "CLKB")
      $fatal(1, "DP16KD %m: a mode this model does not cover");
{load}
  end
{body}

  // 36 bits: port A writes {{DIB, DIA}} to the 18-bit words 2i+1 and 2i (byte enables on
  // ADA[3:0]), port B reads them to {{DOB, DOA}}.
  wire [8:0] wide_write_row = ad_A[13:5];
  wire [8:0] wide_read_row = ad_B[13:5];
  wire [35:0] wide_old = {{mem[{{wide_write_row, 1'b1}}], mem[{{wide_write_row, 1'b0}}]}};
  wire [35:0] wide_mask = {{{{9{{ad_A[3]}}}}, {{9{{ad_A[2]}}}},
                          {{9{{ad_A[1]}}}}, {{9{{ad_A[0]}}}}}};
  wire [35:0] wide_new = (wide_old & ~wide_mask) | ({{di_B, di_A}} & wide_mask);
  always @(posedge CLKA)
    if (WIDE && CEA && WEA && sel_A) begin
      mem[{{wide_write_row, 1'b0}}] <= wide_new[17:0];
      mem[{{wide_write_row, 1'b1}}] <= wide_new[35:18];
    end
  reg [35:0] wide_out = 36'd0;
  generate if (RESETMODE == "ASYNC") begin : wide_read
    always @(posedge CLKB or posedge RSTB)
      if (RSTB) wide_out <= 36'd0;
      else if (WIDE && CEB && sel_B)
        wide_out <= {{mem[{{wide_read_row, 1'b1}}], mem[{{wide_read_row, 1'b0}}]}};
  end else begin : wide_read
    always @(posedge CLKB)
      if (WIDE && CEB && sel_B)
        wide_out <= RSTB ? 36'd0 : {{mem[{{wide_read_row, 1'b1}}], mem[{{wide_read_row, 1'b0}}]}};
  end endgenerate
  assign {{{_bits('DOA', 18)}}} = WIDE ? wide_out[17:0] : do_A;
  assign {{{_bits('DOB', 18)}}} = WIDE ? wide_out[35:18] : do_B;
endmodule
"""


def _mult18x18d() -> str:
    registers = _parameters(*((f"REG_{name}_CLK", "NONE")
                              for name in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")))
    others = _parameters(*(
        ("REG_INPUTA_CE", "CE0"), ("REG_INPUTA_RST", "RST0"), ("REG_INPUTB_CE", "CE0"),
        ("REG_INPUTB_RST", "RST0"), ("REG_INPUTC_CE", "CE0"), ("REG_INPUTC_RST", "RST0"),
        ("REG_PIPELINE_CE", "CE0"), ("REG_PIPELINE_RST", "RST0"), ("REG_OUTPUT_CE", "CE0"),
        ("REG_OUTPUT_RST", "RST0"), ("CLK0_DIV", "ENABLED"), ("CLK1_DIV", "ENABLED"),
        ("CLK2_DIV", "ENABLED"), ("CLK3_DIV", "ENABLED"), ("HIGHSPEED_CLK", "NONE"),
        ("GSR", "ENABLED"), ("CAS_MATCH_REG", "FALSE"), ("SOURCEB_MODE", "B_SHIFT"),
        ("MULT_BYPASS", "DISABLED"), ("RESETMODE", "SYNC")))
    outputs = ", ".join(_bits(name, 18) for name in ("SROA", "SROB", "ROA", "ROB", "ROC"))
    return f"""
module MULT18X18D (
  input {_bits('A', 18)},
  input {_bits('B', 18)},
  input {_bits('C', 18)},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0,
  input RST3, RST2, RST1, RST0,
  input {_bits('SRIA', 18)},
  input {_bits('SRIB', 18)},
  output {outputs},
  output {_bits('P', 36)},
  output SIGNEDP
);
{registers}
{others}
  initial
    if (REG_INPUTA_CLK != "NONE" || REG_INPUTB_CLK != "NONE" || REG_INPUTC_CLK != "NONE"
        || REG_PIPELINE_CLK != "NONE" || REG_OUTPUT_CLK != "NONE" || MULT_BYPASS != "DISABLED")
      $fatal(1, "MULT18X18D %m: registers or a bypass this model does not cover");
  wire [17:0] a = {{{_bits('A', 18)}}};
  wire [17:0] b = {{{_bits('B', 18)}}};
  wire signed [36:0] product = $signed({{SIGNEDA & a[17], a}}) * $signed({{SIGNEDB & b[17], b}});
  assign {{{_bits('P', 36)}}} = product[35:0];
  assign SIGNEDP = SIGNEDA | SIGNEDB;
  assign {{{outputs}}} = {{90{{1'b0}}}};
endmodule
"""


def ecp5_models() -> str:
    """Verilog of the DP16KD and MULT18X18D models."""
    return "// Generated by flow/ecp5_models.py.\n" + _dp16kd() + _mult18x18d()


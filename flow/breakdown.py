"""Where a board's logic goes, block by block: ``python -m hw.breakdown --board NAME``.

Synthesizes the board's design as ``python -m hw.build`` does, but keeps the hierarchy
(``synth_* -noflatten``) and prints the cells of each block: LUTs, carries, flip-flops, block RAMs,
DSPs, with the PEs summed. It answers "what do I shrink to fit?" in about half a minute, before
(and whether or not) place and route can run.

The counts are cells, not the device's logic cells: nextpnr packs a LUT, the flip-flop it feeds
and a carry into one logic cell where it can, and a flip-flop fed by another flip-flop, a block
RAM or a DSP into a logic cell of its own. Flattening also lets Yosys optimise across blocks, so
the blocks' sum is somewhat above the flat build's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from .build import NAME, BuildError, extract

__all__ = ["CELL_KINDS", "breakdown", "format_breakdown", "main"]

#: Report column -> the cell types that count towards it, per family.
CELL_KINDS = {
    "ice40": {"LUT": ("SB_LUT4",), "carry": ("SB_CARRY",), "FF": ("SB_DFF",),
              "BRAM": ("SB_RAM40_4K", "SB_SPRAM256KA"), "DSP": ("SB_MAC16",)},
    "ecp5": {"LUT": ("LUT4",), "carry": ("CCU2C",), "FF": ("TRELLIS_FF",),
             "BRAM": ("DP16KD",), "DSP": ("MULT18X18D",)},
}

_SYNTH = {"ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5 -abc9"}
#: Array cells are summed: ``core.array.pe_3_1`` counts as ``core.array.pe_*``.
_PE = re.compile(r"\.pe_\d+_\d+$")


def _module_cells(stat: str) -> dict[str, dict[str, int]]:
    """``{module: {cell type: count}}`` from Yosys' ``stat`` of an unflattened design."""
    cells = {}
    for name, body in re.findall(r"^=== (\S+) ===\n(.*?)(?=^=== |\Z)", stat, re.M | re.S):
        if name == "design":
            break
        cells[name] = {kind: int(n) for n, kind in
                       re.findall(r"^\s+(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*$", body, re.M)}
    return cells


def breakdown(board, work_dir: Path, *, seed: int = 1) -> tuple[str, dict[str, dict[str, int]]]:
    """``(family, {block: {column: count}})`` of ``board``'s design, PEs summed (``pe_*`` also
    gets a ``count``)."""
    _, family, env = extract(board, work_dir, seed=seed)
    script = work_dir / "breakdown.ys"
    script.write_text(f"read_rtlil {NAME}.il\n{_SYNTH[family]} -top {NAME} -noflatten\n"
                      "tee -q -o breakdown.txt stat\n")
    run = subprocess.run([env["YOSYS"], "-q", script.name], cwd=work_dir, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if run.returncode != 0:
        raise BuildError(f"yosys failed on {script}:\n{(run.stdout + run.stderr)[-2000:]}")
    blocks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    prefix = f"{NAME}.serial.device."
    for module, cells in _module_cells((work_dir / "breakdown.txt").read_text()).items():
        block = module.removeprefix(prefix)
        if _PE.search(block):
            block = _PE.sub(".pe_*", block)
            blocks[block]["count"] += 1
        for column, kinds in CELL_KINDS[family].items():
            blocks[block][column] += sum(n for kind, n in cells.items() if kind.startswith(kinds))
    return family, {name: dict(counts) for name, counts in blocks.items()}


def format_breakdown(family: str, blocks: dict[str, dict[str, int]]) -> str:
    columns = list(CELL_KINDS[family])
    rows = [(name, counts) for name, counts in blocks.items()
            if any(counts.get(c, 0) for c in columns)]
    rows.sort(key=lambda row: -row[1].get("LUT", 0))
    width = max(len(name) + 6 for name, _ in rows)
    lines = [f"{'block':<{width}}" + "".join(f"{c:>8}" for c in columns)]
    for name, counts in rows:
        label = f"{name} (x{counts['count']})" if "count" in counts else name
        lines.append(f"{label:<{width}}" + "".join(f"{counts.get(c, 0):>8}" for c in columns))
    total = {c: sum(counts.get(c, 0) for _, counts in rows) for c in columns}
    lines.append(f"{'total':<{width}}" + "".join(f"{total[c]:>8}" for c in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.breakdown", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", required=True, help="board name (python -m hw.build --list)")
    parser.add_argument("--rows", type=int, help="array rows (default: the board's)")
    parser.add_argument("--cols", type=int, help="array columns (default: the board's)")
    args = parser.parse_args(argv)
    from boards import UnknownBoard, get_board
    from hw.params import ParamsError
    try:
        board = get_board(args.board).with_array(args.rows, args.cols)
    except (UnknownBoard, ParamsError) as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory(prefix="rill-breakdown-") as work:
        try:
            family, blocks = breakdown(board, Path(work))
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(f"{board.name}: {board.params.rows}x{board.params.cols} array, cells per block "
          f"(synthesized without flattening)")
    print(format_breakdown(family, blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())

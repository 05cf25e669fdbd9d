"""The best of several placements: ``python -m hw.build --board NAME --seed 1 2 3``.

nextpnr's placement seed moves a full ECP5 design's Fmax by as much as a structural change does
(over 10 MHz on a full 85F: one seed may place a register dozens of rows from what it drives).
Each seed is a whole build into ``OUT/seed-N``, run side by side, one per core (``--jobs``); the
best one's bitstream and ``report.json`` are then copied into ``OUT``, the report listing every
seed's Fmax.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .build import BuildError, BuildResult, DoesNotFit, MissesTiming, build

__all__ = ["build_best"]


def _one_seed(board, out_dir: Path, seed: int) -> dict:
    """One build; returns its report (timing met or not), or raises what :func:`build` raises
    for a design that does not fit or a toolchain failure."""
    try:
        return build(board, out_dir, seed=seed, progress=False).report
    except MissesTiming:
        return json.loads((out_dir / "report.json").read_text())


def build_best(board, out_dir: Path | str, seeds: list[int], *,
               jobs: int | None = None) -> BuildResult:
    """Build ``board`` once per seed into ``out_dir/seed-N`` and copy the fastest into ``out_dir``.

    Returns the best build (its bitstream and report in ``out_dir``; ``report["seeds"]`` maps
    each seed to its Fmax in MHz) when it meets the target clock; raises :class:`MissesTiming`
    when even the best misses it (the report written), and :class:`DoesNotFit` or
    :class:`BuildError` when no seed gave a bitstream.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(dict.fromkeys(seeds))
    jobs = jobs or min(len(seeds), os.cpu_count() or 1)
    reports, errors = {}, {}
    print(f"placing with seeds {', '.join(map(str, seeds))}, {jobs} at a time (one whole build "
          f"each, into {out_dir}/seed-N)", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_one_seed, board, out_dir / f"seed-{seed}", seed): seed
                   for seed in seeds}
        for future in as_completed(futures):
            seed = futures[future]
            try:
                reports[seed] = future.result()
                print(f"  seed {seed}: Fmax {reports[seed]['fmax_mhz']:.1f} MHz "
                      f"({reports[seed]['build_seconds']:.0f} s)", file=sys.stderr)
            except (DoesNotFit, BuildError) as error:
                errors[seed] = error
                print(f"  seed {seed}: {error}", file=sys.stderr)
    if not reports:
        raise errors[seeds[0]]
    best_seed = max(reports, key=lambda seed: reports[seed]["fmax_mhz"])
    report = dict(reports[best_seed])
    bitstream = Path(report["bitstream"])
    shutil.copy2(bitstream, out_dir / bitstream.name)
    report["bitstream"] = str(out_dir / bitstream.name)
    report["seeds"] = {str(seed): reports[seed]["fmax_mhz"] for seed in sorted(reports)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"best: seed {best_seed}", file=sys.stderr)
    if not report["timing_met"]:
        raise MissesTiming(
            f"{board.name}: the {report['rows']}x{report['cols']} design misses timing on every "
            f"seed: best Fmax {report['fmax_mhz']:.1f} MHz (seed {best_seed}) < target "
            f"{report['target_mhz']:.1f} MHz; see {out_dir}/seed-{best_seed}")
    return BuildResult(report, out_dir / bitstream.name, out_dir)

"""``python -m hw.build --seed 1 2 3``: the fastest placement kept, with the toolchain replaced by a
stand-in that writes what a build writes (a real build per seed is minutes; see test_boards.py)."""

import json

import pytest

import flow.seeds
from boards import get_board
from flow.build import BuildResult, DoesNotFit, MissesTiming, format_report

BOARD = get_board("icebreaker")
TARGET = BOARD.clock_hz / 1e6


def fake_build(fmax_by_seed: dict[int, float | None]):
    """A ``build`` whose seed N reaches ``fmax_by_seed[N]`` MHz (None: does not fit)."""
    def build(board, out_dir, *, seed, progress):
        fmax = fmax_by_seed[seed]
        if fmax is None:
            raise DoesNotFit(f"seed {seed} does not fit")
        out_dir.mkdir(parents=True)
        bitstream = out_dir / "rill.bin"
        bitstream.write_bytes(bytes([seed]) * 16)
        report = {"board": board.name, "rows": 2, "cols": 2, "fmax_mhz": fmax,
                  "target_mhz": TARGET, "timing_met": fmax >= TARGET, "seed": seed,
                  "build_seconds": 1.0, "bitstream": str(bitstream)}
        (out_dir / "report.json").write_text(json.dumps(report))
        if fmax < TARGET:
            raise MissesTiming(f"seed {seed} misses")
        return BuildResult(report, bitstream, out_dir)
    return build


def test_the_fastest_seed_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(flow.seeds, "build", fake_build({1: 22.0, 2: 25.5, 3: 19.0}))
    result = flow.seeds.build_best(BOARD, tmp_path, [1, 2, 3], jobs=2)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == result.report
    assert report["seed"] == 2 and report["fmax_mhz"] == 25.5
    assert report["seeds"] == {"1": 22.0, "2": 25.5, "3": 19.0}
    assert (tmp_path / "rill.bin").read_bytes() == bytes([2]) * 16
    assert "1: 22.0, 2: 25.5, 3: 19.0 MHz (best: 2)" in format_report(
        {**report, "device": "iCE40UP5K", "macs_per_cycle_int8": 4, "macs_per_cycle_int4": 8,
         "peak_gops_int8": 0.2, "peak_gops_int4": 0.3, "peak_gops_int8_at_fmax": 0.2,
         "peak_gops_int4_at_fmax": 0.3})


def test_every_seed_missing_the_clock_is_a_miss_with_the_best_report(tmp_path, monkeypatch):
    monkeypatch.setattr(flow.seeds, "build", fake_build({1: 15.0, 4: None, 7: 18.5}))
    with pytest.raises(MissesTiming, match="every seed: best Fmax 18.5 MHz \\(seed 7\\)"):
        flow.seeds.build_best(BOARD, tmp_path, [1, 4, 7])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["seed"] == 7 and report["seeds"] == {"1": 15.0, "7": 18.5}


def test_no_seed_fitting_is_does_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(flow.seeds, "build", fake_build({1: None, 2: None}))
    with pytest.raises(DoesNotFit, match="seed 1"):
        flow.seeds.build_best(BOARD, tmp_path, [1, 2])
    assert not (tmp_path / "report.json").exists()

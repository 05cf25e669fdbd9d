"""The build report's worst path, read from nextpnr's JSON report (``--report``): the core
clock's longest register-to-register path, its routing share and the design's source lines."""

import json

from flow.build import critical_path, format_report


def _step(kind, delay, cell_from, cell_to, sources=()):
    return {"type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q"},
            "to": {"cell": cell_to, "port": "D"}, "sources": list(sources)}


def test_the_core_clocks_longest_path_with_its_sources(tmp_path):
    report = {"critical_paths": [
        {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
            _step("clk-to-q", 0.5, "lane_FF", "lane_FF"),
            _step("routing", 3.5, "lane_FF", "lut_a", ["/tmp/x/hw/vector_unit.py:172"]),
            _step("logic", 0.25, "lut_a", "lut_a"),
            _step("routing", 4.5, "lut_a", "act_sram.0.4",
                  ["/share/lattice/cells_map_trellis.v:108", "/tmp/x/hw/vector_unit.py:172",
                   "/tmp/x/hw/sram.py:40"]),
            _step("setup", 0.25, "act_sram.0.4", "act_sram.0.4")]},
        {"from": "<async>", "to": "posedge $glbnet$clk", "path": [   # not register to register
            _step("routing", 40.0, "pin", "sync_FF")]},
        {"from": "posedge $glbnet$other", "to": "posedge $glbnet$other", "path": [
            _step("routing", 30.0, "a", "b")]}]}
    path = tmp_path / "rill.report.json"
    path.write_text(json.dumps(report))

    worst = critical_path(path, "$glbnet$clk")
    assert worst == {"from": "lane_FF", "to": "act_sram.0.4", "delay_ns": 9.0,
                     "routing_ns": 8.0, "cells": 3,
                     "sources": ["hw/vector_unit.py:172", "hw/sram.py:40"]}
    assert critical_path(path, "$glbnet$missing") is None

    text = format_report({"board": "b", "device": "d", "rows": 2, "cols": 2,
                          "macs_per_cycle_int8": 4, "macs_per_cycle_int4": 8, "fmax_mhz": 111.1,
                          "target_mhz": 105.0, "timing_met": True, "peak_gops_int8": 1.0,
                          "peak_gops_int4": 2.0, "peak_gops_int8_at_fmax": 1.0,
                          "peak_gops_int4_at_fmax": 2.0, "build_seconds": 9.0,
                          "bitstream": "rill.bit", "critical_path": worst})
    assert "path      9.0 ns (8.0 routing), 3 cells: lane_FF -> act_sram.0.4" in text
    assert "through hw/vector_unit.py:172, hw/sram.py:40" in text

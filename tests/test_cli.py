"""The ``python -m sw`` command line, on the golden device (the RTL paths have their own tests)."""

import json
import subprocess
import sys


def _sw(*args):
    return subprocess.run([sys.executable, "-m", "sw", *args], capture_output=True, text=True,
                          timeout=300)


def test_bench_writes_json_rows_with_cycles_equal_to_prediction(tmp_path):
    out = tmp_path / "bench.json"
    result = _sw("--rows", "4", "--cols", "4", "bench", "--device", "golden", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["matmul_cycles"] == r["predicted_matmul_cycles"] for r in rows)
    assert {"macs", "utilization", "wire_bytes", "compulsory_bytes"} <= set(rows[0])


def test_info_prints_the_params():
    result = _sw("info", "--device", "golden")
    assert result.returncode == 0, result.stderr
    assert "rows          8" in result.stdout
    assert "peak MACs/cycle: 64 INT8, 128 INT4" in result.stdout


def test_unknown_device_is_a_clear_error():
    result = _sw("info", "--device", "tcp:/nowhere")
    assert result.returncode != 0
    assert result.stderr.startswith("error: unknown device URL"), result.stderr

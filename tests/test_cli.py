"""The ``python -m sw`` command line, on the golden device (the RTL paths have their own tests)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sw import oracle


def _sw(*args):
    # A guard against a hang, not a speed target: the sim device builds its model on first use,
    # and a loaded 2-core machine can take minutes.
    return subprocess.run([sys.executable, "-m", "sw", *args], capture_output=True, text=True,
                          timeout=900)


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
    assert "rows 8" in " ".join(result.stdout.split())
    assert "peak MACs/cycle: 64 INT8, 128 INT4" in result.stdout


def test_a_boards_params_without_the_board():
    """``--board-params`` compiles for (and would simulate) the core a board's bitstream has."""
    result = _sw("--board-params", "icebreaker", "info", "--device", "golden")
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    for shown in ("rows 2", "weight_depth 512", "serial_requant True", "deep_pipeline False"):
        assert shown in words
    result = _sw("--board-params", "nonesuch", "info", "--device", "golden")
    assert result.returncode == 2 and "no board named 'nonesuch'" in result.stderr


def test_unknown_device_is_a_clear_error():
    result = _sw("info", "--device", "tcp:/nowhere")
    assert result.returncode != 0
    assert result.stderr.startswith("error: unknown device URL"), result.stderr


@pytest.fixture(scope="module")
def quantized_mlp(tmp_path_factory):
    from sw.models import quantize, train_mlp
    folder = tmp_path_factory.mktemp("mlp")
    model = train_mlp()
    path = quantize(model, folder, per_channel=True)
    np.save(folder / "x.npy", model.test_inputs[:40])
    return path, folder / "x.npy"


def _onnxruntime(path, x):
    (value,) = oracle.run(path, {"input": x}).values()
    return value


@pytest.mark.parametrize("device", ["golden", "sim"])
def test_run_writes_what_onnxruntime_gives(quantized_mlp, tmp_path, device):
    model, x = quantized_mlp
    y = tmp_path / "y.npy"
    result = _sw("run", str(model), "--input", str(x), "--output", str(y), "--device", device)
    assert result.returncode == 0, result.stderr
    expected, got = _onnxruntime(model, np.load(x)), np.load(y)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_run_refuses_a_file_that_is_not_onnx(tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    np.save(tmp_path / "x.npy", np.zeros((1, 64), np.float32))
    result = _sw("run", str(bogus), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "y.npy"), "--device", "golden")
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "not an ONNX model" in result.stderr

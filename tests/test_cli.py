"""The ``python -m sw`` and ``python -m hw.build`` command lines: what they print and write, and
the one-line error each bad input gets (exit status 2, no traceback)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import hw.build
from sw import cli, oracle
from sw.registry import BOARD_LINKS_GROUP, BOARDS_GROUP, registered


def _sw(*args):
    # A guard against a hang, not a speed target: the sim device builds its model on first use,
    # and a loaded 2-core machine can take minutes.
    return subprocess.run([sys.executable, "-m", "sw", *args], capture_output=True, text=True,
                          timeout=900)


def test_bench_cycles_are_the_rtls_counters_and_equal_the_prediction(tmp_path):
    """On the sim device the bench's measured cycles are the RTL's counters, so this compares
    the compiler's cycle model with the hardware, not with itself."""
    out = tmp_path / "bench.json"
    result = _sw("bench", "--device", "sim", "--no-stream",
                 "--no-models", "--no-tflite", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["matmul_cycles"] > 0 for r in rows)
    assert [r["matmul_cycles"] for r in rows] == [r["predicted_matmul_cycles"] for r in rows]
    assert [r["program_cycles"] for r in rows] == [r["predicted_program_cycles"] for r in rows]
    assert {"macs", "utilization", "wire_bytes", "compulsory_bytes"} <= set(rows[0])


def test_bench_runs_the_mlperf_tiny_models_with_their_cycles_predicted(tmp_path):
    out = tmp_path / "bench.json"
    result = _sw("--board-params", "ulx3s-85f", "bench", "--device", "golden", "--no-stream",
                 "--no-models", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["tflite"]
    assert [r["model"] for r in rows] == ["ds_cnn", "resnet8", "mobilenet_v1_025", "autoencoder"]
    assert all(r["device_cycles"] == r["predicted_cycles"] > 0 for r in rows)
    assert all(0 < r["utilization"] < 1 and r["device_macs"] <= r["macs"] for r in rows)
    # ResNet-8 and MobileNetV1 run whole on chip, their adds, depthwise convs and pooling
    # included: the host keeps only the softmax and the classifier's requantization; 0.2% of
    # DS-CNN's cycles pool its map on chip.
    for row in rows[1:3]:
        assert row["host_operators"] == ["SOFTMAX", "FULLY_CONNECTED's requantization"]
        assert row["device_macs"] == row["macs"]
    # MobileNet's calls also send seven layers' requantization entries (sw/resident.py).
    assert [row["streamed_bytes"] for row in rows] == [0, 0, 896 * 12, 0]
    assert "mobilenet_v1_025: each call also sends 10,752 bytes of requantization" \
        in result.stdout
    assert rows[2]["wire_in"] > 96 * 96 * 3 + 896 * 12
    assert 0 < rows[0]["vector_share"] < 0.01 and 0 < rows[1]["vector_share"] < 1
    # DS-CNN's one call: its input in 2x2 pixel blocks (25x6 of 4 bytes: its 490 values and
    # the first conv's padding that is not whole blocks, 600) in, 12 sums out, with the link's
    # framing; from the input in SRAM, the cycles less the input's load, a byte a cycle.
    assert 600 < rows[0]["wire_in"] < 700 and rows[0]["wire_out"] < 200
    assert 600 <= rows[0]["device_cycles"] - rows[0]["sram_to_logits_cycles"] < 700
    assert all(r["end_to_end_ms"]["ulx3s-85f"] > r["latency_ms"]["ulx3s-85f"] for r in rows)
    assert "anchor, resnet8: hls4ml" in result.stdout


def test_info_prints_the_params():
    result = _sw("info", "--device", "golden")
    assert result.returncode == 0, result.stderr
    assert "rows 8" in " ".join(result.stdout.split())
    assert "peak MACs/cycle: 64 INT8, 128 INT4" in result.stdout
    # What the SRAMs hold: 2,048 words of 8 weight bytes; 1,024 words of 16 activations.
    assert "holds: 16,384 int8 weights (32,768 int4), 16,384 activations in INT8 mode" \
        in result.stdout
    assert "left out" not in result.stdout


def test_a_boards_params_without_the_board():
    """``--board-params`` compiles for (and would simulate) the core a board's bitstream has."""
    result = _sw("--board-params", "icebreaker", "info", "--device", "golden")
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    for shown in ("rows 2", "weight_depth 512", "serial_requant True", "deep_pipeline False",
                  "512 activations in INT8 mode (1,024 in INT4 mode)",
                  "left out on this part: STORE to the activation SRAM", "packed INT8"):
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


# -- one line saying what to do, for each bad input a user might type -----------------------------

def _one_line_error(capsys, argv, *, main=cli.main) -> str:
    """Run a command that must refuse its arguments; its stderr's last line, which must be the
    error (``error: ...`` from the command, ``PROG: error: ...`` from argparse)."""
    try:
        code = main(argv)
    except SystemExit as exit_:   # argparse's usage error
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") or ": error: " in last, err
    return last


@pytest.fixture
def mlp_files(quantized_mlp, tmp_path):
    """The model, its input and an output path: arguments of ``run`` that work together."""
    model, x = quantized_mlp
    return str(model), str(x), str(tmp_path / "y.npy")


def test_the_one_line_errors_reach_the_shell(tmp_path, quantized_mlp):
    """``python -m sw`` itself: a missing input file ends in the error line, not a traceback."""
    model, _ = quantized_mlp
    result = _sw("run", str(model), "--input", str(tmp_path / "missing.npy"), "--output",
                 str(tmp_path / "y.npy"), "--device", "golden")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --input {tmp_path / 'missing.npy'}: no such file; give input 'input' as a .npy "
        "file written by numpy.save"]


def test_run_a_missing_model(capsys, tmp_path, mlp_files):
    _, x, y = mlp_files
    line = _one_line_error(capsys, ["run", str(tmp_path / "m.onnx"), "--input", x,
                                    "--output", y, "--device", "golden"])
    assert "no such file" in line and ".onnx model" in line


def _saved(tmp_path, write) -> str:
    path = tmp_path / "x.npy"
    write(path)
    return str(path)


def _savez(path, **arrays):
    with path.open("wb") as f:   # a file object, so numpy keeps the name ending .npy
        np.savez(f, **arrays)


BAD_INPUTS = {
    "missing": (lambda path: None, "no such file"),
    "a folder": (lambda path: path.mkdir(), "cannot read it"),
    "text": (lambda path: path.write_text("0.5, 0.25\n"), "numpy cannot read an array"),
    "object array": (lambda path: np.save(path, np.array([{}], dtype=object)),
                     "numpy cannot read an array"),
    "cut off": (lambda path: path.write_bytes(b"\x93NUMPY\x01\x00"), "numpy cannot read an array"),
    "npz": (lambda path: _savez(path, a=np.zeros(3)), "an .npz archive"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_run_an_input_that_is_not_an_array(capsys, tmp_path, mlp_files, kind):
    model, _, y = mlp_files
    write, says = BAD_INPUTS[kind]
    x = _saved(tmp_path, write)
    line = _one_line_error(capsys, ["run", model, "--input", x, "--output", y,
                                    "--device", "golden"])
    assert says in line and "numpy.save" in line


@pytest.mark.parametrize("change, says", [
    (lambda x: x.astype(np.float64), "must be float32"),
    (lambda x: x.astype(np.int64), "must be float32"),
    (lambda x: x[:, :-1], "must have shape"),
    (lambda x: x[0], "must have shape"),
])
def test_run_an_input_of_the_wrong_dtype_or_shape(capsys, tmp_path, mlp_files, change, says):
    model, x, y = mlp_files
    np.save(tmp_path / "bad.npy", change(np.load(x)))
    line = _one_line_error(capsys, ["run", model, "--input", str(tmp_path / "bad.npy"),
                                    "--output", y, "--device", "golden"])
    assert says in line


def test_run_input_and_output_names_the_model_does_not_have(capsys, mlp_files):
    model, x, y = mlp_files
    line = _one_line_error(capsys, ["run", model, "--input", f"nonesuch={x}", "--output", y,
                                    "--device", "golden"])
    assert "no input 'nonesuch'" in line
    line = _one_line_error(capsys, ["run", model, "--input", x, "--output", f"nonesuch={y}",
                                    "--device", "golden"])
    assert "no output 'nonesuch'" in line


@pytest.mark.parametrize("where, says", [("missing/y.npy", "does not exist; create it"),
                                         (".", "is a folder")])
def test_run_an_output_path_that_cannot_be_written(capsys, tmp_path, mlp_files, where, says):
    model, x, _ = mlp_files
    line = _one_line_error(capsys, ["run", model, "--input", x, "--output", str(tmp_path / where),
                                    "--device", "golden"])
    assert line.startswith("error: --output") and says in line
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_an_output_path_in_a_missing_folder(capsys, tmp_path, option):
    line = _one_line_error(capsys, ["bench", "--device", "golden", "--no-stream",
                                    option, str(tmp_path / "missing" / "out")])
    assert line.startswith(f"error: {option}") and "create it" in line


@pytest.mark.parametrize("command", ["demo", "bench", "info", "run"])
def test_every_command_refuses_a_bad_device_url(capsys, mlp_files, command):
    run = ["run", mlp_files[0], "--input", mlp_files[1], "--output", mlp_files[2]]
    line = _one_line_error(capsys, [*(run if command == "run" else [command]),
                                    "--device", "tcp:/nowhere"])
    assert line.startswith("error: unknown device URL 'tcp:/nowhere': use golden, sim")


@pytest.mark.parametrize("trace, says", [
    ("wave.txt", "name it .vcd or .fst"),
    ("missing/wave.fst", "does not exist; create it"),
])
def test_a_bad_trace_file(capsys, tmp_path, trace, says):
    line = _one_line_error(capsys, ["info", "--device", "sim", "--trace", str(tmp_path / trace)])
    assert says in line


@pytest.mark.parametrize("window, says", [
    ("5", "give FIRST:LAST"), ("a:b", "give FIRST:LAST"), ("9:3", "give FIRST:LAST"),
    ("", "give FIRST:LAST"),
])
def test_a_malformed_trace_window(capsys, tmp_path, window, says):
    line = _one_line_error(capsys, ["info", "--device", "sim", "--trace",
                                    str(tmp_path / "w.fst"), "--trace-cycles", window])
    assert says in line


def test_a_trace_window_without_a_trace(capsys):
    line = _one_line_error(capsys, ["info", "--device", "sim", "--trace-cycles", "1:9"])
    assert line == "error: --trace-cycles needs --trace FILE"


@pytest.mark.parametrize("shape", [["--rows", "0"], ["--cols", "1"], ["--rows", "-2"],
                                   ["--board-params", "icebreaker", "--rows", "0"]])
@pytest.mark.parametrize("command", ["demo", "bench", "info"])
def test_an_array_too_small(capsys, shape, command):
    line = _one_line_error(capsys, [*shape, command, "--device", "golden"])
    assert "at least 2x2" in line and "--rows and --cols of 2 or more" in line


@pytest.mark.parametrize("argv", [["--rows", "x", "info"], ["info", "--device"],
                                  ["nonesuch"], ["run", "m.onnx"]])
def test_argparse_usage_errors(capsys, argv):
    _one_line_error(capsys, argv)


def test_an_unknown_board(capsys):
    line = _one_line_error(capsys, ["--board-params", "nonesuch", "info", "--device", "golden"])
    assert "no board named 'nonesuch'; boards: icebreaker" in line


def test_board_params_come_from_the_registry_the_boards_fill():
    """``sw`` reaches the boards only through the ``rill.boards`` entry points."""
    from boards import board_names, get_board
    assert cli.board_params("icebreaker") == get_board("icebreaker").params
    catalogue = registered(BOARDS_GROUP)
    assert sorted(catalogue) == sorted(board_names())
    assert all(catalogue[name] == get_board(name).params for name in board_names())
    links = registered(BOARD_LINKS_GROUP)
    assert all(links[name] == (get_board(name).clock_hz, get_board(name).baud)
               for name in board_names())


@pytest.fixture
def no_builds(monkeypatch):
    """Make any bitstream build fail the test at once instead of running for minutes."""
    def refuse(*args, **kwargs):
        raise AssertionError("a build started on a command line that should have been refused")
    monkeypatch.setattr("flow.cli.build", refuse)
    monkeypatch.setattr("flow.cli.build_best", refuse)


@pytest.mark.parametrize("argv, says", [
    (["--board", "nonesuch"], "no board named 'nonesuch'; boards: icebreaker"),
    (["--board", "icebreaker", "--rows", "0"], "at least 2x2"),
    (["--board", "icebreaker", "--cols", "1"], "at least 2x2"),
    (["--board", "icebreaker", "--rows", "x"], "invalid int value"),
    (["--board", "ulx3s-85f", "--rows", "300"], "fit in a byte"),
    ([], "--board is required"),
])
def test_build_refuses_a_bad_board_or_array(capsys, no_builds, tmp_path, argv, says):
    line = _one_line_error(capsys, [*argv, "--out", str(tmp_path / "out")], main=hw.build.main)
    assert says in line
    assert not (tmp_path / "out").exists()


def test_unknown_board_link_is_refused_before_the_bench_runs(capsys):
    """``bench --links`` names boards; a wrong one is refused at once, not after the GEMMs."""
    assert cli.main(["bench", "--device", "golden", "--links", "nonesuch"]) == 2
    out, err = capsys.readouterr()
    assert out == "", "the bench ran before the links were checked"
    assert err.count("\n") == 1 and "--links nonesuch: no such board; boards: icebreaker" in err

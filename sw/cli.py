"""The ``python -m sw`` command line: run, demo, bench, info."""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

from hw.params import ParamsError, RillParams

from .registry import BOARDS_GROUP, registered

__all__ = ["main", "BOARDS_GROUP", "UsageError"]


class UsageError(Exception):
    """A command line that cannot work as given; the message says what to give instead."""


DEVICE_HELP = ("golden (the numpy model), sim (the core and link RTL in Verilator; default), "
               "sim+cocotb (the same RTL under cocotb: slower, Python in the loop), "
               "serial:///dev/ttyUSB1?baud=3000000 (a board) or socket://HOST:PORT")


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="sim", metavar="URL", help=DEVICE_HELP)
    parser.add_argument("--trace", metavar="FILE", default=None,
                        help="sim device: write a waveform of the run to FILE (.fst, or .vcd); "
                        "builds a tracing model once, which runs slower")
    parser.add_argument("--trace-cycles", metavar="FIRST:LAST", default=None,
                        help="with --trace: only cycles FIRST to LAST-1, counted from reset")


def _device_options(args) -> dict:
    """What ``--trace``/``--trace-cycles`` ask of the device, as :func:`open_device` options."""
    options = {}
    if args.trace_cycles is not None and args.trace is None:
        raise UsageError("--trace-cycles needs --trace FILE")
    if args.trace is not None:
        _check_writable(args.trace, "--trace")
        options["trace"] = args.trace
    if args.trace_cycles is not None:
        first, sep, last = args.trace_cycles.partition(":")
        try:
            window = (int(first or 0), int(last) if last else 2**63)
        except ValueError:
            window = None
        if not sep or window is None or window[0] >= window[1]:
            raise UsageError(f"--trace-cycles {args.trace_cycles}: give FIRST:LAST, "
                             "e.g. 1000:2000 (either may be left out)")
        options["trace_cycles"] = window
    return options


def _check_writable(path: str, option: str) -> None:
    """Refuse, before any work, an output path whose folder does not exist."""
    folder = Path(path).parent
    if Path(path).is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name in it")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist; create it or "
                         "give a path in an existing folder")


def _load_array(path: str, name: str):
    """The array in a ``.npy`` file, or a :class:`UsageError` saying what is wrong with it."""
    import numpy as np
    hint = f"give input {name!r} as a .npy file written by numpy.save"
    try:
        value = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--input {path}: no such file; {hint}") from None
    except (IsADirectoryError, PermissionError) as error:
        raise UsageError(f"--input {path}: cannot read it ({error.strerror}); {hint}") from None
    except (ValueError, OSError, EOFError):   # text, a pickle, an object array, a cut-off file
        raise UsageError(f"--input {path}: numpy cannot read an array from it; {hint}") from None
    if not isinstance(value, np.ndarray):
        value.close()   # an .npz archive of several arrays
        raise UsageError(f"--input {path}: an .npz archive, not one array; {hint}")
    return value


def _board_links(names: list[str]):
    """:class:`~sw.bench_models.LinkPace` of each named board, or a usage error."""
    from .bench_models import board_links
    try:
        return board_links(names)
    except KeyError as error:
        raise UsageError(f"--links {error.args[0]}") from None


def board_params(name: str) -> RillParams:
    """The params of the core board ``name``'s bitstream carries, from the registered boards."""
    boards = registered(BOARDS_GROUP)
    if name in boards:
        return boards[name]
    if not boards:
        raise UsageError(f"--board-params {name}: no boards are installed (the {BOARDS_GROUP!r} "
                         "entry points); install the project with pip install -e .")
    raise UsageError(f"no board named {name!r}; boards: {', '.join(boards)}")


def _params_from(args) -> RillParams:
    """The params to compile for: a board's own (asked over the link) unless ``--rows``/``--cols``
    or ``--board-params`` say otherwise; the defaults, or the named board's, with those overrides,
    for ``golden`` and ``sim``."""
    from .device import BOARD_URLS, ask_params
    if args.board_params is None and args.rows is None and args.cols is None \
            and args.device.startswith(BOARD_URLS):
        return ask_params(args.device)
    defaults = RillParams() if args.board_params is None else board_params(args.board_params)
    try:
        return replace(defaults, rows=defaults.rows if args.rows is None else args.rows,
                       cols=defaults.cols if args.cols is None else args.cols)
    except ParamsError as error:
        raise UsageError(f"{error}; give --rows and --cols of 2 or more") from None


def _executor(device: str, params: RillParams, options: dict | None = None, speeds=None):
    """A function running a batch of programs, in order, on one device opened by URL. A simulated
    device's speed (``speed`` after closing) is appended to ``speeds``."""
    from .device import open_device

    def run(programs):
        with open_device(device, params, **(options or {})) as dev:
            responses = [dev.execute(program, response_bytes)
                         for _name, program, response_bytes in programs]
        if speeds is not None and getattr(dev, "speed", None) is not None:
            speeds.append(dev.speed)
        return responses
    return run


def _simulator_speed(kind, params: RillParams, speeds: list, record) -> dict | None:
    """The simulated device's cycles per second over the bench's GEMMs, beside the bare model's
    on the same cycles (a replay of the run, where the device kind offers one)."""
    if not speeds:
        return None
    speed, *streamed = speeds
    out = {"cycles": speed.cycles, "seconds": round(speed.seconds, 3),
           "host_wait_seconds": round(speed.host_wait_seconds, 3),
           "cycles_per_second": round(speed.cycles_per_second)}
    replay = getattr(kind, "replay_speed", None)
    if replay is not None and record is not None:
        ceiling = replay(params, record)
        out["bare_model_cycles_per_second"] = round(ceiling.cycles_per_second)
        out["of_bare_model"] = round(speed.cycles_per_second / ceiling.cycles_per_second, 3)
    if streamed:
        out["lockstep_cycles"] = sum(s.cycles for s in streamed)
        out["lockstep_cycles_per_second"] = round(
            sum(s.cycles for s in streamed) / sum(s.seconds for s in streamed))
    return out


def cmd_bench(args) -> int:
    from .bench import default_workloads, format_table, measure, plot, write_json
    from .device import device_kinds
    params = _params_from(args)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            _check_writable(path, option)
    links = _board_links(args.links) if args.models else []   # refused before any work
    kind = device_kinds().get(args.device)
    kind = kind.load() if kind is not None else None
    speeds = []
    options = _device_options(args)
    with tempfile.TemporaryDirectory(prefix="rill-bench-") as folder:
        # A simulated device records its run so that the bare model can replay the same cycles.
        record = None
        if getattr(kind, "replay_speed", None) is not None and "trace" not in options:
            record = options["record"] = Path(folder) / "run.record"
        rows = measure(params, default_workloads(params),
                       _executor(args.device, params, options, speeds))
        print(format_table(params, rows))
        mismatched = [r.workload for r in rows if r.matmul_cycles != r.predicted_matmul_cycles
                      or r.program_cycles != r.predicted_program_cycles]
        if args.plot:
            plot(args.plot, params, rows)
            print(f"wrote {args.plot}")
        stream_rows = []
        # A device kind that can run the host and the RTL in lockstep offers ``run_paced``.
        run_paced = getattr(kind, "run_paced", None)
        if args.stream and run_paced is not None:
            from .bench_stream import UART_CYCLES_PER_BYTE, format_streaming, measure_streaming
            cycles_per_byte = args.cycles_per_byte or UART_CYCLES_PER_BYTE
            print(f"\nstreaming layers through the link RTL at {cycles_per_byte} cycles per "
                  f"byte (about a minute)...", flush=True)
            stream_rows = measure_streaming(params, partial(run_paced, on_speed=speeds.append),
                                            cycles_per_byte)
            print(format_streaming(stream_rows, cycles_per_byte))
            mismatched += [r.workload for r in stream_rows
                           if r.device_cycles != r.predicted_device_cycles]
        elif args.stream:
            print("\n(end-to-end streaming needs the RTL in lockstep with the host: --device sim)")
        model_rows = []
        if args.models:
            from .bench_models import bench_models, format_models
            from .device import open_device
            print("\nwhole models (the demo's conv net, an MLPerf Tiny autoencoder)...",
                  flush=True)
            with open_device(args.device, params) as device:
                model_rows = bench_models(device, links, Path(folder))
            print(format_models(model_rows))
            mismatched += [f"{r.model} batch {r.batch}" for r in model_rows
                           if r.device_cycles != r.predicted_cycles]
        tflite_rows = []
        if args.tflite:
            from .bench_tflite import bench_tflite, format_tflite
            from .device import open_device
            print("\nMLPerf Tiny architectures (int8 TFLite)...", flush=True)
            with open_device(args.device, params) as device:
                tflite_rows = bench_tflite(device, links or _board_links(
                    ["icebreaker", "ulx3s-85f"]))
            print(format_tflite(tflite_rows) if tflite_rows else
                  "(no TFLite models here: they are tests/assets/tflite in a checkout)")
            mismatched += [r.model for r in tflite_rows
                           if r.device_cycles != r.predicted_cycles]
        simulator = _simulator_speed(kind, params, speeds, record)
    if simulator is not None:
        print(_format_simulator_speed(simulator))
    if args.json:
        write_json(args.json, params, rows, stream_rows, simulator=simulator,
                   models=model_rows, tflite=tflite_rows)
        print(f"wrote {args.json}")
    if mismatched:
        print(f"error: measured cycles differ from the prediction for {mismatched}",
              file=sys.stderr)
        return 1
    return 0


def _format_simulator_speed(speed: dict) -> str:
    lines = ["\nsimulator speed (simulated cycles per second of wall-clock time):",
             f"  sim device, the GEMMs above: {speed['cycles']:,} cycles in "
             f"{speed['seconds'] - speed['host_wait_seconds']:.1f} s = "
             f"{speed['cycles_per_second']:,} cycles/s (and {speed['host_wait_seconds']:.1f} s "
             f"idle, waiting for the host)"]
    if "bare_model_cycles_per_second" in speed:
        lines.append(f"  bare model replaying the same cycles (no socket, no host): "
                     f"{speed['bare_model_cycles_per_second']:,} cycles/s; the sim device runs "
                     f"at {speed['of_bare_model']:.0%} of it")
    if "lockstep_cycles" in speed:
        lines.append(f"  lockstep, the streaming layers: {speed['lockstep_cycles']:,} cycles at "
                     f"{speed['lockstep_cycles_per_second']:,} cycles/s")
    return "\n".join(lines)


def _name_path_pairs(values: list[str], names: list[str], what: str) -> dict[str, str]:
    """``--input x.npy`` (single-input models) or ``--input name=x.npy`` (any model)."""
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(names) != 1 or len(values) != 1:
                raise UsageError(f"the model has {what}s {names}; give each as "
                                 f"--{what} NAME=PATH")
            name, path = names[0], value
        if name not in names:
            raise UsageError(f"the model has no {what} {name!r}; its {what}s: {names}")
        pairs[name] = path
    return pairs


def _load_model(path: str, params: RillParams, device_only: bool = False):
    """An ONNX or TFLite model by its file's suffix (a TFLite model lowered for a core of
    ``params``), or a :class:`UsageError` saying why not; ``device_only`` refuses one that
    needs the host for more than quantizing and moving data."""
    if not Path(path).exists():
        raise UsageError(f"{path}: no such file; give the path of a quantized .onnx model or a "
                         "full-integer .tflite model")
    if Path(path).suffix.lower() == ".tflite":
        from .tflite_import import TfliteImportError, TfliteModel
        from .tflite_reader import InvalidTflite
        try:
            model = TfliteModel.load(path, params)
        except (TfliteImportError, InvalidTflite) as error:
            raise UsageError(str(error)) from None
        if device_only and model.host_operators():
            raise UsageError(f"--device-only: these would run on the host: "
                             f"{', '.join(model.host_operators())}")
        return model, (TfliteImportError, InvalidTflite)
    from .onnx_import import ModelImportError, RillModel
    try:
        return RillModel.load(path, device_only=device_only), (ModelImportError,)
    except ModelImportError as error:
        raise UsageError(str(error)) from None


def cmd_run(args) -> int:
    import numpy as np

    from .device import open_device
    params = _params_from(args)
    model, import_errors = _load_model(args.model, params, args.device_only)
    tflite = Path(args.model).suffix.lower() == ".tflite"
    compare = args.compare or ""
    if compare and (compare == "litert") != tflite:
        checks = ".tflite" if compare == "litert" else ".onnx"
        raise UsageError(f"--compare {compare} checks {checks} models; use --compare "
                         f"{'litert' if tflite else 'onnxruntime'}")
    if tflite or args.report:
        print("where each operator runs:\n" + "\n".join(model.placement_lines()),
              file=sys.stderr)
    inputs = _name_path_pairs(args.input, model.input_names, "input")
    missing = set(model.input_names) - set(inputs)
    if missing:
        raise UsageError(f"missing --input for {sorted(missing)}")
    outputs = _name_path_pairs(args.output, model.output_names, "output")
    for path in outputs.values():
        _check_writable(path, "--output")
    feeds = {name: _load_array(path, name) for name, path in inputs.items()}
    options = _device_options(args)

    def progress(layer, index, total):
        print(f"[{index + 1}/{total}] {layer} on {args.device}", file=sys.stderr, flush=True)

    with open_device(args.device, params, **options) as device:
        try:
            results = model.run(device, feeds, progress=progress)
        except import_errors as error:
            raise UsageError(str(error)) from None
    for name, path in outputs.items():
        np.save(path, results[name])
        print(f"wrote {path}: {name} {results[name].dtype} {list(results[name].shape)}")
    predicted = sum(lp.predicted_cycles for lp in model.programs)
    print(f"{len(model.programs)} device program(s), {predicted} predicted cycles")
    for line in getattr(model, "runtime_lines", list)() if args.report else ():
        print(line)   # run-time-operand layers: compiles, cache hits, times
    if compare:
        if compare == "litert":
            from .litert_oracle import compare_with_litert
            comparison = compare_with_litert(args.model, feeds, results)
        else:
            from .oracle import compare_with_onnxruntime
            comparison = compare_with_onnxruntime(args.model, feeds, results)
        print("\n".join(comparison.lines()))
        return 0 if comparison.device_is_right else 1
    return 0


def cmd_selftest(args) -> int:
    from .device import BOARD_URLS
    from .selftest import run_selftest
    board = args.device.startswith(BOARD_URLS)
    expected = None if board and args.board_params is None and args.rows is None \
        and args.cols is None else _params_from(args)
    print(f"self-test of {args.device}"
          + ("" if expected is None else f", expecting a {expected.rows}x{expected.cols} core")
          + ":", flush=True)
    verdicts = run_selftest(args.device, expected, seed=args.seed,
                            options=_device_options(args))
    for verdict in verdicts:
        print("\n".join(verdict.lines()), flush=True)
    failed = sum(v.ok is False for v in verdicts)
    print(f"{len(verdicts) - failed - sum(v.ok is None for v in verdicts)} passed, {failed} failed"
          + (f", {sum(v.ok is None for v in verdicts)} skipped"
             if any(v.ok is None for v in verdicts) else ""))
    return 1 if failed else 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(_params_from(args), device=args.device, **_device_options(args))


def cmd_info(args) -> int:
    from hw import isa
    from hw.isa import Opcode
    params = _params_from(args)
    program = isa.encode(Opcode.INFO) + isa.encode(Opcode.READ_COUNTERS)
    info_end = isa.RESPONSE_HEADER_BYTES + isa.INFO_BYTES
    (response,) = _executor(args.device, params, _device_options(args))(
        [("info", program, info_end + isa.RESPONSE_HEADER_BYTES + 16)])
    device_params, version = RillParams.from_info_bytes(response[4:info_end])
    tag = int.from_bytes(response[info_end - 2:info_end], "little")
    print(f"device: {args.device}  ISA v{version}  program tag {tag:#06x}"
          + (" (none loaded)" if tag == 0 else ""))
    fields = vars(device_params)
    width = max(map(len, fields)) + 2
    for name, value in fields.items():
        print(f"  {name:<{width}}{value}")
    print(f"  peak MACs/cycle: {device_params.peak_macs_int8} INT8, "
          f"{device_params.peak_macs_int4} INT4")
    p = device_params
    print(f"  holds: {p.weight_capacity(False):,} int8 weights ({p.weight_capacity(True):,} "
          f"int4), {p.act_capacity(False):,} activations in INT8 mode "
          f"({p.act_capacity(True):,} in INT4 mode), {p.acc_depth:,} x {p.cols} int32 "
          f"accumulators, {p.qparam_depth:,} requantization entries, "
          f"{p.program_depth:,} program instructions")
    left_out = [name for name, present in (
        ("STORE to the activation SRAM (layers chain through the host)", p.store_to_acts),
        ("program memory (instructions travel with every call)", p.program_depth),
        ("convolutions addressed on the device (im2col on the host)", p.conv_addressing),
        ("packed INT8 activations (an INT8 word holds one K chunk)", p.packed_int8_acts))
        if not present]
    if left_out:
        print("  left out on this part: " + ", ".join(left_out))
    counters = [int.from_bytes(response[info_end + 4 + 4 * i:info_end + 8 + 4 * i], "little")
                for i in range(4)]
    for name, value in zip(isa.COUNTER_NAMES, counters):
        print(f"  counter {name:<13}{value}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sw", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help=f"array rows of the device to simulate (default {RillParams.rows}; "
                        "a board's own, which it reports)")
    parser.add_argument("--cols", type=int, default=None,
                        help=f"array columns (default {RillParams.cols}; a board's own)")
    parser.add_argument("--board-params", metavar="BOARD", default=None,
                        help="the core BOARD's bitstream carries (array, SRAM depths, "
                        "requantizer, pipeline; see python -m hw.build --list), e.g. to simulate "
                        "it: --board-params icebreaker ... --device sim")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a quantized ONNX or TFLite model and save its output "
                       "as .npy",
                       description="Run a quantized ONNX model (from onnxruntime's "
                       "quantize_static, QDQ or QOperator) or a full-integer int8 TFLite model "
                       "(the TFLite converter's recipe) on a Rill device. The output is exactly "
                       "what onnxruntime, or LiteRT's reference kernels, produce: same values, "
                       "dtype and shape. For a .tflite model it first lists where each operator "
                       "runs (device or host) on stderr.")
    p.add_argument("model", metavar="MODEL.onnx|MODEL.tflite")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]X.npy",
                   help="input tensor; NAME= is needed when the model has several inputs")
    p.add_argument("--output", action="append", required=True, metavar="[NAME=]Y.npy",
                   help="where to write the output tensor")
    _add_device_options(p)
    p.add_argument("--compare", choices=["onnxruntime", "litert"], default=None, help="also run "
                   "the model's reference (onnxruntime for .onnx, LiteRT's reference kernels for "
                   ".tflite) on this CPU and say whether its outputs equal the device's; where "
                   "they differ, whose answer is wrong (exit status 1 when it is the device's)")
    p.add_argument("--report", action="store_true", help="first list on stderr where each node "
                   "runs and the device's share of the MACs (always done for .tflite)")
    p.add_argument("--device-only", action="store_true", help="refuse a model that needs the "
                   "host beyond quantizing and moving data, naming the nodes (by default they "
                   "run on the host, through onnxruntime for .onnx)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("selftest", help="check a device step by step (board bring-up)",
                       description="Check a device step by step, a verdict line each: the link "
                       "answers; it speaks this driver's ISA with the expected params (a board's "
                       "own unless --board-params NAME or --rows/--cols say otherwise); every "
                       "byte value crosses the link both ways; one GEMM per precision equals the "
                       "golden model's answer byte for byte, cycle counters included; a refused "
                       "command leaves the device answering; the link counted no errors. A "
                       "failing step says its likely cause. Exit status 1 when a step fails.")
    _add_device_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random GEMMs (default 0)")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("demo", help="run GEMMs on the simulated RTL and check them bit for bit")
    _add_device_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="measure utilization, cycles vs prediction and wire bytes")
    _add_device_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also plot utilization against GEMM size")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="also stream a layer through the core and link RTL over a UART-paced "
                        "wire and report end-to-end throughput and wire bytes (sim only; "
                        "a few minutes); default on")
    p.add_argument("--tflite", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the four MLPerf Tiny architectures (int8 TFLite) at batch 1 "
                   "with their weights resident: device cycles, array utilization, latency at "
                   "each board's clock beside published anchors; default on")
    p.add_argument("--models", action=argparse.BooleanOptionalAction, default=True,
                   help="also run whole models (the demo's conv net and an autoencoder shaped "
                        "like MLPerf Tiny's anomaly detection, batch 1 and 32) and bound their "
                        "inferences per second on each board's serial link; default on")
    p.add_argument("--links", nargs="+", default=["icebreaker", "ulx3s-85f"], metavar="BOARD",
                   help="the boards whose links bound the whole models (default: icebreaker "
                        "ulx3s-85f)")
    p.add_argument("--cycles-per-byte", type=int, default=None, metavar="N",
                   help="the paced wire's cycles per byte each way (default 120: 3 Mbaud at "
                        "36 MHz)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="print the device's params and counters")
    _add_device_options(p)
    p.set_defaults(func=cmd_info)

    args = parser.parse_args(argv)
    if args.board_params is not None:
        try:
            board_params(args.board_params)
        except UsageError as error:
            parser.error(str(error))
    from .device import DeviceError
    try:
        return args.func(args)
    except (UsageError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

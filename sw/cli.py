"""The ``python -m sw`` command line: run, demo, bench, info."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from hw.params import RillParams

__all__ = ["main"]

DEVICE_HELP = ("golden (the numpy model), sim (the core and link RTL in Verilator; default), "
               "serial:///dev/ttyUSB1?baud=3000000 (a board) or socket://HOST:PORT")



def _params_from(args) -> RillParams:
    """The params to compile for: a board's own (asked over the link) unless ``--rows``/``--cols``
    or ``--board-params`` say otherwise; the defaults, or the named board's, with those overrides,
    for ``golden`` and ``sim``."""
    from .device import BOARD_URLS, ask_params
    if args.board_params is None and args.rows is None and args.cols is None \
            and args.device.startswith(BOARD_URLS):
        return ask_params(args.device)
    defaults = RillParams()
    if args.board_params is not None:
        from boards import get_board
        defaults = get_board(args.board_params).params
    return replace(defaults, rows=args.rows or defaults.rows, cols=args.cols or defaults.cols)


def _executor(device: str, params: RillParams):
    """A function running a batch of programs, in order, on one device opened by URL."""
    from .device import open_device

    def run(programs):
        with open_device(device, params) as dev:
            return [dev.execute(program, response_bytes)
                    for _name, program, response_bytes in programs]
    return run


def cmd_bench(args) -> int:
    from .bench import default_workloads, format_table, measure, plot, write_json
    params = _params_from(args)
    rows = measure(params, default_workloads(params), _executor(args.device, params))
    print(format_table(params, rows))
    mismatched = [r.workload for r in rows if r.matmul_cycles != r.predicted_matmul_cycles
                  or r.program_cycles != r.predicted_program_cycles]
    if args.plot:
        plot(args.plot, params, rows)
        print(f"wrote {args.plot}")
    stream_rows = []
    if args.stream and args.device == "sim":
        from sim.paced import run_paced

        from .bench_stream import UART_CYCLES_PER_BYTE, format_streaming, measure_streaming
        cycles_per_byte = args.cycles_per_byte or UART_CYCLES_PER_BYTE
        print(f"\nstreaming layers through the link RTL at {cycles_per_byte} cycles per byte "
              f"(a few minutes)...", flush=True)
        stream_rows = measure_streaming(params, run_paced, cycles_per_byte)
        print(format_streaming(stream_rows, cycles_per_byte))
        mismatched += [r.workload for r in stream_rows
                       if r.device_cycles != r.predicted_device_cycles]
    elif args.stream:
        print("\n(end-to-end streaming needs the RTL: --device sim)")
    if args.json:
        write_json(args.json, params, rows, stream_rows)
        print(f"wrote {args.json}")
    if mismatched:
        print(f"error: measured cycles differ from the prediction for {mismatched}",
              file=sys.stderr)
        return 1
    return 0


def _name_path_pairs(values: list[str], names: list[str], what: str) -> dict[str, str]:
    """``--input x.npy`` (single-input models) or ``--input name=x.npy`` (any model)."""
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(names) != 1 or len(values) != 1:
                raise SystemExit(f"error: the model has {what}s {names}; give each as "
                                 f"--{what} NAME=PATH")
            name, path = names[0], value
        if name not in names:
            raise SystemExit(f"error: the model has no {what} {name!r}; its {what}s: {names}")
        pairs[name] = path
    return pairs


def cmd_run(args) -> int:
    import numpy as np

    from .device import open_device
    from .onnx_import import ModelImportError, RillModel
    try:
        model = RillModel.load(args.model)
    except (ModelImportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    inputs = _name_path_pairs(args.input, model.input_names, "input")
    missing = set(model.input_names) - set(inputs)
    if missing:
        raise SystemExit(f"error: missing --input for {sorted(missing)}")
    outputs = _name_path_pairs(args.output, model.output_names, "output")
    feeds = {name: np.load(path) for name, path in inputs.items()}

    def progress(layer, index, total):
        print(f"[{index + 1}/{total}] {layer} on {args.device}", file=sys.stderr, flush=True)

    with open_device(args.device, _params_from(args)) as device:
        try:
            results = model.run(device, feeds, progress=progress)
        except ModelImportError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    for name, path in outputs.items():
        np.save(path, results[name])
        print(f"wrote {path}: {name} {results[name].dtype} {list(results[name].shape)}")
    predicted = sum(model.predicted_cycles().values())
    print(f"{len(model.programs)} device layer program(s), {predicted} predicted cycles")
    if args.compare == "onnxruntime":
        from .oracle import compare_with_onnxruntime
        comparison = compare_with_onnxruntime(args.model, feeds, results)
        print("\n".join(comparison.lines()))
        return 0 if comparison.device_is_right else 1
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(_params_from(args), device=args.device)


def cmd_info(args) -> int:
    from hw import isa
    from hw.isa import Opcode
    params = _params_from(args)
    program = isa.encode(Opcode.INFO) + isa.encode(Opcode.READ_COUNTERS)
    (response,) = _executor(args.device, params)([("info", program, 4 + 16 + 4 + 16)])
    device_params, version = RillParams.from_info_bytes(response[4:20])
    print(f"device: {args.device}  ISA v{version}")
    fields = vars(device_params)
    width = max(map(len, fields)) + 2
    for name, value in fields.items():
        print(f"  {name:<{width}}{value}")
    print(f"  peak MACs/cycle: {device_params.peak_macs_int8} INT8, "
          f"{device_params.peak_macs_int4} INT4")
    counters = [int.from_bytes(response[24 + 4 * i:28 + 4 * i], "little") for i in range(4)]
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

    p = sub.add_parser("run", help="run a quantized ONNX model and save its output as .npy",
                       description="Run a quantized ONNX model (from onnxruntime's "
                       "quantize_static, QDQ or QOperator) on a Rill device. The output is "
                       "exactly what onnxruntime produces: same values, dtype and shape.")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]X.npy",
                   help="input tensor; NAME= is needed when the model has several inputs")
    p.add_argument("--output", action="append", required=True, metavar="[NAME=]Y.npy",
                   help="where to write the output tensor")
    p.add_argument("--device", default="sim", metavar="URL",
                   help=DEVICE_HELP)
    p.add_argument("--compare", choices=["onnxruntime"], default=None,
                   help="also run onnxruntime on this CPU and say whether its outputs equal the "
                   "device's; where they differ, say whose answer is wrong (exit status 1 when it "
                   "is the device's)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run GEMMs on the simulated RTL and check them bit for bit")
    p.add_argument("--device", default="sim", metavar="URL",
                   help=DEVICE_HELP)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="measure utilization, cycles vs prediction and wire bytes")
    p.add_argument("--device", default="sim", metavar="URL",
                   help=DEVICE_HELP)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also plot utilization against GEMM size")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="also stream a layer through the core and link RTL over a UART-paced "
                        "wire and report end-to-end throughput and wire bytes (sim only; "
                        "a few minutes); default on")
    p.add_argument("--cycles-per-byte", type=int, default=None, metavar="N",
                   help="the paced wire's cycles per byte each way (default 120: 3 Mbaud at "
                        "36 MHz)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="print the device's params and counters")
    p.add_argument("--device", default="sim", metavar="URL",
                   help=DEVICE_HELP)
    p.set_defaults(func=cmd_info)

    args = parser.parse_args(argv)
    if args.board_params is not None:
        from boards import REGISTRY, UnknownBoard
        if args.board_params not in REGISTRY:
            parser.error(str(UnknownBoard(args.board_params)))
    from .device import DeviceError
    try:
        return args.func(args)
    except DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
